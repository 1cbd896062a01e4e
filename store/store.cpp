// Sections: helpers (time, states, errors, search query) / Statement / opening and migrating /
// transactions / conversations / messages / search / settings / maintenance
#include "store/store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/core.h>
#include <sqlite3.h>
#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include "store/settings.h"
#include "store/sql.h"
#include "store/statement.h"

namespace qvk::store {
namespace {

constexpr int kBusyTimeoutMs = 2000;
// Where every walk along parents stops (sql.h): deeper than any thread the store holds, so only
// parents that loop reach it.
constexpr auto kMaxThreadDepth = static_cast<int64_t>(kMaxImportMessages);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

MessageState ParseState(std::string_view name) {
  if (name == "streaming") return MessageState::Streaming;
  if (name == "interrupted") return MessageState::Interrupted;
  return MessageState::Complete;
}

bool IsRole(std::string_view role) {
  return role == "system" || role == "user" || role == "assistant";
}

// unicode61 indexes letters, numbers and private-use characters; a word with none of them would
// be an empty phrase, and an empty phrase makes the whole AND match nothing.
bool HasIndexedCharacter(std::string_view word) {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(word.data());
  utf8proc_ssize_t at = 0;
  const auto size = static_cast<utf8proc_ssize_t>(word.size());
  while (at < size) {
    utf8proc_int32_t code_point = 0;
    const utf8proc_ssize_t length = utf8proc_iterate(bytes + at, size - at, &code_point);
    if (length <= 0) {
      ++at;
      continue;
    }
    switch (utf8proc_category(code_point)) {
      case UTF8PROC_CATEGORY_LU:
      case UTF8PROC_CATEGORY_LL:
      case UTF8PROC_CATEGORY_LT:
      case UTF8PROC_CATEGORY_LM:
      case UTF8PROC_CATEGORY_LO:
      case UTF8PROC_CATEGORY_ND:
      case UTF8PROC_CATEGORY_NL:
      case UTF8PROC_CATEGORY_NO:
      case UTF8PROC_CATEGORY_CO:
        return true;
      default:
        at += length;
    }
  }
  return false;
}

// The user's words as an FTS5 query: each word a quoted phrase matched as a prefix, all of them
// required. Inside quotes every character is literal (a quote is doubled), so no input can be
// FTS syntax. Empty when no word can match anything.
std::string FtsQuery(std::string_view text) {
  std::string query;
  size_t at = 0;
  while (at < text.size()) {
    const size_t begin = text.find_first_not_of(" \t\r\n\f\v", at);
    if (begin == std::string_view::npos) break;
    const size_t end = std::min(text.find_first_of(" \t\r\n\f\v", begin), text.size());
    const std::string_view word = text.substr(begin, end - begin);
    at = end;
    if (!HasIndexedCharacter(word)) continue;
    if (!query.empty()) query += " AND ";
    query += '"';
    for (const char c : word) {
      if (c == '"') query += '"';
      query += c;
    }
    query += "\"*";
  }
  return query;
}

// Text longer than the store holds is refused before anything is written, so that whatever it
// holds can be exported and imported back.
void RequireFits(std::string_view what, std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    throw StoreError(
        StoreErrorKind::TooLarge,
        fmt::format("{} is {} bytes long; at most {} bytes are kept. Shorten it.", what, text.size(), max_bytes));
  }
}

// The settings column. What is stored always passes an import's checks, so it is checked before
// anything is written.
std::string SettingsColumn(const ConversationSettings& settings) {
  const nlohmann::ordered_json json = SettingsToJson(settings);
  try {
    SettingsFromJson(json, "settings");
  } catch (const StoreError& e) {
    throw Error(fmt::format("Invalid conversation settings: {}", e.what()));
  }
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

const char* MessageStateName(MessageState state) {
  switch (state) {
    case MessageState::Complete:
      return "complete";
    case MessageState::Streaming:
      return "streaming";
    case MessageState::Interrupted:
      return "interrupted";
  }
  return "complete";
}

Conversation Store::Statement::ReadConversation() const {
  Conversation conversation;
  conversation.id = Int(0);
  conversation.title = Text(1);
  conversation.pinned = Int(2) != 0;
  conversation.created_ms = Int(3);
  conversation.updated_ms = Int(4);
  conversation.current_leaf = Int(5);
  conversation.engine = {.base_url = Text(7), .model = Text(8)};
  conversation.enable_thinking = OptionalBool(9);
  try {
    conversation.settings = SettingsFromJson(nlohmann::ordered_json::parse(Text(6), nullptr, false), "settings");
  } catch (const StoreError& e) {
    throw StoreError(StoreErrorKind::Corrupt, fmt::format("The settings of conversation {} in {} are damaged ({}). "
                                                          "Open it read-only, make a backup, or move it away.",
                                                          conversation.id, store_.path_.string(), e.what()));
  }
  return conversation;
}

Message Store::Statement::ReadMessage() const {
  Message message;
  message.id = Int(0);
  message.conversation_id = Int(1);
  message.parent_id = Int(2);  // NULL reads as 0
  message.role = Text(3);
  message.content = Text(4);
  message.state = ParseState(Text(5));
  message.created_ms = Int(6);
  message.tokens = static_cast<uint32_t>(Int(7));
  message.tokens_per_s = Real(8);
  message.time_to_first_token_s = Real(9);
  message.notice = Text(10);
  return message;
}

[[noreturn]] void Store::Fail(int code, std::string_view doing) const {
  const std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
  const std::string file = path_.string();
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw StoreError(StoreErrorKind::Locked,
                       fmt::format("Could not {}: another QwenVK (or another program) is using {}. Close it and try "
                                   "again, or open the conversations read-only.",
                                   doing, file));
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      throw StoreError(StoreErrorKind::Corrupt,
                       fmt::format("Could not {}: {} is damaged ({}). Open it read-only, make a backup, or move it "
                                   "away so QwenVK starts a new one.",
                                   doing, file, detail));
    case SQLITE_FULL:
      throw StoreError(StoreErrorKind::Io, fmt::format("Could not {}: the disk holding {} is full. Free some space "
                                                       "and try again.",
                                                       doing, file));
    case SQLITE_READONLY:
      throw StoreError(StoreErrorKind::ReadOnly,
                       fmt::format("Could not {}: {} cannot be written ({}). Check the permissions of the file and "
                                   "its folder.",
                                   doing, file, detail));
    default:
      throw StoreError(StoreErrorKind::Io, fmt::format("Could not {}: {} ({}). Check that the file and its folder "
                                                       "can be read and written.",
                                                       doing, detail, file));
  }
}

// --- opening and migrating ------------------------------------------------------------------
Store::Store(const std::filesystem::path& path, const Options& options) : path_(path), read_only_(options.read_only) {
  std::error_code error;
  if (read_only_) {
    if (!std::filesystem::exists(path_, error)) {
      throw StoreError(StoreErrorKind::Io,
                       fmt::format("{} does not exist, so there is nothing to open read-only.", path_.string()));
    }
  } else if (path_.has_parent_path()) {
    std::filesystem::create_directories(path_.parent_path(), error);
    if (error) {
      throw StoreError(StoreErrorKind::Io, fmt::format("Could not create the folder {} for the conversations: {}.",
                                                       path_.parent_path().string(), error.message()));
    }
  }
  const int flags = read_only_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  try {
    const int code = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
    if (code != SQLITE_OK) Fail(code, "open the conversations");
    // Opening reads nothing yet; the lock comes before the first read and the first write.
    if (options.single_writer && !read_only_) LockWriter();
    Configure();
  } catch (...) {
    sqlite3_close(db_);
    if (writer_lock_ >= 0) ::close(writer_lock_);
    throw;
  }
}

// The lock belongs to the file, not to the name it was opened by: through a symlinked path, or a
// symlinked folder, a second QwenVK takes the same lock file as through the real path. (SQLite
// created the file on open, so it exists.) A hard link still has a lock of its own; SQLite warns
// against hard-linked databases for the same reason.
void Store::LockWriter() {
  std::error_code error;
  const std::filesystem::path file = std::filesystem::canonical(path_, error);
  if (error) {
    throw StoreError(StoreErrorKind::Io,
                     fmt::format("Could not find where {} leads: {}.", path_.string(), error.message()));
  }
  const std::string lock_path = file.string() + ".lock";
  writer_lock_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (writer_lock_ < 0) {
    throw StoreError(StoreErrorKind::Io, fmt::format("Could not create {}: {}.", lock_path, std::strerror(errno)));
  }
  if (::flock(writer_lock_, LOCK_EX | LOCK_NB) != 0) {
    throw StoreError(
        StoreErrorKind::Locked,
        fmt::format("Another QwenVK is using {}. Close it, or open the conversations read-only.", path_.string()));
  }
}

Store::~Store() {
  sqlite3_close(db_);
  if (writer_lock_ >= 0) ::close(writer_lock_);  // releases the flock
}

void Store::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // The first read of the file: a file that is not a database fails here, before anything writes.
  const int version = schema_version();
  if (version > kSchemaVersion) {
    throw StoreError(StoreErrorKind::NewerSchema,
                     fmt::format("{} was written by a newer QwenVK (database version {}; this one understands up to "
                                 "{}). Update QwenVK, or move the file away to start a new one.",
                                 path_.string(), version, kSchemaVersion));
  }
  if (!read_only_) {
    Statement journal(*this, sql::kJournalModeWal, "switch the conversations to WAL");
    journal.Step();
  }
  Execute(sql::kForeignKeysOn, "open the conversations");
  Execute(sql::kSynchronousNormal, "open the conversations");
  if (version < kSchemaVersion) {
    if (read_only_) {
      throw StoreError(StoreErrorKind::ReadOnly,
                       fmt::format("{} uses an older database version ({}) that must be upgraded before it can be "
                                   "read. Open it once without read-only.",
                                   path_.string(), version));
    }
    Migrate(version);
  }
  if (!read_only_) RecoverInterrupted();
}

