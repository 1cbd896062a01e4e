// Sections: the split / logits and tokens / hand-offs / refusals
// A model split by layers across devices gives what one device gives, bit for bit: two logical
// devices made on the test's one GPU (lavapipe in CI) run the same kernels on the same data, so
// every logit of every position, every greedy token through the KV cache, and every attention map
// must equal the single-device engine's exactly (memcmp), with the hidden state crossing devices
// between stages by each hand-off the devices allow (model/stage_link.h).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gpu/interop.h"
#include "model/engine.h"
#include "model/layer_split.h"
#include "model/model_files.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

// --- the split -------------------------------------------------------------------------------

TEST(LayerSplitTest, SplitsInProportionWithAtLeastOneLayerEach) {
  using R = std::vector<LayerRange>;
  EXPECT_EQ(SplitLayers(2, std::vector<double>{1, 1}), (R{{0, 1}, {1, 2}}));
  EXPECT_EQ(SplitLayers(64, std::vector<double>{3, 1}), (R{{0, 48}, {48, 64}}));
  EXPECT_EQ(SplitLayers(3, std::vector<double>{2, 1}), (R{{0, 2}, {2, 3}}));
  EXPECT_EQ(SplitLayers(5, std::vector<double>{1}), (R{{0, 5}}));
  // A share too small for a whole layer still gets one; the others keep theirs.
  EXPECT_EQ(SplitLayers(4, std::vector<double>{1000, 1}), (R{{0, 3}, {3, 4}}));
  EXPECT_EQ(SplitLayers(4, std::vector<double>{1, 1000}), (R{{0, 1}, {1, 4}}));
  EXPECT_EQ(SplitLayers(3, std::vector<double>{1, 1, 1}), (R{{0, 1}, {1, 2}, {2, 3}}));
}

TEST(LayerSplitTest, RefusesWhatCannotBeSplit) {
  ExpectMentions(ErrorOf([] { SplitLayers(2, std::vector<double>{1, 1, 1}); }), {"3 parts for a model of 2 layers"});
  ExpectMentions(ErrorOf([] { SplitLayers(4, std::vector<double>{0, 1}); }), {"must be more than 0"});
  ExpectMentions(ErrorOf([] { SplitLayers(4, std::vector<double>{}); }), {"at least one part"});
}

TEST(LayerSplitTest, ReadsSplits) {
  EXPECT_EQ(ParseSplit("3,1", "--split"), (std::vector<double>{3, 1}));
  ExpectMentions(ErrorOf([] { ParseSplit("0,1", "--split"); }), {"--split 0,1: every part must be at least 1"});
  ExpectMentions(ErrorOf([] { ParseSplit("1.5,1", "--split"); }), {"--split 1.5,1: expected whole numbers"});
}

