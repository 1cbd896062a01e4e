#include "chat/live_attention.h"

#include <utility>

namespace qvk::chat {

void LiveAttention::SetViews(std::vector<AttentionRequest> views) {
  std::lock_guard lock(mutex_);
  pending_.clear();
  for (AttentionRequest& view : views) pending_.push_back({.view = std::move(view)});
}

LiveAttention::Update LiveAttention::Take() {
  std::lock_guard lock(mutex_);
  Update update{.reply = reply_};
  for (ViewRows& view : pending_) {
    update.views.push_back({.view = view.view, .first_position = view.first_position, .rows = std::move(view.rows)});
    view.rows.clear();
  }
  return update;
}

void LiveAttention::BeginReply() {
  std::lock_guard lock(mutex_);
  ++reply_;
  for (ViewRows& view : pending_) view.rows.clear();
}

void LiveAttention::Push(const AttentionRow& row) {
  std::lock_guard lock(mutex_);
  for (ViewRows& view : pending_) {
    if (view.rows.empty()) view.first_position = row.position;
    view.rows.push_back(row.Reduce(view.view));
  }
}

}  // namespace qvk::chat
