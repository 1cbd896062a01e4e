#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"

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
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  auto weight = [&](uint32_t id) { return std::exp(static_cast<double>(logits[id]) - max_logit); };
  // Candidates by logit, descending; ties to the lower id so runs are reproducible. Only as much
  // of the vocabulary is sorted as the filters can keep: top-k's k, else a prefix that grows
  // until it holds the top-p mass and min-p's cut; with no filter the draw needs no order.
  order_.resize(logits.size());
  std::iota(order_.begin(), order_.end(), 0u);
  auto by_logit = [&](uint32_t a, uint32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t candidates = logits.size();  // the set top-k leaves, over which probabilities are normalized
  size_t sorted = 0;
  if (params_.top_k > 0 && params_.top_k < candidates) {
    candidates = sorted = params_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(), by_logit);
  }
  double norm = 0;
  for (size_t i = 0; i < candidates; ++i) norm += weight(order_[i]);
  const bool top_p = params_.top_p < 1.0f, min_p = params_.min_p > 0.0f;
  if ((top_p || min_p) && sorted < candidates) {
    for (sorted = std::min<size_t>(64, candidates);; sorted = std::min(sorted * 4, candidates)) {
      std::partial_sort(order_.begin(), order_.begin() + sorted, order_.begin() + candidates, by_logit);
      double mass = 0;
      for (size_t i = 0; i < sorted; ++i) mass += weight(order_[i]);
      const bool holds_top_p = !top_p || mass / norm >= params_.top_p;
      const bool holds_min_p = !min_p || weight(order_[sorted - 1]) < params_.min_p;  // relative to the top (weight 1)
      if (sorted == candidates || (holds_top_p && holds_min_p)) break;
    }
  }
  size_t keep = (top_p || min_p) ? sorted : candidates;
  probs_.resize(keep);
  for (size_t i = 0; i < keep; ++i) probs_[i] = static_cast<float>(weight(order_[i]) / norm);
  // Top-p: the smallest prefix whose mass reaches p (always at least one token).
  if (top_p) {
    double mass = 0;
    size_t n = 0;
    while (n < keep) {
      mass += probs_[n++];
      if (mass >= params_.top_p) break;
    }
    keep = n;
  }
  // Min-p: drop tokens below min_p times the top probability.
  if (min_p) {
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