TEST(LayerSplitTest, ReadsNumberLists) {
  EXPECT_EQ(ParseNumberList("0,1", "--devices"), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(ParseNumberList("3", "--split"), (std::vector<uint32_t>{3}));
  for (const char* bad : {"", "0,", ",1", "a,b", "1;2", "-1,2", "1, 2"}) {
    ExpectMentions(ErrorOf([bad] { ParseNumberList(bad, "--devices"); }), {"--devices"});
  }
}

// --- logits and tokens -----------------------------------------------------------------------

// One model loaded whole on device() and split over device() and more logical devices on the
// same GPU, with an engine over each.
class SplitEngineTest : public TwoDeviceTest {
 protected:
  void TearDown() override {
    Unload();
    third_.reset();
    TwoDeviceTest::TearDown();
  }
  void Unload() {
    split_.reset();
    whole_.reset();
    split_weights_.clear();
    whole_weights_.reset();
  }

  // Loads `model` both ways; `shares` of its layers go to device(), the second device and (a third
  // share) a third, which share what `sharing` allows to hand the hidden state on.
  void Load(const std::filesystem::path& model, std::vector<double> shares, uint32_t chunk = 4,
            LinkSharing sharing = {}) {
    files_ = std::make_unique<ModelFiles>(model);
    const ModelConfig& c = files_->config();
    const EngineOptions options{.context = 64, .prefill_chunk = chunk, .sharing = sharing};
    whole_weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), c, files_->weights()));
    whole_ = std::make_unique<Engine>(device(), c, *whole_weights_, options);
    ranges_ = SplitLayers(c.num_layers, shares);
    std::vector<EngineStage> stages;
    if (ranges_.size() > 2 && !third_) third_ = std::make_unique<Device>(instance(), info());
    Device* devices[] = {&device(), second_.get(), third_.get()};
    for (size_t i = 0; i < ranges_.size(); ++i) {
      split_weights_.push_back(
          std::make_unique<ModelWeights>(LoadWeights(*devices[i], c, files_->weights(), {.layers = ranges_[i]})));
      stages.push_back({devices[i], split_weights_.back().get(), ranges_[i]});
    }
    split_ = std::make_unique<Engine>(stages, c, options);
  }

  std::vector<uint32_t> Prompt(uint32_t n) const {
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < n; ++i) ids.push_back((i * 7919 + 13) % files_->config().vocab_size);
    return ids;
  }

  // Every position's logits of a prefill of `ids`, as the engine hands them out.
  static std::vector<float> AllRows(Engine& engine, std::span<const uint32_t> ids) {
    std::vector<float> rows;
    engine.Prefill(
        ids, AllLogits{[&](uint32_t, std::span<const float> row) { rows.insert(rows.end(), row.begin(), row.end()); }});
    return rows;
  }

  static bool SameBits(std::span<const float> a, std::span<const float> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
  }

  // The best `readout.ranked` logits and their ids of both engines' last step, bit for bit.
  void ExpectSameRanked() {
    const RankedLogits whole = whole_->ranked(), split = split_->ranked();
    EXPECT_TRUE(SameBits(whole.logits, split.logits));
    EXPECT_TRUE(std::equal(whole.ids.begin(), whole.ids.end(), split.ids.begin(), split.ids.end()));
  }

  // Greedy steps on both engines from where their caches stand: the first step's whole row the
  // same, then each step's best logits (the whole row costs an lm_head product on lavapipe).
  void ExpectSameGreedySteps(uint32_t steps) {
    ASSERT_TRUE(SameBits(whole_->logits(), split_->logits()));
    for (uint32_t step = 0; step < steps; ++step) {
      const uint32_t token = whole_->argmax();
      ASSERT_EQ(split_->argmax(), token) << "step " << step;
      whole_->Decode(token, kReadout);
      split_->Decode(token, kReadout);
      ExpectSameRanked();
    }
  }

  static constexpr LogitsReadout kReadout{.ranked = 8};

  // Prefill logits of every position (over several chunks), then greedy decoding through the
  // KV cache past a chunk boundary, then a continuation that reuses a prefix of the cache.
  void ExpectSameResults() {
    const std::vector<uint32_t> prompt = Prompt(10);
    const std::vector<float> whole_rows = AllRows(*whole_, prompt);
    ASSERT_EQ(whole_rows.size(), size_t{10} * files_->config().vocab_size);
    EXPECT_TRUE(SameBits(whole_rows, AllRows(*split_, prompt)));

    const std::vector<uint32_t> start(prompt.begin(), prompt.begin() + 7);
    whole_->Prefill(start, LastLogits{kReadout});
    split_->Prefill(start, LastLogits{kReadout});
    ExpectSameRanked();
    ExpectSameGreedySteps(6);  // positions 7 to 12: across the chunk boundary at 8

    // Back to 5 tokens of the cache, then a different continuation from there.
    std::vector<uint32_t> other(prompt.begin(), prompt.begin() + 5);
    other.push_back(prompt[9]);
    other.push_back(prompt[3]);
    whole_->Prefill(other, LastLogits{kReadout});
    split_->Prefill(other, LastLogits{kReadout});
    EXPECT_EQ(split_->cached_tokens(), whole_->cached_tokens());
    ExpectSameGreedySteps(3);
    split_->Truncate(4);
    whole_->Truncate(4);
    whole_->Decode(prompt[8], kReadout);
    split_->Decode(prompt[8], kReadout);
    ExpectSameRanked();
    ExpectSameGreedySteps(2);
  }

  // Attention maps of every head of both layers of qwen2-tiny, each captured on the device holding
  // its layer, are the whole model's.
  void ExpectSameAttentionMaps() {
    const std::vector<uint32_t> ids = Prompt(9);
    std::vector<AttentionRequest> requests;
    for (uint32_t layer = 0; layer < 2; ++layer) {
      requests.push_back({.layer = layer, .plane_heads = 1, .planes = files_->config().num_heads});
    }
    const std::vector<AttentionMap> whole = whole_->CaptureAttention(ids, requests);
    const std::vector<AttentionMap> split = split_->CaptureAttention(ids, requests);
    ASSERT_EQ(split.size(), whole.size());
    for (size_t i = 0; i < whole.size(); ++i) {
      EXPECT_TRUE(SameBits(whole[i].values, split[i].values)) << "layer " << requests[i].layer;
    }
    EXPECT_EQ(split_->cached_tokens(), whole_->cached_tokens());
  }

  std::unique_ptr<Device> third_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> whole_weights_;
  std::vector<std::unique_ptr<ModelWeights>> split_weights_;
  std::vector<LayerRange> ranges_;
  std::unique_ptr<Engine> whole_, split_;
};

