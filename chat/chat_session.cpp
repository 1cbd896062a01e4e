// Sections: helpers / lifetime and worker / model / chat requests / reply job / attention maps / benchmarks /
// token counts
#include "chat/chat_session.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "chat/bench.h"
#include "chat/live_attention.h"
#include "chat/loaded_model.h"
#include "chat/prompt_plan.h"
#include "chat/reply_writer.h"
#include "model/generate.h"
#include "model/layer_split.h"

namespace qvk::chat {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kTitleMaxChars = 48;
constexpr size_t kTitleWordSlack = 16;  // how far back from the cut a word boundary may be
constexpr std::string_view kDefaultTitle = "New chat";
// An unknown tokenizer's tokens, estimated: English text runs about 4 bytes a token.
constexpr size_t kApproximateBytesPerToken = 4;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (!IsSpace(c)) return false;
  }
  return true;
}

bool IsUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The conversation's system prompt (when it has one) and then `thread`, as the template takes them.
std::vector<ChatMessage> History(const store::ConversationSettings& settings,
                                 const std::vector<store::Message>& thread) {
  std::vector<ChatMessage> history;
  if (!settings.system_prompt.empty()) history.push_back({"system", settings.system_prompt});
  for (const store::Message& m : thread) history.push_back({m.role, m.content});
  return history;
}

// The template variables a conversation sets (its thinking switch), as every prompt of it gets them.
TemplateOptions TemplateOptionsOf(const store::Conversation& chat) {
  return {.enable_thinking = chat.enable_thinking};
}

SamplingChoice ChoiceFrom(const store::ConversationSettings& s) {
  return {.temperature = s.temperature,
          .top_k = s.top_k,
          .top_p = s.top_p,
          .min_p = s.min_p,
          .repetition_penalty = s.repetition_penalty,
          .greedy = false,
          .seed = s.random_seed ? std::nullopt : std::optional<uint64_t>(s.seed)};
}

uint32_t ApproximateTokens(const std::vector<ChatMessage>& messages) {
  size_t bytes = 0;
  for (const ChatMessage& m : messages) bytes += m.content.size();
  return static_cast<uint32_t>(bytes / kApproximateBytesPerToken);
}

std::string DroppedNotice(size_t dropped, uint32_t context) {
  return fmt::format("Dropped {} earliest message{} to fit the context of {} tokens.", dropped, dropped == 1 ? "" : "s",
                     context);
}

std::string Lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return text;
}

std::string ModelName(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();  // "folder/" names the folder
  return p.filename().string();
}

}  // namespace

std::string TitleFromMessage(const std::string& text) {
  // The first line with any text, whitespace runs collapsed to one space.
  std::string line;
  for (size_t begin = 0; begin <= text.size() && line.empty();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    bool pending_space = false;
    for (size_t i = begin; i < end; ++i) {
      if (IsSpace(text[i])) {
        pending_space = !line.empty();
      } else {
        if (pending_space) line += ' ';
        pending_space = false;
        line += text[i];
      }
    }
    begin = end + 1;
  }
  // Cut after kTitleMaxChars code points, at the last space when one is near the cut.
  size_t chars = 0, cut = line.size();
  for (size_t i = 0; i < line.size(); ++i) {
    if (IsUtf8Continuation(line[i])) continue;
    if (chars == kTitleMaxChars) {
      cut = i;
      break;
    }
    ++chars;
  }
  if (cut == line.size()) return line;
  const size_t space = line.rfind(' ', cut);
  if (space != std::string::npos && space > 0 && cut - space <= kTitleWordSlack) cut = space;
  return line.substr(0, cut);
}

// --- lifetime and worker ----------------------------------------------------------------------

ChatSession::ChatSession(store::Store& store, Device& device)
    : store_(store), device_(device), worker_([this] { WorkerLoop(); }) {}

ChatSession::~ChatSession() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
    jobs_.clear();
  }
  stop_requested_ = true;
  wake_.notify_all();
  worker_.join();
  // A background count reads the model: it ends before the model goes.
  counter_.Stop();
  // The engine and weights go before the device the caller owns.
  model_.reset();
}

void ChatSession::WorkerLoop() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return quit_ || !jobs_.empty(); });
      if (quit_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      reply_running_ = job.is_reply();
    }
    if (job.load) {
      RunLoad(*job.load);
    } else if (job.attention) {
      RunAttention(*job.attention);
    } else if (job.bench) {
      RunBenchmark(*job.bench);
    } else {
      RunReply(job.reply);
    }
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
      reply_running_ = false;
      live_ = LiveReply{};
    }
    idle_.notify_all();
  }
}

