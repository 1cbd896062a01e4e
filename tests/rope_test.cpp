// NeoX RoPE against the C++ reference: Qwen2 head layouts, theta 1e6 and 1e4, positions up to
// 32767, YaRN-scaled frequencies, in place and straight into the F16 KV cache; and Qwen3's q/k
// norm with it (head_norm_rope).
#include <cmath>
#include <fstream>
#include <span>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/numeric.h"
#include "model/rope_frequencies.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

struct RopeCase {
  const char* name;
  uint32_t heads, kv_heads, head_dim;
  double theta;
  bool yarn;
  bool store;
};

void PrintTo(const RopeCase& c, std::ostream* os) {
  *os << c.name;
}

class RopeTest : public GpuTest, public ::testing::WithParamInterface<RopeCase> {};

// The F16 caches (downloaded) after a rope that stored K and V: at each token's position, K is its
// rotated row of `expected` within f16 rounding (and rope's 2e-5) and V exactly the f16 of its row
// of the input `qkv`; cache rows no token was written to (row 3) keep their poison.
void ExpectCachedKv(std::span<const uint16_t> k_got, std::span<const uint16_t> v_got, std::span<const float> qkv,
                    std::span<const float> expected, std::span<const uint32_t> positions, uint32_t heads,
                    uint32_t kv_heads, uint32_t head_dim, uint32_t capacity, const std::string& what) {
  const uint32_t stride = (heads + 2 * kv_heads) * head_dim;
  for (size_t t = 0; t < positions.size(); ++t) {
    for (uint32_t h = 0; h < kv_heads; ++h) {
      for (uint32_t d = 0; d < head_dim; ++d) {
        const size_t at = (size_t{h} * capacity + positions[t]) * head_dim + d;
        const float k_expected = expected[t * stride + (heads + h) * head_dim + d];
        const float v_expected = qkv[t * stride + (heads + kv_heads + h) * head_dim + d];
        ASSERT_NEAR(HalfToFloat(k_got[at]), k_expected, 2e-5 + 1e-3 * std::abs(k_expected))
            << what << ": K cache head " << h << " pos " << positions[t] << " dim " << d;
        ASSERT_EQ(v_got[at], FloatToHalf(v_expected)) << what << ": V cache head " << h << " pos " << positions[t];
      }
    }
  }
  EXPECT_EQ(k_got[size_t{3} * head_dim], 0xffff) << what;
  EXPECT_EQ(v_got[size_t{3} * head_dim], 0xffff) << what;
}

