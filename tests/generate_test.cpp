// The generation loop on the fixture model: the sampler's draw from the logits ranked on the GPU
// equals its draw from the whole row, so a generation that keeps the logits on the GPU gives the
// tokens of one that reads every row; each step reports its token, position and text, and with
// live attention on the attention row that produced it.
#include <algorithm>
#include <map>
#include <string>

#include "model/engine.h"
#include "model/generate.h"
#include "model/model_files.h"
#include "model/tokenizer.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

constexpr uint32_t kNewTokens = 8;

// Greedy, greedy with a penalty, top-k alone and with the other filters, and filters that need
// the whole row (no top-k; a penalty raising repeated tokens).
const SamplingParams kCases[] = {
    {.greedy = true},
    {.greedy = true, .repetition_penalty = 1.3f},
    {.temperature = 1.0f, .top_k = 8, .seed = 1},
    {.temperature = 0.7f, .top_k = 20, .top_p = 0.8f, .repetition_penalty = 1.05f, .seed = 2},
    {.temperature = 1.2f, .top_k = 50, .top_p = 0.95f, .min_p = 0.05f, .repetition_penalty = 1.5f, .seed = 3},
    {.temperature = 0.9f, .top_p = 0.9f, .seed = 4},
    {.temperature = 1.0f, .top_k = 10, .repetition_penalty = 0.8f, .seed = 5},
};

class GenerateTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    files_ = std::make_unique<ModelFiles>(TestDataDir() / "qwen2-tiny");
    weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), files_->config(), files_->weights()));
    engine_ = std::make_unique<Engine>(device(), files_->config(), *weights_, EngineOptions{.context = 128});
    prompt_ = files_->tokenizer().Encode("The quick brown fox jumps over the lazy dog, and then");
  }
  void TearDown() override {
    engine_.reset();
    weights_.reset();
    GpuTest::TearDown();
  }
  uint32_t vocab() const { return files_->config().vocab_size; }

  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
  std::vector<uint32_t> prompt_;
};

// Step by step on the model's own logits: the GPU ranks them as the host would, and the ranked
// draw is the whole row's draw.
TEST_F(GenerateTest, RankedLogitsDrawWhatTheWholeRowDraws) {
  for (const SamplingParams& params : kCases) {
    Sampler whole(params), ranked(params);
    const uint32_t needed = ranked.RankedNeeded(vocab(), kMaxRanked);
    if (needed == 0) continue;
    const LogitsReadout readout{.ranked = needed, .full_row = true};
    std::vector<uint32_t> history = prompt_;
    engine_->Prefill(prompt_, LastLogits{readout});
    uint32_t settled = 0;
    for (uint32_t step = 0; step < kNewTokens; ++step) {
      const auto row = engine_->logits();
      const RankedLogits best = engine_->ranked();
      for (uint32_t i = 0; i < needed; ++i) {
        ASSERT_EQ(best.logits[i], row[best.ids[i]]) << "rank " << i;
        if (i > 0) {
          const bool ordered = best.logits[i - 1] > best.logits[i] ||
                               (best.logits[i - 1] == best.logits[i] && best.ids[i - 1] < best.ids[i]);
          ASSERT_TRUE(ordered) << "rank " << i;
        }
      }
      const float last = best.logits[needed - 1];
      const auto above = [&](float l) { return l > last; };
      ASSERT_EQ(std::count_if(row.begin(), row.end(), above),
                std::count_if(best.logits.begin(), best.logits.end(), above))
          << "a logit above the last ranked one was left out";

      std::vector<float> logits(row.begin(), row.end());
      const uint32_t expected = whole.Sample(logits, history);
      const auto got = ranked.SampleRanked(best.logits, best.ids, history);
      if (got) {
        ++settled;
        ASSERT_EQ(*got, expected) << "top-k " << params.top_k << " step " << step;
      } else {
        logits.assign(row.begin(), row.end());
        ASSERT_EQ(ranked.Sample(logits, history), expected) << "after falling back, step " << step;
      }
      history.push_back(expected);
      engine_->Decode(expected, readout);
    }
    EXPECT_GE(settled, kNewTokens - 2) << "top-k " << params.top_k << ": the ranked logits rarely settled the draw";
  }
}

