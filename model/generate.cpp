#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "model/tokenizer.h"

namespace qvk {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

GenerationStats Generate(Engine& engine, const ModelFiles& files, std::span<const uint32_t> prompt, Sampler& sampler,
                         uint32_t max_new_tokens, const std::function<bool(const GenerationStep&)>& on_step,
                         std::vector<uint32_t>* generated) {
  GenerationStats stats;
  stats.prompt_tokens = static_cast<uint32_t>(prompt.size());
  std::vector<uint32_t> history(prompt.begin(), prompt.end());
  // The logits stay on the GPU when the sampler can draw from the best few ranked there; the
  // whole row crosses to the host only when its filters need it. Where the GPU shares host
  // memory the row costs no transfer, and ranking more than the argmax there (k sequential
  // rounds of the top-k kernel) costs more than the host's partial sort, so the row is read.
  const uint32_t vocab = engine.config().vocab_size;
  uint32_t ranked = sampler.RankedNeeded(vocab, std::min(kMaxRanked, vocab));
  if (ranked > 1 && engine.logits_in_host_memory()) ranked = 0;
  const LogitsReadout readout{.ranked = std::max(ranked, 1u), .full_row = ranked == 0};
  std::vector<float> logits;
  auto next_token = [&]() {
    if (ranked != 0) {
      const RankedLogits best = engine.ranked();
      if (const auto token = sampler.SampleRanked(best.logits, best.ids, history)) return *token;
    }
    const auto row = engine.logits();
    logits.assign(row.begin(), row.end());
    return sampler.Sample(logits, history);
  };

  const auto start = Clock::now();
  engine.Prefill(prompt, LastLogits{readout});
  uint32_t token = next_token();
  const auto first = Clock::now();
  stats.time_to_first_token_s = Seconds(start, first);
  StreamDecoder decoder(files.tokenizer());
  GenerationStep step;
  while (stats.generated_tokens < max_new_tokens) {
    if (files.IsStopToken(token)) {
      stats.hit_stop_token = true;
      break;
    }
    ++stats.generated_tokens;
    history.push_back(token);
    if (generated) generated->push_back(token);
    const std::string text = decoder.Push(token);
    step = {.token = token, .position = static_cast<uint32_t>(history.size() - 1), .text = text};
    if (engine.live_attention()) step.attention = engine.attention_row();
    if (!on_step(step)) break;
    if (stats.generated_tokens == max_new_tokens) break;
    if (engine.cached_tokens().size() + 1 > engine.context()) {
      stats.context_full = true;
      break;
    }
    engine.Decode(token, readout);
    token = next_token();
  }
  const std::string trailing = decoder.Flush();
  if (!trailing.empty()) {
    step.text = trailing;
    step.trailing_text = true;
    step.attention.reset();  // its row was the last step's, which a later decode wrote over
    on_step(step);
  }
  if (stats.generated_tokens > 1) {
    stats.decode_tokens_per_s = (stats.generated_tokens - 1) / Seconds(first, Clock::now());
  }
  return stats;
}

}  // namespace qvk
