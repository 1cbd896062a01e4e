#pragma once
// The chat engine behind the desktop app: loads a model in the background, runs generation on
// its own thread, streams the reply to the UI and writes it to the store as it grows.
//
// Durability: the user's message is committed before generation starts; the assistant's row is
// created at the first token and its text flushed at least every 500 ms; a reply that ends in
// any way (stop token, limit, Stop, context full, error) is committed Complete with its figures,
// except one a remote engine broke off (the network, the server), which is kept Interrupted so
// Continue can finish it.
//
// A conversation whose engine is remote (store::ConversationEngine) gets its replies from the
// ReplySource the app injects (SetReplySources) and needs no model on this computer.
// Every public method is called from the UI thread and returns at once.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/latest_job_worker.h"
#include "chat/reply_source.h"
#include "model/attention_capture.h"
#include "store/store.h"

namespace qvk {
class Device;
class ModelFiles;
}  // namespace qvk

namespace qvk::chat {

class LiveAttention;
class LoadedModel;
class ReplyWriter;

// What the model loads with (app settings, persisted by the caller).
struct ModelSettings {
  std::string path;          // Hugging Face folder or .gguf file
  uint32_t context = 0;      // KV cache tokens; 0: min(32768, the model's)
  uint64_t gpu_mem_mib = 0;  // GPU memory budget; 0: all the device has (each device's, split)
  // "0,1": the model split by layers across these devices (MakeSplitDevices); empty: the app's
  // device alone. "3,1": each one's share of the layers; empty: by the memory each has free.
  std::string devices;
  std::string split;
};

enum class ModelStatus { None, Loading, Ready, Failed };

// The attention maps of one message as the model reads it: the conversation through the message
// (template, system prompt and context policy as a reply gets them; the message itself as while it
// was written, without its end-of-turn), captured by ChatSession::CaptureAttention.
struct MessageAttention {
  store::Id message = 0;
  std::vector<uint32_t> ids;        // the tokens the maps' rows and columns count
  std::vector<std::string> pieces;  // each token's text, decoded alone (special tokens as written)
  uint32_t message_begin = 0;       // ids[message_begin ..] are the message's text (after its turn's header)
  size_t dropped = 0;               // earliest messages left out to fit the context
  std::vector<AttentionMap> maps;   // as asked
  uint64_t gpu_bytes = 0;           // what the capture held on the GPU (CapturePlan: probabilities and maps)
  std::string error;                // why there are none
};

// A benchmark the app asks for: chat/bench.h's tests (-p, -n, -d, -r as `qwenvk bench` takes
// them) on the loaded model or on a model file loaded for the run alone, saved to the store.
struct BenchRequest {
  std::string model_path;  // empty: the loaded model
  std::vector<uint32_t> prompts, generations, depths;
  uint32_t repetitions = 1;
  bool kernels = true;          // each test profiled once more (the per-kernel view and the roofline)
  bool device_peak = true;      // the device's peaks measured first (the roofline's roofs)
  std::string version, commit;  // the program's, stored with the run
};

// Where the benchmark under way (or the last one) stands, for the progress bar.
struct BenchProgress {
  bool running = false;  // queued or running
  uint32_t done = 0;     // steps done of `total`: the peak, each test's warm-up and timed runs, profiles
  uint32_t total = 0;
  std::string step;     // what runs now: "device peak", "pp512", ...
  store::Id saved = 0;  // the last finished run, as stored
  std::string error;    // why the last one ended without a run ("cancelled" included)
};

// What the UI shows of the reply being generated (a copy taken under the session's lock).
struct LiveReply {
  bool active = false;
  store::Id conversation = 0;
  store::Id message = 0;  // 0 until the first token created the row
  store::Id parent = 0;   // the message the reply answers
  std::string text;       // everything streamed so far (for Continue: the whole message)
  uint32_t tokens = 0;
  double seconds = 0;                // since the prompt was submitted
  double time_to_first_token_s = 0;  // 0 until the first token
  bool prefilling = true;            // no token yet
};

class ChatSession {
 public:
  ChatSession(store::Store& store, Device& device);
  ~ChatSession();  // stops any generation and waits for the worker
  ChatSession(const ChatSession&) = delete;
  ChatSession& operator=(const ChatSession&) = delete;

