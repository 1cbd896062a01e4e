#include "server/generation_queue.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chat/loaded_model.h"

namespace qvk::server {

// --- JobStream --------------------------------------------------------------------------------

JobOutput JobStream::Take(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !pending_.empty() || finished_; });
  return {.text = std::exchange(pending_, std::string()), .finished = finished_};
}

void JobStream::Cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

bool JobStream::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

FinishReason JobStream::finish_reason() const {
  std::lock_guard lock(mutex_);
  return finish_;
}

Usage JobStream::usage() const {
  std::lock_guard lock(mutex_);
  return usage_;
}

void JobStream::Append(std::string_view text) {
  if (text.empty()) return;
  {
    std::lock_guard lock(mutex_);
    pending_.append(text);
  }
  changed_.notify_all();
}

void JobStream::Finish(FinishReason reason, const Usage& usage, std::optional<std::string> error) {
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
    finish_ = reason;
    usage_ = usage;
    error_ = std::move(error);
  }
  changed_.notify_all();
}

// --- GenerationQueue --------------------------------------------------------------------------

GenerationQueue::GenerationQueue(chat::LoadedModel& model, size_t max_waiting)
    : model_(model), max_waiting_(max_waiting) {
  for (size_t i = 0; i < model.engine_count(); ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->engine = i;
  }
  for (auto& slot : slots_) slot->thread = std::thread([this, &slot = *slot] { SlotLoop(slot); });
}

GenerationQueue::~GenerationQueue() {
  Shutdown();
}

std::shared_ptr<JobStream> GenerationQueue::Submit(GenerationJob job) {
  auto stream = std::make_shared<JobStream>();
  std::lock_guard lock(mutex_);
  if (stopping_) throw ApiError(503, "the server is stopping", "server_error");
  // The free slot whose cache holds the longest prefix of this prompt computes the least.
  Slot* best = nullptr;
  size_t best_shared = 0;
  for (auto& slot : slots_) {
    if (slot->busy) continue;
    const std::vector<uint32_t>& cached = model_.engine(slot->engine).cached_tokens();
    const size_t shared = static_cast<size_t>(
        std::mismatch(cached.begin(), cached.end(), job.prompt.begin(), job.prompt.end()).first - cached.begin());
    if (best == nullptr || shared > best_shared) {
      best = slot.get();
      best_shared = shared;
    }
  }
  if (best != nullptr) {
    best->busy = true;
    best->assigned = Queued{std::move(job), stream};
    assigned_.notify_all();
    return stream;
  }
  if (waiting_.size() >= max_waiting_) {
    throw ApiError(503,
                   fmt::format("the server is busy: {} requests are waiting for {} slots; try again later",
                               waiting_.size(), slots_.size()),
                   "server_overloaded");
  }
  waiting_.push_back({std::move(job), stream});
  return stream;
}

void GenerationQueue::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (Queued& queued : waiting_) queued.stream->Finish(FinishReason::Stop, {}, "the server is stopping");
    waiting_.clear();
    for (auto& slot : slots_) {
      if (slot->assigned) slot->assigned->stream->Cancel();
      if (slot->current) slot->current->Cancel();
    }
  }
  assigned_.notify_all();
  for (auto& slot : slots_) slot->thread.join();
}

void GenerationQueue::SlotLoop(Slot& slot) {
  std::unique_lock lock(mutex_);
  while (true) {
    assigned_.wait(lock, [&] { return slot.assigned.has_value() || stopping_; });
    if (!slot.assigned) return;
    const Queued queued = std::move(*slot.assigned);
    slot.assigned.reset();
    slot.current = queued.stream;
    lock.unlock();
    Run(slot, queued);
    lock.lock();
    slot.current.reset();
    // The oldest waiting job next; those cancelled while they waited end here without running.
    while (!waiting_.empty() && !slot.assigned) {
      Queued next = std::move(waiting_.front());
      waiting_.pop_front();
      if (next.stream->cancelled()) {
        next.stream->Finish(FinishReason::Stop, {}, std::nullopt);
      } else {
        slot.assigned = std::move(next);
      }
    }
    slot.busy = slot.assigned.has_value();
  }
}

void GenerationQueue::Run(Slot& slot, const Queued& queued) {
  JobStream& out = *queued.stream;
  const GenerationJob& job = queued.job;
  const Usage prompt_only{.prompt_tokens = static_cast<uint32_t>(job.prompt.size())};
  if (out.cancelled()) {
    out.Finish(FinishReason::Stop, prompt_only, std::nullopt);
    return;
  }
  StopScanner stops(job.stop);
  GenerationStats stats;
  std::optional<std::string> error;
  bool holding_turn = false;
  auto acquire = [&] {
    AcquireTurn();
    holding_turn = true;
  };
  auto release = [&] {
    holding_turn = false;
    ReleaseTurn();
  };
  try {
    // Inside the try: settings the sampler refuses end this job with their error, not the server.
    Sampler sampler(job.sampling);
    acquire();
    stats = Generate(model_.engine(slot.engine), model_.files(), job.prompt, sampler, job.max_tokens,
                     [&](const GenerationStep& step) {
                       out.Append(stops.Push(step.text));
                       if (stops.stopped() || out.cancelled()) return false;
                       // Between two steps the other slots get theirs.
                       release();
                       acquire();
                       return true;
                     });
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (holding_turn) release();
  if (!error && out.cancelled()) {
    if (Stopping()) {
      error = "the server is stopping";
    } else {
      spdlog::info("a client went away after {} of {} tokens; its slot is free", stats.generated_tokens,
                   job.max_tokens);
    }
  }
  if (!stops.stopped()) out.Append(stops.Flush());
  const FinishReason finish = stops.stopped() || stats.hit_stop_token ? FinishReason::Stop : FinishReason::Length;
  out.Finish(finish, {.prompt_tokens = prompt_only.prompt_tokens, .completion_tokens = stats.generated_tokens},
             std::move(error));
}

bool GenerationQueue::Stopping() {
  std::lock_guard lock(mutex_);
  return stopping_;
}

void GenerationQueue::AcquireTurn() {
  std::unique_lock lock(turn_mutex_);
  const uint64_t ticket = next_ticket_++;
  turn_changed_.wait(lock, [&] { return serving_ == ticket; });
}

void GenerationQueue::ReleaseTurn() {
  {
    std::lock_guard lock(turn_mutex_);
    ++serving_;
  }
  turn_changed_.notify_all();
}

}  // namespace qvk::server