// Generate (logits on the GPU where the sampler allows) against a loop that reads every row,
// samples it on the host and, for greedy, takes its first maximum.
TEST_F(GenerateTest, GenerationEqualsSamplingEveryWholeRow) {
  for (const SamplingParams& params : kCases) {
    engine_->Truncate(0);
    Sampler sampler(params);
    std::vector<uint32_t> tokens, positions;
    std::string text;
    Generate(*engine_, *files_, prompt_, sampler, kNewTokens, [&](const GenerationStep& step) {
      if (!step.trailing_text) {
        tokens.push_back(step.token);
        positions.push_back(step.position);
      }
      text += step.text;
      return true;
    });

    engine_->Truncate(0);
    Sampler reference(params);
    const bool plain_argmax = reference.is_greedy() && params.repetition_penalty == 1.0f;
    std::vector<uint32_t> history = prompt_, expected;
    engine_->Prefill(prompt_, LastLogits{{.full_row = true}});
    while (expected.size() < kNewTokens) {
      const auto row = engine_->logits();
      std::vector<float> logits(row.begin(), row.end());
      const uint32_t token = plain_argmax
                                 ? static_cast<uint32_t>(std::max_element(row.begin(), row.end()) - row.begin())
                                 : reference.Sample(logits, history);
      if (files_->IsStopToken(token)) break;
      expected.push_back(token);
      history.push_back(token);
      engine_->Decode(token, {.full_row = true});
    }

    const auto label = ::testing::Message() << "top-k " << params.top_k << " seed " << params.seed;
    ASSERT_EQ(tokens, expected) << label;
    for (size_t i = 0; i < positions.size(); ++i) EXPECT_EQ(positions[i], prompt_.size() + i) << label;
    EXPECT_EQ(text, files_->tokenizer().Decode(tokens, /*skip_special=*/true)) << label;
  }
}

// Stopping from the callback ends generation at once; the steps reported are all there is.
TEST_F(GenerateTest, ReturningFalseStops) {
  Sampler sampler({.greedy = true});
  uint32_t calls = 0;
  const GenerationStats stats =
      Generate(*engine_, *files_, prompt_, sampler, kNewTokens, [&](const GenerationStep&) { return ++calls < 3; });
  EXPECT_EQ(calls, 3u);
  EXPECT_EQ(stats.generated_tokens, 3u);
  EXPECT_EQ(engine_->cached_tokens().size(), prompt_.size() + 2);  // the third token was never decoded
}

// With live attention on, each step carries the attention that produced its token: the row of
// the query before it (for the first step, the prompt's last token) in every layer and head,
// equal to the rows of a prefill re-run over the same tokens with capture on. The rows change
// no token.
TEST_F(GenerateTest, LiveAttentionRowsEqualARerunPrefill) {
  const ModelConfig& c = files_->config();
  Sampler plain({.greedy = true});
  std::vector<uint32_t> without;
  Generate(
      *engine_, *files_, prompt_, plain, kNewTokens, [](const GenerationStep&) { return true; }, &without);

  engine_->Truncate(0);
  engine_->set_live_attention(true);
  Sampler sampler({.greedy = true});
  std::vector<std::vector<float>> rows;  // by step: [layers, heads, position]
  std::vector<uint32_t> generated;
  Generate(
      *engine_, *files_, prompt_, sampler, kNewTokens,
      [&](const GenerationStep& step) {
        if (step.trailing_text) return true;
        EXPECT_TRUE(step.attention.has_value()) << "step at " << step.position;
        if (!step.attention) return false;
        EXPECT_EQ(step.attention->position, step.position - 1);
        EXPECT_EQ(step.attention->values.size(), size_t{c.num_layers} * c.num_heads * step.position);
        rows.emplace_back(step.attention->values.begin(), step.attention->values.end());
        return true;
      },
      &generated);
  EXPECT_EQ(generated, without);
  ASSERT_EQ(rows.size(), generated.size());

  // Every token a step fed through the model: the prompt and all generated tokens but the last.
  std::vector<uint32_t> ids = prompt_;
  ids.insert(ids.end(), generated.begin(), generated.end() - 1);
  std::vector<AttentionRequest> layers;
  for (uint32_t l = 0; l < c.num_layers; ++l) layers.push_back(EveryHead(c, l, HeadReduce::Mean));
  const std::vector<AttentionMap> maps = engine_->CaptureAttention(ids, layers);
  const size_t tokens = ids.size();
  for (size_t k = 0; k < rows.size(); ++k) {
    const size_t query = prompt_.size() - 1 + k, keys = query + 1;
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      for (uint32_t h = 0; h < c.num_heads; ++h) {
        for (size_t j = 0; j < keys; ++j) {
          // A decode step's projections (matrix x vector) round differently from a prefill's.
          ASSERT_NEAR(rows[k][(l * c.num_heads + h) * keys + j], maps[l].plane(h)[query * tokens + j], 1e-5)
              << "query " << query << " layer " << l << " head " << h << " key " << j;
        }
      }
    }
  }

  engine_->set_live_attention(false);
  ExpectMentions(ErrorOf([&] { engine_->attention_row(); }), {"live attention is off"});
}

