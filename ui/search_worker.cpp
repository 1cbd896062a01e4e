#include "ui/search_worker.h"

#include <utility>

namespace qvk::ui {

SearchWorker::SearchWorker(std::filesystem::path database) : database_(std::move(database)) {}

SearchWorker::~SearchWorker() {
  std::lock_guard lock(mutex_);
  closing_ = true;
}

void SearchWorker::Request(const std::string& query, uint64_t revision) {
  {
    std::lock_guard lock(mutex_);
    if (requested_ && requested_query_ == query && requested_revision_ == revision) return;
    requested_ = true;
    requested_query_ = query;
    requested_revision_ = revision;
  }
  worker_.Submit([this, query, revision] { Run(query, revision); });
}

std::shared_ptr<const SearchWorker::Results> SearchWorker::ResultsFor(const std::string& query) const {
  std::lock_guard lock(mutex_);
  return published_ && published_->query == query ? published_ : nullptr;
}

bool SearchWorker::Finished(const std::string& query, uint64_t revision) const {
  std::lock_guard lock(mutex_);
  return published_ && published_->query == query && published_->revision == revision;
}

// A search for the query still asked for runs to its end even when the store changed meanwhile
// (a streaming reply changes it twice a second): old hits are better than none.
bool SearchWorker::Abandoned(const std::string& query) const {
  std::lock_guard lock(mutex_);
  return closing_ || requested_query_ != query;
}

void SearchWorker::Run(const std::string& query, uint64_t revision) {
  auto results = std::make_shared<Results>();
  results->query = query;
  results->revision = revision;
  try {
    if (!store_) store_ = std::make_unique<store::Store>(database_, store::Store::Options{.read_only = true});
    results->hits = store_->Search(query, 50, [&] { return Abandoned(query); });
  } catch (const Error& e) {
    results->error = e.what();
  }
  std::lock_guard lock(mutex_);
  // Cut short: not what anyone asks for any more.
  if (closing_ || requested_query_ != query) return;
  published_ = std::move(results);
}

}  // namespace qvk::ui
