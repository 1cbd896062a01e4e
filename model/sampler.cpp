#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "base/error.h"

namespace qvk {
namespace {

// Candidates by logit, descending; ties to the lower id so runs are reproducible.
auto ByLogit(std::span<const float> logits) {
  return [logits](uint32_t a, uint32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
}

// A row sound weights cannot produce: a NaN, or +inf (whose softmax is NaN). Drawing from it would
// hand back an arbitrary token as if the model had chosen it.
void RequireNumbers(std::span<const float> logits) {
  for (const float l : logits) {
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      throw Error(
          "the model's output is not a number at this step (NaN or infinite logits): its weights may be damaged");
    }
  }
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (!(params.repetition_penalty > 0.0f)) throw Error("repetition penalty must be positive");
  // 0 keeps only the most likely token, as transformers' top-p keeps at least one.
  if (!(params.top_p >= 0.0f && params.top_p <= 1.0f)) throw Error("top-p must be in [0, 1]");
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) throw Error("min-p must be in [0, 1]");
  if (std::isnan(params.temperature)) throw Error("temperature is not a number");
}

// Repetition penalty (CTRL): once per distinct token seen, shrinking its logit toward "less likely".
float Sampler::Penalize(float logit) const {
  return logit < 0 ? logit * params_.repetition_penalty : logit / params_.repetition_penalty;
}

void Sampler::CollectPenalized(std::span<const uint32_t> history) {
  penalized_.clear();
  if (params_.repetition_penalty == 1.0f) return;
  penalized_.assign(history.begin(), history.end());
  std::sort(penalized_.begin(), penalized_.end());
  penalized_.erase(std::unique(penalized_.begin(), penalized_.end()), penalized_.end());
}

uint32_t Sampler::Sample(std::span<float> logits, std::span<const uint32_t> history) {
  if (logits.empty()) throw Error("no logits to sample from");
  RequireNumbers(logits);
  CollectPenalized(history);
  for (uint32_t id : penalized_) {
    if (id < logits.size()) logits[id] = Penalize(logits[id]);
  }
  if (is_greedy()) {
    // First maximum wins, as torch.argmax.
    return static_cast<uint32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  for (float& l : logits) l /= params_.temperature;
  order_.resize(logits.size());
  std::iota(order_.begin(), order_.end(), 0u);
  size_t candidates = logits.size();  // the set top-k leaves, over which probabilities are normalized
  size_t sorted = 0;
  if (params_.top_k > 0 && params_.top_k < candidates) {
    candidates = sorted = params_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(), ByLogit(logits));
  }
  return Draw(logits, candidates, sorted);
}

uint32_t Sampler::RankedNeeded(uint32_t vocab_size, uint32_t max_ranked) const {
  const float penalty = params_.repetition_penalty;
  if (penalty < 1.0f) return 0;
  if (is_greedy() && penalty == 1.0f) return 1;  // the GPU's argmax, ties to the lower id as here
  const uint32_t k = is_greedy() ? 1 : params_.top_k;
  // One past the k-th bounds every logit not read. Penalized tokens among the best push the k-th
  // further down: twice k and a few more usually still hold k unpenalized ones, and a step where
  // they do not reads the row. (Ranking costs k rounds on the GPU, so not the kernel's limit.)
  if (k == 0 || k >= vocab_size || k + 1 > max_ranked) return 0;
  return penalty == 1.0f ? k + 1 : std::min(max_ranked, 2 * k + 8);
}

std::optional<uint32_t> Sampler::SampleRanked(std::span<const float> logits, std::span<const uint32_t> ids,
                                              std::span<const uint32_t> history) {
  if (ids.empty() || logits.size() != ids.size()) throw Error("no ranked logits to sample from");
  RequireNumbers(logits);
  if (params_.repetition_penalty < 1.0f) return std::nullopt;
  CollectPenalized(history);
  if (is_greedy() && penalized_.empty()) return ids[0];
  const size_t k = is_greedy() ? 1 : params_.top_k;
  const size_t read = std::min(ids.size(), k + penalized_.size() + 1);
  if (k == 0 || read <= k) return std::nullopt;

  // The candidates read, penalized and tempered exactly as Sample does it to the whole row.
  candidates_.resize(read);
  for (size_t i = 0; i < read; ++i) {
    float l = logits[i];
    if (std::binary_search(penalized_.begin(), penalized_.end(), ids[i])) l = Penalize(l);
    if (!is_greedy()) l /= params_.temperature;
    candidates_[i] = {l, ids[i]};
  }
  std::partial_sort(
      candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k), candidates_.end(),
      [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
  // A logit not read is at most the last one read, and a penalty of at least 1 and a positive
  // temperature never raise it past that one's tempered value (float division is monotonic).
  // Strictly below the k-th candidate, none of them can enter the top k, even on a tie.
  const float bound = is_greedy() ? logits[read - 1] : logits[read - 1] / params_.temperature;
  if (!(candidates_[k - 1].logit > bound)) return std::nullopt;
  if (is_greedy()) return candidates_[0].id;

  ranked_logits_.resize(k);
  for (size_t i = 0; i < k; ++i) ranked_logits_[i] = candidates_[i].logit;
  order_.resize(k);
  std::iota(order_.begin(), order_.end(), 0u);
  return candidates_[Draw(ranked_logits_, k, k)].id;
}

// Draws from penalized, tempered `logits`: order_[0, candidates) is the set top-k leaves (the
// whole row without top-k), its first `sorted` by logit. Returns the slot drawn.
uint32_t Sampler::Draw(std::span<const float> logits, size_t candidates, size_t sorted) {
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  auto weight = [&](uint32_t slot) { return std::exp(static_cast<double>(logits[slot]) - max_logit); };
  // Only as much of the candidates is sorted as the filters can keep: top-k's k, else a prefix
  // that grows until it holds the top-p mass and min-p's cut; with no filter the draw needs no order.
  double norm = 0;
  for (size_t i = 0; i < candidates; ++i) norm += weight(order_[i]);
  const bool top_p = params_.top_p<1.0f, min_p = params_.min_p> 0.0f;
  if ((top_p || min_p) && sorted < candidates) {
    for (sorted = std::min<size_t>(64, candidates);; sorted = std::min(sorted * 4, candidates)) {
      std::partial_sort(order_.begin(), order_.begin() + sorted, order_.begin() + candidates, ByLogit(logits));
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
