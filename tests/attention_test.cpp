// Causal grouped-query attention against the C++ reference: every GQA ratio Qwen2 models use,
// head sizes 6..256, prefill and decode through the KV cache at depths around the split
// granule, chunks continuing a cache, sliding windows, the post-softmax probabilities of the
// attention-map mode (or the scores with each row's max and sum, as live rows keep them), decode's
// splits merged by attention_combine or by the last split of each block, and one decode recording
// replayed at several depths.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/numeric.h"
#include "model/rope_frequencies.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

struct AttentionCase {
  const char* name;
  uint32_t heads, kv_heads, head_dim;
  uint32_t tokens;     // query rows
  uint32_t first_pos;  // position of the first query row (decode: the history length)
  uint32_t window = 0;
  bool probs = false;
  uint32_t capacity = 0;      // cache rows; 0: 5 past the last query (more rows: more, emptier splits)
  bool reversed = false;      // query rows in descending positions
  uint32_t probs_stride = 0;  // 0: capacity
  bool scores = false;        // with probs: the scores and each row's max and sum kept instead
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << c.name;
}

// Random Q and an F16 cache of a case's shape, uploaded, with the reference's view of them.
class AttentionOpTest : public GpuTest {
 protected:
  struct Inputs {
    std::vector<float> q, k, v;
    Buffer q_buf, k_buf, v_buf;
  };

  Inputs MakeInputs(const AttentionCase& c, uint32_t capacity) {
    Inputs in;
    in.q = RandomFloats(static_cast<size_t>(c.tokens) * c.heads * c.head_dim, 1);
    const size_t cache_elems = static_cast<size_t>(c.kv_heads) * capacity * c.head_dim;
    // Keys scaled so that the softmax is neither flat nor one-hot.
    in.k = RoundTrip(RandomFloats(cache_elems, 2, 1.5f), DType::F16);
    in.v = RoundTrip(RandomFloats(cache_elems, 3), DType::F16);
    in.q_buf = Upload(in.q);
    in.k_buf = Upload(ToHalf(in.k));
    in.v_buf = Upload(ToHalf(in.v));
    return in;
  }

  // Zeroed split counters for `tokens` rows of `heads` heads (AttentionArgs::split_counters).
  Buffer ZeroCounters(uint32_t tokens, uint32_t heads) {
    return Upload(std::vector<uint32_t>(ops::AttentionSplitCounterBytes(tokens, heads) / 4, 0));
  }
  // Every counter back at zero after a dispatch, for the next.
  void ExpectCountersZero(const Buffer& counters) {
    const std::vector<uint32_t> left = Download<uint32_t>(counters, counters.size() / 4);
    EXPECT_EQ(std::count(left.begin(), left.end(), 0u), static_cast<std::ptrdiff_t>(left.size()));
  }

  // The op's arguments for case `c` over `in`, with its positions, O, split scratch and, where
  // given, the split counters with which a decode block's splits merge themselves.
  static ops::AttentionArgs ArgsFor(const AttentionCase& c, const Inputs& in, const Buffer& positions,
                                    const Buffer& out, uint32_t capacity, const Buffer& scratch,
                                    const Buffer* counters = nullptr) {
    return {.q = in.q_buf,
            .positions = positions,
            .k_cache = in.k_buf,
            .v_cache = in.v_buf,
            .out = out,
            .tokens = c.tokens,
            .n_heads = c.heads,
            .n_kv_heads = c.kv_heads,
            .head_dim = c.head_dim,
            .capacity = capacity,
            .window = c.window,
            .scratch = BufferRange(scratch),
            .split_counters = counters ? std::optional(BufferRange(*counters)) : std::nullopt};
  }

  static void ExpectOutputMatches(const AttentionCase& c, const std::vector<float>& got,
                                  const ref::AttentionResult& expected) {
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expected.out[i], 2e-5 + 1e-4 * std::abs(expected.out[i]))
          << "token " << i / (c.heads * c.head_dim) << " head " << (i / c.head_dim) % c.heads << " dim "
          << i % c.head_dim;
    }
  }
};

