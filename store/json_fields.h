#pragma once
// Checked reads of JSON fields for the files the store reads (conversation exports, settings
// columns): each check names where the value was and what is accepted, and throws
// StoreError(InvalidImport) otherwise.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qvk::store::json_fields {

using Json = nlohmann::ordered_json;

[[noreturn]] void Reject(const std::string& problem);
// The parser checks the UTF-8 of strings too, but this names the byte in words a user can act on.
void RequireUtf8(std::string_view text);
// A whole file as JSON, at most `max_bytes` long and nested at most 16 levels (our files are
// three or four deep: anything far deeper is not one, and is refused before the parser builds it).
Json ParseFile(std::string_view text, size_t max_bytes);
// The value as JSON text, cut to 60 characters, for messages.
std::string Quoted(const Json& value);
void RejectUnknownFields(const Json& object, std::string_view where, std::initializer_list<std::string_view> known);
const Json* Find(const Json& object, std::string_view key);
const Json& Require(const Json& object, std::string_view key, std::string_view where);
std::string String(const Json& value, std::string_view where, size_t max_bytes);
bool Boolean(const Json& value, std::string_view where);
// Integers within [low, high]; JSON numbers with a fraction are refused.
int64_t Integer(const Json& value, std::string_view where, int64_t low, int64_t high);
double Number(const Json& value, std::string_view where, double low, double high);

}  // namespace qvk::store::json_fields
