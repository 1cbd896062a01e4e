#pragma once
// Token sampling on the host, in the order transformers applies its logits processors:
// repetition penalty, temperature, top-k, top-p, min-p, then a draw from the softmax.
// A seed makes a run reproducible (the generator and the draw are fully specified).
// With top-k (or greedy), the draw can come from a step's best logits ranked on the GPU instead
// of the whole row, token for token the same.
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace qvk {

struct SamplingParams {
  bool greedy = false;       // argmax after the repetition penalty
  float temperature = 1.0f;  // <= 0 means greedy
  uint32_t top_k = 0;        // 0: off
  float top_p = 1.0f;        // 1: off; 0: the most likely token only
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // `logits` is modified (penalty, temperature). `history` holds the tokens the penalty applies to.
  uint32_t Sample(std::span<float> logits, std::span<const uint32_t> history);

  // How many of a row's best logits SampleRanked wants ranked, when at most `max_ranked` can be;
  // 0 when the draw needs the whole row: no top-k, or one larger than that or than the
  // vocabulary, or a penalty below 1 (a repeated token may then rise from anywhere in the row).
  uint32_t RankedNeeded(uint32_t vocab_size, uint32_t max_ranked) const;
  // What Sample would draw from the whole row, given its best logits (descending, ties to the
  // lower id) and their ids, of which it reads the first k + (distinct penalized tokens) + 1.
  // nullopt, having drawn nothing, when those do not settle the top-k: then Sample the row.
  std::optional<uint32_t> SampleRanked(std::span<const float> logits, std::span<const uint32_t> ids,
                                       std::span<const uint32_t> history);

  const SamplingParams& params() const { return params_; }
  bool is_greedy() const { return params_.greedy || params_.temperature <= 0.0f; }

 private:
  float Penalize(float logit) const;
  void CollectPenalized(std::span<const uint32_t> history);
  uint32_t Draw(std::span<const float> logits, size_t candidates, size_t sorted);

  struct Candidate {
    float logit;
    uint32_t id;
  };

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<uint32_t> penalized_;  // distinct history tokens, sorted
  std::vector<uint32_t> order_;
  std::vector<float> probs_;
  std::vector<Candidate> candidates_;  // ranked logits read, then penalized and tempered
  std::vector<float> ranked_logits_;   // the top k of them, for Draw
};

}  // namespace qvk
