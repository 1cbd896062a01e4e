#pragma once
// Requests from many clients on one model: a slot per engine of the model (each its own KV
// cache, so a client's next turn finds its prefix cached), a thread per slot, and a queue for
// requests that find every slot busy. The GPU runs one step at a time: slots take turns step by
// step, first come first served, so every reply in progress streams while the others do.
// A cancelled request (its client went away) frees its slot at its next step.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/generate.h"
#include "model/sampler.h"
#include "server/openai_api.h"

namespace qvk::chat {
class LoadedModel;
}

namespace qvk::server {

struct GenerationJob {
  std::vector<uint32_t> prompt;
  SamplingParams sampling;
  uint32_t max_tokens = 0;
  std::vector<std::string> stop;  // stop sequences
};

// What the server has written of a job's reply, read by the client's connection.
struct JobOutput {
  std::string text;  // what arrived since the last Take
  bool finished = false;
};

// A job's reply as it is generated: the slot writes, the connection reads. Shared by both.
class JobStream {
 public:
  // The text that arrived since the last call, waiting up to `timeout` for some (or the end).
  JobOutput Take(std::chrono::milliseconds timeout);
  // Ends the job: queued, it never runs; running, its slot is free after the step in progress.
  void Cancel();
  bool cancelled() const;

  // After Take reported finished:
  FinishReason finish_reason() const;
  Usage usage() const;
  const std::optional<std::string>& error() const { return error_; }  // why it failed, if it did

 private:
  friend class GenerationQueue;
  void Append(std::string_view text);
  void Finish(FinishReason reason, const Usage& usage, std::optional<std::string> error);

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string pending_;
  bool finished_ = false;
  bool cancelled_ = false;
  FinishReason finish_ = FinishReason::Stop;
  Usage usage_;
  std::optional<std::string> error_;
};

class GenerationQueue {
 public:
  // One slot per engine of `model`; at most `max_waiting` jobs wait for a slot.
  GenerationQueue(chat::LoadedModel& model, size_t max_waiting);
  ~GenerationQueue();  // Shutdown
  GenerationQueue(const GenerationQueue&) = delete;
  GenerationQueue& operator=(const GenerationQueue&) = delete;

  // Queues a job; throws ApiError 503 when the queue is full or the server is stopping.
  std::shared_ptr<JobStream> Submit(GenerationJob job);
  // Cancels every job and waits for the slots to stop. Idempotent.
  void Shutdown();

  size_t slots() const { return slots_.size(); }

 private:
  struct Queued {
    GenerationJob job;
    std::shared_ptr<JobStream> stream;
  };
  struct Slot {
    size_t engine = 0;
    std::optional<Queued> assigned;      // the next job, until the slot's thread takes it
    std::shared_ptr<JobStream> current;  // the job it runs
    bool busy = false;                   // assigned or running
    std::thread thread;
  };

  void SlotLoop(Slot& slot);
  void Run(Slot& slot, const Queued& queued);
  bool Stopping();
  // The GPU turn: a ticket lock, so slots waiting for the GPU get it in the order they asked.
  void AcquireTurn();
  void ReleaseTurn();

  chat::LoadedModel& model_;
  size_t max_waiting_;

  std::mutex mutex_;  // guards the queue and the slots' assignments
  std::condition_variable assigned_;
  std::deque<Queued> waiting_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::shared_ptr<JobStream>> running_;
  bool stopping_ = false;

  std::mutex turn_mutex_;
  std::condition_variable turn_changed_;
  uint64_t next_ticket_ = 0;
  uint64_t serving_ = 0;
};

}  // namespace qvk::server
