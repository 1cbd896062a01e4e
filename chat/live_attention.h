#pragma once
// The attention rows of the reply being generated, from the chat session's worker to the UI: the
// map of a view grows a row per token while the reply streams. The UI chooses the views (each a
// layer and heads, plane 0 of an AttentionRequest) and takes what arrived since it last looked;
// the worker reduces each step's row of every layer and head to those views as it comes, so a
// view costs one row per token and the whole row never leaves the generation thread. The tokens
// come along (the prompt's at the reply's start, then each generated one), so the UI can label
// the rows and columns without a tokenizer of its own.
#include <cstdint>
#include <mutex>
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

  // UI thread. From the next row on; rows kept for earlier views are dropped.
  void SetViews(std::vector<AttentionRequest> views);
  // UI thread: every view's rows and the tokens that arrived since the last Take, in order.
  Update Take();

  // Worker: a reply starts from `prompt`; then each step's row, with the token it produced and
  // the message the reply is written to (0 until its row exists).
  void BeginReply(std::vector<Token> prompt);
  void Push(const AttentionRow& row, Token produced, store::Id message);

 private:
  std::mutex mutex_;
  uint64_t reply_ = 0;
  uint32_t prompt_tokens_ = 0;
  store::Id message_ = 0;
  std::vector<Token> tokens_;
  std::vector<ViewRows> pending_;
};

}  // namespace qvk::chat
