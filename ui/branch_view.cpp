#include "ui/branch_view.h"

#include <algorithm>
#include <utility>

namespace qvk::ui {

void BranchView::Refresh(store::Store& store, store::Id selected) {
  const uint64_t now = store.revision();
  if (selected == conversation && revision == now) return;
  std::unordered_map<store::Id, Height> known;
  if (selected == conversation) {
    for (size_t i = 0; i < thread.size() && i < heights.size(); ++i) known.emplace(thread[i].id, heights[i]);
  }
  conversation = selected;
  revision.reset();  // a read that throws is tried again next frame
  info = selected != 0 ? store.GetConversation(selected) : std::nullopt;
  thread = info && info->current_leaf != 0 ? store.Thread(info->current_leaf) : std::vector<store::Message>{};
  heights.assign(thread.size(), Height{});
  for (size_t i = 0; i < thread.size(); ++i) {
    if (const auto it = known.find(thread[i].id); it != known.end()) heights[i] = it->second;
  }
  children.clear();
  if (info) {
    for (const store::MessageLink& link : store.MessageLinks(selected)) children[link.parent_id].push_back(link.id);
  }
  revision = now;
}

std::pair<size_t, size_t> BranchView::SiblingPosition(const store::Message& message) const {
  const auto it = children.find(message.parent_id);
  if (it == children.end()) return {1, 1};
  const std::vector<store::Id>& siblings = it->second;
  const auto at = std::find(siblings.begin(), siblings.end(), message.id);
  return {static_cast<size_t>(at - siblings.begin()) + 1, siblings.size()};
}

}  // namespace qvk::ui
