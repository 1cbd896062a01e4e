// attention_reduce against the C++ reference: one head copied exactly, the max and mean over all
// heads and over each GQA group, pooled overview cells, bands of rows, all dispatched chunk by
// chunk as a prefill produces the probabilities (cells spanning chunks come out whole), and a
// decode step's row read to its position only.
#include <algorithm>
#include <cmath>

#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

struct ReduceCase {
  const char* name;
  uint32_t heads, tokens, chunk;  // a map of tokens x tokens, P arriving `chunk` rows at a time
  uint32_t band_begin, band_end;  // band_end 0: tokens
  uint32_t cell;
  uint32_t head_first, plane_heads, planes;
  bool max;
  bool mute_sink = false;
};

void PrintTo(const ReduceCase& c, std::ostream* os) {
  *os << c.name;
}

class AttentionReduceTest : public GpuTest, public ::testing::WithParamInterface<ReduceCase> {};

TEST_P(AttentionReduceTest, MatchesReference) {
  const ReduceCase& c = GetParam();
  const uint32_t band_end = c.band_end != 0 ? c.band_end : c.tokens;
  // Non-negative values as probabilities are; their rows need not sum to 1 here.
  std::vector<float> p = RandomFloats(static_cast<size_t>(c.heads) * c.tokens * c.tokens, 11);
  for (float& v : p) v = std::abs(v);
  const ref::MapReduction r{.heads = c.heads,
                            .rows = c.tokens,
                            .stride = c.tokens,
                            .first_row = 0,
                            .band_begin = c.band_begin,
                            .band_end = band_end,
                            .cols = c.tokens,
                            .cell = c.cell,
                            .head_first = c.head_first,
                            .plane_heads = c.plane_heads,
                            .planes = c.planes,
                            .max = c.max,
                            .mute_sink = c.mute_sink};
  const std::vector<float> expected = ref::AttentionReduce(p, r);

  Buffer out = Poisoned(expected.size() * 4);
  Buffer positions = Upload(std::vector<uint32_t>{0});
  std::vector<Buffer> chunks;
  Graph g(device());
  for (uint32_t start = 0; start < c.tokens; start += c.chunk) {
    const uint32_t n = std::min(c.chunk, c.tokens - start);
    if (start + n <= c.band_begin || start >= band_end) continue;
    // P of this chunk as attention writes it: [heads, n, tokens].
    std::vector<float> chunk(static_cast<size_t>(c.heads) * n * c.tokens);
    for (uint32_t h = 0; h < c.heads; ++h) {
      std::copy_n(&p[(static_cast<size_t>(h) * c.tokens + start) * c.tokens], static_cast<size_t>(n) * c.tokens,
                  &chunk[static_cast<size_t>(h) * n * c.tokens]);
    }
    chunks.push_back(Upload(chunk));
    ops::AttentionReduce(g, {.probs = chunks.back(),
                             .positions = positions,
                             .out = out,
                             .n_heads = c.heads,
                             .rows = n,
                             .probs_stride = c.tokens,
                             .first_row = start,
                             .band_begin = c.band_begin,
                             .band_end = band_end,
                             .cols = c.tokens,
                             .cell = c.cell,
                             .head_first = c.head_first,
                             .plane_heads = c.plane_heads,
                             .planes = c.planes,
                             .max = c.max,
                             .mute_sink = c.mute_sink});
  }
  g.Run();
  const std::vector<float> got = Download<float>(out, expected.size());
  const bool copies = c.cell == 1 && c.plane_heads == 1;
  for (size_t i = 0; i < got.size(); ++i) {
    if ((copies || c.max) && !c.mute_sink) {
      ASSERT_EQ(got[i], expected[i]) << "value " << i;
    } else {
      ASSERT_NEAR(got[i], expected[i], 1e-7 + 1e-5 * expected[i]) << "value " << i;
    }
  }
}

