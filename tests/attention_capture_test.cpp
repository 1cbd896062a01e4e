// Attention maps through Engine::CaptureAttention on the fixture model, with prefill chunks far
// smaller than the prompt: one head, bands of query rows and heads reduced on the GPU equal the
// full matrix (whose agreement with transformers, bar 5, model_conformance_test checks) and the
// C++ reference's reductions of it; sliding-window layers zero what their window hides; the cache
// is left as promised; requests outside the model are refused with a sentence; and a 4096-token
// capture on Qwen2.5-0.5B's shape needs megabytes, not the 22.5 GB of every map at once.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/engine.h"
#include "model/model_files.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

// The attention kernel's own bar for probabilities: the same map computed in other chunks
// differs only by float rounding.
void ExpectClose(std::span<const float> got, std::span<const float> expected, const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-6 + 1e-5 * std::abs(expected[i])) << what << ", value " << i;
  }
}

class AttentionCaptureTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    files_ = std::make_unique<ModelFiles>(TestDataDir() / "qwen2-tiny");
    weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), config(), files_->weights()));
    // 16-token chunks: a capture's chunks (at most that many rows) split every band below.
    engine_ =
        std::make_unique<Engine>(device(), config(), *weights_, EngineOptions{.context = 1024, .prefill_chunk = 16});
    std::ifstream in(TestDataDir() / "reference" / "hf" / "qwen2-tiny" / "reference.json");
    const auto ids = nlohmann::json::parse(in)["prompts"]["long"]["input_ids"].get<std::vector<uint32_t>>();
    ids_.assign(ids.begin(), ids.begin() + 300);
  }
  void TearDown() override {
    engine_.reset();
    weights_.reset();
    GpuTest::TearDown();
  }
  const ModelConfig& config() const { return files_->config(); }
  uint32_t tokens() const { return static_cast<uint32_t>(ids_.size()); }

  // Every head of every layer at full resolution: [heads, T, T] per layer.
  std::vector<AttentionMap> Full() {
    std::vector<AttentionRequest> layers;
    for (uint32_t l = 0; l < config().num_layers; ++l) layers.push_back(EveryHead(config(), l, HeadReduce::Mean));
    engine_->Truncate(0);
    return engine_->CaptureAttention(ids_, layers);
  }

  // The C++ reference's reduction of the full matrix as `r` asks.
  std::vector<float> Reference(const std::vector<AttentionMap>& full, const AttentionRequest& r) {
    const uint32_t end = r.end_row != 0 ? r.end_row : tokens();
    return ref::AttentionReduce(full[r.layer].values, {.heads = config().num_heads,
                                                       .rows = tokens(),
                                                       .stride = tokens(),
                                                       .first_row = 0,
                                                       .band_begin = r.first_row,
                                                       .band_end = end,
                                                       .cols = tokens(),
                                                       .cell = r.cell,
                                                       .head_first = r.first_head,
                                                       .plane_heads = r.plane_heads,
                                                       .planes = r.planes,
                                                       .max = r.reduce == HeadReduce::Max,
                                                       .mute_sink = r.mute_sink});
  }

  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
  std::vector<uint32_t> ids_;
};

// Each row of the full matrix is a probability distribution over the keys up to its own, and
// every head of every layer, captured alone, equals its plane of the full matrix.
TEST_F(AttentionCaptureTest, OneHeadEqualsItsPlaneOfTheFullMatrix) {
  const std::vector<AttentionMap> full = Full();
  ASSERT_EQ(full.size(), config().num_layers);
  for (const AttentionMap& layer : full) {
    ASSERT_EQ(layer.planes, config().num_heads);
    ASSERT_EQ(layer.rows, tokens());
    ASSERT_EQ(layer.cols, tokens());
    for (uint32_t h = 0; h < layer.planes; ++h) {
      for (uint32_t t = 0; t < tokens(); ++t) {
        const std::span<const float> row = layer.plane(h).subspan(size_t{t} * tokens(), tokens());
        double sum = 0;
        for (uint32_t j = 0; j < tokens(); ++j) {
          if (j > t) {
            ASSERT_EQ(row[j], 0.0f) << "head " << h << " query " << t << " key " << j;
          }
          sum += row[j];
        }
        ASSERT_NEAR(sum, 1.0, 1e-5) << "head " << h << " query " << t;
      }
    }
  }
  for (uint32_t l = 0; l < config().num_layers; ++l) {
    for (uint32_t h = 0; h < config().num_heads; ++h) {
      const std::vector<AttentionRequest> one{OneHead(l, h)};
      const AttentionMap map = engine_->CaptureAttention(ids_, one)[0];
      ASSERT_EQ(map.planes, 1u);
      ExpectClose(map.values, full[l].plane(h), "layer " + std::to_string(l) + " head " + std::to_string(h));
    }
  }
}