void Store::Migrate(int from_version) {
  for (int version = from_version; version < kSchemaVersion; ++version) {
    Transaction([&] { Execute(sql::kMigrations[static_cast<size_t>(version)], "upgrade the conversations"); });
  }
}

// Only when there is something to recover, so opening never needs the write lock otherwise.
void Store::RecoverInterrupted() {
  Statement any(*this, sql::kAnyStreaming, "open the conversations");
  if (any.Step() && any.Int(0) != 0) {
    Transaction([&] { Execute(sql::kMarkInterrupted, "recover interrupted replies"); });
  }
}

void Store::Execute(const char* sql, std::string_view doing) {
  statements_run_.fetch_add(1, std::memory_order_relaxed);
  const int code = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (code != SQLITE_OK) Fail(code, doing);
}

std::filesystem::path Store::DefaultPath() {
  std::filesystem::path data_home;
  // The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && xdg[0] == '/') {
    data_home = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    data_home = std::filesystem::path(home) / ".local" / "share";
  } else if (const passwd* user = getpwuid(getuid()); user != nullptr && user->pw_dir != nullptr) {
    data_home = std::filesystem::path(user->pw_dir) / ".local" / "share";
  }
  return data_home / "qwenvk" / "conversations.db";
}

int Store::schema_version() {
  std::lock_guard lock(mutex_);
  Statement version(*this, sql::kGetUserVersion, "open the conversations");
  return version.Step() ? static_cast<int>(version.Int(0)) : 0;
}