void ChatSession::WaitIdle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return jobs_.empty() && !busy_; });
}

std::optional<std::string> ChatSession::TakeError() {
  std::lock_guard lock(mutex_);
  return std::exchange(error_, std::nullopt);
}

// --- model ------------------------------------------------------------------------------------

void ChatSession::LoadModel(const ModelSettings& settings) {
  {
    std::lock_guard lock(mutex_);
    // Replies still queued were meant for the old model, and loads still queued are replaced by
    // this one; the reply running stops at its next token, a benchmark after its timed run.
    for (const Job& job : jobs_) {
      if (job.bench) bench_ = BenchProgress{.saved = bench_.saved, .error = "cancelled: another model was loaded"};
    }
    jobs_.clear();
    stop_requested_ = true;
    bench_cancel_ = true;
    status_ = ModelStatus::Loading;
    progress_ = 0;
    model_error_.clear();
    model_name_.clear();
    context_length_ = 0;
    model_devices_.clear();
    model_config_.reset();
    thinking_default_.reset();
    jobs_.push_back(Job{.load = settings, .reply = {}});
  }
  wake_.notify_all();
}

void ChatSession::RunLoad(const ModelSettings& settings) {
  {
    std::lock_guard lock(mutex_);
    status_ = ModelStatus::Loading;
    progress_ = 0;
  }
  {
    // The old model's memory is freed before the new one asks for any.
    std::lock_guard lock(model_mutex_);
    model_.reset();
    split_devices_.clear();
  }
  auto progress = [this](uint64_t done, uint64_t total) {
    std::lock_guard lock(mutex_);
    progress_ = total == 0 ? 1.0f : static_cast<float>(static_cast<double>(done) / static_cast<double>(total));
  };
  LoadedModelOptions options{.context = settings.context,
                             .gpu_mem_mib = std::nullopt,
                             .quantize = std::nullopt,
                             .budget_hint = "lower the context or raise the GPU memory budget in the model settings"};
  if (settings.gpu_mem_mib != 0) options.gpu_mem_mib = settings.gpu_mem_mib;
  try {
    if (settings.path.empty()) throw Error("no model chosen: pick a Hugging Face folder or a .gguf file");
    if (!settings.split.empty()) options.split = ParseSplit(settings.split, "Split");
    std::vector<std::unique_ptr<Device>> split_devices;
    std::vector<Device*> devices{&device_};
    if (!settings.devices.empty()) {
      // Devices of their own on the app's instance, even where one is the window's GPU.
      split_devices = MakeSplitDevices(device_.instance(), settings.devices, "Split across devices");
      devices.clear();
      for (const auto& device : split_devices) devices.push_back(device.get());
    }
    auto model = std::make_unique<LoadedModel>(devices, std::make_unique<ModelFiles>(settings.path), options, progress);
    model->LogPlacement();
    const uint32_t context = model->engine().context();
    std::vector<std::string> stage_names = StageNames(model->engine());
    {
      std::lock_guard lock(model_mutex_);
      split_devices_ = std::move(split_devices);
      model_ = std::move(model);
    }
    std::lock_guard lock(mutex_);
    status_ = ModelStatus::Ready;
    progress_ = 1;
    model_name_ = ModelName(settings.path);
    context_length_ = context;
    model_devices_ = std::move(stage_names);
    model_config_ = model_->files().config();
    thinking_default_ = model_->files().thinking_default();
    ++model_generation_;
  } catch (const std::exception& e) {
    // Error says what is wrong with the files or the budget; anything else (out of host memory,
    // a filesystem failure) is reported the same way rather than ending the worker.
    spdlog::error("loading {} failed: {}", settings.path, e.what());
    std::lock_guard lock(mutex_);
    status_ = ModelStatus::Failed;
    model_error_ = e.what();
  }
}

ModelStatus ChatSession::model_status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

float ChatSession::load_progress() const {
  std::lock_guard lock(mutex_);
  return progress_;
}

std::string ChatSession::model_error() const {
  std::lock_guard lock(mutex_);
  return model_error_;
}

std::optional<ModelConfig> ChatSession::model_config() const {
  std::lock_guard lock(mutex_);
  return model_config_;
}

