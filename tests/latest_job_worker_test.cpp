// The background worker behind the desktop app's search, branch reads and token counts.
#include "base/latest_job_worker.h"

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace qvk {
namespace {

// Holds a job running until released, so that the test knows what waits meanwhile.
class Gate {
 public:
  void Wait() {
    std::unique_lock lock(mutex_);
    open_.wait(lock, [&] { return released_; });
  }
  void Release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    open_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable open_;
  bool released_ = false;
};

TEST(LatestJobWorkerTest, TheLatestWaitingJobReplacesTheOthers) {
  LatestJobWorker worker;
  Gate gate;
  std::promise<void> started;
  std::promise<bool> first_superseded;
  std::vector<int> ran;  // written by the worker only, read after `last` is done
  worker.Submit([&] {
    started.set_value();
    gate.Wait();
    first_superseded.set_value(worker.superseded());
    ran.push_back(0);
  });
  started.get_future().wait();
  std::promise<void> last;
  for (int i = 1; i <= 3; ++i) {
    worker.Submit([&, i] {
      ran.push_back(i);
      if (i == 3) last.set_value();
    });
  }
  gate.Release();
  EXPECT_TRUE(first_superseded.get_future().get());  // newer work waited while it ran
  last.get_future().wait();
  EXPECT_EQ(ran, (std::vector<int>{0, 3}));
}

TEST(LatestJobWorkerTest, DestroyingWaitsForTheRunningJob) {
  Gate gate;
  bool finished = false;
  std::promise<void> started;
  auto worker = std::make_unique<LatestJobWorker>();
  worker->Submit([&] {
    started.set_value();
    gate.Wait();
    finished = true;
  });
  started.get_future().wait();
  std::thread destroying([&] { worker.reset(); });
  gate.Release();
  destroying.join();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace qvk