uint64_t Store::revision() const {
  std::lock_guard lock(mutex_);
  return revision_;
}

// --- transactions ---------------------------------------------------------------------------
void Store::RequireWritable() const {
  if (read_only_) {
    throw StoreError(StoreErrorKind::ReadOnly,
                     fmt::format("The conversations in {} are open read-only: nothing can be changed. Restart QwenVK "
                                 "normally once the problem is solved.",
                                 path_.string()));
  }
}

void Store::Transaction(const std::function<void()>& fn) {
  std::lock_guard lock(mutex_);
  RequireWritable();
  const bool outermost = transaction_depth_ == 0;
  Execute(outermost ? sql::kBeginImmediate : sql::kSavepoint, "save the changes");
  try {
    {
      struct Depth {
        int& depth;
        ~Depth() { --depth; }
      } depth{++transaction_depth_};
      fn();
    }
    Execute(outermost ? sql::kCommit : sql::kReleaseSavepoint, "save the changes");
  } catch (...) {
    // Errors here are ignored: SQLite may already have rolled back (disk full), and the first
    // error is the one worth reporting.
    sqlite3_exec(db_, outermost ? sql::kRollback : sql::kRollbackSavepoint, nullptr, nullptr, nullptr);
    throw;
  }
  ++revision_;
}