TEST_F(SplitEngineTest, FixtureModelHalvedGivesTheSameBits) {
  Load(TestDataDir() / "qwen2-tiny", {1, 1});
  ASSERT_EQ(split_->stage_count(), 2u);
  EXPECT_EQ(split_->stage(1).device, second_.get());
  EXPECT_EQ(split_->stage(1).layers, (LayerRange{1, 2}));
  // Each device holds its layers' KV cache; together, the whole model's.
  EXPECT_EQ(split_->kv_cache_bytes(), whole_->kv_cache_bytes());
  EXPECT_EQ(split_weights_[0]->layers[1].o.rows, 0u);
  EXPECT_EQ(split_weights_[1]->layers[0].o.rows, 0u);
  EXPECT_EQ(split_weights_[1]->embed.rows, 0u);
  EXPECT_EQ(split_weights_[1]->lm_head.rows, files_->config().vocab_size);
  ExpectSameResults();
}

TEST_F(SplitEngineTest, GgufModelGivesTheSameBits) {
  Load(TestDataDir() / "gguf/qwen2-tiny-q8_0.gguf", {1, 1});
  ExpectSameResults();
}

// Qwen2-MoE's three layers split unevenly both ways: mixture-of-experts layers on either side.
TEST_F(SplitEngineTest, MixtureOfExpertsSplitUnevenlyGivesTheSameBits) {
  for (const std::vector<double>& shares : {std::vector<double>{2, 1}, std::vector<double>{1, 2}}) {
    SCOPED_TRACE(testing::Message() << "split " << shares[0] << ":" << shares[1]);
    Unload();
    TempDir folder;
    Load(LinkModelFolder(TestDataDir() / "family/qwen2moe-tiny", TestDataDir() / "qwen2-tiny", folder.path()), shares);
    ASSERT_EQ(ranges_[0].size(), shares[0] > shares[1] ? 2u : 1u);
    ExpectSameResults();
  }
}

TEST_F(SplitEngineTest, Qwen3GgufGivesTheSameBits) {
  Load(TestDataDir() / "family/qwen3-tiny.gguf", {1, 1}, /*chunk=*/3);
  ExpectSameResults();
}

// Each map is captured on the device holding its layer; the maps are one device's.
TEST_F(SplitEngineTest, AttentionMapsOfEitherDevice) {
  Load(TestDataDir() / "qwen2-tiny", {1, 1});
  ExpectSameAttentionMaps();
}

// Three devices: the middle one receives the hidden state from the first and hands it on to the
// last in the same step (with timeline semaphores, one submission waits for one and signals the
// other).
TEST_F(SplitEngineTest, ThreeDevicesGiveTheSameBits) {
  TempDir folder;
  Load(LinkModelFolder(TestDataDir() / "family/qwen2moe-tiny", TestDataDir() / "qwen2-tiny", folder.path()), {1, 1, 1});
  ASSERT_EQ(split_->stage_count(), 3u);
  EXPECT_EQ(split_->stage(2).device, third_.get());
  EXPECT_EQ(split_->hand_off(1), split_->hand_off(0));
  ExpectSameResults();
}

// A profile holds every stage's dispatches, each marked with its device.
TEST_F(SplitEngineTest, ProfileNamesEachDispatchDevice) {
  Load(TestDataDir() / "qwen2-tiny", {1, 1});
  if (!info().compute_timestamps) GTEST_SKIP() << "no compute timestamps on this device";
  split_->set_profiling(true);
  split_->Prefill(Prompt(3), LastLogits{});
  split_->Decode(1);
  const std::vector<DispatchTiming>& profile = split_->last_profile();
  const auto on = [&](uint32_t stage, std::string_view label) {
    return std::any_of(profile.begin(), profile.end(),
                       [&](const DispatchTiming& t) { return t.stage == stage && t.label == label; });
  };
  EXPECT_TRUE(on(0, "x_to_next_device"));
  EXPECT_TRUE(on(1, "x_from_previous_device"));
  EXPECT_TRUE(on(1, "lm_head"));
  EXPECT_FALSE(on(0, "lm_head"));
}

