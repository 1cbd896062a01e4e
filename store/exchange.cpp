// Sections: Markdown export / JSON export / import: checks / import: writing
#include "store/exchange.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/core.h>
#include <utf8proc.h>
#include <nlohmann/json.hpp>

#include "store/json_fields.h"
#include "store/settings.h"

namespace qvk::store {
namespace {

using Json = nlohmann::ordered_json;
using namespace json_fields;

}  // namespace

// --- Markdown export ------------------------------------------------------------------------
namespace {

Conversation RequireConversation(Store& store, Id id) {
  std::optional<Conversation> conversation = store.GetConversation(id);
  if (!conversation) throw Error(fmt::format("Conversation {} does not exist (it may have been deleted).", id));
  return *conversation;
}

// The fence (``` or ~~~ run) a Markdown line opens or closes, after at most three spaces of
// indent; empty if it is not a fence line.
std::string_view FenceOf(std::string_view line) {
  const size_t indent = line.find_first_not_of(' ');
  if (indent == std::string_view::npos || indent > 3) return {};
  line.remove_prefix(indent);
  if (line.empty() || (line[0] != '`' && line[0] != '~')) return {};
  const size_t run = std::min(line.find_first_not_of(line[0]), line.size());
  return run >= 3 ? line.substr(0, run) : std::string_view{};
}

// `text` as given, plus a closing fence when it ends inside a code block (a reply cut off
// mid-code), so the sections after it are not swallowed into that block.
std::string WithFencesClosed(std::string_view text) {
  std::string open_fence;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    const std::string_view fence = FenceOf(line);
    if (open_fence.empty()) {
      open_fence = fence;
    } else if (!fence.empty() && fence[0] == open_fence[0] && fence.size() >= open_fence.size() &&
               line.find_first_not_of(" \t\r", line.find(fence) + fence.size()) == std::string_view::npos) {
      open_fence.clear();
    }
    at = end + 1;
  }
  std::string result(text);
  if (!open_fence.empty()) result += (result.empty() || result.back() == '\n' ? "" : "\n") + open_fence;
  return result;
}

const char* SectionName(std::string_view role) {
  if (role == "user") return "User";
  if (role == "assistant") return "Assistant";
  return "System";
}

}  // namespace

std::string ExportMarkdown(Store& store, Id conversation_id) {
  const Conversation conversation = RequireConversation(store, conversation_id);
  std::string title = conversation.title.empty() ? "Untitled conversation" : conversation.title;
  std::replace(title.begin(), title.end(), '\n', ' ');
  std::string markdown = fmt::format("# {}\n", title);
  if (!conversation.settings.system_prompt.empty()) {
    markdown += fmt::format("\n## System prompt\n\n{}\n", WithFencesClosed(conversation.settings.system_prompt));
  }
  for (const Message& message : store.Thread(conversation.current_leaf)) {
    markdown += fmt::format("\n### {}\n\n{}\n", SectionName(message.role), WithFencesClosed(message.content));
    if (message.state == MessageState::Interrupted) markdown += "\n*(reply interrupted)*\n";
  }
  return markdown;
}

// --- JSON export ----------------------------------------------------------------------------
namespace {

Json IdOrNull(Id id) {
  return id == 0 ? Json(nullptr) : Json(id);
}

// JSON has no NaN or infinity; a figure that is not a number is unknown, like 0.
double Figure(double value) {
  return std::isfinite(value) && value >= 0 ? value : 0;
}

}  // namespace