// Qwen2-0.5B's 14 heads in 2 GQA groups of 7; odd sizes; cells that do not divide the map, the
// band or the chunks, wider and narrower than a workgroup.
INSTANTIATE_TEST_SUITE_P(
    Maps, AttentionReduceTest,
    ::testing::Values(ReduceCase{"one_head", 14, 300, 64, 0, 0, 1, 5, 1, 1, false},
                      ReduceCase{"one_head_max", 14, 300, 64, 0, 0, 1, 13, 1, 1, true},
                      ReduceCase{"every_head", 4, 70, 16, 0, 0, 1, 0, 1, 4, false},
                      ReduceCase{"mean_all_heads", 14, 300, 64, 0, 0, 1, 0, 14, 1, false},
                      ReduceCase{"max_all_heads", 14, 300, 64, 0, 0, 1, 0, 14, 1, true},
                      ReduceCase{"group_mean", 14, 129, 33, 0, 0, 1, 7, 7, 1, false},
                      ReduceCase{"every_group_max", 14, 129, 33, 0, 0, 1, 0, 7, 2, true},
                      ReduceCase{"band", 14, 300, 64, 37, 211, 1, 2, 1, 1, false},
                      ReduceCase{"thumbnails_mean", 14, 300, 64, 0, 0, 19, 0, 1, 14, false},
                      ReduceCase{"thumbnails_max", 14, 300, 64, 0, 0, 19, 0, 1, 14, true},
                      ReduceCase{"group_thumbnails", 14, 300, 256, 0, 0, 38, 0, 7, 2, false},
                      ReduceCase{"cell_wider_than_a_workgroup", 2, 700, 256, 0, 0, 300, 0, 2, 1, false},
                      ReduceCase{"cell_wider_than_a_workgroup_max", 2, 700, 100, 0, 0, 300, 0, 1, 2, true},
                      ReduceCase{"band_cells", 4, 200, 30, 45, 190, 16, 0, 4, 1, true},
                      ReduceCase{"one_row", 3, 50, 50, 49, 50, 1, 0, 1, 3, false},
                      // The sink muted: each head's row renormalized without key 0, then reduced.
                      ReduceCase{"muted_one_head", 14, 300, 64, 0, 0, 1, 5, 1, 1, false, true},
                      ReduceCase{"muted_mean_all_heads", 14, 129, 33, 0, 0, 1, 0, 14, 1, false, true},
                      ReduceCase{"muted_group_max", 14, 129, 33, 0, 0, 1, 7, 7, 1, true, true},
                      ReduceCase{"muted_thumbnails", 14, 300, 64, 0, 0, 19, 0, 1, 14, false, true},
                      ReduceCase{"muted_band_cells", 4, 200, 30, 45, 190, 16, 0, 4, 1, true, true}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// A decode step: P [heads, 1, capacity] for the token at `position`; the row of each head goes
// to plane plane_base + h, packed to position + 1 columns (the layer's place in a [layers, heads,
// position + 1] readout), and nothing past them is written. One recording serves every position.
TEST_F(AttentionReduceTest, DecodeRowFollowsThePosition) {
  const uint32_t heads = 14, capacity = 500, layer = 3;
  std::vector<float> p = RandomFloats(static_cast<size_t>(heads) * capacity, 12);
  for (float& v : p) v = std::abs(v);
  Buffer probs = Upload(p);
  Buffer positions = Upload(std::vector<uint32_t>{0});
  Buffer out = Poisoned(size_t{4} * (layer + 1) * heads * capacity);
  Graph g(device());
  ops::AttentionReduce(g, {.probs = probs,
                           .positions = positions,
                           .out = out,
                           .n_heads = heads,
                           .rows = 1,
                           .probs_stride = capacity,
                           .band_begin = 0,
                           .band_end = 1,
                           .cols = capacity,
                           .live_cols = true,
                           .planes = heads,
                           .plane_base = layer * heads});
  g.End();
  for (uint32_t position : {0u, 63u, 64u, 300u, 499u}) {
    SCOPED_TRACE(position);
    device().Upload(positions, 0, std::as_bytes(std::span(&position, 1)));
    const std::vector<float> poison(out.size() / 4, std::nanf(""));
    device().Upload(out, 0, std::as_bytes(std::span(poison)));
    g.Run();
    const uint32_t cols = position + 1;
    const std::vector<float> got = Download<float>(out, static_cast<size_t>(layer + 1) * heads * capacity);
    for (uint32_t h = 0; h < heads; ++h) {
      for (uint32_t j = 0; j < cols; ++j) {
        ASSERT_EQ(got[(static_cast<size_t>(layer) * heads + h) * cols + j], p[static_cast<size_t>(h) * capacity + j])
            << "head " << h << " key " << j;
      }
    }
    // Before the layer's planes and after its packed rows: untouched.
    for (size_t i = 0; i < got.size(); ++i) {
      if (i < size_t{layer} * heads * cols || i >= size_t{layer + 1} * heads * cols) {
        ASSERT_TRUE(std::isnan(got[i])) << i;
      }
    }
  }
}

TEST_F(AttentionReduceTest, RefusesPlanesPastTheHeads) {
  Buffer probs = Poisoned(4 * 4 * 8 * 8);
  Buffer out = Poisoned(4 * 8 * 8);
  Graph g(device());
  ExpectMentions(ErrorOf([&] {
                   ops::AttentionReduce(g, {.probs = probs,
                                            .positions = probs,
                                            .out = out,
                                            .n_heads = 4,
                                            .rows = 8,
                                            .probs_stride = 8,
                                            .band_end = 8,
                                            .cols = 8,
                                            .head_first = 3,
                                            .plane_heads = 2});
                 }),
                 {"attention_reduce", "past the last head"});
}

}  // namespace
}  // namespace qvk::test
