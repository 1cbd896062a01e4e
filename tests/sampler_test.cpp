// Host-side sampling: each processor in transformers' order, and reproducibility by seed.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "base/error.h"
#include "model/sampler.h"

namespace qvk {
namespace {

std::vector<float> Logits() {
  return {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};
}

std::map<uint32_t, int> Histogram(SamplingParams params, int draws, std::vector<uint32_t> history = {}) {
  Sampler sampler(params);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < draws; ++i) {
    auto logits = Logits();
    ++counts[sampler.Sample(logits, history)];
  }
  return counts;
}

TEST(SamplerTest, GreedyTakesTheFirstMaximum) {
  Sampler sampler({.greedy = true});
  auto logits = Logits();
  EXPECT_EQ(sampler.Sample(logits, {}), 1u);
  Sampler zero_temperature({.temperature = 0.0f});
  logits = Logits();
  EXPECT_EQ(zero_temperature.Sample(logits, {}), 1u);
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  Sampler sampler({.greedy = true, .repetition_penalty = 2.0f});
  auto logits = Logits();
  const std::vector<uint32_t> history = {1, 1, 4};  // repeats count once
  EXPECT_EQ(sampler.Sample(logits, history), 3u);   // 3.0 stays, token 1 drops to 1.5
  EXPECT_FLOAT_EQ(logits[1], 1.5f);
  EXPECT_FLOAT_EQ(logits[4], -2.0f);
  EXPECT_FLOAT_EQ(logits[3], 3.0f);
}

TEST(SamplerTest, TopKKeepsOnlyTheKMostLikely) {
  const auto counts = Histogram({.temperature = 1.0f, .top_k = 2, .seed = 1}, 2000);
  ASSERT_EQ(counts.size(), 2u);  // the two tokens at 3.0
  EXPECT_TRUE(counts.count(1) && counts.count(3));
  EXPECT_NEAR(counts.at(1), 1000, 150);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingP) {
  // softmax: tokens 1 and 3 hold ~0.31 each, token 2 ~0.115; p = 0.6 keeps just 1 and 3.
  const auto counts = Histogram({.temperature = 1.0f, .top_p = 0.6f, .seed = 2}, 2000);
  EXPECT_EQ(counts.size(), 2u);
  const auto wider = Histogram({.temperature = 1.0f, .top_p = 0.8f, .seed = 2}, 2000);
  EXPECT_EQ(wider.size(), 3u);
}

TEST(SamplerTest, MinPDropsTokensBelowAFractionOfTheTop) {
  // Token 2 has e^-1 = 0.37 of the top probability; 0.5 drops it, 0.3 keeps it.
  EXPECT_EQ(Histogram({.temperature = 1.0f, .min_p = 0.5f, .seed = 3}, 1000).size(), 2u);
  EXPECT_EQ(Histogram({.temperature = 1.0f, .min_p = 0.3f, .seed = 3}, 1000).size(), 3u);
}

TEST(SamplerTest, TemperatureSharpensAndFlattens) {
  const auto cold = Histogram({.temperature = 0.1f, .seed = 4}, 2000);
  const auto hot = Histogram({.temperature = 10.0f, .seed = 4}, 2000);
  EXPECT_EQ(cold.size(), 2u);
  EXPECT_EQ(hot.size(), 6u);
}

// Top-p 0 keeps the smallest set reaching no mass at all: the most likely token, every draw (the
// OpenAI API and generation_config.json both allow 0).
TEST(SamplerTest, TopPZeroKeepsOnlyTheMostLikely) {
  const auto counts = Histogram({.temperature = 1.0f, .top_p = 0.0f, .seed = 4}, 500);
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts.begin()->first, 1u);  // the lower of the two tied at the top
}

