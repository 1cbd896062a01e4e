#pragma once
// The prompt planner the terminal chat and the desktop app share: sampling settings into
// SamplingParams under one greedy rule, and the context policy that fits a conversation into the
// KV cache.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/chat_template.h"
#include "model/config.h"
#include "model/model_files.h"
#include "model/sampler.h"

namespace qvk::chat {

// Sampling settings as a user gives them: the CLI's options over the model's defaults, or a
// conversation's settings.
struct SamplingChoice {
  float temperature = 1.0f;
  uint32_t top_k = 0;  // 0: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  bool greedy = false;           // --greedy: always the most likely token
  std::optional<uint64_t> seed;  // none: a fresh random seed for this sampler
};

// What a command's options or a server request set about sampling; unset fields keep the model's.
struct SamplingOverrides {
  std::optional<float> temperature;
  std::optional<uint32_t> top_k;
  std::optional<float> top_p, min_p, repetition_penalty;
  std::optional<uint64_t> seed;
};

// The model's own defaults (generation_config.json) under `overrides`. A model that does not
// sample by default gets temperature 0, which the greedy rule reads as greedy.
SamplingChoice ModelSamplingChoice(const GenerationConfig& model, const SamplingOverrides& overrides = {});

// The greedy rule: greedy when asked (--greedy) or when the temperature is 0 or below; any
// temperature above 0 samples. A model whose generation_config.json does not sample reaches this
// as a default temperature of 0, so an explicit temperature still samples.
SamplingParams PlanSampling(const SamplingChoice& choice);

enum class PromptKind {
  Reply,         // the template's generation prompt opens a new assistant turn
  Continuation,  // the last message (the assistant's) carries on
};

struct PromptPlan {
  std::vector<uint32_t> ids;
  size_t dropped = 0;  // how many of the earliest messages were left out to fit
};

// `history` without the `dropped` earliest messages after a leading system message.
std::vector<ChatMessage> KeptMessages(std::span<const ChatMessage> history, size_t dropped);

// The context policy: a leading system message always stays; the earliest other messages are
// left out one at a time until the prompt and one new token fit in `context` tokens. Throws
// Error when the last message alone (with the system prompt) does not fit.
PromptPlan PlanPrompt(const ModelFiles& files, std::vector<ChatMessage> history, PromptKind kind, uint32_t context,
                      const TemplateOptions& options = {});

}  // namespace qvk::chat
