// The prompt planner the terminal chat and the desktop app share: the greedy rule and the
// context policy, on the tiny fixture's tokenizer and chat template (no GPU).
#include "chat/prompt_plan.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace qvk::chat {
namespace {

const ModelFiles& TinyFiles() {
  static const ModelFiles files(test::TestDataDir() / "qwen2-tiny");
  return files;
}

std::vector<ChatMessage> Conversation(size_t turns, bool with_system_prompt) {
  std::vector<ChatMessage> history;
  if (with_system_prompt) history.push_back({"system", "Be brief."});
  for (size_t turn = 0; turn < turns; ++turn) {
    history.push_back({"user", "This is an earlier question number " + std::to_string(turn)});
    history.push_back({"assistant", "And this is its answer"});
  }
  history.push_back({"user", "Last one"});
  return history;
}

TEST(PromptPlanTest, GreedyWhenAskedOrAtTemperatureZeroOrBelow) {
  EXPECT_TRUE(PlanSampling({.temperature = 0.0f}).greedy);
  EXPECT_TRUE(PlanSampling({.temperature = -1.0f}).greedy);
  EXPECT_TRUE(PlanSampling({.temperature = 0.8f, .greedy = true}).greedy);
  EXPECT_FALSE(PlanSampling({.temperature = 0.8f}).greedy);
  EXPECT_FALSE(PlanSampling({.temperature = 0.01f}).greedy);
}

TEST(PromptPlanTest, SamplingSettingsPassThroughAndAGivenSeedIsKept) {
  const SamplingParams p = PlanSampling({.temperature = 0.7f,
                                         .top_k = 20,
                                         .top_p = 0.8f,
                                         .min_p = 0.05f,
                                         .repetition_penalty = 1.05f,
                                         .greedy = false,
                                         .seed = 42});
  EXPECT_EQ(p.temperature, 0.7f);
  EXPECT_EQ(p.top_k, 20u);
  EXPECT_EQ(p.top_p, 0.8f);
  EXPECT_EQ(p.min_p, 0.05f);
  EXPECT_EQ(p.repetition_penalty, 1.05f);
  EXPECT_EQ(p.seed, 42u);
  // Without a seed each sampler gets a fresh one.
  EXPECT_NE(PlanSampling({}).seed, PlanSampling({}).seed);
}

TEST(PromptPlanTest, APromptThatFitsIsTheWholeConversation) {
  const std::vector<ChatMessage> history = Conversation(2, true);
  const PromptPlan plan = PlanPrompt(TinyFiles(), history, PromptKind::Reply, 4096);
  EXPECT_EQ(plan.dropped, 0u);
  EXPECT_EQ(plan.ids, TinyFiles().EncodeChat(history, true));
}

TEST(PromptPlanTest, TheEarliestMessagesGoUntilThePromptAndOneTokenFitButTheSystemPromptStays) {
  const std::vector<ChatMessage> history = Conversation(4, true);
  const uint32_t whole = static_cast<uint32_t>(TinyFiles().EncodeChat(history, true).size());
  const PromptPlan plan = PlanPrompt(TinyFiles(), history, PromptKind::Reply, whole - 10);
  ASSERT_GT(plan.dropped, 0u);
  EXPECT_LT(plan.ids.size(), whole - 10);  // room for one generated token
  std::vector<ChatMessage> kept = {history.front()};
  kept.insert(kept.end(), history.begin() + 1 + static_cast<std::ptrdiff_t>(plan.dropped), history.end());
  EXPECT_EQ(plan.ids, TinyFiles().EncodeChat(kept, true));
  // One message fewer would not have fitted: nothing was dropped that did not have to be.
  std::vector<ChatMessage> one_more = {history.front()};
  one_more.insert(one_more.end(), history.begin() + static_cast<std::ptrdiff_t>(plan.dropped), history.end());
  EXPECT_GE(TinyFiles().EncodeChat(one_more, true).size(), whole - 10);
}

// 100,000 turns (inside the import limit) against a 4096-token context: planned from the latest
// turns, with exactly as many dropped as must be.
TEST(PromptPlanTest, AHugeConversationKeepsTheMostTurnsThatFit) {
  std::vector<ChatMessage> history = {{"system", "Be brief."}};
  for (int i = 0; i < 100000; ++i) history.push_back({i % 2 == 0 ? "user" : "assistant", fmt::format("turn {}", i)});
  constexpr uint32_t kContext = 4096;
  const PromptPlan plan = PlanPrompt(TinyFiles(), history, PromptKind::Reply, kContext);
  EXPECT_LT(plan.ids.size(), kContext);
  auto without = [&](size_t dropped) {
    std::vector<ChatMessage> kept = {history.front()};
    kept.insert(kept.end(), history.begin() + 1 + static_cast<std::ptrdiff_t>(dropped), history.end());
    return TinyFiles().EncodeChat(kept, true);
  };
  EXPECT_EQ(plan.ids, without(plan.dropped));
  EXPECT_GE(without(plan.dropped - 1).size(), kContext);
}

TEST(PromptPlanTest, AContinuationIsPlannedAsOne) {
  std::vector<ChatMessage> history = Conversation(1, false);
  history.push_back({"assistant", "Partly written"});
  const PromptPlan plan = PlanPrompt(TinyFiles(), history, PromptKind::Continuation, 4096);
  EXPECT_EQ(plan.ids, TinyFiles().EncodeChatContinuation(history));
}

TEST(PromptPlanTest, ALastMessageThatAloneDoesNotFitIsAnError) {
  const std::vector<ChatMessage> history = Conversation(3, true);
  const std::string error = test::ErrorOf([&] { PlanPrompt(TinyFiles(), history, PromptKind::Reply, 8); });
  test::ExpectMentions(error, {"the last message alone", "does not fit the context of 8 tokens"});
}

}  // namespace
}  // namespace qvk::chat