class AttentionTest : public AttentionOpTest, public ::testing::WithParamInterface<AttentionCase> {};

std::vector<uint32_t> Positions(const AttentionCase& c) {
  std::vector<uint32_t> positions(c.tokens);
  for (uint32_t t = 0; t < c.tokens; ++t) positions[t] = c.first_pos + t;
  if (c.reversed) std::reverse(positions.begin(), positions.end());
  return positions;
}

// The probabilities kept scores stand for, exp(score - max) / sum with the row's max and sum after
// the rows; what the kernel left unseen must be -inf before the keys the row sees and, past them,
// -inf up to the block's last key and untouched (poison) beyond, which a decode row (a block of
// one token) has nothing but.
std::vector<float> ProbabilitiesOfScores(const AttentionCase& c, const std::vector<uint32_t>& positions,
                                         uint32_t probs_stride, const std::vector<float>& kept) {
  const size_t rows = static_cast<size_t>(c.heads) * c.tokens;
  std::vector<float> p(rows * probs_stride);
  for (uint32_t h = 0; h < c.heads; ++h) {
    for (uint32_t t = 0; t < c.tokens; ++t) {
      const size_t row = static_cast<size_t>(h) * c.tokens + t;
      const float m = kept[rows * probs_stride + 2 * (t * c.heads + h)];
      const float l = kept[rows * probs_stride + 2 * (t * c.heads + h) + 1];
      const uint32_t first = (c.window != 0 && positions[t] + 1 > c.window) ? positions[t] + 1 - c.window : 0;
      for (uint32_t j = 0; j < probs_stride; ++j) {
        const float score = kept[row * probs_stride + j];
        if (j > positions[t]) {
          EXPECT_TRUE(c.tokens == 1 ? std::isnan(score) : std::isnan(score) || score == -INFINITY)
              << "head " << h << " token " << t << " key " << j << ": " << score;
          continue;
        }
        if (j < first) {
          EXPECT_EQ(score, -INFINITY) << "head " << h << " token " << t << " key " << j;
        }
        p[row * probs_stride + j] = std::exp(score - m) / l;
      }
    }
  }
  return p;
}

