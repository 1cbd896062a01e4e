// Sections: sampling / live attention / profiling
// The generation loop on the fixture model: the sampler's draw from the logits ranked on the GPU
// equals its draw from the whole row, so a generation that keeps the logits on the GPU gives the
// tokens of one that reads every row; each step reports its token, position and text, and with
// live attention on the attention row that produced it, reduced to the views asked for.
#include <algorithm>
#include <functional>
#include <map>
#include <string>

#include <fmt/format.h>

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
  // How far a live row may be from the prefill map's (ExpectRowOfMap): the f32 kernels' rounding,
  // or the matrix units' where prefill runs on them.
  static double RowTolerance() { return info().coopmat_f16 ? 1e-4 : 1e-5; }

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

// --- sampling ------------------------------------------------------------------------------------

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

// --- live attention ------------------------------------------------------------------------------

// A greedy generation of the prompt on `engine` with live attention on: each step's rows ([views,
// keys]) and the tokens generated. `on_row(k)` runs after step k's rows are kept.
struct LiveGeneration {
  std::vector<std::vector<float>> rows;
  std::vector<uint32_t> generated;
};
LiveGeneration GenerateLive(Engine& engine, const ModelFiles& files, std::span<const uint32_t> prompt,
                            const std::function<void(size_t step)>& on_row = {}) {
  Sampler sampler({.greedy = true});
  LiveGeneration live;
  Generate(
      engine, files, prompt, sampler, kNewTokens,
      [&](const GenerationStep& step) {
        if (step.trailing_text) return true;
        EXPECT_TRUE(step.attention.has_value()) << "step at " << step.position;
        if (!step.attention) return false;
        EXPECT_EQ(step.attention->position, step.position - 1);
        EXPECT_EQ(step.attention->values.size(), size_t{step.attention->views} * step.position);
        live.rows.emplace_back(step.attention->values.begin(), step.attention->values.end());
        if (on_row) on_row(live.rows.size() - 1);
        return true;
      },
      &live.generated);
  return live;
}

// Every token a step fed through the model: the prompt and all generated tokens but the last.
std::vector<uint32_t> FedTokens(std::span<const uint32_t> prompt, const std::vector<uint32_t>& generated) {
  std::vector<uint32_t> ids(prompt.begin(), prompt.end());
  ids.insert(ids.end(), generated.begin(), generated.end() - 1);
  return ids;
}

// Step k's row of view v (of `views` views) equals row (first query + k) of `map`, a prefill's
// capture of the same view: a decode step's projections (matrix x vector) round differently. Where
// prefill runs on matrix units, its projections' sums may truncate by up to 4e-5 of sum|w x|
// (matmul_coopmat_test's bound), which moves a score by about 1e-4 and a probability p by 1e-4 p:
// 2.5e-5 on the H200 in a sliding-window layer, whose rows share out few keys.
void ExpectRowOfMap(std::span<const float> step_rows, uint32_t views, uint32_t v, const AttentionMap& map, size_t query,
                    const std::string& what, double tolerance) {
  const size_t keys = query + 1;
  ASSERT_EQ(step_rows.size(), views * keys) << what;
  for (size_t j = 0; j < keys; ++j) {
    ASSERT_NEAR(step_rows[v * keys + j], map.plane(0)[query * map.tokens + j], tolerance)
        << what << ": query " << query << " key " << j;
  }
}

