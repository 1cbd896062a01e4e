#include "model/generate.h"

#include <chrono>

#include "model/tokenizer.h"

namespace qvk {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

GenerationStats Generate(Engine& engine, const ModelFiles& files, std::span<const uint32_t> prompt, Sampler& sampler,
                         uint32_t max_new_tokens, const std::function<bool(std::string_view)>& on_text,
                         std::vector<uint32_t>* generated) {
  GenerationStats stats;
  stats.prompt_tokens = static_cast<uint32_t>(prompt.size());
  std::vector<uint32_t> history(prompt.begin(), prompt.end());
  // The GPU's argmax is the answer when nothing reshapes the distribution.
  const bool use_gpu_argmax = sampler.is_greedy() && sampler.params().repetition_penalty == 1.0f;
  std::vector<float> logits;
  auto next_token = [&](std::span<const float> row) {
    if (use_gpu_argmax) return engine.argmax();
    logits.assign(row.begin(), row.end());
    return sampler.Sample(logits, history);
  };

  const auto start = Clock::now();
  uint32_t token = next_token(engine.Prefill(prompt));
  const auto first = Clock::now();
  stats.time_to_first_token_s = Seconds(start, first);
  StreamDecoder decoder(files.tokenizer());
  while (stats.generated_tokens < max_new_tokens) {
    if (files.IsStopToken(token)) {
      stats.hit_stop_token = true;
      break;
    }
    ++stats.generated_tokens;
    history.push_back(token);
    if (generated) generated->push_back(token);
    if (!on_text(decoder.Push(token))) break;
    if (stats.generated_tokens == max_new_tokens) break;
    if (engine.cached_tokens().size() + 1 > engine.context()) {
      stats.context_full = true;
      break;
    }
    token = next_token(engine.Decode(token));
  }
  on_text(decoder.Flush());
  if (stats.generated_tokens > 1) {
    stats.decode_tokens_per_s = (stats.generated_tokens - 1) / Seconds(first, Clock::now());
  }
  return stats;
}

}  // namespace qvk
