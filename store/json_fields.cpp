#include "store/json_fields.h"

#include <algorithm>

#include <fmt/core.h>
#include <utf8proc.h>

#include "base/bounded_json.h"

#include "store/store.h"

namespace qvk::store::json_fields {

void Reject(const std::string& problem) {
  throw StoreError(StoreErrorKind::InvalidImport, problem);
}

void RequireUtf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto size = static_cast<utf8proc_ssize_t>(text.size());
  for (utf8proc_ssize_t at = 0; at < size;) {
    utf8proc_int32_t code_point = 0;
    const utf8proc_ssize_t length = utf8proc_iterate(bytes + at, size - at, &code_point);
    if (length <= 0) Reject(fmt::format("the file is not valid UTF-8 text (bad byte at offset {})", at));
    at += length;
  }
}

Json ParseFile(std::string_view text, size_t max_bytes) {
  constexpr int kMaxJsonDepth = 16;
  try {
    return ParseBoundedJson<Json>(text, "the file", {max_bytes, kMaxJsonDepth});
  } catch (const Error& e) {
    Reject(e.what());
  }
}

std::string Quoted(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

void RejectUnknownFields(const Json& object, std::string_view where, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      Reject(fmt::format("{} has an unknown field \"{}\"", where, key));
    }
  }
}

const Json* Find(const Json& object, std::string_view key) {
  const auto found = object.find(key);
  return found == object.end() ? nullptr : &*found;
}

const Json& Require(const Json& object, std::string_view key, std::string_view where) {
  const Json* value = Find(object, key);
  if (value == nullptr) Reject(fmt::format("{} has no \"{}\"", where, key));
  return *value;
}

std::string String(const Json& value, std::string_view where, size_t max_bytes) {
  if (!value.is_string()) Reject(fmt::format("{} must be a string, not {}", where, Quoted(value)));
  const auto& text = value.get_ref<const std::string&>();
  if (text.size() > max_bytes) {
    Reject(fmt::format("{} is {} bytes long; at most {} are accepted", where, text.size(), max_bytes));
  }
  return text;
}

bool Boolean(const Json& value, std::string_view where) {
  if (!value.is_boolean()) Reject(fmt::format("{} must be true or false, not {}", where, Quoted(value)));
  return value.get<bool>();
}

// Integers within [low, high]; JSON numbers with a fraction are refused.
int64_t Integer(const Json& value, std::string_view where, int64_t low, int64_t high) {
  const bool in_range = (value.is_number_unsigned() && value.get<uint64_t>() <= static_cast<uint64_t>(high) &&
                         static_cast<int64_t>(value.get<uint64_t>()) >= low) ||
                        (value.is_number_integer() && !value.is_number_unsigned() && value.get<int64_t>() >= low &&
                         value.get<int64_t>() <= high);
  if (!in_range)
    Reject(fmt::format("{} must be a whole number from {} to {}, not {}", where, low, high, Quoted(value)));
  return value.get<int64_t>();
}

double Number(const Json& value, std::string_view where, double low, double high) {
  if (!value.is_number() || !(value.get<double>() >= low && value.get<double>() <= high)) {
    Reject(fmt::format("{} must be a number from {} to {}, not {}", where, low, high, Quoted(value)));
  }
  return value.get<double>();
}

}  // namespace qvk::store::json_fields