// --- conversations --------------------------------------------------------------------------
namespace {

// An update that matched no row names an id that does not exist (or no longer does).
void ExpectChanged(int changed, std::string_view what, Id id) {
  if (changed == 0) throw Error(fmt::format("{} {} does not exist (it may have been deleted).", what, id));
}

}  // namespace

Id Store::CreateConversation(std::string_view title, const ConversationSettings& settings) {
  RequireFits("The title", title, kMaxTitleBytes);
  std::lock_guard lock(mutex_);
  Id id = 0;
  Transaction([&] {
    Statement insert(*this, sql::kInsertConversation, "create the conversation");
    insert.Bind(1, title).Bind(2, NowMs()).Bind(3, SettingsColumn(settings)).Run();
    id = sqlite3_last_insert_rowid(db_);
  });
  return id;
}

std::vector<Conversation> Store::ListConversations() {
  std::lock_guard lock(mutex_);
  Statement list(*this, sql::kListConversations, "list the conversations");
  std::vector<Conversation> conversations;
  while (list.Step()) conversations.push_back(list.ReadConversation());
  return conversations;
}

std::optional<Conversation> Store::GetConversation(Id id) {
  std::lock_guard lock(mutex_);
  Statement get(*this, sql::kGetConversation, "read the conversation");
  get.Bind(1, id);
  if (!get.Step()) return std::nullopt;
  return get.ReadConversation();
}

void Store::RenameConversation(Id id, std::string_view title) {
  RequireFits("The title", title, kMaxTitleBytes);
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement rename(*this, sql::kRenameConversation, "rename the conversation");
    ExpectChanged(rename.Bind(1, id).Bind(2, title).Run(), "Conversation", id);
  });
}

void Store::SetPinned(Id id, bool pinned) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement pin(*this, sql::kSetPinned, "pin the conversation");
    ExpectChanged(pin.Bind(1, id).Bind(2, int64_t{pinned}).Run(), "Conversation", id);
  });
}

void Store::SetConversationSettings(Id id, const ConversationSettings& settings) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetConversationSettings, "save the conversation's settings");
    ExpectChanged(set.Bind(1, id).Bind(2, SettingsColumn(settings)).Run(), "Conversation", id);
  });
}

void Store::SetConversationEngine(Id id, const ConversationEngine& engine) {
  RequireFits("The engine's URL", engine.base_url, kMaxTitleBytes);
  RequireFits("The engine's model", engine.model, kMaxTitleBytes);
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetConversationEngine, "save the conversation's engine");
    ExpectChanged(set.Bind(1, id).Bind(2, engine.base_url).Bind(3, engine.model).Run(), "Conversation", id);
  });
}

void Store::SetConversationThinking(Id id, std::optional<bool> enable_thinking) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetConversationThinking, "save the conversation's thinking switch");
    ExpectChanged(set.Bind(1, id).BindSwitch(2, enable_thinking).Run(), "Conversation", id);
  });
}