  // --- model ---
  // Replaces the current model (after any reply in progress stops); loads on the worker thread.
  void LoadModel(const ModelSettings& settings);
  ModelStatus model_status() const;
  float load_progress() const;      // 0..1 while Loading
  std::string model_error() const;  // why the last load failed
  std::string model_name() const;   // file or folder name; empty without a model
  uint32_t context_length() const;  // 0 without a model
  // A split model's devices, the layers each holds and how each hands the hidden state on
  // (StageNames); empty on one device.
  std::vector<std::string> model_devices() const;
  // The loaded model's shape (layers, heads, KV heads: what an attention request may name).
  std::optional<ModelConfig> model_config() const;
  // The thinking switch (the template variable enable_thinking, Qwen3's) as the chat offers it
  // for `conversation`: none when its model has no such switch (this computer's model: its chat
  // template does not read it; a remote one: not a Qwen3 by its name, unless the conversation set
  // it); else whether it thinks now (the conversation's choice, else the template's default).
  std::optional<bool> Thinking(const store::Conversation& conversation) const;
  // Defaults for a new conversation: the model's generation_config.json where it has one.
  store::ConversationSettings DefaultSettings() const;

  // --- engines ---
  // How replies of conversations with a remote engine are made (UI thread, before they are asked).
  void SetReplySources(ReplySourceFactory factory);
  // Whether the context gauge of a conversation on `engine` counts with this computer's
  // tokenizer: always for this computer's model; for a remote one, when it names the loaded model
  // or both are Qwen2 / Qwen2.5 models (one vocabulary and template across their sizes).
  bool CountsExactly(const store::ConversationEngine& engine) const;

  // --- chat (each commits what the user wrote first, then queues the reply) ---
  // Returns false (and sets an error) when the conversation's engine cannot reply (no model
  // ready here, no remote engines) or a reply is already running.
  bool Send(store::Id conversation, const std::string& text);
  bool Regenerate(store::Id assistant_message);           // a new sibling reply
  bool Edit(store::Id message, const std::string& text);  // a new sibling branch; a user edit gets a reply
  bool Continue(store::Id assistant_message);             // extends a stopped or interrupted reply
  void Stop();
  bool generating() const;
  LiveReply live() const;
  // --- attention maps ---
  // Queues a capture of `requests` over message `message` (see MessageAttention) on the worker,
  // after what is queued before it; nothing heavy is stored. Returns false and sets an error when
  // no model is ready.
  bool CaptureAttention(store::Id message, std::vector<AttentionRequest> requests);
  // The latest finished capture, once.
  std::optional<MessageAttention> TakeAttention();
  // While set, each reply from the next on captures the attention row of every token it
  // generates, reduced on the GPU to the feed's views (Engine::set_live_attention; views the feed
  // changes to while a reply runs take effect from its next token), and hands it to `feed`;
  // nullptr turns it off. Costs GPU memory for a row of every layer and head over the context.
  void SetLiveAttention(std::shared_ptr<LiveAttention> feed);

  // --- benchmarks ---
  // Queues a benchmark after what is queued before it. Returns false and sets an error when one
  // is already queued or running, no test is asked for, or (for the loaded model) none is ready.
  bool StartBenchmark(BenchRequest request);
  // The benchmark under way stops after its current timed run; nothing is saved.
  void CancelBenchmark();
  BenchProgress bench_progress() const;

  // Tokens the conversation's current branch takes in the context, with the model's tokenizer
  // and chat template (system prompt and generation prompt included), plus the live reply.
  // Cached per store revision. 0 without a model. A remote conversation whose model this
  // computer cannot count for (CountsExactly) gets an estimate: a token per 4 bytes.
  uint32_t ContextTokens(store::Id conversation);
  // The same count for the UI thread, which must not wait for it (a chat template can run for
  // long): counted on a background thread whenever the conversation, the store or the model
  // changed; returns the last count of this conversation meanwhile, none before the first.
  std::optional<uint32_t> CountContextTokensInBackground(store::Id conversation);

  // The last error for the UI to show once (model missing, generation failed, ...).
  std::optional<std::string> TakeError();

  // Blocks until no load or reply is running (tests and the script driver).
  void WaitIdle();