std::optional<bool> ChatSession::Thinking(const store::Conversation& conversation) const {
  if (!conversation.engine.remote()) {
    std::lock_guard lock(mutex_);
    if (!thinking_default_) return std::nullopt;
    return conversation.enable_thinking.value_or(*thinking_default_);
  }
  // A server's template is out of sight: Qwen3 models (which think unless told not to) by name.
  const std::string remote = Lowercase(std::filesystem::path(conversation.engine.model).filename().string());
  if (remote.rfind("qwen3", 0) != 0 && !conversation.enable_thinking) return std::nullopt;
  return conversation.enable_thinking.value_or(true);
}

std::string ChatSession::model_name() const {
  std::lock_guard lock(mutex_);
  return model_name_;
}

uint32_t ChatSession::context_length() const {
  std::lock_guard lock(mutex_);
  return context_length_;
}

std::vector<std::string> ChatSession::model_devices() const {
  std::lock_guard lock(mutex_);
  return model_devices_;
}

store::ConversationSettings ChatSession::DefaultSettings() const {
  store::ConversationSettings settings;
  std::lock_guard lock(model_mutex_);
  if (!model_) return settings;
  // GenerationConfig cannot tell a missing field from one set to its default, so a field counts
  // as set where it differs from that default.
  const GenerationConfig& model = model_->files().generation();
  const GenerationConfig unset;
  if (model.temperature != unset.temperature) settings.temperature = model.temperature;
  if (model.top_k != unset.top_k) settings.top_k = model.top_k;
  if (model.top_p != unset.top_p) settings.top_p = model.top_p;
  if (model.min_p != unset.min_p) settings.min_p = model.min_p;
  if (model.repetition_penalty != unset.repetition_penalty) settings.repetition_penalty = model.repetition_penalty;
  return settings;
}

// --- chat requests ----------------------------------------------------------------------------

bool ChatSession::ReplyPendingLocked() const {
  if (reply_running_) return true;
  for (const Job& job : jobs_) {
    if (job.is_reply()) return true;
  }
  return false;
}

bool ChatSession::CanReplyLocked(store::Id conversation) {
  const auto chat = store_.GetConversation(conversation);
  if (chat && chat->engine.remote()) {
    if (ReplyPendingLocked()) {
      error_ = "a reply is still being written: stop it first";
      return false;
    }
    if (!reply_sources_) {
      error_ = "this conversation's engine is a remote server, and this program cannot reach one";
      return false;
    }
    return true;
  }
  if (status_ == ModelStatus::Loading) {
    error_ = "the model is still loading";
  } else if (status_ != ModelStatus::Ready) {
    error_ = "no model is loaded: choose one in the model settings";
  } else if (ReplyPendingLocked()) {
    error_ = "a reply is still being written: stop it first";
  } else {
    return true;
  }
  return false;
}

void ChatSession::QueueReplyLocked(const ReplyJob& job) {
  stop_requested_ = false;
  jobs_.push_back(Job{.reply = job});
  wake_.notify_all();
}

bool ChatSession::generating() const {
  std::lock_guard lock(mutex_);
  return ReplyPendingLocked();
}

LiveReply ChatSession::live() const {
  std::lock_guard lock(mutex_);
  return live_;
}

bool ChatSession::CaptureAttention(store::Id message, std::vector<AttentionRequest> requests) {
  std::lock_guard lock(mutex_);
  if (status_ != ModelStatus::Ready) {
    error_ = status_ == ModelStatus::Loading ? "the model is still loading"
                                             : "no model is loaded: choose one in the model settings";
    return false;
  }
  jobs_.push_back(Job{.attention = AttentionJob{.message = message, .requests = std::move(requests)}});
  wake_.notify_all();
  return true;
}

std::optional<MessageAttention> ChatSession::TakeAttention() {
  std::lock_guard lock(mutex_);
  return std::exchange(attention_, std::nullopt);
}

void ChatSession::SetLiveAttention(std::shared_ptr<LiveAttention> feed) {
  std::lock_guard lock(mutex_);
  live_attention_ = std::move(feed);
}

void ChatSession::SetReplySources(ReplySourceFactory factory) {
  std::lock_guard lock(mutex_);
  reply_sources_ = std::move(factory);
}

bool ChatSession::CountsExactly(const store::ConversationEngine& engine) const {
  if (!engine.remote()) return true;
  const std::string local = Lowercase(model_name());
  if (local.empty()) return false;
  // "Qwen/Qwen2.5-72B-Instruct" names its model after the organisation's slash.
  const std::string remote = Lowercase(std::filesystem::path(engine.model).filename().string());
  const auto qwen2 = [](const std::string& name) { return name.rfind("qwen2", 0) == 0; };
  return remote == local || (qwen2(remote) && qwen2(local));
}