std::string ExportJson(Store& store, Id conversation_id) {
  const Conversation conversation = RequireConversation(store, conversation_id);
  Json messages = Json::array();
  for (const Message& message : store.AllMessages(conversation_id)) {
    messages.push_back({{"id", message.id},
                        {"parent", IdOrNull(message.parent_id)},
                        {"role", message.role},
                        {"content", message.content},
                        {"state", MessageStateName(message.state)},
                        {"created_ms", message.created_ms},
                        {"tokens", message.tokens},
                        {"tokens_per_s", Figure(message.tokens_per_s)},
                        {"time_to_first_token_s", Figure(message.time_to_first_token_s)},
                        {"notice", message.notice}});
  }
  const Json document{{"format", kExportFormat},
                      {"version", kExportVersion},
                      {"title", conversation.title},
                      {"pinned", conversation.pinned},
                      {"created_ms", conversation.created_ms},
                      {"updated_ms", conversation.updated_ms},
                      {"settings", SettingsToJson(conversation.settings)},
                      {"enable_thinking", conversation.enable_thinking ? Json(*conversation.enable_thinking) : Json()},
                      {"current_leaf", IdOrNull(conversation.current_leaf)},
                      {"messages", std::move(messages)}};
  // Text the store holds that is not UTF-8 (SQLite does not check) becomes U+FFFD rather than
  // failing the whole export.
  return document.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// --- import: checks -------------------------------------------------------------------------
namespace {

struct ImportedMessage {
  Id id = 0;
  Id parent = 0;
  std::string role;
  std::string content;
  MessageState state = MessageState::Complete;
  std::optional<int64_t> created_ms;
  uint32_t tokens = 0;
  double tokens_per_s = 0;
  double time_to_first_token_s = 0;
  std::string notice;
};

struct ImportedConversation {
  std::string title;
  bool pinned = false;
  std::optional<int64_t> created_ms, updated_ms;
  ConversationSettings settings;
  std::optional<bool> enable_thinking;
  Id current_leaf = 0;
  std::vector<ImportedMessage> messages;
};

constexpr int64_t kMaxTimeMs = int64_t{1} << 53;  // beyond any date; exact in a double
constexpr double kMaxFigure = 1e9;

ImportedMessage CheckMessage(const Json& json, size_t index, const std::unordered_set<Id>& earlier,
                             const std::unordered_set<Id>& all_ids) {
  std::string where = fmt::format("messages[{}]", index);
  if (!json.is_object()) Reject(fmt::format("{} must be an object, not {}", where, Quoted(json)));
  RejectUnknownFields(json, where,
                      {"id", "parent", "role", "content", "state", "created_ms", "tokens", "tokens_per_s",
                       "time_to_first_token_s", "notice"});
  ImportedMessage message;
  message.id = Integer(Require(json, "id", where), where + ".id", 1, std::numeric_limits<int64_t>::max());
  where = fmt::format("messages[{}] (id {})", index, message.id);
  if (earlier.contains(message.id)) Reject(fmt::format("{}: another message has the same id", where));

  const Json& parent = Require(json, "parent", where);
  if (!parent.is_null()) {
    message.parent = Integer(parent, where + ".parent", 1, std::numeric_limits<int64_t>::max());
    if (!earlier.contains(message.parent)) {
      Reject(all_ids.contains(message.parent)
                 ? fmt::format("{}: parent {} is not listed before this message (parents must come first, which "
                               "also rules out a cycle)",
                               where, message.parent)
                 : fmt::format("{}: parent {} does not exist", where, message.parent));
    }
  }

  message.role = String(Require(json, "role", where), where + ".role", 16);
  if (message.role != "system" && message.role != "user" && message.role != "assistant") {
    Reject(fmt::format("{}: role \"{}\" is not system, user or assistant", where, message.role));
  }
  message.content = String(Require(json, "content", where), where + ".content", kMaxTextBytes);
  if (const Json* state = Find(json, "state")) {
    const std::string name = String(*state, where + ".state", 16);
    if (name == "complete") {
      message.state = MessageState::Complete;
    } else if (name == "streaming" || name == "interrupted") {
      message.state = MessageState::Interrupted;  // nothing is generating an imported reply
    } else {
      Reject(fmt::format("{}: state \"{}\" is not complete, streaming or interrupted", where, name));
    }
  }
  if (const Json* created = Find(json, "created_ms")) {
    message.created_ms = Integer(*created, where + ".created_ms", 0, kMaxTimeMs);
  }
  if (const Json* tokens = Find(json, "tokens")) {
    message.tokens =
        static_cast<uint32_t>(Integer(*tokens, where + ".tokens", 0, std::numeric_limits<uint32_t>::max()));
  }
  if (const Json* rate = Find(json, "tokens_per_s")) {
    message.tokens_per_s = Number(*rate, where + ".tokens_per_s", 0, kMaxFigure);
  }
  if (const Json* first = Find(json, "time_to_first_token_s")) {
    message.time_to_first_token_s = Number(*first, where + ".time_to_first_token_s", 0, kMaxFigure);
  }
  if (const Json* notice = Find(json, "notice")) message.notice = String(*notice, where + ".notice", kMaxNoticeBytes);
  return message;
}

ImportedConversation Check(std::string_view text) {
  if (text.size() > kMaxImportBytes) {
    Reject(fmt::format("the file is {} MiB; at most {} MiB are accepted", text.size() >> 20, kMaxImportBytes >> 20));
  }
  RequireUtf8(text);
  const Json json = ParseFile(text, kMaxImportBytes);
  if (!json.is_object()) Reject("the file must hold one JSON object");
  RejectUnknownFields(json, "the file",
                      {"format", "version", "title", "pinned", "created_ms", "updated_ms", "settings",
                       "enable_thinking", "current_leaf", "messages"});
  const Json& format = Require(json, "format", "the file");
  if (!format.is_string() || format.get<std::string>() != kExportFormat) {
    Reject(
        fmt::format("\"format\" is {}, not \"{}\": this is not a QwenVK conversation", Quoted(format), kExportFormat));
  }
  const Json& version = Require(json, "version", "the file");
  if (!version.is_number_integer() || version.get<int64_t>() < 1) {
    Reject(fmt::format("\"version\" must be a whole number from 1, not {}", Quoted(version)));
  }
  if (version.get<int64_t>() > kExportVersion) {
    Reject(
        fmt::format("the file has version {}, written by a newer QwenVK (this one reads version {}); update "
                    "QwenVK to import it",
                    version.get<int64_t>(), kExportVersion));
  }

  ImportedConversation conversation;
  conversation.title = String(Require(json, "title", "the file"), "title", kMaxTitleBytes);
  if (const Json* pinned = Find(json, "pinned")) conversation.pinned = Boolean(*pinned, "pinned");
  if (const Json* created = Find(json, "created_ms"))
    conversation.created_ms = Integer(*created, "created_ms", 0, kMaxTimeMs);
  if (const Json* updated = Find(json, "updated_ms"))
    conversation.updated_ms = Integer(*updated, "updated_ms", 0, kMaxTimeMs);
  if (const Json* settings = Find(json, "settings")) conversation.settings = SettingsFromJson(*settings, "settings");
  if (const Json* thinking = Find(json, "enable_thinking"); thinking != nullptr && !thinking->is_null()) {
    conversation.enable_thinking = Boolean(*thinking, "enable_thinking");
  }

  const Json& messages = Require(json, "messages", "the file");
  if (!messages.is_array()) Reject(fmt::format("messages must be a list, not {}", Quoted(messages)));
  if (messages.size() > kMaxImportMessages) {
    Reject(fmt::format("the file has {} messages; at most {} are accepted", messages.size(), kMaxImportMessages));
  }
  // Every id first, so a parent listed too late is told apart from one that does not exist.
  std::unordered_set<Id> all_ids;
  for (const Json& message : messages) {
    const Json* id = message.is_object() ? Find(message, "id") : nullptr;
    if (id != nullptr && id->is_number_integer()) all_ids.insert(id->get<Id>());
  }
  std::unordered_set<Id> earlier;
  for (size_t index = 0; index < messages.size(); ++index) {
    conversation.messages.push_back(CheckMessage(messages[index], index, earlier, all_ids));
    earlier.insert(conversation.messages.back().id);
  }

  if (const Json* leaf = Find(json, "current_leaf"); leaf != nullptr && !leaf->is_null()) {
    conversation.current_leaf = Integer(*leaf, "current_leaf", 1, std::numeric_limits<int64_t>::max());
    if (!earlier.contains(conversation.current_leaf)) {
      Reject(fmt::format("current_leaf {} is not one of the messages", conversation.current_leaf));
    }
  }
  return conversation;
}

}  // namespace

// --- import: writing ------------------------------------------------------------------------
Id ImportJson(Store& store, std::string_view json_text) {
  ImportedConversation imported;
  try {
    imported = Check(json_text);
  } catch (const StoreError& e) {
    throw StoreError(StoreErrorKind::InvalidImport, fmt::format("Cannot import this conversation: {}.", e.what()));
  }
  Id conversation = 0;
  store.Transaction([&] {
    conversation = store.CreateConversation(imported.title, imported.settings);
    std::unordered_map<Id, Id> new_ids;  // the file's id -> the store's
    for (const ImportedMessage& message : imported.messages) {
      const Id parent = message.parent == 0 ? 0 : new_ids.at(message.parent);
      const Id id = store.AddMessage(conversation, parent, message.role, message.content, message.state);
      new_ids.emplace(message.id, id);
      if (message.created_ms) store.SetMessageCreated(id, *message.created_ms);
      if (message.tokens != 0 || message.tokens_per_s != 0 || message.time_to_first_token_s != 0 ||
          !message.notice.empty()) {
        store.SetMessageStats(id, message.tokens, message.tokens_per_s, message.time_to_first_token_s, message.notice);
      }
    }
    if (imported.current_leaf != 0) store.SetCurrentLeaf(conversation, new_ids.at(imported.current_leaf));
    if (imported.pinned) store.SetPinned(conversation, true);
    if (imported.enable_thinking) store.SetConversationThinking(conversation, imported.enable_thinking);
    if (imported.created_ms || imported.updated_ms) {
      const Conversation stored = *store.GetConversation(conversation);
      store.SetConversationTimes(conversation, imported.created_ms.value_or(stored.created_ms),
                                 imported.updated_ms.value_or(stored.updated_ms));
    }
  });
  return conversation;
}

}  // namespace qvk::store
