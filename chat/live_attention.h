#pragma once
// The attention rows of the reply being generated, from the chat session's worker to the UI: the
// map of a view grows a row per token while the reply streams. The UI chooses the views (each a
// layer and heads, plane 0 of an AttentionRequest) and takes what arrived since it last looked;
// the worker hands the views to the engine, which reduces each step's attention to them on the
// GPU (Engine::set_live_attention), so a view costs one row per token and no other row leaves the
// GPU. The tokens come along (the prompt's at the reply's start, then each generated one), so the
// UI can label the rows and columns without a tokenizer of its own.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/attention_capture.h"
#include "store/store.h"

namespace qvk::chat {

class LiveAttention {
 public:
  // Rows of one view: rows[k] is what query first_position + k attends to, one value per key
  // 0 .. first_position + k.
  struct ViewRows {
    AttentionRequest view;
    uint32_t first_position = 0;
    std::vector<std::vector<float>> rows;
  };
  struct Token {
    uint32_t id = 0;
    std::string piece;  // its text decoded alone (special tokens as written)
  };
  struct Update {
    uint64_t reply = 0;          // counts replies: a new one starts its maps again
    uint32_t prompt_tokens = 0;  // the reply's prompt: tokens 0 .. prompt_tokens - 1
    store::Id message = 0;       // the reply's message, once its row exists
    std::vector<Token> tokens;   // the sequence's tokens that arrived since the last Take, in order
    std::vector<ViewRows> views;
  };
  // The views the UI chose, and which of its choices they are (each SetViews is a new one).
  struct Views {
    uint64_t choice = 0;
    std::vector<AttentionRequest> views;
  };

  // UI thread. From the next row on; rows kept for earlier views are dropped.
  void SetViews(std::vector<AttentionRequest> views);
  // UI thread: every view's rows and the tokens that arrived since the last Take, in order.
  Update Take();

  // Worker: the views for the engine to reduce the rows to.
  Views views() const;
  // Worker: a reply starts from `prompt`; then each step's token, with its row reduced to the
  // views of `choice` (none while live attention is off; dropped when the UI has chosen others
  // since, whose rows begin at the next step), and the message the reply is written to (0 until
  // its row exists).
  void BeginReply(std::vector<Token> prompt);
  void Push(const std::optional<AttentionRow>& row, uint64_t choice, Token produced, store::Id message);

 private:
  mutable std::mutex mutex_;
  uint64_t choice_ = 0;
  uint64_t reply_ = 0;
  uint32_t prompt_tokens_ = 0;
  store::Id message_ = 0;
  std::vector<Token> tokens_;
  std::vector<ViewRows> pending_;
};

}  // namespace qvk::chat
