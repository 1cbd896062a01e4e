// Causal grouped-query attention against the C++ reference: every GQA ratio Qwen2 models use,
// head sizes 16..256, prefill and decode through the KV cache, sliding window, and the
// post-softmax probabilities of the attention-map mode.
#include <cmath>

#include "base/numeric.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

struct AttentionCase {
  const char* name;
  uint32_t heads, kv_heads, head_dim;
  uint32_t tokens;     // query rows
  uint32_t first_pos;  // position of the first query row (decode: the history length)
  uint32_t window = 0;
  bool probs = false;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

class AttentionTest : public GpuTest, public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(AttentionTest, MatchesReference) {
  const AttentionCase& c = GetParam();
  const uint32_t capacity = c.first_pos + c.tokens + 5;  // spare rows hold poison-free junk
  std::vector<uint32_t> positions(c.tokens);
  for (uint32_t t = 0; t < c.tokens; ++t) positions[t] = c.first_pos + t;

  const auto q = RandomFloats(static_cast<size_t>(c.tokens) * c.heads * c.head_dim, 1);
  const size_t cache_elems = static_cast<size_t>(c.kv_heads) * capacity * c.head_dim;
  // Keys scaled so that the softmax is neither flat nor one-hot.
  const auto k = RoundTrip(RandomFloats(cache_elems, 2, 1.5f), DType::F16);
  const auto v = RoundTrip(RandomFloats(cache_elems, 3), DType::F16);

  Buffer q_buf = Upload(q), pos_buf = Upload(positions);
  Buffer k_buf = Upload(ToHalf(k)), v_buf = Upload(ToHalf(v));
  Buffer out_buf = Poisoned(q.size() * 4);
  const uint32_t probs_stride = capacity;
  std::optional<Buffer> probs_buf;
  ops::AttentionArgs args{.q = q_buf, .positions = pos_buf, .k_cache = k_buf, .v_cache = v_buf, .out = out_buf,
                          .tokens = c.tokens, .n_heads = c.heads, .n_kv_heads = c.kv_heads,
                          .head_dim = c.head_dim, .capacity = capacity, .window = c.window};
  if (c.probs) {
    probs_buf = Poisoned(static_cast<size_t>(c.heads) * c.tokens * probs_stride * 4);
    args.probs = BufferRange(*probs_buf);
    args.probs_stride = probs_stride;
  }
  Graph g(device());
  ops::Attention(g, args);
  g.Run();

  const auto expected =
      ref::Attention(q, positions, k, v, c.heads, c.kv_heads, c.head_dim, capacity, c.window, probs_stride);
  const auto got = Download<float>(out_buf, q.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected.out[i], 2e-5 + 1e-4 * std::abs(expected.out[i]))
        << "token " << i / (c.heads * c.head_dim) << " head " << (i / c.head_dim) % c.heads << " dim "
        << i % c.head_dim;
  }
  if (!c.probs) return;
  const auto p = Download<float>(*probs_buf, expected.probs.size());
  for (size_t i = 0; i < p.size(); ++i) {
    ASSERT_NEAR(p[i], expected.probs[i], 1e-6 + 1e-5 * expected.probs[i]) << "probability " << i;
  }
  // Each row sums to one; masked cells are exactly zero.
  for (uint32_t h = 0; h < c.heads; ++h) {
    for (uint32_t t = 0; t < c.tokens; ++t) {
      double sum = 0;
      for (uint32_t j = 0; j < probs_stride; ++j) {
        const float value = p[(static_cast<size_t>(h) * c.tokens + t) * probs_stride + j];
        if (j > positions[t]) {
          ASSERT_EQ(value, 0.0f);
        }
        sum += value;
      }
      ASSERT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

// Query heads per KV head: 0.5B 7 (14/2), 1.5B 6 (12/2), 7B 7 (28/4), 72B 8 (64/8), and 1, 2, 4.
INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionTest,
    ::testing::Values(AttentionCase{"q05_prefill_gqa7_d64", 14, 2, 64, 37, 0},
                      AttentionCase{"q05_decode_gqa7_d64", 14, 2, 64, 1, 300},
                      AttentionCase{"q15_prefill_gqa6_d128", 12, 2, 128, 20, 0},
                      AttentionCase{"q15_decode_gqa6_d128_long", 12, 2, 128, 1, 1271},
                      AttentionCase{"q7_chunk_gqa7_d128", 28, 4, 128, 9, 130},
                      AttentionCase{"q72_decode_gqa8_d128", 64, 8, 128, 1, 129},
                      AttentionCase{"mha_gqa1_d16", 4, 4, 16, 17, 0},
                      AttentionCase{"gqa2_d48", 4, 2, 48, 5, 3},
                      AttentionCase{"gqa4_d256", 8, 2, 256, 3, 200},
                      AttentionCase{"gqa7_d80_window", 7, 1, 80, 33, 100, 50},
                      AttentionCase{"window_decode", 4, 2, 64, 1, 500, 128},
                      AttentionCase{"probs_tiny_d16", 4, 2, 16, 36, 0, 0, true},
                      AttentionCase{"probs_chunk_window_d64", 14, 2, 64, 20, 140, 64, true}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace qvk::test
