// Host-side sampling: each processor in transformers' order, and reproducibility by seed.
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "base/error.h"
#include "model/sampler.h"

namespace qvk {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f}; }

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

TEST(SamplerTest, RefusesBadSettings) {
  EXPECT_THROW(Sampler({.repetition_penalty = 0.0f}), Error);
  EXPECT_THROW(Sampler({.top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5f}), Error);
  EXPECT_THROW(Sampler({.min_p = -0.1f}), Error);
  EXPECT_THROW(Sampler({.temperature = NAN}), Error);
}

}  // namespace
}  // namespace qvk