void ChatSession::Stop() {
  stop_requested_ = true;
}

bool ChatSession::Send(store::Id conversation, const std::string& text) {
  std::lock_guard lock(mutex_);
  if (!CanReplyLocked(conversation)) return false;
  if (IsBlank(text)) {
    error_ = "the message is empty";
    return false;
  }
  try {
    const auto chat = store_.GetConversation(conversation);
    if (!chat) throw Error("the conversation no longer exists");
    const store::Id message =
        store_.AddMessage(conversation, chat->current_leaf, "user", text, store::MessageState::Complete);
    QueueReplyLocked({.conversation = conversation, .parent = message, .continued = 0});
    // The message is stored and its reply queued: a title that cannot be written now is only a
    // warning, so a retry never stores the message twice.
    if (chat->title.empty() || chat->title == kDefaultTitle) {
      try {
        store_.RenameConversation(conversation, TitleFromMessage(text));
      } catch (const Error& e) {
        spdlog::warn("could not title conversation {}: {}", conversation, e.what());
      }
    }
    return true;
  } catch (const Error& e) {
    error_ = e.what();
    return false;
  }
}

bool ChatSession::Regenerate(store::Id assistant_message) {
  std::lock_guard lock(mutex_);
  try {
    const auto message = store_.GetMessage(assistant_message);
    if (!message || message->role != "assistant") throw Error("only a reply can be regenerated");
    if (!CanReplyLocked(message->conversation_id)) return false;
    if (message->parent_id == 0) throw Error("this reply answers no message, so there is nothing to regenerate from");
    // The current leaf moves to the new reply at its first token (AddMessage); until then the UI
    // shows the branch up to the question (LiveReply::parent), and a reply that never starts
    // leaves the old one on screen.
    QueueReplyLocked({.conversation = message->conversation_id, .parent = message->parent_id, .continued = 0});
    return true;
  } catch (const Error& e) {
    error_ = e.what();
    return false;
  }
}

bool ChatSession::Edit(store::Id message_id, const std::string& text) {
  std::lock_guard lock(mutex_);
  try {
    const auto message = store_.GetMessage(message_id);
    if (!message) throw Error("the message no longer exists");
    const bool wants_reply = message->role == "user";
    if (wants_reply ? !CanReplyLocked(message->conversation_id) : ReplyPendingLocked()) {
      if (!wants_reply) error_ = "a reply is still being written: stop it first";
      return false;
    }
    if (IsBlank(text)) throw Error("the message is empty");
    const store::Id edited = store_.AddMessage(message->conversation_id, message->parent_id, message->role, text,
                                               store::MessageState::Complete);
    if (wants_reply) QueueReplyLocked({.conversation = message->conversation_id, .parent = edited, .continued = 0});
    return true;
  } catch (const Error& e) {
    error_ = e.what();
    return false;
  }
}

bool ChatSession::Continue(store::Id assistant_message) {
  std::lock_guard lock(mutex_);
  try {
    const auto message = store_.GetMessage(assistant_message);
    if (!message || message->role != "assistant") throw Error("only a reply can be continued");
    if (!CanReplyLocked(message->conversation_id)) return false;
    QueueReplyLocked(
        {.conversation = message->conversation_id, .parent = message->parent_id, .continued = message->id});
    return true;
  } catch (const Error& e) {
    error_ = e.what();
    return false;
  }
}

// --- reply job --------------------------------------------------------------------------------

namespace {

// What a reply job sends the model: the branch up to the job's message after the system prompt,
// as a new reply or as the continuation of the reply being continued, fitted to the context.
struct ReplyPrompt {
  PromptPlan plan;
  std::string text_before;  // Continue: what the message holds already
  uint32_t tokens_before = 0;
};

ReplyPrompt PlanReplyPrompt(store::Store& store, const ModelFiles& files, const store::Conversation& chat,
                            store::Id parent, store::Id continued, uint32_t context) {
  ReplyPrompt reply;
  std::vector<ChatMessage> history = History(chat.settings, store.Thread(continued ? continued : parent));
  PromptKind kind = PromptKind::Reply;
  if (continued != 0) {
    const auto old = store.GetMessage(continued);
    if (!old) throw Error("the reply to continue no longer exists");
    reply.text_before = old->content;
    reply.tokens_before = old->tokens;
    // Continuing an empty reply is simply replying.
    if (IsBlank(old->content)) {
      history.pop_back();
    } else {
      kind = PromptKind::Continuation;
    }
  }
  reply.plan = PlanPrompt(files, std::move(history), kind, context, TemplateOptionsOf(chat));
  return reply;
}

}  // namespace

