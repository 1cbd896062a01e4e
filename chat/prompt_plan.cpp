#include "chat/prompt_plan.h"

#include <random>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk::chat {

SamplingChoice ModelSamplingChoice(const GenerationConfig& model, const SamplingOverrides& overrides) {
  return {.temperature = overrides.temperature.value_or(model.do_sample ? model.temperature : 0.0f),
          .top_k = overrides.top_k.value_or(model.top_k),
          .top_p = overrides.top_p.value_or(model.top_p),
          .min_p = overrides.min_p.value_or(model.min_p),
          .repetition_penalty = overrides.repetition_penalty.value_or(model.repetition_penalty),
          .seed = overrides.seed};
}

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

std::vector<ChatMessage> KeptMessages(std::span<const ChatMessage> history, size_t dropped) {
  const size_t first_turn = !history.empty() && history.front().role == "system" ? 1 : 0;
  std::vector<ChatMessage> kept(history.begin(), history.begin() + static_cast<std::ptrdiff_t>(first_turn));
  kept.insert(kept.end(), history.begin() + static_cast<std::ptrdiff_t>(first_turn + dropped), history.end());
  return kept;
}

PromptPlan PlanPrompt(const ModelFiles& files, std::vector<ChatMessage> history, PromptKind kind, uint32_t context,
                      const TemplateOptions& options) {
  const size_t first_turn = !history.empty() && history.front().role == "system" ? 1 : 0;
  const size_t turns = history.size() - first_turn;
  // The prompt with the `dropped` earliest turns after the system prompt left out.
  auto encode = [&](size_t dropped) {
    const std::vector<ChatMessage> kept = KeptMessages(history, dropped);
    return kind == PromptKind::Continuation ? files.EncodeChatContinuation(kept, options)
                                            : files.EncodeChat(kept, true, options);
  };
  auto fits = [&](const std::vector<uint32_t>& ids) { return ids.size() < context; };

  // Every turn costs at least one token, so at most `context` of the latest can fit: a huge
  // conversation is never rendered whole. Fewer turns never make a longer prompt, so the fewest
  // turns to drop is found by bisection: a few encodings, not one per dropped turn.
  size_t low = turns > context ? turns - context : 0;
  PromptPlan plan{.ids = encode(low), .dropped = low};
  if (fits(plan.ids)) return plan;
  size_t high = turns == 0 ? 0 : turns - 1;  // the last message alone
  plan = {.ids = encode(high), .dropped = high};
  if (!fits(plan.ids)) {
    throw Error(fmt::format("the last message alone ({} tokens) does not fit the context of {} tokens", plan.ids.size(),
                            context));
  }
  // Invariant: dropping `low` turns does not fit, dropping `high` does (plan holds that prompt).
  while (high - low > 1) {
    const size_t middle = low + (high - low) / 2;
    std::vector<uint32_t> ids = encode(middle);
    if (fits(ids)) {
      high = middle;
      plan = {.ids = std::move(ids), .dropped = middle};
    } else {
      low = middle;
    }
  }
  return plan;
}

}  // namespace qvk::chat