// With live attention on, each step carries the attention that produced its token: the row of
// the query before it (for the first step, the prompt's last token), reduced to each view: every
// layer's every head alone, and means and maxes over heads and KV groups with the sink muted or
// not, each equal to the map a prefill re-run over the same tokens captures for the view. The rows
// change no token; in a sliding-window layer they are exactly 0 where the window hides keys.
TEST_F(GenerateTest, LiveAttentionRowsEqualARerunPrefill) {
  for (const uint32_t window : {0u, 6u}) {
    SCOPED_TRACE(::testing::Message() << "window " << window);
    ModelConfig c = files_->config();
    c.layer_window = {0, window};
    Engine engine(device(), c, *weights_, EngineOptions{.context = 128});
    Sampler plain({.greedy = true});
    std::vector<uint32_t> without;
    Generate(
        engine, *files_, prompt_, plain, kNewTokens, [](const GenerationStep&) { return true; }, &without);

    engine.Truncate(0);
    std::vector<AttentionRequest> views;
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      for (uint32_t h = 0; h < c.num_heads; ++h) views.push_back(OneHead(l, h));
    }
    views.push_back(AllHeads(c, 1, HeadReduce::Mean));
    views.push_back(AllHeads(c, 0, HeadReduce::Max));
    views.back().mute_sink = true;
    views.push_back(KvGroup(c, 1, 1, HeadReduce::Max));
    views.push_back(KvGroup(c, 0, 0, HeadReduce::Mean));
    views.back().mute_sink = true;
    engine.set_live_attention(views);
    const LiveGeneration live = GenerateLive(engine, *files_, prompt_);
    EXPECT_EQ(live.generated, without);
    ASSERT_EQ(live.rows.size(), live.generated.size());

    const std::vector<AttentionMap> maps = engine.CaptureAttention(FedTokens(prompt_, live.generated), views);
    const auto count = static_cast<uint32_t>(views.size());
    for (size_t k = 0; k < live.rows.size(); ++k) {
      const size_t query = prompt_.size() - 1 + k;
      for (uint32_t v = 0; v < count; ++v) {
        ExpectRowOfMap(live.rows[k], count, v, maps[v], query, fmt::format("view {}", v), RowTolerance());
        const bool windowed = views[v].layer == 1 && window != 0;
        for (size_t j = 0; windowed && j + window <= query; ++j) {
          ASSERT_EQ(live.rows[k][v * (query + 1) + j], 0.0f) << "view " << v << " query " << query << " key " << j;
        }
      }
    }

    engine.set_live_attention({});
    ExpectMentions(ErrorOf([&] { engine.attention_row(); }), {"live attention is off"});
  }
}

// Views chosen between steps reduce the rows from the next step on: as many as before, in the
// same recording of the step, or more. Until a step has run the new views have no row; a view
// outside the model is refused and the views stay as they were.
TEST_F(GenerateTest, LiveViewsChosenBetweenStepsTakeEffectAtTheNextStep) {
  const ModelConfig& c = files_->config();
  const std::vector<AttentionRequest> first{OneHead(0, 1), AllHeads(c, 1, HeadReduce::Max)};
  std::vector<AttentionRequest> second{KvGroup(c, 0, 1, HeadReduce::Mean), OneHead(1, 3)};
  second[0].mute_sink = true;
  const std::vector<AttentionRequest> third{OneHead(1, 0), AllHeads(c, 0, HeadReduce::Mean),
                                            KvGroup(c, 1, 0, HeadReduce::Max)};
  const std::vector<AttentionRequest> outside{OneHead(2, 0)};
  const size_t second_from = 3, third_from = 6;
  engine_->set_live_attention(first);
  const LiveGeneration live = GenerateLive(*engine_, *files_, prompt_, [&](size_t step) {
    if (step + 1 == second_from) {
      engine_->set_live_attention(second);
      ExpectMentions(ErrorOf([&] { engine_->attention_row(); }), {"no step has run since its views were set"});
      ExpectMentions(ErrorOf([&] { engine_->set_live_attention(outside); }), {"layer 2 is out of range"});
      EXPECT_EQ(engine_->live_views().size(), second.size());
      EXPECT_EQ(engine_->live_views()[1].layer, 1u);
    }
    if (step + 1 == third_from) engine_->set_live_attention(third);
  });
  ASSERT_GT(live.rows.size(), third_from);

  std::vector<AttentionRequest> every = first;
  every.insert(every.end(), second.begin(), second.end());
  every.insert(every.end(), third.begin(), third.end());
  const std::vector<AttentionMap> maps = engine_->CaptureAttention(FedTokens(prompt_, live.generated), every);
  for (size_t k = 0; k < live.rows.size(); ++k) {
    const size_t query = prompt_.size() - 1 + k;
    const size_t from = k < second_from ? 0 : k < third_from ? first.size() : first.size() + second.size();
    const size_t count = k < second_from ? first.size() : k < third_from ? second.size() : third.size();
    for (size_t v = 0; v < count; ++v) {
      ExpectRowOfMap(live.rows[k], static_cast<uint32_t>(count), static_cast<uint32_t>(v), maps[from + v], query,
                     fmt::format("step {} view {}", k, v), RowTolerance());
    }
  }
}

// --- profiling -----------------------------------------------------------------------------------

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