// Bands of query rows, asked for together and one after another (each continuing the cache the
// last one left), equal the rows of the full matrix; the cache then holds the tokens up to the
// last row asked for.
TEST_F(AttentionCaptureTest, BandsOfRowsEqualTheFullMatrix) {
  const std::vector<AttentionMap> full = Full();
  const auto rows_of = [&](uint32_t layer, uint32_t head, uint32_t first, uint32_t end) {
    return full[layer].plane(head).subspan(size_t{first} * tokens(), size_t{end - first} * tokens());
  };
  std::vector<AttentionRequest> together;
  for (const auto& [first, end] : {std::pair{0u, 37u}, {37u, 101u}, {101u, 300u}, {250u, 251u}}) {
    AttentionRequest r = OneHead(1, 3);
    r.first_row = first;
    r.end_row = end;
    together.push_back(r);
  }
  engine_->Truncate(0);
  const std::vector<AttentionMap> bands = engine_->CaptureAttention(ids_, together);
  for (const AttentionMap& band : bands) {
    ExpectClose(band.values, rows_of(1, 3, band.request.first_row, band.request.end_row),
                "band from " + std::to_string(band.request.first_row));
  }

  engine_->Truncate(0);
  for (uint32_t first = 0; first < tokens(); first += 70) {
    AttentionRequest r = EveryHead(config(), 0, HeadReduce::Max);
    r.first_row = first;
    r.end_row = std::min(first + 70, tokens());
    const AttentionMap band = engine_->CaptureAttention(ids_, std::span(&r, 1))[0];
    for (uint32_t h = 0; h < config().num_heads; ++h) {
      ExpectClose(band.plane(h), rows_of(0, h, first, r.end_row), "head " + std::to_string(h));
    }
    EXPECT_EQ(engine_->cached_tokens(), std::vector<uint32_t>(ids_.begin(), ids_.begin() + r.end_row));
  }
}

// The GPU's reductions of each chunk equal the C++ reference's of the full matrix: the mean and
// max over a layer's heads and over each GQA group, and pooled thumbnails of every head and
// group, in cells that divide neither the map nor the chunks.
TEST_F(AttentionCaptureTest, ReductionsMatchTheReference) {
  const std::vector<AttentionMap> full = Full();
  std::vector<AttentionRequest> requests;
  for (HeadReduce reduce : {HeadReduce::Mean, HeadReduce::Max}) {
    requests.push_back(AllHeads(config(), 1, reduce));
    requests.push_back(KvGroup(config(), 0, 1, reduce));
    requests.push_back(EveryKvGroup(config(), 1, reduce));
    requests.push_back(Pooled(EveryHead(config(), 0, reduce), tokens(), 16));
    requests.push_back(Pooled(EveryKvGroup(config(), 1, reduce), tokens(), 7));
    AttentionRequest band = Pooled(AllHeads(config(), 0, reduce), tokens(), 10);
    band.first_row = 45;
    band.end_row = 290;
    requests.push_back(band);
  }
  EXPECT_EQ(requests[3].cell, 19u);  // 300 tokens in 16 cells
  const std::vector<AttentionMap> maps = engine_->CaptureAttention(ids_, requests);
  ASSERT_EQ(maps.size(), requests.size());
  for (size_t i = 0; i < maps.size(); ++i) {
    const AttentionMap& map = maps[i];
    const std::vector<float> expected = Reference(full, map.request);
    ASSERT_EQ(map.values.size(), expected.size()) << "request " << i;
    for (size_t k = 0; k < expected.size(); ++k) {
      if (map.request.reduce == HeadReduce::Max) {
        ASSERT_EQ(map.values[k], expected[k]) << "request " << i << " value " << k;
      } else {
        ASSERT_NEAR(map.values[k], expected[k], 1e-7 + 1e-5 * expected[k]) << "request " << i << " value " << k;
      }
    }
  }
  // A thumbnail's cells wholly above the diagonal are masked, and zero.
  const AttentionMap& thumbnails = maps[3];
  ASSERT_EQ(thumbnails.rows, 16u);
  for (uint32_t r = 0; r < thumbnails.rows; ++r) {
    for (uint32_t c = 0; c < thumbnails.cols; ++c) {
      EXPECT_EQ(thumbnails.masked(r, c), c > r) << r << ", " << c;
      if (thumbnails.masked(r, c)) {
        EXPECT_EQ(thumbnails.plane(2)[r * thumbnails.cols + c], 0.0f);
      }
    }
  }
}