// Over a whole vocabulary only a growing prefix is sorted; the top-p set here spans ~270 ids,
// well past the first prefix of 64.
TEST(SamplerTest, TopPOverAVocabularyKeepsExactlyTheNucleus) {
  std::vector<float> base(151936, 0.0f);
  for (uint32_t i = 0; i < 300; ++i) base[i] = 5.0f;  // 300 ids hold ~23% of the mass
  Sampler sampler({.temperature = 1.0f, .top_p = 0.2f, .seed = 9});
  std::map<uint32_t, int> counts;
  for (int draw = 0; draw < 5000; ++draw) {
    auto logits = base;
    ++counts[sampler.Sample(logits, {})];
  }
  EXPECT_LT(counts.rbegin()->first, 300u);  // nothing outside the nucleus
  EXPECT_GT(counts.size(), 200u);           // and the nucleus is more than the first sorted prefix
}

TEST(SamplerTest, TheSameSeedGivesTheSameDraws) {
  const SamplingParams params{.temperature = 1.5f, .top_p = 0.95f, .seed = 42};
  Sampler a(params), b(params);
  for (int i = 0; i < 100; ++i) {
    auto la = Logits(), lb = Logits();
    ASSERT_EQ(a.Sample(la, {}), b.Sample(lb, {}));
  }
  EXPECT_NE(Histogram({.temperature = 1.5f, .seed = 1}, 50), Histogram({.temperature = 1.5f, .seed = 2}, 50));
}

// The best `count` of a row as the GPU ranks them (ops::TopK): descending, ties to the lower id.
struct Ranked {
  std::vector<float> logits;
  std::vector<uint32_t> ids;
};
Ranked Rank(const std::vector<float>& row, uint32_t count) {
  std::vector<uint32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0u);
  std::partial_sort(order.begin(), order.begin() + count, order.end(),
                    [&](uint32_t a, uint32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  Ranked r;
  for (uint32_t i = 0; i < count; ++i) {
    r.ids.push_back(order[i]);
    r.logits.push_back(row[order[i]]);
  }
  return r;
}

// What Generate relies on: drawing from the ranked best logits gives the token drawing from the
// whole row gives, for every filter combination, seed and penalty; and where the ranked ones do
// not settle it (ties at the k-th), the sampler says so and the row decides.
TEST(SamplerTest, RankedLogitsDrawWhatTheWholeRowDraws) {
  constexpr uint32_t kVocab = 5000, kMaxRanked = 256;
  const SamplingParams cases[] = {
      {.temperature = 0.7f, .top_k = 20, .top_p = 0.8f, .repetition_penalty = 1.05f},
      {.temperature = 1.0f, .top_k = 5},
      {.temperature = 1.3f, .top_k = 40, .min_p = 0.05f},
      {.temperature = 0.5f, .top_k = 1},
      {.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .min_p = 0.02f, .repetition_penalty = 1.5f},
      {.temperature = 1.0f, .top_k = 100, .repetition_penalty = 1.1f},
      {.temperature = 1.0f, .top_k = 255},
      {.greedy = true, .repetition_penalty = 1.3f},
      {.greedy = true},
  };
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<uint32_t> any_id(0, kVocab - 1);
  for (const SamplingParams& base : cases) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      SamplingParams params = base;
      params.seed = seed;
      Sampler whole(params), ranked(params);
      const uint32_t needed = ranked.RankedNeeded(kVocab, kMaxRanked);
      ASSERT_GT(needed, 0u) << "top-k " << params.top_k;
      int settled = 0;
      constexpr int kSteps = 40;
      for (int step = 0; step < kSteps; ++step) {
        std::vector<float> row(kVocab);
        for (float& l : row) l = normal(gen);
        for (uint32_t id = 13; id < kVocab; id += 13) row[id] = row[id % 97];  // exact ties throughout
        const Ranked best = Rank(row, needed);
        // A history of random tokens and some of the current favourites.
        std::vector<uint32_t> history;
        for (int i = 0; i < 30; ++i) history.push_back(any_id(gen));
        for (uint32_t i = 0; i < std::min(6u, needed); i += 1 + step % 3) history.push_back(best.ids[i]);

        std::vector<float> logits = row;
        const uint32_t expected = whole.Sample(logits, history);
        const auto got = ranked.SampleRanked(best.logits, best.ids, history);
        if (got) {
          ++settled;
          ASSERT_EQ(*got, expected) << "top-k " << params.top_k << " seed " << seed << " step " << step;
        } else {
          logits = row;
          ASSERT_EQ(ranked.Sample(logits, history), expected) << "after falling back, step " << step;
        }
      }
      EXPECT_GE(settled, kSteps * 3 / 4) << "top-k " << params.top_k << " seed " << seed;
    }
  }
}

