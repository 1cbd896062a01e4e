#pragma once
// Where a conversation's replies come from when it is not this computer's model: an engine the
// app injects (an OpenAI-compatible server, server/remote_engine.h) that takes the conversation
// as messages and streams text back. The chat session keeps everything else the same whoever
// writes the tokens: the store, branches, Stop, Continue and the durable-reply guarantees.
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "model/chat_template.h"
#include "store/settings.h"
#include "store/store.h"

namespace qvk::chat {

struct ReplyRequest {
  std::vector<ChatMessage> messages;  // the system prompt first; for a continuation the partial reply last
  bool continuation = false;          // the last message carries on instead of a new turn opening
  store::ConversationSettings settings;
  TemplateOptions template_options;  // the conversation's template variables (its thinking switch)
};

struct ReplyOutcome {
  uint32_t prompt_tokens = 0;      // as the engine counted them; 0 when it did not say
  uint32_t completion_tokens = 0;  // 0 when it did not say
  bool length_limit = false;       // the engine stopped at max_tokens or its context
};

class ReplySource {
 public:
  virtual ~ReplySource() = default;
  // Streams the reply; `on_text` gets each piece and returns false to stop (a stop is an outcome,
  // not an error). Throws Error with a sentence the user can act on when the engine cannot be
  // reached, refuses, or the stream ends before the reply does; pieces given stay given.
  virtual ReplyOutcome Generate(const ReplyRequest& request,
                                const std::function<bool(std::string_view piece)>& on_text) = 0;
};

// Makes the source for a conversation's remote engine (its URL and model; the app knows the key).
using ReplySourceFactory = std::function<std::unique_ptr<ReplySource>(const store::ConversationEngine& engine)>;

}  // namespace qvk::chat