 private:
  // A reply to generate: a new message under `parent`, or more text for `continued` (0: new).
  struct ReplyJob {
    store::Id conversation = 0;
    store::Id parent = 0;
    store::Id continued = 0;
  };
  struct AttentionJob {
    store::Id message = 0;
    std::vector<AttentionRequest> requests;
  };
  struct Job {
    std::optional<ModelSettings> load;      // set: a load job
    std::optional<AttentionJob> attention;  // set: an attention capture
    std::optional<BenchRequest> bench;      // set: a benchmark
    ReplyJob reply;                         // otherwise a reply
    bool is_reply() const { return !load && !attention && !bench; }
  };

  void WorkerLoop();
  // The count ContextTokens and the background count make (model_mutex_ held while it renders).
  uint32_t CountContextTokens(store::Id conversation);
  void RunLoad(const ModelSettings& settings);
  // A reply job: plans the prompt (PlanReplyPrompt, the context policy), generates, saves the
  // reply through a ReplyWriter and mirrors it into live_ for the UI.
  void RunReply(const ReplyJob& job);
  // A reply job of a conversation whose engine is remote: the whole branch goes to its source.
  void RunRemoteReply(const ReplyJob& job, const store::Conversation& chat);
  void RunAttention(const AttentionJob& job);
  // A benchmark job: runs the tests (on the loaded model or one loaded for it), saves the run.
  void RunBenchmark(const BenchRequest& request);
  void StartLiveReply(const ReplyJob& job, const ReplyWriter& writer, uint32_t prompt_tokens);
  void MirrorLiveReply(const ReplyWriter& writer, uint32_t tokens);
  // Checks a reply in `conversation` may start now (its engine ready, none running); sets error_
  // when not.
  bool CanReplyLocked(store::Id conversation);
  void QueueReplyLocked(const ReplyJob& job);
  bool ReplyPendingLocked() const;

  store::Store& store_;
  Device& device_;

  // Guards the state below (short holds only; never held while calling the store from the worker).
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // a job arrived or the session ends
  std::condition_variable idle_;  // a job finished
  std::deque<Job> jobs_;
  bool busy_ = false;
  bool reply_running_ = false;
  bool quit_ = false;
  ModelStatus status_ = ModelStatus::None;
  float progress_ = 0;
  std::string model_error_;
  std::string model_name_;
  uint32_t context_length_ = 0;
  std::vector<std::string> model_devices_;
  std::optional<ModelConfig> model_config_;
  std::optional<bool> thinking_default_;  // the loaded model's (ModelFiles::thinking_default)
  uint64_t model_generation_ = 0;         // bumped by each load, so cached counts of an old model expire
  LiveReply live_;
  std::shared_ptr<LiveAttention> live_attention_;
  std::optional<MessageAttention> attention_;  // the last capture, until taken
  uint32_t live_prompt_tokens_ = 0;
  std::chrono::steady_clock::time_point live_start_;  // when the live reply's prompt was submitted
  std::optional<std::string> error_;

  std::atomic<bool> stop_requested_{false};
  BenchProgress bench_;
  std::atomic<bool> bench_cancel_{false};
  ReplySourceFactory reply_sources_;  // set by the UI thread before any remote reply is queued

  // Written only by the worker, under model_mutex_; the worker reads it without the lock, the UI
  // thread (token counts, defaults) with it.
  mutable std::mutex model_mutex_;
  std::vector<std::unique_ptr<Device>> split_devices_;  // a split model's devices (it goes first)
  std::unique_ptr<LoadedModel> model_;

  // ContextTokens' cache (UI thread only).
  struct ContextCount {
    store::Id conversation = 0;
    uint64_t revision = 0;
    uint64_t model_generation = 0;
    uint32_t tokens = 0;
  };
  std::optional<ContextCount> context_count_;
  // CountContextTokensInBackground's: the count asked for last and the last one made.
  std::mutex background_count_mutex_;
  std::optional<ContextCount> background_count_asked_;
  std::optional<ContextCount> background_count_;
  LatestJobWorker counter_;  // stopped (by the destructor) before the model it counts with goes

  std::thread worker_;  // last: starts once everything it uses exists
};

// A title from the first user message: its first line, whitespace collapsed, at most 48 characters
// (cut at a word boundary where one is near, never inside a UTF-8 sequence).
std::string TitleFromMessage(const std::string& text);

}  // namespace qvk::chat
