#pragma once
// JSON from files a stranger may have written (a model's config and tokenizer files, a
// conversation to import), parsed only within stated limits. nlohmann's parser builds a document
// of any depth, but dump(), copies and comparisons recurse once per level, so a million nested
// brackets would overflow the stack the moment anything touched them: a document nested too deep
// is refused while it is parsed, before it is built.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace qvk {

struct JsonLimits {
  uint64_t max_bytes;
  int max_depth;  // objects and arrays inside one another; the outermost is level 1
};

// Throws Error "<what>: ..." naming the limit exceeded, or the parser's reason.
template <typename Json = nlohmann::json>
Json ParseBoundedJson(std::string_view text, std::string_view what, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    throw Error(fmt::format("{}: {} bytes is over the limit of {} bytes", what, text.size(), limits.max_bytes));
  }
  // The callback sees the depth of the container being opened before its contents are read.
  const typename Json::parser_callback_t limit_depth = [&](int depth, typename Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= limits.max_depth) {
      throw Error(fmt::format("{}: the JSON nests deeper than {} levels", what, limits.max_depth));
    }
    return true;
  };
  try {
    return Json::parse(text, limit_depth);
  } catch (const typename Json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    throw Error(fmt::format("{}: not valid JSON: {}", what, e.what()));
  }
}

// A value for an error message: at most two levels and about 80 characters, whatever its size.
std::string BriefJson(const nlohmann::json& value);

}  // namespace qvk
