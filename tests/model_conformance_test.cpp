// Conformance with Hugging Face transformers on the fixture model (tests/data/qwen2-tiny, a
// random-weight Qwen2 with the real tokenizer and layout), by the bars of the fixtures README:
// prefill logits, top-1, greedy decoding through the KV cache, full logits, attention maps;
// plus the engine's own promises (prefix reuse and decode agree with a fresh prefill).
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_paths.h"
#include "model/engine.h"
#include "model/model_files.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"

namespace qvk::test {
namespace {

const std::filesystem::path kData = qvk::test::TestDataDir();
const std::filesystem::path kModel = kData / "qwen2-tiny";
const std::filesystem::path kReference = kData / "reference" / "hf" / "qwen2-tiny";

// The bars for weights stored as F32/F16/BF16.
constexpr double kMaxAbs = 0.10, kMaxRms = 0.03, kTop1Margin = 0.2, kAttentionMaxAbs = 2e-3;

std::vector<float> ReadFloats(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v(std::filesystem::file_size(path) / 4);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// Errors of our logits at the reference's 20 ids; returns their RMS, fails past kMaxAbs.
double CompareTop(std::span<const float> ours, const nlohmann::json& ref, const std::string& where) {
  double sum_sq = 0;
  const auto& ids = ref["ids"];
  for (size_t i = 0; i < ids.size(); ++i) {
    const double err = ours[ids[i].get<uint32_t>()] - ref["logits"][i].get<double>();
    EXPECT_LE(std::abs(err), kMaxAbs) << where << " id " << ids[i];
    sum_sq += err * err;
  }
  return std::sqrt(sum_sq / static_cast<double>(ids.size()));
}

uint32_t Argmax(std::span<const float> v) {
  return static_cast<uint32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

double Margin(const nlohmann::json& ref) { return ref["logits"][0].get<double>() - ref["logits"][1].get<double>(); }

class ConformanceTest : public GpuTest {
 protected:
  static void SetUpTestSuite() {
    std::ifstream in(kReference / "reference.json");
    reference_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete reference_;
    reference_ = nullptr;
  }
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    files_ = std::make_unique<ModelFiles>(kModel);
    weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), files_->config(), files_->tensors()));
    engine_ = std::make_unique<Engine>(device(), files_->config(), *weights_, EngineOptions{.context = 2048});
  }
  void TearDown() override {
    engine_.reset();
    weights_.reset();
    GpuTest::TearDown();
  }
  static std::vector<uint32_t> Ids(const nlohmann::json& prompt) { return prompt["input_ids"].get<std::vector<uint32_t>>(); }
  const nlohmann::json& Prompt(const std::string& name) { return (*reference_)["prompts"][name]; }

  void CheckPrompt(const std::string& name) {
    const auto& prompt = Prompt(name);
    const auto ids = Ids(prompt);
    const auto& positions = prompt["positions"];
    ASSERT_EQ(positions.size(), ids.size());

    // Bars 1 and 2 over one batched prefill.
    double sum_sq = 0;
    std::vector<float> last;
    engine_->PrefillAllLogits(ids, [&](uint32_t p, std::span<const float> logits) {
      const auto& ref = positions[p];
      const double rms = CompareTop(logits, ref, name + " position " + std::to_string(p));
      sum_sq += rms * rms;
      if (Margin(ref) >= kTop1Margin) {
        EXPECT_EQ(Argmax(logits), ref["ids"][0].get<uint32_t>()) << name << " top-1 at position " << p;
      }
      if (p + 1 == ids.size()) last.assign(logits.begin(), logits.end());
    });
    EXPECT_LE(std::sqrt(sum_sq / static_cast<double>(ids.size())), kMaxRms) << name << " prefill RMS";

    // Bar 4: every logit of the last position.
    const auto full = ReadFloats(kReference / (name + ".last_logits.f32"));
    ASSERT_EQ(full.size(), last.size());
    double full_sq = 0;
    for (size_t i = 0; i < full.size(); ++i) full_sq += (last[i] - full[i]) * static_cast<double>(last[i] - full[i]);
    EXPECT_LE(std::sqrt(full_sq / static_cast<double>(full.size())), kMaxRms) << name << " full-logit RMS";

    // Bar 3: greedy decoding through the KV cache, until the reference's margin gets thin.
    const auto& greedy = prompt["greedy"];
    const auto expected = greedy["tokens"].get<std::vector<uint32_t>>();
    uint32_t token = Argmax(last);
    if (Margin(positions[ids.size() - 1]) < kTop1Margin) return;
    ASSERT_EQ(token, expected[0]) << name << " first greedy token";
    size_t compared = 0;
    for (size_t k = 0; k < greedy["steps"].size(); ++k) {
      const auto& step = greedy["steps"][k];
      ASSERT_EQ(step["input_id"].get<uint32_t>(), token);
      const auto logits = engine_->Decode(token);
      const double rms = CompareTop(logits, step, name + " greedy step " + std::to_string(k));
      EXPECT_LE(rms, kMaxRms) << name << " greedy step " << k;
      if (Margin(step) < kTop1Margin) break;
      token = engine_->argmax();
      ASSERT_EQ(token, Argmax(logits)) << "GPU argmax disagrees with the logits it read";
      ASSERT_EQ(token, expected[k + 1]) << name << " greedy token " << k + 1;
      ++compared;
    }
    EXPECT_GT(compared, 0u) << name << ": no greedy step compared";
  }

