#pragma once
// The generation loop shared by the CLI and the app: prefill (reusing the cached prefix),
// then sample, report the step, decode, until a stop token, the token limit, or the caller stops.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "model/engine.h"
#include "model/model_files.h"
#include "model/sampler.h"

namespace qvk {

struct GenerationStats {
  uint32_t prompt_tokens = 0;
  uint32_t generated_tokens = 0;
  double time_to_first_token_s = 0;  // prompt submitted -> first token sampled
  double decode_tokens_per_s = 0;    // tokens after the first, per second
  bool hit_stop_token = false;
  bool context_full = false;  // stopped because the KV cache has no room for another token
};

// One step of a generation as it happens. What a step captures for a caller (attention rows,
// timings) is added here, so callbacks keep their signature.
struct GenerationStep {
  uint32_t token = 0;     // the sampled token id
  uint32_t position = 0;  // its position in the sequence (the prompt holds 0 .. prompt size - 1)
  // Its piece of the text: empty while its bytes end inside a UTF-8 character. When generation
  // ends inside one, a last call (trailing_text set, token and position repeating the last
  // step's) carries what is left of it, as Tokenizer::Decode writes it.
  std::string_view text;
  bool trailing_text = false;
  // With Engine::set_live_attention on: the attention that produced this token, the row of the
  // query before it (position - 1) reduced to each live view, valid during the callback.
  std::optional<AttentionRow> attention;
};

// on_step receives each generated token; returning false stops generation.
GenerationStats Generate(Engine& engine, const ModelFiles& files, std::span<const uint32_t> prompt, Sampler& sampler,
                         uint32_t max_new_tokens, const std::function<bool(const GenerationStep&)>& on_step,
                         std::vector<uint32_t>* generated = nullptr);

}  // namespace qvk
