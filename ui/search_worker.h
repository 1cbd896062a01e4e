#pragma once
// The sidebar's full-text search, off the UI thread: a worker with its own read-only connection
// to the database (WAL lets it read while the app writes) runs the latest query only, and the
// sidebar shows what it last published. Typing never waits for a search.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/latest_job_worker.h"
#include "store/store.h"

namespace qvk::ui {

class SearchWorker {
 public:
  struct Results {
    std::string query;
    uint64_t revision = 0;  // the app's store revision the search was asked at
    std::vector<store::SearchHit> hits;
    std::string error;  // why the search failed (then no hits)
  };

  explicit SearchWorker(std::filesystem::path database);
  ~SearchWorker();  // waits for the search running, if any
  SearchWorker(const SearchWorker&) = delete;
  SearchWorker& operator=(const SearchWorker&) = delete;

  const std::filesystem::path& database() const { return database_; }
  // Searches for `query` in the store as it is at `revision` (the app store's), unless that very
  // search was already asked for. Returns at once; asking for another query drops this one.
  void Request(const std::string& query, uint64_t revision);
  // The last results published for `query` (perhaps of an older revision), or null while none are.
  std::shared_ptr<const Results> ResultsFor(const std::string& query) const;
  // Whether the results for `query` at `revision` are published.
  bool Finished(const std::string& query, uint64_t revision) const;

 private:
  void Run(const std::string& query, uint64_t revision);
  bool Abandoned(const std::string& query) const;

  const std::filesystem::path database_;
  mutable std::mutex mutex_;  // guards published_ and the last request
  std::shared_ptr<const Results> published_;
  std::string requested_query_;
  uint64_t requested_revision_ = 0;
  bool requested_ = false;
  bool closing_ = false;
  std::unique_ptr<store::Store> store_;  // the worker's own connection, opened at its first search
  LatestJobWorker worker_;               // last: its thread uses everything above
};

}  // namespace qvk::ui