// Live rows of views on either device's layers, in the order asked, as one device gives them;
// other views, then none, as the views change.
TEST_F(SplitEngineTest, LiveAttentionRowsOfEitherDevice) {
  Load(TestDataDir() / "qwen2-tiny", {1, 1});
  const uint32_t heads = files_->config().num_heads;
  const std::vector<AttentionRequest> views = {{.layer = 1, .first_head = 1, .plane_heads = 1},
                                               {.layer = 0, .plane_heads = heads, .reduce = HeadReduce::Max},
                                               {.layer = 1, .plane_heads = 2, .mute_sink = true}};
  const auto expect_same_rows = [&] {
    const AttentionRow whole = whole_->attention_row(), split = split_->attention_row();
    EXPECT_EQ(split.position, whole.position);
    EXPECT_EQ(split.views, whole.views);
    EXPECT_TRUE(SameBits(whole.values, split.values)) << "position " << whole.position;
  };
  for (Engine* engine : {whole_.get(), split_.get()}) {
    engine->set_live_attention(views);
    engine->Prefill(Prompt(6), LastLogits{});
  }
  expect_same_rows();
  for (uint32_t step = 0; step < 2; ++step) {
    const uint32_t token = whole_->argmax();
    ASSERT_EQ(split_->argmax(), token);
    whole_->Decode(token);
    split_->Decode(token);
    expect_same_rows();
  }
  const std::vector<AttentionRequest> fewer(views.begin() + 1, views.end());
  for (Engine* engine : {whole_.get(), split_.get()}) {
    engine->set_live_attention(fewer);
    engine->Decode(3);
  }
  expect_same_rows();
  split_->set_live_attention({});
  EXPECT_FALSE(split_->live_attention());
  split_->Decode(4);
  whole_->set_live_attention({});
  whole_->Decode(4);
  EXPECT_EQ(split_->argmax(), whole_->argmax());
}

// --- hand-offs -------------------------------------------------------------------------------

// Each way the hidden state can go from one device to the next gives one device's bits: where the
// devices share host memory and a timeline semaphore, both; host memory with the host waiting for
// the first device; and the host copy, the fallback of devices that share neither (forced here on
// devices that could). A way the devices cannot take is skipped, saying why.
struct HandOffCase {
  const char* name;
  LinkSharing sharing;
  const char* hand_off;  // as the engine names it
};
void PrintTo(const HandOffCase& hand_off, std::ostream* os) {
  *os << hand_off.name;
}

class SplitHandOffTest : public SplitEngineTest, public testing::WithParamInterface<HandOffCase> {};

TEST_P(SplitHandOffTest, GivesTheSameBits) {
  const HandOffCase& hand_off = GetParam();
  if (hand_off.sharing.host_memory) {
    if (const std::string problem = HostMemorySharingProblem(info(), second_->info()); !problem.empty()) {
      GTEST_SKIP() << problem;
    }
    if (const std::string problem = TimelineSharingProblem(info(), second_->info());
        hand_off.sharing.timeline && !problem.empty()) {
      GTEST_SKIP() << problem;
    }
  }
  Load(TestDataDir() / "qwen2-tiny", {1, 1}, /*chunk=*/4, hand_off.sharing);
  EXPECT_EQ(split_->hand_off(0), hand_off.hand_off);
  ExpectSameResults();
  ExpectSameAttentionMaps();
}

INSTANTIATE_TEST_SUITE_P(
    Each, SplitHandOffTest,
    testing::Values(HandOffCase{"SharedMemoryAndTimeline", {}, "shared host memory + timeline semaphore"},
                    HandOffCase{"SharedMemoryAndHostWait", {.timeline = false}, "shared host memory + host wait"},
                    HandOffCase{"HostCopy", {.host_memory = false}, "host copy"}),
    [](const testing::TestParamInfo<HandOffCase>& param) { return std::string(param.param.name); });

// --- refusals --------------------------------------------------------------------------------

TEST_F(SplitEngineTest, RefusesStagesThatDoNotCoverTheModel) {
  Load(TestDataDir() / "qwen2-tiny", {1, 1});
  const ModelConfig& c = files_->config();
  const EngineStage gap[] = {{&device(), split_weights_[0].get(), {0, 1}},
                             {second_.get(), split_weights_[1].get(), {2, 2}}};
  ExpectMentions(ErrorOf([&] { Engine(gap, c, {.context = 16}); }), {"must hold its 2 layers in order"});
  const EngineStage reversed[] = {{second_.get(), split_weights_[1].get(), {1, 2}},
                                  {&device(), split_weights_[0].get(), {0, 1}}};
  ExpectMentions(ErrorOf([&] { Engine(reversed, c, {.context = 16}); }), {"must hold its 2 layers in order"});
  ExpectMentions(ErrorOf([&] {
                   LoadWeights(device(), c, files_->weights(), {.layers = LayerRange{1, 3}});
                 }),
                 {"not a range of the model's 2 layers"});
}

}  // namespace
}  // namespace qvk::test