void Store::SetCurrentLeaf(Id conversation, Id message) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    if (message != 0) RequireMessageOf(conversation, message);
    Statement set(*this, sql::kSetCurrentLeaf, "switch the branch");
    ExpectChanged(set.Bind(1, conversation).Bind(2, message).Run(), "Conversation", conversation);
  });
}

void Store::SetConversationTimes(Id conversation, int64_t created_ms, int64_t updated_ms) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetConversationTimes, "save the conversation's times");
    ExpectChanged(set.Bind(1, conversation).Bind(2, created_ms).Bind(3, updated_ms).Run(), "Conversation",
                  conversation);
  });
}

void Store::DeleteConversation(Id id) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement hide(*this, sql::kDeleteConversation, "delete the conversation");
    ExpectChanged(hide.Bind(1, id).Bind(2, NowMs()).Run(), "Conversation", id);
  });
}

void Store::RestoreConversation(Id id) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement restore(*this, sql::kRestoreConversation, "restore the conversation");
    ExpectChanged(restore.Bind(1, id).Run(), "Conversation", id);
  });
}

void Store::PurgeDeleted() {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement detach(*this, sql::kDetachDeletedMessages, "remove deleted conversations");
    detach.Run();
    Statement purge(*this, sql::kPurgeDeleted, "remove deleted conversations");
    purge.Run();
  });
}

// --- messages -------------------------------------------------------------------------------
void Store::RequireMessageOf(Id conversation, Id message) {
  Statement owner(*this, sql::kMessageConversation, "read the message");
  owner.Bind(1, message);
  if (!owner.Step()) throw Error(fmt::format("Message {} does not exist.", message));
  if (owner.Int(0) != conversation) {
    throw Error(fmt::format("Message {} belongs to conversation {}, not {}.", message, owner.Int(0), conversation));
  }
}

Id Store::AddMessage(Id conversation, Id parent, std::string_view role, std::string_view content, MessageState state) {
  if (!IsRole(role)) throw Error(fmt::format("'{}' is not a message role (system, user or assistant).", role));
  RequireFits("The message", content, kMaxTextBytes);
  std::lock_guard lock(mutex_);
  Id id = 0;
  Transaction([&] {
    Statement exists(*this, sql::kConversationExists, "save the message");
    if (!exists.Bind(1, conversation).Step()) ExpectChanged(0, "Conversation", conversation);
    if (parent != 0) RequireMessageOf(conversation, parent);
    const int64_t now = NowMs();
    Statement insert(*this, sql::kInsertMessage, "save the message");
    insert.Bind(1, conversation).BindId(2, parent).Bind(3, role).Bind(4, content).Bind(5, MessageStateName(state));
    insert.Bind(6, now).Run();
    id = sqlite3_last_insert_rowid(db_);
    Statement touch(*this, sql::kTouchConversation, "save the message");
    touch.Bind(1, conversation).Bind(2, id).Bind(3, now).Run();
  });
  return id;
}

void Store::UpdateMessage(Id id, std::string_view content, MessageState state) {
  RequireFits("The message", content, kMaxTextBytes);
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement update(*this, sql::kUpdateMessage, "save the message");
    ExpectChanged(update.Bind(1, id).Bind(2, content).Bind(3, MessageStateName(state)).Run(), "Message", id);
  });
}

void Store::SetMessageStats(Id id, uint32_t tokens, double tokens_per_s, double time_to_first_token_s,
                            std::string_view notice) {
  RequireFits("The reply's notice", notice, kMaxNoticeBytes);
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement stats(*this, sql::kSetMessageStats, "save the reply's figures");
    stats.Bind(1, id).Bind(2, int64_t{tokens}).Bind(3, tokens_per_s).Bind(4, time_to_first_token_s).Bind(5, notice);
    ExpectChanged(stats.Run(), "Message", id);
  });
}

void Store::SetMessageCreated(Id message, int64_t created_ms) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetMessageCreated, "save the message's time");
    ExpectChanged(set.Bind(1, message).Bind(2, created_ms).Run(), "Message", message);
  });
}