// With the sink muted, each head's row loses key 0 and is renormalized before heads and cells are
// reduced: one head, the mean and max over heads and a GQA group, pooled thumbnails and a band, as
// the reference computes them; a muted head's rows sum to 1 again past the first query (which
// attends only to the sink, and keeps nothing).
TEST_F(AttentionCaptureTest, MutingTheSinkRenormalizesEveryKindOfMap) {
  const std::vector<AttentionMap> full = Full();
  std::vector<AttentionRequest> requests{
      OneHead(1, 3), AllHeads(config(), 0, HeadReduce::Mean), AllHeads(config(), 1, HeadReduce::Max),
      KvGroup(config(), 1, 0, HeadReduce::Mean), Pooled(EveryHead(config(), 0, HeadReduce::Max), tokens(), 16)};
  AttentionRequest band = Pooled(AllHeads(config(), 1, HeadReduce::Mean), tokens(), 10);
  band.first_row = 45;
  band.end_row = 290;
  requests.push_back(band);
  for (AttentionRequest& r : requests) r.mute_sink = true;
  const std::vector<AttentionMap> maps = engine_->CaptureAttention(ids_, requests);
  ASSERT_EQ(maps.size(), requests.size());
  for (size_t i = 0; i < maps.size(); ++i) {
    ExpectClose(maps[i].values, Reference(full, maps[i].request), "muted request " + std::to_string(i));
  }
  const AttentionMap& head = maps[0];
  for (uint32_t t = 0; t < tokens(); ++t) {
    const std::span<const float> row = head.values;
    EXPECT_EQ(row[size_t{t} * tokens()], 0.0f) << "query " << t;
    double sum = 0;
    for (uint32_t j = 0; j < tokens(); ++j) sum += row[size_t{t} * tokens() + j];
    ASSERT_NEAR(sum, t == 0 ? 0.0 : 1.0, 1e-5) << "query " << t;
  }
}

// Rows as live attention hands them over (each query's keys up to its own), made into a map: a
// band of whole rows equals the full matrix's; pooled in cells of the mean or the max, it equals
// the GPU's capture of the same band and cells.
TEST_F(AttentionCaptureTest, LiveRowsMakeTheMapACaptureMakes) {
  const std::vector<AttentionMap> full = Full();
  const uint32_t first = 120;
  for (const AttentionRequest& heads :
       {OneHead(1, 2), AllHeads(config(), 0, HeadReduce::Mean), KvGroup(config(), 1, 1, HeadReduce::Max)}) {
    std::vector<std::vector<float>> rows;
    const std::vector<float> whole = Reference(full, heads);
    for (uint32_t q = first; q < tokens(); ++q) {
      rows.emplace_back(whole.begin() + size_t{q} * tokens(), whole.begin() + size_t{q} * tokens() + q + 1);
    }
    const AttentionMap map = MapOfRows(heads, first, rows, 0);
    EXPECT_EQ(map.rows, tokens() - first);
    ExpectClose(map.values, std::span(whole).subspan(size_t{first} * tokens()), "whole rows");
    AttentionRequest pooled = Pooled(heads, tokens(), 16);
    const AttentionMap cells = MapOfRows(pooled, first, rows, 0);
    pooled.first_row = first;
    const AttentionMap captured = engine_->CaptureAttention(ids_, std::span(&pooled, 1))[0];
    ASSERT_EQ(cells.rows, captured.rows);
    ASSERT_EQ(cells.cols, captured.cols);
    ExpectClose(cells.values, captured.values, "pooled rows");
  }
}