// Profiling (qwenvk bench --kernels) times every dispatch of a step, each chunk of a prefill
// included, and changes no result; the replayed decode step comes back when it goes off.
TEST_F(GenerateTest, ProfilingTimesEveryDispatchWithoutChangingResults) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const uint32_t layers = files_->config().num_layers, chunk = 4;
  Engine engine(device(), files_->config(), *weights_, EngineOptions{.context = 64, .prefill_chunk = chunk});
  std::vector<uint32_t> greedy;
  engine.Prefill(prompt_, LastLogits{});
  greedy.push_back(engine.argmax());
  for (int step = 0; step < 2; ++step) {
    engine.Decode(greedy.back());
    greedy.push_back(engine.argmax());
  }
  EXPECT_TRUE(engine.last_profile().empty());

  auto count_labels = [&] {
    std::map<std::string, uint32_t> counts;
    for (const DispatchTiming& t : engine.last_profile()) {
      ++counts[t.label];
      EXPECT_GE(t.microseconds, 0.0) << t.label;
      EXPECT_GT(t.cost.bytes, 0u) << t.label;
    }
    return counts;
  };
  engine.Truncate(0);
  engine.set_profiling(true);
  engine.Prefill(prompt_, LastLogits{});
  EXPECT_EQ(engine.argmax(), greedy[0]);
  const uint32_t chunks = static_cast<uint32_t>((prompt_.size() + chunk - 1) / chunk);
  std::map<std::string, uint32_t> counts = count_labels();
  EXPECT_EQ(counts["embed"], chunks);
  EXPECT_EQ(counts["attention"], chunks * layers);
  EXPECT_EQ(counts["lm_head"], 1u);

  engine.Decode(greedy[0]);
  EXPECT_EQ(engine.argmax(), greedy[1]);
  counts = count_labels();
  // A decode step folds the norms, RoPE and the SwiGLU into the projections.
  for (const char* label : {"qkv", "attention", "o_proj", "gate_up", "down"}) {
    EXPECT_EQ(counts[label], layers) << label;
  }
  for (const char* label : {"embed", "lm_head"}) EXPECT_EQ(counts[label], 1u) << label;
  for (const char* label : {"qkv_norm", "rope", "gate_up_norm", "gate_up_swiglu"}) {
    EXPECT_EQ(counts[label], 0u) << label;
  }
  EXPECT_GE(counts["ranking"], 1u);
  // Each profiled step is recorded at its own position: the next one's attention reads one more row.
  auto attention_bytes = [&] {
    uint64_t bytes = 0;
    for (const DispatchTiming& t : engine.last_profile()) bytes += t.label == "attention" ? t.cost.bytes : 0;
    return bytes;
  };
  const uint64_t before = attention_bytes();
  engine.Decode(greedy[1]);
  EXPECT_EQ(engine.argmax(), greedy[2]);
  EXPECT_GT(attention_bytes(), before);

  engine.set_profiling(false);
  engine.Truncate(prompt_.size() + 1);
  engine.Decode(greedy[1]);
  EXPECT_EQ(engine.argmax(), greedy[2]);
  EXPECT_TRUE(engine.last_profile().empty());
}

}  // namespace
}  // namespace qvk::test
