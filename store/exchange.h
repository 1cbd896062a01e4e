#pragma once
// Conversations in and out of the store: Markdown to read or share the branch on screen, JSON
// (the whole message tree) to move conversations between machines and back them up one by one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "store/store.h"

namespace qvk::store {

inline constexpr std::string_view kExportFormat = "qwenvk-conversation";
inline constexpr int kExportVersion = 1;

// What an import accepts: far beyond any real conversation, they stop a wrong or hostile file
// before it fills the database.
inline constexpr size_t kMaxImportBytes = size_t{64} << 20;
inline constexpr size_t kMaxImportMessages = 100'000;
inline constexpr size_t kMaxTextBytes = size_t{8} << 20;  // one message, or the system prompt
inline constexpr size_t kMaxTitleBytes = 4096;
inline constexpr size_t kMaxNoticeBytes = 4096;

// The ranges every stored conversation setting is held to (settings sliders should use them):
// the store refuses others, and an import naming others is rejected.
namespace settings_limits {
inline constexpr float kMaxTemperature = 10.0f;  // from 0 (greedy)
inline constexpr uint32_t kMaxTopK = 1u << 24;   // from 0 (off)
inline constexpr float kMaxTopP = 1.0f;          // from 0
inline constexpr float kMaxMinP = 1.0f;          // from 0
inline constexpr float kMinRepetitionPenalty = 0.01f;
inline constexpr float kMaxRepetitionPenalty = 10.0f;
inline constexpr uint32_t kMaxNewTokens = 1u << 24;  // from 1
}  // namespace settings_limits

// "# title", the system prompt, then the current branch as "### User" / "### Assistant"
// sections. Message text is copied verbatim; a code fence a cut-off reply left open is closed so
// the sections after it still render. Throws Error if the conversation does not exist.
std::string ExportMarkdown(Store& store, Id conversation);

// {"format":"qwenvk-conversation","version":1,"title","pinned","created_ms","updated_ms",
//  "settings":{...},"current_leaf":<id or null>,"messages":[{"id","parent" (null: a root),"role",
//  "content","state","created_ms","tokens","tokens_per_s","time_to_first_token_s","notice"}]}
// Messages by id, so every parent comes before its children. Throws Error if the conversation
// does not exist.
std::string ExportJson(Store& store, Id conversation);

// Checks everything first (JSON, UTF-8, format and version, field types, roles, parents listed
// before their children, current_leaf, the limits above and the settings ranges); on any
// problem throws StoreError(InvalidImport) naming what is wrong and where, having written
// nothing. Otherwise adds a new conversation in one transaction (new ids; "streaming" replies
// become "interrupted") and returns its id.
Id ImportJson(Store& store, std::string_view json_text);

// The JSON form of a conversation's settings, shared by the database rows and the export file.
nlohmann::ordered_json SettingsToJson(const ConversationSettings& settings);
// Missing fields keep their defaults. Throws StoreError(InvalidImport) naming `where`.<field> for
// an unknown field, a wrong type or a value outside settings_limits.
ConversationSettings SettingsFromJson(const nlohmann::ordered_json& json, std::string_view where);

}  // namespace qvk::store