// A sliding-window layer (some Qwen2 checkpoints have them): each row is a distribution over the
// last `window` keys up to its query, zero before them; a band of one head equals the full matrix.
TEST_F(AttentionCaptureTest, SlidingWindowLayersZeroWhatTheWindowHides) {
  ModelConfig windowed = config();
  windowed.layer_window = {0, 24};
  Engine engine(device(), windowed, *weights_, EngineOptions{.context = 1024, .prefill_chunk = 16});
  const AttentionRequest every = EveryHead(windowed, 1, HeadReduce::Mean);
  const AttentionMap full = engine.CaptureAttention(ids_, std::span(&every, 1))[0];
  for (uint32_t h = 0; h < full.planes; ++h) {
    for (uint32_t t = 0; t < tokens(); ++t) {
      const std::span<const float> row = full.plane(h).subspan(size_t{t} * tokens(), tokens());
      double sum = 0;
      for (uint32_t j = 0; j < tokens(); ++j) {
        // The map says what the window hides, as the causal mask (the viewer and PNG draw it so).
        ASSERT_EQ(full.masked(t, j), j > t || j + 24 <= t) << "query " << t << " key " << j;
        if (j > t || j + 24 <= t) {
          ASSERT_EQ(row[j], 0.0f) << "head " << h << " query " << t << " key " << j;
        }
        sum += row[j];
      }
      ASSERT_NEAR(sum, 1.0, 1e-5) << "head " << h << " query " << t;
    }
  }
  AttentionRequest band = OneHead(1, 2);
  band.first_row = 100;
  band.end_row = 180;
  const AttentionMap got = engine.CaptureAttention(ids_, std::span(&band, 1))[0];
  ExpectClose(got.values, full.plane(2).subspan(size_t{100} * tokens(), size_t{80} * tokens()), "band");
}

TEST_F(AttentionCaptureTest, RefusesMapsOutsideTheModel) {
  const auto refusal = [&](const AttentionRequest& r) {
    return ErrorOf([&] { engine_->CaptureAttention(ids_, std::span(&r, 1)); });
  };
  ExpectMentions(refusal(OneHead(2, 0)), {"layer 2 is out of range", "2 layers (0 to 1)"});
  ExpectMentions(refusal(OneHead(0, 4)), {"head 4 is out of range", "4 attention heads (0 to 3)"});
  ExpectMentions(refusal(KvGroup(config(), 0, 2, HeadReduce::Mean)), {"head 4 is out of range"});
  ExpectMentions(refusal({.first_row = 10, .end_row = 301}), {"query rows 10 to 301", "300 tokens"});
  ExpectMentions(refusal({.first_row = 10, .end_row = 10}), {"query rows 10 to 10"});
  ExpectMentions(refusal({.cell = 0}), {"cells"});
  // Nothing was computed: the cache is as it was.
  EXPECT_TRUE(engine_->cached_tokens().empty());
}

// Qwen2.5-0.5B's attention: 24 layers, 14 query heads and 2 KV heads of 64.
ModelConfig HalfBShape() {
  ModelConfig c;
  c.num_layers = 24;
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  return c;
}