void ChatSession::StartLiveReply(const ReplyJob& job, const ReplyWriter& writer, uint32_t prompt_tokens) {
  std::lock_guard lock(mutex_);
  live_ = LiveReply{.active = true,
                    .conversation = job.conversation,
                    .message = writer.message(),
                    .parent = job.parent,
                    .text = writer.text()};
  live_prompt_tokens_ = prompt_tokens;
  live_start_ = Clock::now();
}

void ChatSession::MirrorLiveReply(const ReplyWriter& writer, uint32_t tokens) {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  live_.text = writer.text();
  live_.message = writer.message();
  live_.tokens = tokens;
  live_.seconds = Seconds(live_start_, now);
  if (live_.prefilling) {
    live_.prefilling = false;
    live_.time_to_first_token_s = live_.seconds;
  }
}

void ChatSession::RunReply(const ReplyJob& job) {
  std::optional<store::Conversation> remote;
  try {
    remote = store_.GetConversation(job.conversation);
  } catch (const Error& e) {
    std::lock_guard lock(mutex_);
    error_ = e.what();
    return;
  }
  if (remote && remote->engine.remote()) {
    RunRemoteReply(job, *remote);
    return;
  }
  if (!model_) {
    std::lock_guard lock(mutex_);
    error_ = "no model is loaded: choose one in the model settings";
    return;
  }
  LoadedModel& model = *model_;
  const ModelFiles& files = model.files();
  Engine& engine = model.engine();
  const uint32_t context = engine.context();

  ReplyWriter writer(store_, job.conversation, job.parent, job.continued);
  uint32_t tokens_before = 0;
  std::vector<uint32_t> generated;
  GenerationStats stats;
  std::string notice;
  try {
    const auto chat = store_.GetConversation(job.conversation);
    if (!chat) throw Error("the conversation no longer exists");
    ReplyPrompt reply = PlanReplyPrompt(store_, files, *chat, job.parent, job.continued, context);
    const std::vector<uint32_t>& prompt = reply.plan.ids;
    tokens_before = reply.tokens_before;
    if (reply.plan.dropped != 0) notice = DroppedNotice(reply.plan.dropped, context);
    // Stopped before it began: it ends like any stopped reply, without spending a prefill.
    const bool stopped_before_start = stop_requested_;

    Sampler sampler(PlanSampling(ChoiceFrom(chat->settings)));
    std::shared_ptr<LiveAttention> attention;
    {
      std::lock_guard lock(mutex_);
      attention = live_attention_;
    }
    // The feed's views go to the engine, whose steps reduce their rows to them: at the start, and
    // after each step where the UI has chosen others since.
    std::optional<uint64_t> views_choice;
    auto follow_views = [&] {
      if (!attention) return engine.set_live_attention({});
      const LiveAttention::Views views = attention->views();
      if (views.choice == views_choice) return;
      try {
        engine.set_live_attention(views.views);
        views_choice = views.choice;
      } catch (const Error& e) {
        // The reply goes on without its rows; the user hears why the map does not grow.
        attention = nullptr;
        engine.set_live_attention({});
        std::lock_guard lock(mutex_);
        error_ = fmt::format("The attention panel cannot follow this reply: {}", e.what());
      }
    };
    follow_views();
    if (attention) {
      std::vector<LiveAttention::Token> tokens;
      for (uint32_t id : prompt) tokens.push_back({id, files.tokenizer().Decode(std::span(&id, 1))});
      attention->BeginReply(std::move(tokens));
    }
    writer.Start(std::move(reply.text_before));
    StartLiveReply(job, writer, static_cast<uint32_t>(prompt.size()));
    auto on_text = [&](const GenerationStep& step) {
      writer.Append(step.text);
      if (attention && !step.trailing_text) {
        attention->Push(step.attention, *views_choice,
                        {step.token, files.tokenizer().Decode(std::span(&step.token, 1))}, writer.message());
        follow_views();
      }
      MirrorLiveReply(writer, static_cast<uint32_t>(generated.size()));
      return !stop_requested_;
    };
    if (!stopped_before_start) {
      stats = Generate(engine, files, prompt, sampler, chat->settings.max_new_tokens, on_text, &generated);
    }
  } catch (const std::exception& e) {
    spdlog::error("reply in conversation {} failed: {}", job.conversation, e.what());
    std::lock_guard lock(mutex_);
    error_ = e.what();
    // Nothing streamed and nothing to keep: the error is the whole outcome.
    if (!writer.streaming()) return;
    stats.generated_tokens = static_cast<uint32_t>(generated.size());
    stats.time_to_first_token_s = live_.time_to_first_token_s;
  }

  if (stats.context_full) {
    const std::string full = fmt::format("The context of {} tokens is full: the reply stopped there.", context);
    notice = notice.empty() ? full : notice + "\n" + full;  // one sentence a line
  }
  try {
    writer.Finish(tokens_before + stats.generated_tokens, stats.decode_tokens_per_s, stats.time_to_first_token_s,
                  notice);
  } catch (const std::exception& e) {
    spdlog::error("storing the reply {} failed: {}", writer.message(), e.what());
    std::lock_guard lock(mutex_);
    error_ = fmt::format("the reply could not be saved: {}", e.what());
  }
}