std::optional<Message> Store::GetMessage(Id id) {
  std::lock_guard lock(mutex_);
  Statement get(*this, sql::kGetMessage, "read the message");
  get.Bind(1, id);
  if (!get.Step()) return std::nullopt;
  return get.ReadMessage();
}

[[noreturn]] void Store::FailDamagedThread(Id message, Id looping) const {
  Statement owner(*this, sql::kMessageConversation, "read the message");
  owner.Bind(1, message);
  const Id conversation = owner.Step() ? owner.Int(0) : 0;
  const std::string problem =
      looping != 0 ? fmt::format("message {} is its own ancestor", looping)
                   : fmt::format("the thread through message {} is longer than any conversation", message);
  throw StoreError(StoreErrorKind::Corrupt,
                   fmt::format("Conversation {} in {} is damaged: {}. Delete that conversation, or open the "
                               "conversations read-only, make a backup, or move the file away.",
                               conversation, path_.string(), problem));
}

std::vector<Message> Store::Thread(Id leaf) {
  std::lock_guard lock(mutex_);
  Statement damage(*this, sql::kThreadDamage, "read the conversation");
  if (damage.Bind(1, leaf).Bind(2, kMaxThreadDepth).Step()) FailDamagedThread(leaf, damage.Int(0));
  Statement thread(*this, sql::kThread, "read the conversation");
  thread.Bind(1, leaf).Bind(2, kMaxThreadDepth);
  std::vector<Message> messages;
  while (thread.Step()) messages.push_back(thread.ReadMessage());
  return messages;
}

std::vector<Message> Store::Siblings(Id conversation, Id parent) {
  std::lock_guard lock(mutex_);
  Statement siblings(*this, sql::kSiblings, "read the branches");
  siblings.Bind(1, conversation).BindId(2, parent);
  std::vector<Message> messages;
  while (siblings.Step()) messages.push_back(siblings.ReadMessage());
  return messages;
}

Id Store::NewestLeafUnder(Id message) {
  std::lock_guard lock(mutex_);
  Statement newest(*this, sql::kNewestLeafUnder, "read the branches");
  newest.Bind(1, message).Bind(2, kMaxThreadDepth);
  if (!newest.Step()) return 0;
  if (newest.Int(1) != 0) FailDamagedThread(message, newest.Int(2));
  return newest.Int(0);  // max() of nothing is NULL, read as 0
}

std::vector<Message> Store::AllMessages(Id conversation) {
  std::lock_guard lock(mutex_);
  Statement all(*this, sql::kAllMessages, "read the conversation");
  all.Bind(1, conversation);
  std::vector<Message> messages;
  while (all.Step()) messages.push_back(all.ReadMessage());
  return messages;
}

std::vector<MessageLink> Store::MessageLinks(Id conversation) {
  std::lock_guard lock(mutex_);
  Statement links(*this, sql::kMessageLinks, "read the branches");
  links.Bind(1, conversation);
  std::vector<MessageLink> result;
  while (links.Step()) result.push_back({links.Int(0), links.Int(1)});
  return result;
}

