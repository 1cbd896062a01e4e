#pragma once
// The conversation store: one SQLite database (WAL) holding conversations, their messages as a
// tree (each message names its parent; editing or regenerating adds a sibling), app settings and
// a full-text index. Every method is safe to call from any thread (one connection, one mutex).
//
// Durability contract the chat relies on: AddMessage and UpdateMessage commit before returning,
// so whatever a caller has stored survives a crash or SIGKILL. Rows left `streaming` by a process
// that died are marked `interrupted` the next time the store opens.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/bench_runs.h"
#include "store/settings.h"

struct sqlite3;

namespace qvk::store {

using Id = int64_t;  // SQLite rowid; 0 means "none"

// Why a database could not be used, or a write was refused, so the app can offer the right way
// out. TooLarge: text beyond the limits below, which the store never holds.
enum class StoreErrorKind { Io, Locked, Corrupt, NewerSchema, ReadOnly, InvalidImport, TooLarge };

// What one conversation holds at most, far beyond any real one. The store refuses more
// (TooLarge) and an import accepts exactly this, so every conversation the app made can be
// exported and imported back. Message text and the system prompt: kMaxTextBytes (settings.h).
inline constexpr size_t kMaxTitleBytes = 4096;
inline constexpr size_t kMaxNoticeBytes = 4096;
// An import holds files to this many messages. The store does not count them on every write (an
// import would cost the square of its length); a branch this long would take 50,000 turns.
inline constexpr size_t kMaxImportMessages = 100'000;

class StoreError : public Error {
 public:
  StoreError(StoreErrorKind kind, const std::string& message) : Error(message), kind_(kind) {}
  StoreErrorKind kind() const { return kind_; }

 private:
  StoreErrorKind kind_;
};

// Where a conversation's replies are generated: this computer's model (no URL), or the model
// `model` of the OpenAI-compatible server at `base_url` (e.g. "http://host:8000/v1").
struct ConversationEngine {
  std::string base_url;
  std::string model;
  bool remote() const { return !base_url.empty(); }
  bool operator==(const ConversationEngine&) const = default;
};

struct Conversation {
  Id id = 0;
  std::string title;
  bool pinned = false;
  int64_t created_ms = 0;  // Unix epoch milliseconds
  int64_t updated_ms = 0;
  Id current_leaf = 0;  // the last message of the branch on screen (0: no messages yet)
  ConversationSettings settings;
  ConversationEngine engine;
  // The template variable enable_thinking (Qwen3's thinking switch); unset, the template's default.
  std::optional<bool> enable_thinking;
};

enum class MessageState {
  Complete,     // finished normally, stopped by the user, or hit its token limit
  Streaming,    // a reply being generated right now
  Interrupted,  // was streaming when the app died: partial, can be continued
};

// "complete", "streaming" or "interrupted": the name stored in the database and in exports.
const char* MessageStateName(MessageState state);

struct Message {
  Id id = 0;
  Id conversation_id = 0;
  Id parent_id = 0;  // 0: first message of the conversation
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  MessageState state = MessageState::Complete;
  int64_t created_ms = 0;
  // Reply figures (assistant rows; 0 when unknown).
  uint32_t tokens = 0;
  double tokens_per_s = 0;
  double time_to_first_token_s = 0;
  std::string notice;  // sentences, one a line, e.g. "Dropped 2 earliest messages to fit the context of 64 tokens."
};

// Around each matched word in a snippet: control characters, which typed text does not hold, so
// brackets or asterisks in a message stay what they are.
inline constexpr char kMatchStart = '\x02';
inline constexpr char kMatchEnd = '\x03';

// One message's place in its conversation's tree, without its text.
struct MessageLink {
  Id id = 0;
  Id parent_id = 0;  // 0: a root
};

// A conversation's best hit: its title if that matches, else its best-ranked message.
struct SearchHit {
  Id conversation_id = 0;
  Id message_id = 0;    // 0: the title matched
  std::string title;    // the conversation's
  std::string snippet;  // text around the match, each matched word between kMatchStart and kMatchEnd
};

class Store {
 public:
  struct Options {
    bool read_only = false;  // the way out of a locked or damaged database: look, export, nothing else
    // The app's own store: one writer process at a time (a lock file beside the database), so a
    // second QwenVK cannot mark the first one's streaming reply interrupted or purge its undo.
    // A second one gets StoreErrorKind::Locked and can open read-only.
    bool single_writer = false;
  };
  // Opens (creating it and its folder if missing) and migrates to the current schema.
  // Throws StoreError: Locked, Corrupt (not a database / integrity failure), NewerSchema, Io.
  explicit Store(const std::filesystem::path& path, const Options& options);
  explicit Store(const std::filesystem::path& path) : Store(path, Options{}) {}
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // $XDG_DATA_HOME/qwenvk/conversations.db, default ~/.local/share/qwenvk/conversations.db.
  static std::filesystem::path DefaultPath();
  static constexpr int kSchemaVersion = 7;

  const std::filesystem::path& path() const { return path_; }
  bool read_only() const { return read_only_; }
  int schema_version();
  // Bumped by every write through this object: the UI reloads its views when it changes.
  uint64_t revision() const;
  // SQL statements run through this object so far, from any thread: the desktop app reports
  // how many one frame ran, so a test can check that drawing does not query per message.
  uint64_t statements_run() const { return statements_run_.load(std::memory_order_relaxed); }

