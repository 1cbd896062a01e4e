#include "base/bounded_json.h"

namespace qvk {
namespace {

std::string Brief(const nlohmann::json& value, int depth) {
  if (!value.is_structured()) {
    std::string shown = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return shown.size() > 80 ? shown.substr(0, 77) + "..." : shown;
  }
  const bool array = value.is_array();
  if (depth == 2) return array ? "[...]" : "{...}";
  std::string out = array ? "[" : "{";
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (out.size() > 80) {
      out += ",...";
      break;
    }
    if (it != value.begin()) out += ",";
    if (!array) out += Brief(nlohmann::json(it.key()), depth + 1) + ":";
    out += Brief(*it, depth + 1);
  }
  return out + (array ? "]" : "}");
}

}  // namespace

std::string BriefJson(const nlohmann::json& value) {
  return Brief(value, 0);
}

}  // namespace qvk
