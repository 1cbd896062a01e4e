// The bundled demo model (assets/wordnet-chat, trained by scripts/train-demo): it is a Qwen2 chat
// model small enough to ship, it loads from the checkout, a conversation computed at once equals
// the same conversation decoded token by token, and greedy replies to questions of its domain say
// what WordNet says.
#include <algorithm>
#include <cmath>
#include <string>

#include "model/engine.h"
#include "model/generate.h"
#include "model/model_files.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

namespace fs = std::filesystem;

const fs::path kModel = AssetsDir() / "wordnet-chat";

class DemoModelTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    files_ = std::make_unique<ModelFiles>(kModel);
    weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), files_->config(), files_->weights()));
    engine_ = std::make_unique<Engine>(device(), files_->config(), *weights_, EngineOptions{.context = 256});
  }
  void TearDown() override {
    engine_.reset();
    weights_.reset();
    GpuTest::TearDown();
  }

  // The greedy reply to one question, stopped once it holds `expected` (or after max_tokens).
  std::string Reply(const std::string& question, const std::string& expected, uint32_t max_tokens) {
    const std::vector<ChatMessage> messages{{"user", question}};
    const std::vector<uint32_t> prompt = files_->EncodeChat(messages, /*add_generation_prompt=*/true);
    engine_->Truncate(0);
    Sampler sampler(SamplingParams{.greedy = true});
    std::string reply;
    Generate(*engine_, *files_, prompt, sampler, max_tokens, [&](const GenerationStep& step) {
      reply += step.text;
      return reply.find(expected) == std::string::npos;
    });
    return reply;
  }

  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
};

// The whole of assets/ (the model and its README) stays under 30 MB.
TEST(DemoModelFilesTest, AssetsStayUnderThirtyMegabytes) {
  uintmax_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(AssetsDir())) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  EXPECT_GT(bytes, 10'000'000u) << "the model's weights are missing from " << AssetsDir();
  EXPECT_LT(bytes, 30'000'000u);
}

// Every path a real Qwen2 checkpoint takes: grouped-query attention, tied embeddings, QKV bias
// (in the weights), a vocabulary padded past the tokenizer's, ChatML.
TEST_F(DemoModelTest, IsAQwen2ChatModel) {
  const ModelConfig& c = files_->config();
  EXPECT_LT(c.num_kv_heads, c.num_heads);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_GT(c.vocab_size, files_->tokenizer().vocab_size());
  ASSERT_TRUE(files_->has_chat_template());
  const std::vector<ChatMessage> messages{{"user", "Define ocean."}};
  EXPECT_EQ(files_->tokenizer().Decode(files_->EncodeChat(messages, true)),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nDefine ocean.<|im_end|>\n"
            "<|im_start|>assistant\n");
}

// A two-turn conversation computed in one prefill gives the logits of the same tokens fed one
// decode step at a time.
TEST_F(DemoModelTest, PrefillEqualsTokenByTokenDecode) {
  const std::vector<ChatMessage> messages{{"user", "What is the opposite of cold?"},
                                          {"assistant", "The opposite of cold is hot."},
                                          {"user", "Give a synonym of big."}};
  const std::vector<uint32_t> ids = files_->EncodeChat(messages, /*add_generation_prompt=*/true);
  engine_->Prefill(ids, LastLogits{{.full_row = true}});
  const std::vector<float> at_once(engine_->logits().begin(), engine_->logits().end());

  engine_->Truncate(0);
  engine_->Prefill(std::span(ids).first(1), LastLogits{});
  for (size_t i = 1; i < ids.size(); ++i) engine_->Decode(ids[i], {.full_row = i + 1 == ids.size()});
  const auto step_by_step = engine_->logits();
  ASSERT_EQ(step_by_step.size(), at_once.size());
  // The fixture's 1e-4, relative: this model's logits run to tens (it learned its answers by
  // heart), and the two paths sum in other orders (tiled products and one-pass attention against
  // matvec and split attention).
  float scale = 0, worst = 0;
  for (size_t i = 0; i < at_once.size(); ++i) {
    scale = std::max(scale, std::abs(at_once[i]));
    worst = std::max(worst, std::abs(step_by_step[i] - at_once[i]));
  }
  EXPECT_LE(worst, 1e-4f * scale) << "largest |logit| " << scale;
  EXPECT_EQ(std::max_element(step_by_step.begin(), step_by_step.end()) - step_by_step.begin(),
            std::max_element(at_once.begin(), at_once.end()) - at_once.begin());
}

// Greedy replies hold the key words of WordNet's entries (and the model declines what is not a
// dictionary question).
TEST_F(DemoModelTest, AnswersQuestionsOfItsDomain) {
  const struct {
    const char* question;
    const char* expected;
  } kCases[] = {
      {"What is the opposite of cold?", "The opposite of cold is hot"},
      {"Give a synonym of big.", "Another word for big is large"},
      {"What kind of thing is a violin?", "stringed instrument"},
      {"Define ocean.", "a large body of water"},
      {"What does harbor mean?", "maintain (a theory, thoughts, or feelings)"},
      {"What is the capital of France?", "I am a small dictionary model"},
  };
  for (const auto& c : kCases) {
    EXPECT_NE(Reply(c.question, c.expected, 24).find(c.expected), std::string::npos) << c.question;
  }
}

}  // namespace
}  // namespace qvk::test