// --- search ---------------------------------------------------------------------------------
namespace {

// Bytes a snippet keeps before and after its first match: about the 16 words FTS5's snippet()
// shows of prose, and a bound however long a word is.
constexpr size_t kSnippetBefore = 60;
constexpr size_t kSnippetAfter = 140;

size_t Utf8CharStart(std::string_view text, size_t at) {
  while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

// highlight()'s output (the whole text, matches marked) cut to the words around its first match,
// at spaces where one is near, with "…" where text was left out.
std::string SnippetAroundFirstMatch(std::string_view marked) {
  constexpr std::string_view kSpaces = " \t\r\n";
  const size_t match = std::min(marked.find(kMatchStart), marked.size());
  size_t begin = 0;
  if (match > kSnippetBefore) {
    begin = Utf8CharStart(marked, match - kSnippetBefore);
    const size_t space = marked.substr(begin, match - begin).find_first_of(kSpaces);
    if (space != std::string_view::npos) begin += space + 1;
  }
  size_t end = marked.size();
  if (match + kSnippetAfter < marked.size()) {
    end = Utf8CharStart(marked, match + kSnippetAfter);
    const size_t space = marked.substr(match, end - match).find_last_of(kSpaces);
    if (space != std::string_view::npos && space > 0) end = match + space;
  }
  std::string snippet = begin > 0 ? "…" : "";
  snippet.append(marked.substr(begin, end - begin));
  if (end < marked.size()) snippet += "…";
  return snippet;
}

}  // namespace

std::vector<SearchHit> Store::Search(std::string_view query, int limit, const std::function<bool()>& give_up) {
  const std::string fts_query = FtsQuery(query);
  if (fts_query.empty() || limit <= 0) return {};
  std::lock_guard lock(mutex_);
  std::vector<SearchHit> hits;
  {
    Statement search(*this, sql::kSearch, "search the conversations");
    search.Bind(1, fts_query).Bind(2, int64_t{limit});
    while (search.Step()) hits.push_back({search.Int(0), search.Int(1), search.Text(2), {}});
  }
  // Snippets only for the hits found, one at a time: highlight() reads each text once.
  const std::string_view start(&kMatchStart, 1);
  const std::string_view end(&kMatchEnd, 1);
  for (size_t i = 0; i < hits.size(); ++i) {
    if (give_up && give_up()) {
      hits.resize(i);
      break;
    }
    SearchHit& hit = hits[i];
    const bool title = hit.message_id == 0;
    Statement marked(*this, title ? sql::kHighlightTitle : sql::kHighlightMessage, "search the conversations");
    marked.Bind(1, fts_query).Bind(2, title ? hit.conversation_id : hit.message_id).Bind(3, start).Bind(4, end);
    if (marked.Step()) hit.snippet = SnippetAroundFirstMatch(marked.Text(0));
  }
  return hits;
}

// --- settings -------------------------------------------------------------------------------
std::optional<std::string> Store::GetSetting(std::string_view key) {
  std::lock_guard lock(mutex_);
  Statement get(*this, sql::kGetSetting, "read the settings");
  get.Bind(1, key);
  if (!get.Step()) return std::nullopt;
  return get.Text(0);
}

void Store::SetSetting(std::string_view key, std::string_view value) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement set(*this, sql::kSetSetting, "save the settings");
    set.Bind(1, key).Bind(2, value).Run();
  });
}

void Store::DeleteSetting(std::string_view key) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement remove(*this, sql::kDeleteSetting, "save the settings");
    remove.Bind(1, key).Run();
  });
}

// --- maintenance ----------------------------------------------------------------------------
std::string Store::IntegrityCheck() {
  std::lock_guard lock(mutex_);
  Statement check(*this, sql::kIntegrityCheck, "check the conversations");
  std::string report;
  while (check.Step()) {
    if (!report.empty()) report += '\n';
    report += check.Text(0);
  }
  return report;
}

void Store::Backup(const std::filesystem::path& destination) {
  std::lock_guard lock(mutex_);
  sqlite3* copy = nullptr;
  int code = sqlite3_open_v2(destination.c_str(), &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (code == SQLITE_OK) {
    sqlite3_backup* backup = sqlite3_backup_init(copy, "main", db_, "main");
    if (backup == nullptr) {
      code = sqlite3_errcode(copy);
    } else {
      code = sqlite3_backup_step(backup, -1);
      const int finished = sqlite3_backup_finish(backup);
      code = code == SQLITE_DONE ? finished : code;
    }
  }
  const std::string detail = copy != nullptr ? sqlite3_errmsg(copy) : sqlite3_errstr(code);
  sqlite3_close(copy);
  if (code != SQLITE_OK) {
    const StoreErrorKind kind =
        (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED ? StoreErrorKind::Locked : StoreErrorKind::Io;
    throw StoreError(kind,
                     fmt::format("Could not back up {} to {}: {}.", path_.string(), destination.string(), detail));
  }
}

}  // namespace qvk::store