void ChatSession::RunRemoteReply(const ReplyJob& job, const store::Conversation& chat) {
  ReplyWriter writer(store_, job.conversation, job.parent, job.continued);
  ReplyOutcome outcome;
  std::string notice;
  bool interrupted = false;
  uint32_t tokens_before = 0;
  uint32_t pieces = 0;
  const auto start = Clock::now();
  try {
    ReplyRequest request{.messages = History(chat.settings, store_.Thread(job.continued ? job.continued : job.parent)),
                         .continuation = false,
                         .settings = chat.settings,
                         .template_options = TemplateOptionsOf(chat)};
    std::string text_before;
    if (job.continued != 0) {
      const auto old = store_.GetMessage(job.continued);
      if (!old) throw Error("the reply to continue no longer exists");
      text_before = old->content;
      tokens_before = old->tokens;
      // Continuing an empty reply is simply replying.
      if (IsBlank(old->content)) {
        request.messages.pop_back();
      } else {
        request.continuation = true;
      }
    }
    std::unique_ptr<ReplySource> source;
    {
      std::lock_guard lock(mutex_);
      if (reply_sources_) source = reply_sources_(chat.engine);
    }
    if (!source) throw Error("this conversation's engine is a remote server, and this program cannot reach one");
    writer.Start(std::move(text_before));
    StartLiveReply(job, writer, ApproximateTokens(request.messages));
    if (!stop_requested_) {
      outcome = source->Generate(request, [&](std::string_view piece) {
        writer.Append(piece);
        MirrorLiveReply(writer, ++pieces);
        return !stop_requested_.load();
      });
    }
    if (outcome.length_limit) notice = "The server stopped the reply at its token limit or the end of its context.";
  } catch (const std::exception& e) {
    spdlog::error("reply in conversation {} from {} failed: {}", job.conversation, chat.engine.base_url, e.what());
    std::lock_guard lock(mutex_);
    error_ = e.what();
    if (!writer.streaming()) return;
    // What streamed stays, marked so Continue can finish it once the server is back.
    interrupted = true;
  }
  const double seconds = Seconds(start, Clock::now());
  const uint32_t generated = outcome.completion_tokens != 0 ? outcome.completion_tokens : pieces;
  double time_to_first_token_s = 0;
  {
    std::lock_guard lock(mutex_);
    time_to_first_token_s = live_.time_to_first_token_s;
  }
  const double decode_s = seconds - time_to_first_token_s;
  try {
    writer.Finish(tokens_before + generated, generated > 1 && decode_s > 0 ? (generated - 1) / decode_s : 0,
                  time_to_first_token_s, notice,
                  interrupted ? store::MessageState::Interrupted : store::MessageState::Complete);
  } catch (const std::exception& e) {
    spdlog::error("storing the reply {} failed: {}", writer.message(), e.what());
    std::lock_guard lock(mutex_);
    error_ = fmt::format("the reply could not be saved: {}", e.what());
  }
}

// --- attention maps ---------------------------------------------------------------------------

