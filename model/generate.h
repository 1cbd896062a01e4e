#pragma once
// The generation loop shared by the CLI and the app: prefill (reusing the cached prefix),
// then sample, stream text, decode, until a stop token, the token limit, or the caller stops.
#include <cstdint>
#include <functional>
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

// on_text receives each piece of streamed text; returning false stops generation.
GenerationStats Generate(Engine& engine, const ModelFiles& files, std::span<const uint32_t> prompt, Sampler& sampler,
                         uint32_t max_new_tokens, const std::function<bool(std::string_view)>& on_text,
                         std::vector<uint32_t>* generated = nullptr);

}  // namespace qvk
