#include "chat/reply_writer.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "base/error.h"

namespace qvk::chat {
namespace {

constexpr auto kFlushInterval = std::chrono::milliseconds(500);

}  // namespace

ReplyWriter::ReplyWriter(store::Store& store, store::Id conversation, store::Id parent, store::Id continued)
    : store_(store), conversation_(conversation), parent_(parent), message_(continued) {}

void ReplyWriter::Start(std::string text) {
  text_ = std::move(text);
  last_flush_ = std::chrono::steady_clock::now();
  if (message_ != 0) {
    store_.UpdateMessage(message_, text_, store::MessageState::Streaming);
    streaming_ = true;
  }
}

void ReplyWriter::Append(std::string_view piece) {
  const auto now = std::chrono::steady_clock::now();
  text_ += piece;
  if (message_ == 0) {
    message_ = store_.AddMessage(conversation_, parent_, "assistant", text_, store::MessageState::Streaming);
    streaming_ = true;
    last_flush_ = now;
  } else if (now - last_flush_ >= kFlushInterval) {
    // The database busy for a moment or the disk full: generation goes on, and the final commit
    // reports a lasting failure.
    try {
      store_.UpdateMessage(message_, text_, store::MessageState::Streaming);
    } catch (const Error& e) {
      spdlog::warn("saving the streaming reply failed, retrying: {}", e.what());
    }
    last_flush_ = now;
  }
}

void ReplyWriter::Finish(uint32_t tokens, double tokens_per_s, double time_to_first_token_s, const std::string& notice,
                         store::MessageState state) {
  if (message_ == 0) {
    message_ = store_.AddMessage(conversation_, parent_, "assistant", text_, state);
  } else {
    store_.UpdateMessage(message_, text_, state);
  }
  streaming_ = false;
  store_.SetMessageStats(message_, tokens, tokens_per_s, time_to_first_token_s, notice);
}

}  // namespace qvk::chat
