#include "ui/branch_view.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <string>

#include "base/latest_job_worker.h"

namespace qvk::ui {

struct BranchView::Read {
  store::Id conversation = 0;
  uint64_t revision = 0;
  std::optional<store::Conversation> info;
  std::vector<store::Message> thread;
  std::unordered_map<store::Id, std::vector<store::Id>> children;
  std::string error;  // why the read failed
};

// The background reader: the latest request only; the UI takes what it published.
class BranchView::Reader {
 public:
  explicit Reader(std::filesystem::path database) : database_(std::move(database)) {}

  // Asks for `selected` as the store is at `store_revision` (unless that was asked already) and
  // returns what was read since the last call, if anything.
  std::unique_ptr<Read> Exchange(store::Id selected, uint64_t store_revision) {
    std::lock_guard lock(mutex_);
    if (asked_ != std::pair(selected, store_revision)) {
      asked_ = std::pair(selected, store_revision);
      worker_.Submit([this, selected, store_revision] { Run(selected, store_revision); });
    }
    return std::move(published_);
  }

 private:
  void Run(store::Id selected, uint64_t store_revision) {
    std::unique_ptr<Read> read;
    try {
      if (!store_) store_ = std::make_unique<store::Store>(database_, store::Store::Options{.read_only = true});
      read = ReadFrom(*store_, selected, store_revision);
    } catch (const Error& e) {
      read = std::make_unique<Read>();
      read->conversation = selected;
      read->revision = store_revision;
      read->error = e.what();
    }
    std::lock_guard lock(mutex_);
    published_ = std::move(read);
  }

  const std::filesystem::path database_;
  std::mutex mutex_;
  std::optional<std::pair<store::Id, uint64_t>> asked_;
  std::unique_ptr<Read> published_;
  std::unique_ptr<store::Store> store_;  // the reader's own connection, opened at its first read
  LatestJobWorker worker_;               // last: its thread uses everything above
};

BranchView::BranchView() = default;
BranchView::~BranchView() = default;

std::unique_ptr<BranchView::Read> BranchView::ReadFrom(store::Store& store, store::Id selected, uint64_t revision) {
  auto read = std::make_unique<Read>();
  read->conversation = selected;
  read->revision = revision;
  read->info = selected != 0 ? store.GetConversation(selected) : std::nullopt;
  if (read->info && read->info->current_leaf != 0) read->thread = store.Thread(read->info->current_leaf);
  if (read->info) {
    for (const store::MessageLink& link : store.MessageLinks(selected)) {
      read->children[link.parent_id].push_back(link.id);
    }
  }
  return read;
}

void BranchView::Adopt(Read&& read) {
  std::unordered_map<store::Id, Height> known;
  if (read.conversation == conversation) {
    for (size_t i = 0; i < thread.size() && i < heights.size(); ++i) known.emplace(thread[i].id, heights[i]);
  }
  conversation = read.conversation;
  revision = read.revision;
  info = std::move(read.info);
  thread = std::move(read.thread);
  children = std::move(read.children);
  heights.assign(thread.size(), Height{});
  for (size_t i = 0; i < thread.size(); ++i) {
    if (const auto it = known.find(thread[i].id); it != known.end()) heights[i] = it->second;
  }
}

void BranchView::Refresh(store::Store& store, store::Id selected) {
  const uint64_t now = store.revision();
  if (selected == conversation && revision == now) return;
  Adopt(std::move(*ReadFrom(store, selected, now)));
}

bool BranchView::RefreshInBackground(store::Store& store, store::Id selected) {
  const uint64_t now = store.revision();
  if (selected == conversation && revision == now) return true;
  if (!reader_) reader_ = std::make_unique<Reader>(store.path());
  std::unique_ptr<Read> read = reader_->Exchange(selected, now);
  // Another conversation's, or older than what the script read meanwhile: nothing to take.
  if (read && read->conversation == selected && !(selected == conversation && revision >= read->revision)) {
    const std::string error = std::move(read->error);
    Adopt(std::move(*read));
    if (!error.empty()) throw Error(error);
  }
  return selected == conversation && revision == now;
}

std::pair<size_t, size_t> BranchView::SiblingPosition(const store::Message& message) const {
  const auto it = children.find(message.parent_id);
  if (it == children.end()) return {1, 1};
  const std::vector<store::Id>& siblings = it->second;
  const auto at = std::find(siblings.begin(), siblings.end(), message.id);
  return {static_cast<size_t>(at - siblings.begin()) + 1, siblings.size()};
}

}  // namespace qvk::ui