  // --- conversations (newest first; pinned ones before the rest; deleted ones hidden) ---
  Id CreateConversation(std::string_view title, const ConversationSettings& settings);
  std::vector<Conversation> ListConversations();
  std::optional<Conversation> GetConversation(Id id);
  void RenameConversation(Id id, std::string_view title);
  void SetPinned(Id id, bool pinned);
  void SetConversationSettings(Id id, const ConversationSettings& settings);
  void SetCurrentLeaf(Id conversation, Id message);
  void SetConversationEngine(Id id, const ConversationEngine& engine);
  void SetConversationThinking(Id id, std::optional<bool> enable_thinking);
  // Delete hides the conversation; Restore undoes that; PurgeDeleted removes hidden ones for good
  // (the app calls it at start, so an undo lasts the session).
  void DeleteConversation(Id id);
  void RestoreConversation(Id id);
  void PurgeDeleted();

  // --- messages ---
  // Adds a message under `parent` (0: a root), makes it the conversation's current leaf, and
  // touches the conversation's updated time. Commits before returning.
  Id AddMessage(Id conversation, Id parent, std::string_view role, std::string_view content, MessageState state);
  // Replaces a message's text and state (a streaming reply's periodic flush). Commits.
  void UpdateMessage(Id id, std::string_view content, MessageState state);
  void SetMessageStats(Id id, uint32_t tokens, double tokens_per_s, double time_to_first_token_s,
                       std::string_view notice);
  std::optional<Message> GetMessage(Id id);
  // Root .. leaf, following parents. Throws StoreError(Corrupt) naming the conversation when the
  // parents loop (a damaged file), as NewestLeafUnder does.
  std::vector<Message> Thread(Id leaf);
  // Messages sharing `parent` in `conversation` (the branches at that point), oldest first.
  std::vector<Message> Siblings(Id conversation, Id parent);
  // From `message` down to a leaf, taking the newest child each step.
  Id NewestLeafUnder(Id message);
  // Every message of a conversation, by id (export).
  std::vector<Message> AllMessages(Id conversation);
  // Every message's id and parent, by id: the branches of a whole conversation in one query.
  std::vector<MessageLink> MessageLinks(Id conversation);

  // --- search (FTS5 over titles and message text) ---
  // `query` is the user's words, not FTS syntax: each word is matched as a prefix. One hit per
  // conversation, at most `limit`. Work grows with the text of the matching messages, never
  // with its square (FTS5's snippet() does, so a megabyte of one repeated word took minutes).
  // `give_up`, asked between hits, ends the search early (whatever was found is returned).
  std::vector<SearchHit> Search(std::string_view query, int limit = 50, const std::function<bool()>& give_up = nullptr);

  // --- app settings (key/value text) ---
  std::optional<std::string> GetSetting(std::string_view key);
  void SetSetting(std::string_view key, std::string_view value);
  void DeleteSetting(std::string_view key);  // nothing happens when there is no such key

  // --- benchmark runs (store/bench_runs.h) ---
  // Adds the run, finding or adding its device and model (their ids in `run` are ignored); the
  // device takes the run's peaks when they are newer than its own. Commits. Throws TooLarge when
  // text or lists are beyond bench_runs.h's limits.
  Id SaveBenchRun(const BenchRun& run);
  // A device and its peaks without a run (`qwenvk bench --device-peak` alone); its id.
  Id SaveBenchDevice(const BenchDevice& device);
  std::vector<BenchDevice> ListBenchDevices();
  // Newest first, each with its rows but not their kernel times (GetBenchRun reads those).
  std::vector<BenchRun> ListBenchRuns(const BenchFilter& filter = {});
  // One run with every row and kernel time; nullopt when there is no such run.
  std::optional<BenchRun> GetBenchRun(Id id);
  // Throws Error when there is no such run. Its device and model stay (a device keeps its peaks).
  void DeleteBenchRun(Id id);
  // A stored run of the same device, model, source, time, commit and variant, or 0: an import
  // skips what it already holds.
  Id FindBenchRun(const BenchRun& run);

  // --- maintenance ---
  // PRAGMA integrity_check's report: "ok" or its lines.
  std::string IntegrityCheck();
  // A consistent copy through SQLite's online backup.
  void Backup(const std::filesystem::path& destination);

  // Runs `fn` inside one transaction (rolled back if it throws). Used by import. Nests: an
  // inner call is a savepoint of the outer one.
  void Transaction(const std::function<void()>& fn);

 private:
  class Statement;  // one prepared statement (store.cpp)

  // Import (exchange.h) keeps the times the file records; the public API stamps "now".
  friend Id ImportJson(Store& store, std::string_view json_text);
  void SetConversationTimes(Id conversation, int64_t created_ms, int64_t updated_ms);
  void SetMessageCreated(Id message, int64_t created_ms);

  Id FindOrAddBenchModel(const BenchModel& model);
  std::vector<BenchRow> ReadBenchRows(Id run, bool with_kernels);

  void Configure();
  void Migrate(int from_version);
  void RecoverInterrupted();
  void Execute(const char* sql, std::string_view doing);  // constant SQL without parameters
  void RequireWritable() const;
  void RequireMessageOf(Id conversation, Id message);
  void LockWriter();
  [[noreturn]] void FailDamagedThread(Id message, Id looping) const;
  [[noreturn]] void Fail(int code, std::string_view doing) const;

  std::filesystem::path path_;
  bool read_only_ = false;
  sqlite3* db_ = nullptr;
  int writer_lock_ = -1;  // the lock file's descriptor, held while open (Options::single_writer)
  mutable std::recursive_mutex mutex_;
  uint64_t revision_ = 0;
  int transaction_depth_ = 0;
  mutable std::atomic<uint64_t> statements_run_{0};  // counted by const reads too
};

}  // namespace qvk::store
