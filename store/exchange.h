#pragma once
// Conversations in and out of the store: Markdown to read or share the branch on screen, JSON
// (the whole message tree) to move conversations between machines and back them up one by one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "store/settings.h"
#include "store/store.h"

namespace qvk::store {

inline constexpr std::string_view kExportFormat = "qwenvk-conversation";
// Version 2 added "enable_thinking"; version 1 files are read as before.
inline constexpr int kExportVersion = 2;

// The largest file an import reads: far beyond any real conversation, it stops a wrong or hostile
// file before it fills the database. Fields are held to the store's limits (store.h, settings.h).
inline constexpr size_t kMaxImportBytes = size_t{64} << 20;

// "# title", the system prompt, then the current branch as "### User" / "### Assistant"
// sections. Message text is copied verbatim; a code fence a cut-off reply left open is closed so
// the sections after it still render. Throws Error if the conversation does not exist.
std::string ExportMarkdown(Store& store, Id conversation);

// {"format":"qwenvk-conversation","version":2,"title","pinned","created_ms","updated_ms",
//  "settings":{...},"enable_thinking":<true, false or null: the template's default>,
//  "current_leaf":<id or null>,"messages":[{"id","parent" (null: a root),"role",
//  "content","state","created_ms","tokens","tokens_per_s","time_to_first_token_s","notice"}]}
// Messages by id, so every parent comes before its children. Throws Error if the conversation
// does not exist.
std::string ExportJson(Store& store, Id conversation);

// Checks everything first (JSON, UTF-8, format and version, field types, roles, parents listed
// before their children, current_leaf, the file size, the store's limits and the settings
// ranges); on any problem throws StoreError(InvalidImport) naming what is wrong and where,
// having written nothing. Otherwise adds a new conversation in one transaction (new ids;
// "streaming" replies become "interrupted") and returns its id.
Id ImportJson(Store& store, std::string_view json_text);

}  // namespace qvk::store
