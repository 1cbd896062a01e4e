#pragma once
// Token sampling on the host, in the order transformers applies its logits processors:
// repetition penalty, temperature, top-k, top-p, min-p, then a draw from the softmax.
// A seed makes a run reproducible (the generator and the draw are fully specified).
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace qvk {

struct SamplingParams {
  bool greedy = false;       // argmax after the repetition penalty
  float temperature = 1.0f;  // <= 0 means greedy
  uint32_t top_k = 0;        // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // `logits` is modified (penalty, temperature). `history` holds the tokens the penalty applies to.
  uint32_t Sample(std::span<float> logits, std::span<const uint32_t> history);
  const SamplingParams& params() const { return params_; }
  bool is_greedy() const { return params_.greedy || params_.temperature <= 0.0f; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<uint32_t> order_;
  std::vector<float> probs_;
};

}  // namespace qvk