// Qwen2.5-0.5B (24 layers, 14 heads, 2 KV heads) at 4096 tokens, lavapipe's 128 MiB binding: what a
// viewer asks for at once (one head's whole map, a layer's mean, thumbnails of every head of every
// layer) takes one chunk's probabilities and the maps, about 120 MiB; all the maps at once would be
// 4 * 24 * 14 * 4096^2 bytes, 22.5 GB, and even one layer's heads are refused (capture them in bands).
TEST(AttentionCapturePlan, FourThousandTokensOnHalfBTakeMegabytesNotGigabytes) {
  const ModelConfig c = HalfBShape();
  const uint32_t tokens = 4096;
  const uint64_t binding = uint64_t{128} << 20;
  std::vector<AttentionRequest> requests{OneHead(3, 5), AllHeads(c, 3, HeadReduce::Mean)};
  for (uint32_t l = 0; l < c.num_layers; ++l) requests.push_back(Pooled(EveryHead(c, l, HeadReduce::Max), tokens, 64));
  const CapturePlan plan = PlanCapture(c, tokens, requests, 256, binding);
  EXPECT_EQ(plan.chunk_rows, 256u);
  EXPECT_EQ(plan.probs_bytes, uint64_t{4} * 14 * 256 * tokens);  // 56 MiB
  EXPECT_EQ(plan.map_bytes, uint64_t{4} * 2 * tokens * tokens + uint64_t{4} * 24 * 14 * 64 * 64);
  EXPECT_LT(plan.probs_bytes + plan.map_bytes, uint64_t{192} << 20);
  const uint64_t every_map = uint64_t{4} * c.num_layers * c.num_heads * tokens * tokens;
  EXPECT_LT(plan.probs_bytes + plan.map_bytes, every_map / 100);

  // A band of 12 rows (what `qwenvk attention --out` takes at a time here) takes 12 rows' worth.
  AttentionRequest band = EveryHead(c, 0, HeadReduce::Mean);
  band.first_row = 1000;
  band.end_row = 1012;
  const CapturePlan band_plan = PlanCapture(c, tokens, std::span(&band, 1), 256, binding);
  EXPECT_EQ(band_plan.chunk_rows, 12u);
  EXPECT_EQ(band_plan.probs_bytes, uint64_t{4} * 14 * 12 * tokens);
  EXPECT_EQ(band_plan.map_bytes, uint64_t{4} * 14 * 12 * tokens);

  const AttentionRequest one_layer = EveryHead(c, 0, HeadReduce::Mean);
  ExpectMentions(ErrorOf([&] { PlanCapture(c, tokens, std::span(&one_layer, 1), 256, binding); }),
                 {"14 planes of 4096 x 4096", "896 MiB", "128 MiB", "fewer query rows"});
}

// The viewer's capture of a 4096-token conversation on Qwen2.5-0.5B's shape: the map on screen
// (pooled to 1024 values a side) and a 24-value thumbnail of every head of every layer take one
// chunk's probabilities (56 MiB) and 4.7 MiB of maps, under the 64 MiB the README states, on a
// binding as small as lavapipe's or as large as a discrete GPU's; the live rows of every layer
// and head over that context and the row of the panel's one view take 5.3 MiB, under the
// README's 6 MiB.
TEST(AttentionCapturePlan, TheViewerAtFourThousandTokensOnHalfBStaysUnderTheReadmesBound) {
  const ModelConfig c = HalfBShape();
  const uint32_t tokens = 4096;
  std::vector<AttentionRequest> requests{Pooled(AllHeads(c, 3, HeadReduce::Mean), tokens, 1024)};
  for (uint32_t l = 0; l < c.num_layers; ++l) requests.push_back(Pooled(EveryHead(c, l, HeadReduce::Max), tokens, 24));
  for (const uint64_t binding : {uint64_t{128} << 20, uint64_t{4} << 30}) {
    const CapturePlan plan = PlanCapture(c, tokens, requests, 256, binding);
    EXPECT_EQ(plan.probs_bytes, uint64_t{4} * 14 * 256 * tokens);
    EXPECT_EQ(plan.map_bytes, uint64_t{4} * 1024 * 1024 + uint64_t{4} * 24 * 14 * 24 * 24);
    EXPECT_LT(plan.probs_bytes + plan.map_bytes, uint64_t{64} << 20) << "binding " << binding;
  }
  // Each layer's scores and each head's max and sum, 14 x 4098 floats, rounded up to 256 bytes.
  EXPECT_EQ(LiveAttentionBytes(c, tokens, 1), uint64_t{24} * 229632 + uint64_t{4} * tokens + 2 * 16);
  EXPECT_LT(LiveAttentionBytes(c, tokens, 1), uint64_t{6} << 20);
}

}  // namespace
}  // namespace qvk::test