void ChatSession::RunAttention(const AttentionJob& job) {
  MessageAttention result{.message = job.message};
  try {
    if (!model_) throw Error("no model is loaded: choose one in the model settings");
    const ModelFiles& files = model_->files();
    const auto message = store_.GetMessage(job.message);
    if (!message) throw Error("the message no longer exists");
    const auto chat = store_.GetConversation(message->conversation_id);
    if (!chat) throw Error("the conversation no longer exists");
    const std::vector<ChatMessage> history = History(chat->settings, store_.Thread(job.message));
    const TemplateOptions options = TemplateOptionsOf(*chat);
    const PromptPlan plan = PlanPrompt(files, history, PromptKind::Continuation, model_->engine().context(), options);
    // The message's text begins where two renderings that differ only in it part.
    std::vector<ChatMessage> kept = KeptMessages(history, plan.dropped);
    kept.back().content = "a";
    const std::vector<uint32_t> with_a = files.EncodeChat(kept, false, options);
    kept.back().content = "b";
    const std::vector<uint32_t> with_b = files.EncodeChat(kept, false, options);
    result.ids = plan.ids;
    result.dropped = plan.dropped;
    const auto common = [&](const std::vector<uint32_t>& other) {
      return std::mismatch(with_a.begin(), with_a.end(), other.begin(), other.end()).first - with_a.begin();
    };
    result.message_begin = static_cast<uint32_t>(std::min(common(with_b), common(result.ids)));
    for (uint32_t id : result.ids) result.pieces.push_back(files.tokenizer().Decode(std::span(&id, 1)));
    if (!job.requests.empty()) {
      const CapturePlan capture =
          model_->engine().PlanAttentionCapture(static_cast<uint32_t>(result.ids.size()), job.requests);
      result.gpu_bytes = capture.probs_bytes + capture.map_bytes;
    }
    result.maps = model_->engine().CaptureAttention(result.ids, job.requests);
  } catch (const std::exception& e) {
    spdlog::error("attention of message {}: {}", job.message, e.what());
    result.maps.clear();
    result.error = e.what();
  }
  std::lock_guard lock(mutex_);
  attention_ = std::move(result);
}

// --- benchmarks -------------------------------------------------------------------------------

namespace {

// Thrown through BenchRunner by the progress callback when the user cancels.
struct BenchCancelled {};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool ChatSession::StartBenchmark(BenchRequest request) {
  std::lock_guard lock(mutex_);
  if (bench_.running) {
    error_ = "a benchmark is already running: wait for it or cancel it";
    return false;
  }
  const size_t tests = PlanBenchTests(request.prompts, request.generations, request.depths).size();
  if (tests == 0) {
    error_ = "the prompt and generation sizes are all 0: there is no test to run";
    return false;
  }
  if (request.model_path.empty() && status_ != ModelStatus::Ready) {
    error_ = status_ == ModelStatus::Loading ? "the model is still loading"
                                             : "no model is loaded: choose one, or a model file to benchmark";
    return false;
  }
  // Steps: the peak, then each test's warm-up, timed runs and profile.
  const uint32_t total =
      (request.device_peak ? 1 : 0) +
      static_cast<uint32_t>(tests) * (std::max<uint32_t>(1, request.repetitions) + 1 + (request.kernels ? 1 : 0));
  bench_ =
      BenchProgress{.running = true, .total = total, .step = "waiting for the reply under way", .saved = bench_.saved};
  bench_cancel_ = false;
  jobs_.push_back(Job{.bench = std::move(request)});
  wake_.notify_all();
  return true;
}

void ChatSession::CancelBenchmark() {
  bench_cancel_ = true;
}

BenchProgress ChatSession::bench_progress() const {
  std::lock_guard lock(mutex_);
  return bench_;
}

void ChatSession::RunBenchmark(const BenchRequest& request) {
  const std::vector<BenchTest> tests = PlanBenchTests(request.prompts, request.generations, request.depths);
  const uint32_t repetitions = std::max<uint32_t>(1, request.repetitions);
  const auto advance = [this](std::string step) {
    std::lock_guard lock(mutex_);
    ++bench_.done;
    if (!step.empty()) bench_.step = std::move(step);
  };
  const auto begin = [this](std::string step) {
    if (bench_cancel_) throw BenchCancelled{};
    std::lock_guard lock(mutex_);
    bench_.step = std::move(step);
  };
  std::string error;
  store::Id saved = 0;
  try {
    BenchReport report{.version = request.version,
                       .commit = request.commit,
                       .device = DescribeDevice(device_.info()),
                       .repetitions = repetitions};
    // A model file is loaded for the run alone, with the context its tests need; the chat's
    // model stays loaded beside it.
    std::unique_ptr<LoadedModel> own;
    if (!request.model_path.empty()) {
      begin("loading the model");
      auto files = std::make_unique<ModelFiles>(std::filesystem::path(request.model_path));
      const uint32_t context = BenchContext(tests, files->config().max_position_embeddings);
      own = std::make_unique<LoadedModel>(device_, std::move(files),
                                          LoadedModelOptions{.context = context,
                                                             .gpu_mem_mib = std::nullopt,
                                                             .quantize = std::nullopt,
                                                             .budget_hint = "benchmark a smaller model"});
    }
    if (!own && !model_) throw Error("no model is loaded");
    LoadedModel& model = own ? *own : *model_;
    uint32_t most = 0;
    for (const BenchTest& t : tests) most = std::max(most, t.positions());
    if (most > model.engine().context()) {
      throw Error(
          fmt::format("the tests reach {} tokens but the loaded model's context is {}: lower the sizes or "
                      "raise the context in the model settings",
                      most, model.engine().context()));
    }
    if (request.device_peak) {
      begin("device peak");
      report.peak = MeasureDevicePeak(device_, {.max_copy_bytes = uint64_t{256} << 20});
      advance("");
    }
    // The chat's live attention rows would be measured with every step; a reply turns them back on.
    model.engine().set_live_attention({});
    BenchRunner runner(model.engine());
    for (const BenchTest& test : tests) {
      begin(test.Name());
      BenchResult result = runner.Run(test, repetitions, [&] {
        advance("");
        if (bench_cancel_) throw BenchCancelled{};
      });
      if (request.kernels) {
        result.kernels = runner.Profile(test);
        advance("");
      }
      report.results.push_back(std::move(result));
    }
    report.model = DescribeModel(model);
    saved = store_.SaveBenchRun(StoredRun(report, request.prompts, request.generations, request.depths, NowMs()));
  } catch (const BenchCancelled&) {
    error = "cancelled";
  } catch (const std::exception& e) {
    spdlog::error("benchmark failed: {}", e.what());
    error = e.what();
  }
  std::lock_guard lock(mutex_);
  bench_.running = false;
  bench_.step.clear();
  bench_.error = error;
  if (saved != 0) bench_.saved = saved;
}

// --- token counts -----------------------------------------------------------------------------

uint32_t ChatSession::ContextTokens(store::Id conversation) {
  uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    // While a reply streams, the engine's own count is exact and the store's copy lags.
    if (live_.active && live_.conversation == conversation) return live_prompt_tokens_ + live_.tokens;
    generation = model_generation_;
  }
  const uint64_t revision = store_.revision();
  if (context_count_ && context_count_->conversation == conversation && context_count_->revision == revision &&
      context_count_->model_generation == generation) {
    return context_count_->tokens;
  }
  const uint32_t tokens = CountContextTokens(conversation);
  context_count_ = ContextCount{conversation, revision, generation, tokens};
  return tokens;
}