  static nlohmann::json* reference_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
};

nlohmann::json* ConformanceTest::reference_ = nullptr;

TEST_F(ConformanceTest, ChatEnglish) { CheckPrompt("chat_en"); }
TEST_F(ConformanceTest, ChatMultilingual) { CheckPrompt("chat_multi"); }
TEST_F(ConformanceTest, PlainText) { CheckPrompt("text"); }
TEST_F(ConformanceTest, LongPromptAcrossChunks) { CheckPrompt("long"); }

TEST_F(ConformanceTest, AttentionProbabilities) {
  const auto ids = Ids(Prompt("chat_en"));
  const auto maps = engine_->PrefillAttention(ids);
  const auto expected = ReadFloats(kReference / "attention.f32");
  const auto shape = Prompt("chat_en")["attention_shape"].get<std::vector<size_t>>();
  ASSERT_EQ(maps.size(), shape[0] * shape[1] * shape[2] * shape[3]);
  ASSERT_EQ(maps.size(), expected.size());
  double worst = 0;
  for (size_t i = 0; i < maps.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(maps[i]) - expected[i]));
  EXPECT_LE(worst, kAttentionMaxAbs);
}

TEST_F(ConformanceTest, PromptTokensMatchTheTokenizer) {
  for (const char* name : {"chat_en", "chat_multi", "text"}) {
    const auto& prompt = Prompt(name);
    EXPECT_EQ(files_->tokenizer().Encode(prompt["prompt_text"].get<std::string>()), Ids(prompt)) << name;
  }
}

// A conversation fed turn by turn (the cache keeps the shared prefix) gives the logits of the
// whole prompt computed at once; so does decoding the last token after a shorter prefill.
TEST_F(ConformanceTest, PrefixReuseAndDecodeMatchAFreshPrefill) {
  const auto ids = Ids(Prompt("chat_multi"));
  const auto fresh_span = engine_->Prefill(ids);
  const std::vector<float> fresh(fresh_span.begin(), fresh_span.end());

  engine_->Truncate(0);
  engine_->Prefill(std::span(ids).first(20));
  const auto reused_span = engine_->Prefill(ids);
  const std::vector<float> reused(reused_span.begin(), reused_span.end());
  EXPECT_EQ(engine_->cached_tokens(), ids);
  engine_->Truncate(0);
  engine_->Prefill(std::span(ids).first(ids.size() - 1));
  const auto decoded = engine_->Decode(ids.back());
  for (size_t i = 0; i < fresh.size(); ++i) {
    ASSERT_NEAR(reused[i], fresh[i], 1e-4) << "prefix reuse, logit " << i;
    ASSERT_NEAR(decoded[i], fresh[i], 1e-4) << "decode, logit " << i;
  }
}

// Under a GPU budget too small for the weights, the layers stay in host memory the GPU reads:
// the same kernels on the same numbers, so the same logits bit for bit.
TEST_F(ConformanceTest, HostResidentWeightsGiveTheSameLogits) {
  const auto ids = Ids(Prompt("text"));
  const auto on_gpu = engine_->Prefill(ids);
  const std::vector<float> expected(on_gpu.begin(), on_gpu.end());

  ModelWeights host = LoadWeights(device(), files_->config(), files_->tensors(), /*device_budget=*/0);
  EXPECT_EQ(host.host_layers, files_->config().num_layers);
  EXPECT_GT(host.host_bytes, 0u);
  EXPECT_LT(host.device_bytes, host.host_bytes / 100);  // only norms and biases
  Engine engine(device(), files_->config(), host, EngineOptions{.context = 64});
  const auto got = engine.Prefill(ids);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "logit " << i;
}

TEST_F(ConformanceTest, RefusesWhatDoesNotFitTheContext) {
  std::vector<uint32_t> too_long(engine_->context() + 1, 9707);
  EXPECT_THROW(engine_->Prefill(too_long), Error);
  EXPECT_THROW(engine_->Prefill(std::vector<uint32_t>{files_->config().vocab_size}), Error);
}

}  // namespace
}  // namespace qvk::test
