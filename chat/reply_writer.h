#pragma once
// Saves a reply to the store as it streams, with the durability ChatSession promises: the row is
// created at the first piece of text (or, for Continue, marked Streaming when the reply starts),
// its text flushed at least every 500 ms, and the reply committed Complete with its figures
// however it ended.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/store.h"

namespace qvk::chat {

class ReplyWriter {
 public:
  // A new reply under `parent`, or more text for the reply `continued` (0: a new one).
  ReplyWriter(store::Store& store, store::Id conversation, store::Id parent, store::Id continued);

  // The reply starts with `text` (what a continued message held already); a continued message's
  // row is marked Streaming now.
  void Start(std::string text);
  // Streamed text: the first piece of a new reply creates its row, later pieces are flushed at
  // most every 500 ms. A flush that fails is retried at the next one.
  void Append(std::string_view piece);
  // Commits the reply in `state` (Complete, or Interrupted when it was broken off and can be
  // continued) with its figures; a reply without a single piece still gets a row, so the user
  // sees that it ended.
  void Finish(uint32_t tokens, double tokens_per_s, double time_to_first_token_s, const std::string& notice,
              store::MessageState state = store::MessageState::Complete);

  // The row exists and is marked Streaming: it must be committed.
  bool streaming() const { return streaming_; }
  store::Id message() const { return message_; }  // 0 until the row exists
  const std::string& text() const { return text_; }

 private:
  store::Store& store_;
  store::Id conversation_;
  store::Id parent_;
  store::Id message_;
  std::string text_;
  bool streaming_ = false;
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace qvk::chat
