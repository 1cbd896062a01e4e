#include "base/latest_job_worker.h"

#include <utility>

namespace qvk {

LatestJobWorker::LatestJobWorker() : thread_([this] { Loop(); }) {}

LatestJobWorker::~LatestJobWorker() {
  Stop();
}

void LatestJobWorker::Stop() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
    waiting_.reset();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LatestJobWorker::Submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    waiting_ = std::move(job);
  }
  wake_.notify_all();
}

bool LatestJobWorker::superseded() const {
  std::lock_guard lock(mutex_);
  return quit_ || waiting_.has_value();
}

void LatestJobWorker::Loop() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return quit_ || waiting_.has_value(); });
      if (quit_) return;
      job = std::move(*waiting_);
      waiting_.reset();
    }
    job();
  }
}

}  // namespace qvk
