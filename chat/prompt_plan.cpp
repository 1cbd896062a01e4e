#include "chat/prompt_plan.h"

#include <random>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk::chat {

SamplingParams PlanSampling(const SamplingChoice& choice) {
  SamplingParams p;
  p.greedy = choice.greedy || choice.temperature <= 0;
  p.temperature = choice.temperature;
  p.top_k = choice.top_k;
  p.top_p = choice.top_p;
  p.min_p = choice.min_p;
  p.repetition_penalty = choice.repetition_penalty;
  if (choice.seed) {
    p.seed = *choice.seed;
  } else {
    std::random_device entropy;
    p.seed = (uint64_t{entropy()} << 32) | entropy();
  }
  return p;
}

PromptPlan PlanPrompt(const ModelFiles& files, std::vector<ChatMessage> history, PromptKind kind, uint32_t context) {
  const size_t first_turn = !history.empty() && history.front().role == "system" ? 1 : 0;
  auto encode = [&] {
    return kind == PromptKind::Continuation ? files.EncodeChatContinuation(history) : files.EncodeChat(history, true);
  };
  PromptPlan plan{.ids = encode(), .dropped = 0};
  while (plan.ids.size() >= context && history.size() > first_turn + 1) {
    history.erase(history.begin() + static_cast<std::ptrdiff_t>(first_turn));
    ++plan.dropped;
    plan.ids = encode();
  }
  if (plan.ids.size() >= context) {
    throw Error(fmt::format("the last message alone ({} tokens) does not fit the context of {} tokens", plan.ids.size(),
                            context));
  }
  return plan;
}

}  // namespace qvk::chat
