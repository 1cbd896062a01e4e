#include "chat/live_attention.h"

#include <utility>

namespace qvk::chat {

void LiveAttention::SetViews(std::vector<AttentionRequest> views) {
  std::lock_guard lock(mutex_);
  ++choice_;
  pending_.clear();
  for (AttentionRequest& view : views) pending_.push_back({.view = std::move(view)});
}

LiveAttention::Update LiveAttention::Take() {
  std::lock_guard lock(mutex_);
  Update update{
      .reply = reply_, .prompt_tokens = prompt_tokens_, .message = message_, .tokens = std::exchange(tokens_, {})};
  for (ViewRows& view : pending_) {
    update.views.push_back({.view = view.view, .first_position = view.first_position, .rows = std::move(view.rows)});
    view.rows.clear();
  }
  return update;
}

LiveAttention::Views LiveAttention::views() const {
  std::lock_guard lock(mutex_);
  Views views{.choice = choice_};
  for (const ViewRows& view : pending_) views.views.push_back(view.view);
  return views;
}

void LiveAttention::BeginReply(std::vector<Token> prompt) {
  std::lock_guard lock(mutex_);
  ++reply_;
  prompt_tokens_ = static_cast<uint32_t>(prompt.size());
  message_ = 0;
  tokens_ = std::move(prompt);
  for (ViewRows& view : pending_) view.rows.clear();
}

void LiveAttention::Push(const std::optional<AttentionRow>& row, uint64_t choice, Token produced, store::Id message) {
  std::lock_guard lock(mutex_);
  message_ = message;
  tokens_.push_back(std::move(produced));
  // Rows of the current choice come one per view it holds.
  if (!row || choice != choice_) return;
  for (uint32_t v = 0; v < pending_.size(); ++v) {
    ViewRows& view = pending_[v];
    if (view.rows.empty()) view.first_position = row->position;
    const std::span<const float> values = row->view(v);
    view.rows.emplace_back(values.begin(), values.end());
  }
}

}  // namespace qvk::chat