TEST(SamplerTest, RanksOnlyWhatTopKLeaves) {
  constexpr uint32_t kVocab = 151936, kMaxRanked = 256;
  EXPECT_EQ(Sampler({.greedy = true}).RankedNeeded(kVocab, kMaxRanked), 1u);  // the argmax alone
  EXPECT_EQ(Sampler({.top_k = 20}).RankedNeeded(kVocab, kMaxRanked), 21u);
  // With a penalty, room for penalized tokens among the best, within what can be ranked.
  EXPECT_EQ(Sampler({.top_k = 20, .repetition_penalty = 1.1f}).RankedNeeded(kVocab, kMaxRanked), 48u);
  EXPECT_EQ(Sampler({.greedy = true, .repetition_penalty = 1.1f}).RankedNeeded(kVocab, kMaxRanked), 10u);
  EXPECT_EQ(Sampler({.top_k = 200, .repetition_penalty = 1.1f}).RankedNeeded(kVocab, kMaxRanked), kMaxRanked);
  // The whole row: no top-k, one past what can be ranked, one of the whole vocabulary, and a
  // penalty that raises repeated tokens.
  EXPECT_EQ(Sampler({.top_p = 0.9f}).RankedNeeded(kVocab, kMaxRanked), 0u);
  EXPECT_EQ(Sampler({.top_k = 256}).RankedNeeded(kVocab, kMaxRanked), 0u);
  EXPECT_EQ(Sampler({.top_k = 6}).RankedNeeded(6, kMaxRanked), 0u);
  EXPECT_EQ(Sampler({.top_k = 20, .repetition_penalty = 0.9f}).RankedNeeded(kVocab, kMaxRanked), 0u);
  EXPECT_EQ(Sampler({.greedy = true, .repetition_penalty = 0.9f}).RankedNeeded(kVocab, kMaxRanked), 0u);
}

// A NaN or +inf logit (damaged weights) stops the draw with an error rather than yielding an
// arbitrary token; -inf is a token that can never be drawn.
TEST(SamplerTest, RefusesLogitsThatAreNotNumbers) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const SamplingParams& params : {SamplingParams{.greedy = true}, SamplingParams{.top_k = 2, .seed = 1},
                                       SamplingParams{.temperature = 0.8f, .top_p = 0.9f}}) {
    for (const float bad : {NAN, inf}) {
      std::vector<float> row = {0.5f, bad, 1.0f, -inf};
      EXPECT_THROW(Sampler(params).Sample(row, {}), Error);
      const std::vector<float> ranked = {bad, 1.0f, 0.5f};
      const std::vector<uint32_t> ids = {1, 2, 0};
      EXPECT_THROW(Sampler(params).SampleRanked(ranked, ids, {}), Error);
    }
    std::vector<float> row = {0.5f, -inf, 1.0f, -inf};
    EXPECT_NE(Sampler(params).Sample(row, {}), 1u);
  }
}

TEST(SamplerTest, RefusesBadSettings) {
  EXPECT_THROW(Sampler({.repetition_penalty = 0.0f}), Error);
  EXPECT_THROW(Sampler({.top_p = -0.1f}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5f}), Error);
  EXPECT_THROW(Sampler({.min_p = -0.1f}), Error);
  EXPECT_THROW(Sampler({.temperature = NAN}), Error);
}

}  // namespace
}  // namespace qvk
