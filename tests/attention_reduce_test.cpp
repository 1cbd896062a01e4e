// attention_reduce against the C++ reference: one head copied exactly, the max and mean over all
// heads and over each GQA group, pooled overview cells, bands of rows, all dispatched chunk by
// chunk as a prefill produces the probabilities (cells spanning chunks come out whole); and
// attention_live, a decode step's scores kept by every layer made probabilities and reduced to
// the views in a buffer, read to the step's position only, one recording following new views and
// positions.
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

TEST_F(AttentionReduceTest, RefusesPlanesPastTheHeads) {
  Buffer probs = Poisoned(4 * 4 * 8 * 8);
  Buffer out = Poisoned(4 * 8 * 8);
  Graph g(device());
  ExpectMentions(ErrorOf([&] {
                   ops::AttentionReduce(g, {.probs = probs,
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

struct LiveCase {
  const char* name;
  uint32_t layers, heads, capacity;
  uint32_t layer_pad;                 // floats between layers past their scores
  std::vector<ops::LiveView> first;   // the views written before the first runs
  std::vector<ops::LiveView> second;  // then, into the same recording
  std::vector<uint32_t> positions;
};

void PrintTo(const LiveCase& c, std::ostream* os) {
  *os << c.name;
}

class AttentionLiveTest : public GpuTest, public ::testing::WithParamInterface<LiveCase> {};

// One recording with a slot more than either choice of views needs, run at every position for
// each: each view's row equals attention_reduce's reference over its layer's probabilities
// exp(score - max) / sum, packed to the position's keys, and nothing past the choice's rows is
// written.
TEST_P(AttentionLiveTest, MatchesReference) {
  const LiveCase& c = GetParam();
  const uint64_t layer_floats = ops::AttentionScoresFloats(c.heads, 1, c.capacity);
  const uint32_t layer_stride = static_cast<uint32_t>(layer_floats) + c.layer_pad;
  // Scores as attention keeps them, each head's (max, sum) after the layer's rows, and the
  // probabilities they stand for: head 0 sees no key before 3 (a sliding window's -inf), head 1's
  // rows are wholly on the sink, which a muted view reads as nothing.
  std::vector<float> scores = RandomFloats(size_t{c.layers} * layer_stride, 21, 2.0f);
  std::vector<float> probs(size_t{c.layers} * c.heads * c.capacity);
  for (uint32_t l = 0; l < c.layers; ++l) {
    float* layer = scores.data() + size_t{l} * layer_stride;
    for (uint32_t j = 0; j < std::min(3u, c.capacity); ++j) layer[j] = -INFINITY;
    for (uint32_t j = 0; j < c.capacity; ++j) layer[c.capacity + j] = j == 0 ? 0.0f : -INFINITY;
    for (uint32_t h = 0; h < c.heads; ++h) {
      const float* row = layer + size_t{h} * c.capacity;
      const float m = *std::max_element(row, row + c.capacity);
      double sum = 0;
      for (uint32_t j = 0; j < c.capacity; ++j) sum += std::exp(double{row[j]} - m);
      layer[size_t{c.heads} * c.capacity + 2 * h] = m;
      layer[size_t{c.heads} * c.capacity + 2 * h + 1] = static_cast<float>(sum);
      for (uint32_t j = 0; j < c.capacity; ++j) {
        probs[(size_t{l} * c.heads + h) * c.capacity + j] = static_cast<float>(std::exp(double{row[j]} - m) / sum);
      }
    }
  }
  const auto max_views = static_cast<uint32_t>(std::max(c.first.size(), c.second.size()) + 1);

  Buffer scores_buf = Upload(scores);
  Buffer positions = Upload(std::vector<uint32_t>{0});
  Buffer views = Poisoned(size_t{16} * (1 + max_views));
  Buffer out = Poisoned(size_t{4} * max_views * c.capacity);
  Graph g(device());
  ops::AttentionLive(g, {.scores = scores_buf,
                         .positions = positions,
                         .views = views,
                         .out = out,
                         .layers = c.layers,
                         .n_heads = c.heads,
                         .stride = c.capacity,
                         .layer_stride = layer_stride,
                         .max_views = max_views});
  g.End();
  const std::vector<std::byte> poison(out.size(), std::byte{0xff});
  for (const std::vector<ops::LiveView>& choice : {c.first, c.second}) {
    const std::vector<uint32_t> words = ops::LiveViewWords(choice);
    device().Upload(views, 0, std::as_bytes(std::span(words)));
    for (const uint32_t position : c.positions) {
      SCOPED_TRACE(::testing::Message() << "position " << position << ", " << choice.size() << " views");
      device().Upload(positions, 0, std::as_bytes(std::span(&position, 1)));
      device().Upload(out, 0, poison);
      g.Run();
      const uint32_t keys = position + 1;
      const std::vector<float> got = Download<float>(out, size_t{max_views} * c.capacity);
      for (size_t v = 0; v < choice.size(); ++v) {
        const ops::LiveView& view = choice[v];
        const std::vector<float> expected = ref::AttentionReduce(
            std::span(probs).subspan(size_t{view.layer} * c.heads * c.capacity, size_t{c.heads} * c.capacity),
            {.heads = c.heads,
             .rows = 1,
             .stride = c.capacity,
             .first_row = 0,
             .band_begin = 0,
             .band_end = 1,
             .cols = keys,
             .cell = 1,
             .head_first = view.first_head,
             .plane_heads = view.heads,
             .planes = 1,
             .max = view.max,
             .mute_sink = view.mute_sink});
        for (uint32_t j = 0; j < keys; ++j) {
          ASSERT_NEAR(got[v * keys + j], expected[j], 1e-6 + 1e-5 * expected[j]) << "view " << v << " key " << j;
        }
      }
      for (size_t i = choice.size() * keys; i < got.size(); ++i) ASSERT_TRUE(std::isnan(got[i])) << "value " << i;
    }
  }
}

// Qwen2.5-0.5B (24 layers, 14 heads in 2 KV groups) over a context of 4352 (`qwenvk bench -d 4096
// -n 128`'s): the panel's first view, a layer's mean, a group's max with the sink muted, then
// others; odd sizes, layers apart by more than their rows, a row shorter than a workgroup; a row
// longer than one sweep of the workgroups.
INSTANTIATE_TEST_SUITE_P(
    Views, AttentionLiveTest,
    ::testing::Values(
        LiveCase{"qwen2_0_5b",
                 24,
                 14,
                 4352,
                 0,
                 {{.layer = 0, .first_head = 0}, {.layer = 23, .heads = 14}, {12, 7, 7, true, true}},
                 {{.layer = 5, .heads = 14, .max = true}, {11, 0, 7, false, true}, {0, 13, 1, false, true}},
                 {0, 1, 255, 256, 4095, 4351}},
        LiveCase{"odd",
                 3,
                 5,
                 37,
                 3,
                 {{.layer = 2, .first_head = 4}, {1, 0, 5, true, false}, {0, 1, 3, false, true}},
                 {{.layer = 0, .heads = 5}},
                 {0, 5, 36}},
        LiveCase{"longer_than_one_sweep",
                 2,
                 3,
                 20000,
                 1,
                 {{.layer = 1, .heads = 3}, {.layer = 0, .first_head = 2}},
                 {{1, 1, 2, true, true}},
                 {0, 16383, 16384, 19999}}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(AttentionLiveTest, RefusesTooFewViewSlots) {
  Buffer scores = Poisoned(4 * 2 * 3 * 10);
  Buffer views = Poisoned(16 * 2);
  Buffer out = Poisoned(4 * 2 * 8);
  Graph g(device());
  ExpectMentions(ErrorOf([&] {
                   ops::AttentionLive(g, {.scores = scores,
                                          .positions = scores,
                                          .views = views,
                                          .out = out,
                                          .layers = 2,
                                          .n_heads = 3,
                                          .stride = 8,
                                          .layer_stride = 30,
                                          .max_views = 2});
                 }),
                 {"attention_live", "views too small"});
}

}  // namespace
}  // namespace qvk::test
