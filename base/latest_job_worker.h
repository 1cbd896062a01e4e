#pragma once
// A thread that runs the latest job it was given, for work the UI thread must not wait for
// (searching, counting tokens). A job submitted while another waits replaces the waiting one:
// once "hello" is typed, a search for "hel" is not worth running. The running job is never
// interrupted; a long one asks superseded() between steps and gives up when a newer job came.
// Jobs must not throw: they report failure through what they publish.
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace qvk {

class LatestJobWorker {
 public:
  LatestJobWorker();
  ~LatestJobWorker();  // drops the waiting job and waits for the running one
  LatestJobWorker(const LatestJobWorker&) = delete;
  LatestJobWorker& operator=(const LatestJobWorker&) = delete;

  // Drops the waiting job and waits for the running one; later jobs never run. An owner calls it
  // first when a job uses something the owner destroys before its members.
  void Stop();
  void Submit(std::function<void()> job);
  // From inside a job: a newer job is waiting, or the worker is being destroyed.
  bool superseded() const;

 private:
  void Loop();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<std::function<void()>> waiting_;
  bool quit_ = false;
  std::thread thread_;  // last: starts once everything it uses exists
};

}  // namespace qvk