TEST_P(RopeTest, MatchesReference) {
  const RopeCase& c = GetParam();
  const std::vector<uint32_t> positions = {0, 1, 2, 17, 1000, 4095, 32767, 32766, 12345};
  const auto tokens = static_cast<uint32_t>(positions.size());
  const uint32_t stride = (c.heads + 2 * c.kv_heads) * c.head_dim;
  const uint32_t capacity = 32768;
  std::optional<YarnScaling> yarn;
  if (c.yarn) yarn = YarnScaling{.factor = 4.0, .original_max_position_embeddings = 32768};
  const RopeFrequencies freqs = ComputeRopeFrequencies(c.head_dim, c.theta, yarn);
  if (c.yarn) {
    EXPECT_NEAR(freqs.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-6);
  }

  const auto qkv = RandomFloats(static_cast<size_t>(tokens) * stride, c.head_dim + c.heads);
  Buffer qkv_buf = Upload(qkv), pos_buf = Upload(positions), freq_buf = Upload(freqs.inv_freq);
  const size_t cache_elems = static_cast<size_t>(c.kv_heads) * capacity * c.head_dim;
  std::optional<Buffer> k_cache, v_cache;
  ops::RopeArgs args{.qkv = qkv_buf,
                     .positions = pos_buf,
                     .inv_freq = freq_buf,
                     .tokens = tokens,
                     .n_heads = c.heads,
                     .n_kv_heads = c.kv_heads,
                     .head_dim = c.head_dim,
                     .attention_factor = freqs.attention_factor,
                     .capacity = capacity};
  if (c.store) {
    k_cache = Poisoned(cache_elems * 2);
    v_cache = Poisoned(cache_elems * 2);
    args.k_cache = BufferRange(*k_cache);
    args.v_cache = BufferRange(*v_cache);
  }
  Graph g(device());
  ops::Rope(g, args);
  g.Run();

  std::vector<float> expected = qkv;
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t h = 0; h < c.heads + c.kv_heads; ++h) {
      ref::RopeHead(&expected[t * stride + h * c.head_dim], c.head_dim, positions[t], freqs.inv_freq,
                    freqs.attention_factor);
    }
  }
  const auto got = Download<float>(qkv_buf, qkv.size());
  // Angles reach 32767 rad; the kernel's range reduction keeps the error near 1e-6 of |x|.
  const double tol = 2e-5;
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t e = 0; e < stride; ++e) {
      const size_t i = static_cast<size_t>(t) * stride + e;
      const bool is_q = e < c.heads * c.head_dim;
      if (c.store && !is_q) {
        // K and V are not rewritten in place when they go to the cache.
        ASSERT_EQ(got[i], qkv[i]) << "token " << t << " element " << e;
        continue;
      }
      ASSERT_NEAR(got[i], expected[i], tol) << "token " << t << " (pos " << positions[t] << ") element " << e;
    }
  }
  if (c.store) {
    ExpectCachedKv(Download<uint16_t>(*k_cache, cache_elems), Download<uint16_t>(*v_cache, cache_elems), qkv, expected,
                   positions, c.heads, c.kv_heads, c.head_dim, capacity, c.name);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, RopeTest,
                         ::testing::Values(RopeCase{"q05_theta1e6_cache", 14, 2, 64, 1e6, false, true},
                                           RopeCase{"q15_theta1e6_in_place", 12, 2, 128, 1e6, false, false},
                                           RopeCase{"q7_theta1e4_cache", 28, 4, 128, 1e4, false, true},
                                           RopeCase{"q72_yarn_cache", 64, 8, 128, 1e6, true, true},
                                           RopeCase{"odd_head16_theta1e4_in_place", 3, 1, 16, 1e4, false, false},
                                           RopeCase{"head80_yarn_in_place", 7, 1, 80, 1e4, true, false}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// head_norm_rope: each q and k head normalized by its RMS and weight (ref::HeadNorm), then rotated
// as ref::RopeHead rotates it; K and V to the cache or q, k, v left in place. Qwen3-0.6B's 16 q / 8
// kv heads of 128, the tiny fixture's 4 / 2 of 16, and odd ones (head_dim 6, and 256: more pairs
// than the workgroup's 64 invocations).
TEST_F(GpuTest, HeadNormRopeNormalizesThenRotates) {
  const std::vector<uint32_t> positions = {0, 1, 17, 4095, 32767};
  const auto tokens = static_cast<uint32_t>(positions.size());
  const uint32_t capacity = 32768;
  for (const auto& [heads, kv_heads, head_dim, store] :
       {std::tuple{16u, 8u, 128u, true}, {4u, 2u, 16u, false}, {3u, 1u, 6u, true}, {2u, 2u, 256u, false}}) {
    const std::string what = fmt::format("{} / {} heads of {}{}", heads, kv_heads, head_dim, store ? ", cached" : "");
    const uint32_t stride = (heads + 2 * kv_heads) * head_dim;
    const auto qkv = RandomFloats(size_t{tokens} * stride, head_dim + heads, 3.0f);
    const auto weight = RandomFloats(2 * head_dim, head_dim);
    const RopeFrequencies freqs = ComputeRopeFrequencies(head_dim, 1e6);
    Buffer qkv_buf = Upload(qkv), pos_buf = Upload(positions), freq_buf = Upload(freqs.inv_freq),
           w_buf = Upload(weight);
    const size_t cache_elems = size_t{kv_heads} * capacity * head_dim;
    std::optional<Buffer> k_cache, v_cache;
    ops::RopeArgs args{.qkv = qkv_buf,
                       .positions = pos_buf,
                       .inv_freq = freq_buf,
                       .tokens = tokens,
                       .n_heads = heads,
                       .n_kv_heads = kv_heads,
                       .head_dim = head_dim,
                       .capacity = capacity};
    if (store) {
      k_cache = Poisoned(cache_elems * 2);
      v_cache = Poisoned(cache_elems * 2);
      args.k_cache = BufferRange(*k_cache);
      args.v_cache = BufferRange(*v_cache);
    }
    Graph g(device());
    ops::HeadNormRope(g, args, {.weight = w_buf, .eps = 1e-6f});
    g.Run();

    std::vector<float> expected = ref::HeadNorm(qkv, weight, tokens, heads, kv_heads, head_dim, 1e-6f);
    for (uint32_t t = 0; t < tokens; ++t) {
      for (uint32_t h = 0; h < heads + kv_heads; ++h) {
        ref::RopeHead(&expected[t * stride + h * head_dim], head_dim, positions[t], freqs.inv_freq, 1.0f);
      }
    }
    // The norm's 1e-5 relative and rope's 2e-5 (angles up to 32767 rad).
    const auto close = [](float got, float want) { return std::abs(got - want) <= 2e-5 + 1e-5 * std::abs(want); };
    const auto got = Download<float>(qkv_buf, qkv.size());
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const bool is_q = i % stride < heads * head_dim;
      const bool is_v = i % stride >= (heads + kv_heads) * head_dim;
      // v is never normalized, and K is not rewritten in place where it goes to the cache.
      const bool unchanged = is_v || (store && !is_q);
      if (!(unchanged ? got[i] == qkv[i] : close(got[i], expected[i])) && ++bad <= 10) {
        ADD_FAILURE() << what << ": QKV[" << i << "] = " << got[i] << ", expected "
                      << (unchanged ? qkv[i] : expected[i]);
      }
    }
    EXPECT_EQ(bad, 0u) << what;
    if (store)
      ExpectCachedKv(Download<uint16_t>(*k_cache, cache_elems), Download<uint16_t>(*v_cache, cache_elems), qkv,
                     expected, positions, heads, kv_heads, head_dim, capacity, what);
  }
}

// The frequency table itself: plain RoPE is 1 / theta^(2i/d); YaRN keeps the fastest dims,
// divides the slowest by the factor and ramps linearly in between.
TEST(RopeFrequenciesTest, PlainAndYarnTables) {
  const auto plain = ComputeRopeFrequencies(128, 1e6);
  ASSERT_EQ(plain.inv_freq.size(), 64u);
  EXPECT_FLOAT_EQ(plain.inv_freq[0], 1.0f);
  EXPECT_NEAR(plain.inv_freq[1], std::pow(1e6, -2.0 / 128), 1e-7);
  EXPECT_NEAR(plain.inv_freq[63], std::pow(1e6, -126.0 / 128), 1e-12);
  EXPECT_EQ(plain.attention_factor, 1.0f);

  const auto yarn =
      ComputeRopeFrequencies(128, 1e6, YarnScaling{.factor = 4.0, .original_max_position_embeddings = 32768});
  EXPECT_FLOAT_EQ(yarn.inv_freq[0], plain.inv_freq[0]);              // extrapolated
  EXPECT_NEAR(yarn.inv_freq[63], plain.inv_freq[63] / 4.0f, 1e-12);  // interpolated
  for (size_t i = 1; i < 64; ++i) {
    EXPECT_LE(yarn.inv_freq[i], plain.inv_freq[i]);
    EXPECT_GE(yarn.inv_freq[i], plain.inv_freq[i] / 4.0f * 0.999999f);
  }
  EXPECT_NEAR(yarn.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-6);
}

// The tables transformers' Qwen2RotaryEmbedding builds (scripts/dev/rope_reference.py made
// tests/data/rope/transformers_rope.json with transformers 5.17), plain and YaRN.
TEST(RopeFrequenciesTest, MatchTransformers) {
  std::ifstream in(TestDataDir() / "rope" / "transformers_rope.json");
  const auto cases = nlohmann::json::parse(in);
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    const auto& cfg = c["config"];
    const uint32_t head_dim = cfg["hidden_size"].get<uint32_t>() / cfg["num_attention_heads"].get<uint32_t>();
    std::optional<YarnScaling> yarn;
    if (!cfg["rope_scaling"].is_null()) {
      const auto& r = cfg["rope_scaling"];
      yarn = YarnScaling{.factor = r["factor"].get<double>(),
                         .original_max_position_embeddings = r["original_max_position_embeddings"].get<uint32_t>(),
                         .beta_fast = r.value("beta_fast", 32.0),
                         .beta_slow = r.value("beta_slow", 1.0)};
    }
    const auto ours = ComputeRopeFrequencies(head_dim, cfg["rope_theta"].get<double>(), yarn);
    const auto expected = c["inv_freq"].get<std::vector<float>>();
    ASSERT_EQ(ours.inv_freq.size(), expected.size()) << c["name"];
    for (size_t i = 0; i < expected.size(); ++i) {
      // float32 pow may differ by an ulp between libm and torch.
      EXPECT_NEAR(ours.inv_freq[i], expected[i], 2e-7 * expected[i]) << c["name"] << " i=" << i;
    }
    EXPECT_NEAR(ours.attention_factor, c["attention_factor"].get<double>(), 1e-6) << c["name"];
  }
}

}  // namespace
}  // namespace qvk::test