// Every case runs as the engine records it, with the split counters: a decode step's splits merge
// themselves (but where P is asked for), every other shape ignores them.
TEST_P(AttentionTest, MatchesReference) {
  const AttentionCase& c = GetParam();
  const uint32_t capacity = c.capacity != 0 ? c.capacity : c.first_pos + c.tokens + 5;
  const std::vector<uint32_t> positions = Positions(c);
  Inputs in = MakeInputs(c, capacity);
  Buffer pos_buf = Upload(positions);
  Buffer out_buf = Poisoned(in.q.size() * 4);
  const uint64_t scratch_bytes = ops::AttentionScratchBytes(c.tokens, c.heads, c.kv_heads, c.head_dim, capacity);
  Buffer scratch_buf = Poisoned(scratch_bytes);
  const uint32_t probs_stride = c.probs_stride != 0 ? c.probs_stride : capacity;
  std::optional<Buffer> probs_buf;
  Buffer counters = ZeroCounters(c.tokens, c.heads);
  ops::AttentionArgs args = ArgsFor(c, in, pos_buf, out_buf, capacity, scratch_buf, &counters);
  const size_t probs_floats = c.scores ? ops::AttentionScoresFloats(c.heads, c.tokens, probs_stride)
                                       : static_cast<size_t>(c.heads) * c.tokens * probs_stride;
  if (c.probs) {
    probs_buf = Poisoned(probs_floats * 4);
    args.probs = BufferRange(*probs_buf);
    args.probs_stride = probs_stride;
    args.scores = c.scores;
  }
  Graph g(device());
  ops::Attention(g, args);
  g.Run();

  const auto expected =
      ref::Attention(in.q, positions, in.k, in.v, c.heads, c.kv_heads, c.head_dim, capacity, c.window, probs_stride);
  ExpectOutputMatches(c, Download<float>(out_buf, in.q.size()), expected);
  ExpectCountersZero(counters);
  if (!c.probs) return;
  const std::vector<float> p =
      c.scores ? ProbabilitiesOfScores(c, positions, probs_stride, Download<float>(*probs_buf, probs_floats))
               : Download<float>(*probs_buf, expected.probs.size());
  for (size_t i = 0; i < p.size(); ++i) {
    ASSERT_NEAR(p[i], expected.probs[i], 1e-6 + 1e-5 * expected.probs[i]) << "probability " << i;
  }
  // Each row sums to one; masked cells are exactly zero.
  for (uint32_t h = 0; h < c.heads; ++h) {
    for (uint32_t t = 0; t < c.tokens; ++t) {
      const uint32_t first = (c.window != 0 && positions[t] + 1 > c.window) ? positions[t] + 1 - c.window : 0;
      double sum = 0;
      for (uint32_t j = 0; j < probs_stride; ++j) {
        const float value = p[(static_cast<size_t>(h) * c.tokens + t) * probs_stride + j];
        if (j > positions[t] || j < first) {
          ASSERT_EQ(value, 0.0f) << "head " << h << " token " << t << " key " << j;
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
                      AttentionCase{"mha_gqa1_d16", 4, 4, 16, 17, 0}, AttentionCase{"gqa2_d48", 4, 2, 48, 5, 3},
                      AttentionCase{"gqa4_d256", 8, 2, 256, 3, 200},
                      AttentionCase{"gqa7_d80_window", 7, 1, 80, 33, 100, 50},
                      AttentionCase{"window_decode", 4, 2, 64, 1, 500, 128},
                      // Many 32-key tiles and splits of 64-row blocks on matrix units
                      // (attention_coopmat) where the device has them.
                      AttentionCase{"q3_prefill_gqa4_d128_long", 8, 2, 128, 300, 0},
                      AttentionCase{"mha_prefill_d64", 4, 4, 64, 150, 20},
                      AttentionCase{"window_prefill_gqa2_d64", 4, 2, 64, 90, 70, 40},
                      AttentionCase{"reversed_prefill_gqa7_d64", 14, 2, 64, 70, 5, 0, false, 0, true},
                      AttentionCase{"probs_tiny_d16", 4, 2, 16, 36, 0, 0, true},
                      AttentionCase{"probs_chunk_window_d64", 14, 2, 64, 20, 140, 64, true},
                      AttentionCase{"probs_prefill_gqa6_d128", 12, 2, 128, 40, 0, 0, true}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// One query token at depths around the split granules (64 keys; 32 for head_dim 128 while the
// 32-key splits of all blocks fit ops' kAttentionShortWorkgroups, 132: 4 224 keys for one KV
// head, 2 112 for two, 256 for sixteen) and the split kernel's tile sizes, in a cache of 4101
// rows, so most splits are empty at small depths.
constexpr uint32_t kDepthCapacity = 4101;
INSTANTIATE_TEST_SUITE_P(
    DecodeDepths, AttentionTest,
    ::testing::Values(
        AttentionCase{"gqa1_d64_depth0", 1, 1, 64, 1, 0, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth1", 1, 1, 64, 1, 1, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth2", 1, 1, 64, 1, 2, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth255", 1, 1, 64, 1, 255, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth256", 1, 1, 64, 1, 256, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth257", 1, 1, 64, 1, 257, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth1000", 1, 1, 64, 1, 1000, 0, false, kDepthCapacity},
        AttentionCase{"gqa1_d64_depth4096", 1, 1, 64, 1, 4096, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth1", 2, 1, 128, 1, 1, 0, false, kDepthCapacity},
        // head_dim 128 in 1 to 5 short (32-key) splits, and around the last short depth of 2 and
        // 16 KV heads (Qwen2.5-1.5B's and Qwen1.5-MoE's shapes), past which splits are 64 keys
        AttentionCase{"gqa6_d128_depth31", 6, 1, 128, 1, 31, 0, false, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth32", 6, 1, 128, 1, 32, 0, false, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth95", 6, 1, 128, 1, 95, 0, false, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth127", 6, 1, 128, 1, 127, 0, false, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth128", 6, 1, 128, 1, 128, 0, false, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth100_probs", 6, 1, 128, 1, 100, 0, true, kDepthCapacity},
        AttentionCase{"gqa6_d128_depth100_cache128", 6, 1, 128, 1, 100, 0, false, 128},
        AttentionCase{"q15_decode_depth2111", 12, 2, 128, 1, 2111, 0, false, kDepthCapacity},
        AttentionCase{"q15_decode_depth2112", 12, 2, 128, 1, 2112, 0, false, kDepthCapacity},
        AttentionCase{"mha16_d128_depth255", 16, 16, 128, 1, 255, 0, false, kDepthCapacity},
        AttentionCase{"mha16_d128_depth256_probs", 16, 16, 128, 1, 256, 0, true, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth2", 2, 1, 128, 1, 2, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth255", 2, 1, 128, 1, 255, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth256", 2, 1, 128, 1, 256, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth257", 2, 1, 128, 1, 257, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth1000", 2, 1, 128, 1, 1000, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d128_depth4096", 2, 1, 128, 1, 4096, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth1", 7, 1, 64, 1, 1, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth2", 7, 1, 64, 1, 2, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth255", 7, 1, 64, 1, 255, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth256", 7, 1, 64, 1, 256, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth257", 7, 1, 64, 1, 257, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth1000", 7, 1, 64, 1, 1000, 0, false, kDepthCapacity},
        AttentionCase{"gqa7_d64_depth4096", 7, 1, 64, 1, 4096, 0, false, kDepthCapacity},
        // Qwen2-0.5B's attention: 14 heads, 2 KV heads, head_dim 64.
        AttentionCase{"q05_decode_depth4096", 14, 2, 64, 1, 4096, 0, false, kDepthCapacity},
        AttentionCase{"gqa2_d64_depth4096_window1000", 2, 1, 64, 1, 4096, 1000, false, kDepthCapacity},
        // Probabilities with the keys split (decode's live attention rows): each
        // split's share rescaled by the combine pass, the unseen columns zeroed by all.
        AttentionCase{"gqa7_d64_depth1000_probs", 7, 1, 64, 1, 1000, 0, true, kDepthCapacity},
        AttentionCase{"q05_decode_depth4096_probs", 14, 2, 64, 1, 4096, 0, true, kDepthCapacity},
        AttentionCase{"q05_decode_depth0_probs", 14, 2, 64, 1, 0, 0, true, kDepthCapacity},
        AttentionCase{"window_decode_depth2000_probs", 4, 2, 64, 1, 2000, 300, true, kDepthCapacity},
        // Scores kept (decode's live attention rows): the merge writes each row's
        // max and sum, or the workgroup does where one saw every key (a short cache).
        AttentionCase{"q05_decode_depth4096_scores", 14, 2, 64, 1, 4096, 0, true, kDepthCapacity, false, 0, true},
        AttentionCase{"q05_decode_depth0_scores", 14, 2, 64, 1, 0, 0, true, kDepthCapacity, false, 0, true},
        AttentionCase{"q05_decode_unsplit_scores", 14, 2, 64, 1, 40, 0, true, 64, false, 0, true},
        AttentionCase{"window_decode_depth2000_scores", 4, 2, 64, 1, 2000, 300, true, kDepthCapacity, false, 0, true},
        AttentionCase{"gqa4_d256_depth1000", 8, 2, 256, 1, 1000, 0, false, kDepthCapacity},
        // Many q heads per KV head (two blocks of them), multi-head, and Qwen3-0.6B's shape.
        AttentionCase{"gqa20_d32_depth700_probs", 20, 1, 32, 1, 700, 0, true, kDepthCapacity},
        AttentionCase{"gqa20_d32_depth700_scores", 20, 1, 32, 1, 700, 0, true, kDepthCapacity, false, 0, true},
        AttentionCase{"gqa9_d128_depth63", 18, 2, 128, 1, 63, 0, false, kDepthCapacity},
        AttentionCase{"mha16_d64_depth1000_probs", 16, 16, 64, 1, 1000, 0, true, kDepthCapacity},
        AttentionCase{"q3_gqa2_d128_depth4096", 16, 8, 128, 1, 4096, 0, false, kDepthCapacity}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// Several query rows continuing a cache (positions not from 0), split and unsplit, and the
// shapes the kernel handles specially.
INSTANTIATE_TEST_SUITE_P(
    Chunks, AttentionTest,
    ::testing::Values(AttentionCase{"q05_chunk40_at3000", 14, 2, 64, 40, 3000},
                      AttentionCase{"q05_chunk256_at256", 14, 2, 64, 256, 256},
                      AttentionCase{"gqa2_d64_chunk4_at1000", 2, 1, 64, 4, 1000, 0, false, kDepthCapacity},
                      AttentionCase{"gqa7_d64_chunk9_window300_at2000", 7, 1, 64, 9, 2000, 300},
                      AttentionCase{"gqa1_d128_chunk33_at700_probs", 2, 2, 128, 33, 700, 0, true},
                      AttentionCase{"q05_chunk40_at3000_window1000_probs", 14, 2, 64, 40, 3000, 1000, true},
                      AttentionCase{"gqa7_d64_chunk6_reversed", 7, 1, 64, 6, 500, 0, false, 0, true},
                      // 20 q heads per KV head: two blocks of heads per group.
                      AttentionCase{"gqa20_d32_chunk3_at300", 20, 1, 32, 3, 300},
                      AttentionCase{"gqa2_d160_chunk5_at90", 4, 2, 160, 5, 90},
                      // head_dim % 4 != 0 reads the cache half by half; 20 has an odd number of quads.
                      AttentionCase{"gqa2_d6_chunk7_at200_probs", 4, 2, 6, 7, 200, 0, true},
                      AttentionCase{"gqa2_d7_decode_at300", 2, 1, 7, 1, 300},
                      AttentionCase{"gqa2_d20_chunk5_at130_probs", 4, 2, 20, 5, 130, 0, true},
                      AttentionCase{"gqa2_d7_decode_at300_scores", 2, 1, 7, 1, 300, 0, true, 0, false, 0, true},
                      AttentionCase{"gqa2_d20_chunk5_at130_window50_scores", 4, 2, 20, 5, 130, 50, true, 0, false, 0,
                                    true},
                      // The attention-map mode: a chunk of a longer prompt, rows as long as the prompt.
                      AttentionCase{"probs_map_chunk_d16", 4, 2, 16, 256, 0, 0, true, 32768, false, 300},
                      AttentionCase{"probs_map_d16", 4, 2, 16, 36, 0, 0, true, 2048, false, 36}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// The engine records a decode step once and replays it with new positions: the split layout
// must follow positions[] on the GPU, and so must the merge, by attention_combine or, with the
// split counters, by each block's last split (one dispatch, the counters zero after every run).
TEST_F(AttentionOpTest, OneRecordingServesEveryDepth) {
  const AttentionCase c{"replay", 14, 2, 64, 1, 0};
  const uint32_t capacity = 3000;
  Inputs in = MakeInputs(c, capacity);
  Buffer pos_buf = Upload(std::vector<uint32_t>{0});
  Buffer out_buf = Poisoned(in.q.size() * 4);
  Buffer scratch_buf = Poisoned(ops::AttentionScratchBytes(1, c.heads, c.kv_heads, c.head_dim, capacity));
  Buffer counters = ZeroCounters(1, c.heads);
  for (const bool merge_in_splits : {false, true}) {
    SCOPED_TRACE(merge_in_splits);
    Graph g(device());
    ops::Attention(g, ArgsFor(c, in, pos_buf, out_buf, capacity, scratch_buf, merge_in_splits ? &counters : nullptr));
    EXPECT_EQ(g.dispatch_count(), merge_in_splits ? 1u : 2u);
    g.End();
    for (uint32_t depth : {2999u, 0u, 700u, 64u, 63u, 1500u}) {
      SCOPED_TRACE(depth);
      const std::vector<uint32_t> positions{depth};
      device().Upload(pos_buf, 0, std::as_bytes(std::span(positions)));
      g.Run();
      const auto expected =
          ref::Attention(in.q, positions, in.k, in.v, c.heads, c.kv_heads, c.head_dim, capacity, 0, 0);
      ExpectOutputMatches(c, Download<float>(out_buf, in.q.size()), expected);
      ExpectCountersZero(counters);
    }
  }
}

// A prefill with head_dim 64 or 128 runs blocks of 64 rows on matrix units (attention_coopmat_d64,
// _d128) where the device has them; else, with head_dim <= 128, blocks of 32 rows (attention_wide
// up to 64, attention_wide_d128 up to 128) where the device has the shared memory for them,
// lavapipe among them; a decode step of at most 8 q heads a KV head and head_dim > 128 take 8
// (attention_narrow), other heads 16; each matches the reference (AttentionTest covers every
// shape on whichever kernel it gets).
TEST_F(AttentionOpTest, PrefillTakesWideBlocksWhereTheyFit) {
  for (const AttentionCase& c :
       {AttentionCase{"wide", 14, 2, 64, 100, 0}, AttentionCase{"decode", 14, 2, 64, 1, 99},
        AttentionCase{"head_dim_128", 28, 4, 128, 100, 0}, AttentionCase{"head_dim_80", 7, 1, 80, 50, 0},
        AttentionCase{"head_dim_256", 8, 2, 256, 40, 0}, AttentionCase{"decode_gqa20", 20, 1, 32, 1, 99}}) {
    SCOPED_TRACE(c.name);
    const uint32_t capacity = c.first_pos + c.tokens + 5;
    Inputs in = MakeInputs(c, capacity);
    const std::vector<uint32_t> positions = Positions(c);
    Buffer pos_buf = Upload(positions);
    Buffer out_buf = Poisoned(in.q.size() * 4);
    Buffer scratch_buf = Poisoned(ops::AttentionScratchBytes(c.tokens, c.heads, c.kv_heads, c.head_dim, capacity));
    Graph g(device(), /*profile=*/true);
    ops::Attention(g, ArgsFor(c, in, pos_buf, out_buf, capacity, scratch_buf));
    g.Run();
    const auto expected = ref::Attention(in.q, positions, in.k, in.v, c.heads, c.kv_heads, c.head_dim, capacity, 0, 0);
    ExpectOutputMatches(c, Download<float>(out_buf, in.q.size()), expected);
    if (!g.profiled()) continue;
    const uint32_t wide_bytes = ops::AttentionWideSharedBytes(c.head_dim);
    const bool prefill = c.tokens > 1;
    const bool coopmat = prefill && info().coopmat_f16 && (c.head_dim == 64 || c.head_dim == 128);
    const bool wide = prefill && wide_bytes > 0 && info().max_compute_shared_memory >= wide_bytes;
    const bool narrow = c.head_dim > 128 || (c.tokens == 1 && c.heads / c.kv_heads <= 8);
    const std::string expected_kernel = coopmat  ? fmt::format("attention_coopmat_d{}", c.head_dim)
                                        : wide   ? (c.head_dim <= 64 ? "attention_wide" : "attention_wide_d128")
                                        : narrow ? "attention_narrow"
                                                 : "attention";
    EXPECT_EQ(g.Timings().front().kernel, expected_kernel);
  }
}

// A Qwen3 decode step with its head norm and RoPE done by the attention kernel (attention_narrow_norm)
// gives HeadNormRope-then-Attention's output and cache rows: Qwen3-0.6B's 16 / 8 heads of 128,
// 30B-A3B's 32 / 4 (a group of 8, the most a narrow block holds), heads of 8 with one KV head, at
// the first position, around the split granule and deep in a cache of many splits, with the
// scores kept. The K rows may differ by an f16 ulp (the head's sum of squares is added in another
// order), so the outputs are held to the kernel's tolerance; V rows are equal.
TEST_F(AttentionOpTest, NormsQwen3HeadsAsHeadNormRopeThenAttention) {
  const RopeFrequencies freqs_128 = ComputeRopeFrequencies(128, 1e6), freqs_8 = ComputeRopeFrequencies(8, 1e6);
  struct NormCase {
    const char* name;
    uint32_t heads, kv_heads, head_dim, position, capacity;
    bool scores = false;
  };
  for (const NormCase& c :
       {NormCase{"qwen3_0.6b_first", 16, 8, 128, 0, 64}, NormCase{"qwen3_0.6b_63", 16, 8, 128, 63, 200},
        NormCase{"qwen3_30b_64", 32, 4, 128, 64, 300}, NormCase{"qwen3_30b_deep", 32, 4, 128, 1000, 1100, true},
        NormCase{"heads_of_8", 3, 1, 8, 130, 140}}) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(ops::AttentionNormsHeads(1, c.heads, c.kv_heads, c.head_dim));
    const std::vector<float>& inv_freq = c.head_dim == 128 ? freqs_128.inv_freq : freqs_8.inv_freq;
    const uint32_t stride = (c.heads + 2 * c.kv_heads) * c.head_dim;
    const size_t cache_elems = size_t{c.kv_heads} * c.capacity * c.head_dim;
    const auto qkv = RandomFloats(stride, c.head_dim + c.position, 3.0f);
    const auto weight = RandomFloats(2 * c.head_dim, c.heads);
    const auto k_history = ToHalf(RoundTrip(RandomFloats(cache_elems, 2, 1.5f), DType::F16));
    const auto v_history = ToHalf(RoundTrip(RandomFloats(cache_elems, 3), DType::F16));
    const std::vector<uint32_t> positions{c.position};
    Buffer pos_buf = Upload(positions), freq_buf = Upload(inv_freq), w_buf = Upload(weight);
    const uint32_t probs_stride = c.capacity;
    const uint64_t probs_floats = c.scores ? ops::AttentionScoresFloats(c.heads, 1, probs_stride) : 1;
    // Each path on its own copies: [0] HeadNormRope then Attention, [1] Attention alone.
    std::vector<float> out[2], scores[2];
    std::vector<uint16_t> k_cache[2], v_cache[2];
    for (int fused = 0; fused < 2; ++fused) {
      Buffer qkv_buf = Upload(qkv), k_buf = Upload(k_history), v_buf = Upload(v_history),
             out_buf = Poisoned(size_t{4} * c.heads * c.head_dim), probs_buf = Poisoned(4 * probs_floats),
             scratch_buf = Poisoned(ops::AttentionScratchBytes(1, c.heads, c.kv_heads, c.head_dim, c.capacity) + 4),
             counters = ZeroCounters(1, c.heads);
      ops::AttentionArgs args{.q = qkv_buf,
                              .positions = pos_buf,
                              .k_cache = k_buf,
                              .v_cache = v_buf,
                              .out = out_buf,
                              .n_heads = c.heads,
                              .n_kv_heads = c.kv_heads,
                              .head_dim = c.head_dim,
                              .capacity = c.capacity,
                              .q_stride = stride,
                              .scratch = BufferRange(scratch_buf),
                              .first_position = c.position};
      if (c.scores) {
        args.probs = BufferRange(probs_buf);
        args.probs_stride = probs_stride;
        args.scores = true;
      }
      Graph g(device(), /*profile=*/true);
      if (fused) {  // as the engine records it: its splits merged by the last of each block
        args.head_norm = ops::AttentionArgs::HeadNorm{.weight = w_buf, .eps = 1e-6f, .inv_freq = freq_buf};
        args.split_counters = BufferRange(counters);
      } else {
        ops::HeadNormRope(g,
                          {.qkv = qkv_buf,
                           .positions = pos_buf,
                           .inv_freq = freq_buf,
                           .n_heads = c.heads,
                           .n_kv_heads = c.kv_heads,
                           .head_dim = c.head_dim,
                           .k_cache = BufferRange(k_buf),
                           .v_cache = BufferRange(v_buf),
                           .capacity = c.capacity},
                          {.weight = w_buf, .eps = 1e-6f});
      }
      ops::Attention(g, args);
      g.Run();
      if (g.profiled() && fused) {
        EXPECT_EQ(g.Timings().front().kernel, "attention_narrow_norm");
      }
      out[fused] = Download<float>(out_buf, size_t{c.heads} * c.head_dim);
      ExpectCountersZero(counters);
      if (c.scores) scores[fused] = Download<float>(probs_buf, probs_floats);
      k_cache[fused] = Download<uint16_t>(k_buf, cache_elems);
      v_cache[fused] = Download<uint16_t>(v_buf, cache_elems);
    }
    EXPECT_EQ(v_cache[1], v_cache[0]);
    for (size_t i = 0; i < cache_elems; ++i) {
      const bool fresh = i / c.head_dim % c.capacity == c.position;
      const float a = HalfToFloat(k_cache[0][i]), b = HalfToFloat(k_cache[1][i]);
      ASSERT_TRUE(fresh ? std::abs(a - b) <= std::abs(a) * 0x1p-10f : k_cache[0][i] == k_cache[1][i])
          << "K cache element " << i << ": " << b << ", expected " << a;
    }
    for (size_t i = 0; i < out[0].size(); ++i) {
      ASSERT_NEAR(out[1][i], out[0][i], 2e-5 + 1e-4 * std::abs(out[0][i])) << "head " << i / c.head_dim;
    }
    for (size_t i = 0; i < scores[0].size(); ++i) {
      if (std::isnan(scores[0][i])) continue;  // poison past the row's keys
      ASSERT_NEAR(scores[1][i], scores[0][i], 2e-5 + 1e-4 * std::abs(scores[0][i])) << "score " << i;
    }
  }
}

TEST_F(AttentionOpTest, SplitKeysNeedScratch) {
  const AttentionCase c{"no_scratch", 14, 2, 64, 1, 0};
  const uint32_t capacity = 1000;
  Inputs in = MakeInputs(c, capacity);
  Buffer pos_buf = Upload(std::vector<uint32_t>{999});
  Buffer out_buf = Poisoned(in.q.size() * 4);
  Graph g(device());
  ExpectMentions(ErrorOf([&] {
                   ops::Attention(g, {.q = in.q_buf,
                                      .positions = pos_buf,
                                      .k_cache = in.k_buf,
                                      .v_cache = in.v_buf,
                                      .out = out_buf,
                                      .n_heads = c.heads,
                                      .n_kv_heads = c.kv_heads,
                                      .head_dim = c.head_dim,
                                      .capacity = capacity});
                 }),
                 {"attention", "scratch", "AttentionScratchBytes"});
  // A cache that fits one split granule never splits: no scratch.
  EXPECT_EQ(ops::AttentionScratchBytes(1, c.heads, c.kv_heads, c.head_dim, 64), 0u);
  EXPECT_GT(ops::AttentionScratchBytes(1, c.heads, c.kv_heads, c.head_dim, capacity), 0u);
}

}  // namespace
}  // namespace qvk::test
