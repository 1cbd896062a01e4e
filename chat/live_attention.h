#pragma once
// The attention rows of the reply being generated, from the chat session's worker to the UI: the
// map of a view grows a row per token while the reply streams. The UI chooses the views (each a
// layer and heads, plane 0 of an AttentionRequest) and takes what arrived since it last looked;
// the worker reduces each step's row of every layer and head to those views as it comes, so a
// view costs one row per token and the whole row never leaves the generation thread.
#include <cstdint>
#include <mutex>
#include <vector>

#include "model/attention_capture.h"

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
  struct Update {
    uint64_t reply = 0;  // counts replies: a new one starts its maps again
    std::vector<ViewRows> views;
  };

  // UI thread. From the next row on; rows kept for earlier views are dropped.
  void SetViews(std::vector<AttentionRequest> views);
  // UI thread: every view's rows that arrived since the last Take, in order.
  Update Take();

  // Worker: a reply starts; then each step's row.
  void BeginReply();
  void Push(const AttentionRow& row);

 private:
  std::mutex mutex_;
  uint64_t reply_ = 0;
  std::vector<ViewRows> pending_;
};

}  // namespace qvk::chat
