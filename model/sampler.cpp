#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gpu/error.h"

namespace qvk {

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (!(params.repetition_penalty > 0.0f)) throw Error("repetition penalty must be positive");
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) throw Error("top-p must be in (0, 1]");
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) throw Error("min-p must be in [0, 1]");
  if (std::isnan(params.temperature)) throw Error("temperature is not a number");
}

uint32_t Sampler::Sample(std::span<float> logits, std::span<const uint32_t> history) {
  if (logits.empty()) throw Error("no logits to sample from");
  // Repetition penalty (CTRL): once per distinct token seen, shrinking its logit toward "less likely".
  if (params_.repetition_penalty != 1.0f) {
    std::vector<uint32_t> seen(history.begin(), history.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (uint32_t id : seen) {
      if (id >= logits.size()) continue;
      float& l = logits[id];
      l = l < 0 ? l * params_.repetition_penalty : l / params_.repetition_penalty;
    }
  }
  if (is_greedy()) {
    // First maximum wins, as torch.argmax.
    return static_cast<uint32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }

  for (float& l : logits) l /= params_.temperature;
  // Candidates sorted by logit, descending; ties to the lower id so runs are reproducible.
  order_.resize(logits.size());
  std::iota(order_.begin(), order_.end(), 0u);
  auto by_logit = [&](uint32_t a, uint32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = logits.size();
  if (params_.top_k > 0 && params_.top_k < keep) {
    keep = params_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }
  // Softmax over the kept candidates.
  probs_.resize(keep);
  const double max_logit = logits[order_[0]];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += probs_[i] = static_cast<float>(std::exp(logits[order_[i]] - max_logit));
  for (size_t i = 0; i < keep; ++i) probs_[i] = static_cast<float>(probs_[i] / sum);
  // Top-p: the smallest prefix whose mass reaches p (always at least one token).
  if (params_.top_p < 1.0f) {
    double mass = 0;
    size_t n = 0;
    while (n < keep) {
      mass += probs_[n++];
      if (mass >= params_.top_p) break;
    }
    keep = n;
  }
  // Min-p: drop tokens below min_p times the top probability.
  if (params_.min_p > 0.0f) {
    const float floor = params_.min_p * probs_[0];
    size_t n = 1;
    while (n < keep && probs_[n] >= floor) ++n;
    keep = n;
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs_[i];
  // 53 random bits in [0, 1): the same draw on every platform for a given seed.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (u < acc) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace qvk