uint32_t ChatSession::CountContextTokens(store::Id conversation) {
  try {
    std::lock_guard lock(model_mutex_);
    const auto chat = store_.GetConversation(conversation);
    if (!chat) return 0;
    const std::vector<store::Message> thread =
        chat->current_leaf != 0 ? store_.Thread(chat->current_leaf) : std::vector<store::Message>{};
    if (!CountsExactly(chat->engine)) return ApproximateTokens(History(chat->settings, thread));
    if (!model_) return 0;
    return static_cast<uint32_t>(
        model_->files().EncodeChat(History(chat->settings, thread), true, TemplateOptionsOf(*chat)).size());
  } catch (const Error& e) {
    // A model without a chat template has no count to show; the reply itself reports why.
    spdlog::debug("no token count for conversation {}: {}", conversation, e.what());
    return 0;
  }
}

std::optional<uint32_t> ChatSession::CountContextTokensInBackground(store::Id conversation) {
  ContextCount wanted{.conversation = conversation};
  {
    std::lock_guard lock(mutex_);
    if (live_.active && live_.conversation == conversation) return live_prompt_tokens_ + live_.tokens;
    wanted.model_generation = model_generation_;
  }
  wanted.revision = store_.revision();
  std::lock_guard lock(background_count_mutex_);
  const auto same = [&](const std::optional<ContextCount>& count) {
    return count && count->conversation == wanted.conversation && count->revision == wanted.revision &&
           count->model_generation == wanted.model_generation;
  };
  if (!same(background_count_) && !same(background_count_asked_)) {
    background_count_asked_ = wanted;
    counter_.Submit([this, wanted] {
      ContextCount counted = wanted;
      counted.tokens = CountContextTokens(wanted.conversation);
      std::lock_guard publish(background_count_mutex_);
      background_count_ = counted;
    });
  }
  if (background_count_ && background_count_->conversation == conversation) return background_count_->tokens;
  return std::nullopt;
}

}  // namespace qvk::chat
