#include "store/settings.h"

#include <limits>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/numeric.h"
#include "store/json_fields.h"

namespace qvk::store {

using namespace json_fields;

Json SettingsToJson(const ConversationSettings& settings) {
  return Json{{"system_prompt", settings.system_prompt},
              {"temperature", ShortestDouble(settings.temperature)},
              {"top_k", settings.top_k},
              {"top_p", ShortestDouble(settings.top_p)},
              {"min_p", ShortestDouble(settings.min_p)},
              {"repetition_penalty", ShortestDouble(settings.repetition_penalty)},
              {"seed", settings.seed},
              {"random_seed", settings.random_seed},
              {"max_new_tokens", settings.max_new_tokens}};
}

ConversationSettings SettingsFromJson(const Json& json, std::string_view where) {
  namespace limits = settings_limits;
  if (!json.is_object()) Reject(fmt::format("{} must be an object, not {}", where, Quoted(json)));
  RejectUnknownFields(json, where,
                      {"system_prompt", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed",
                       "random_seed", "max_new_tokens"});
  ConversationSettings settings;
  const auto field = [&](std::string_view key) { return fmt::format("{}.{}", where, key); };
  if (const Json* value = Find(json, "system_prompt")) {
    settings.system_prompt = String(*value, field("system_prompt"), kMaxTextBytes);
  }
  if (const Json* value = Find(json, "temperature")) {
    settings.temperature = static_cast<float>(Number(*value, field("temperature"), 0, limits::kMaxTemperature));
  }
  if (const Json* value = Find(json, "top_k")) {
    settings.top_k = static_cast<uint32_t>(Integer(*value, field("top_k"), 0, limits::kMaxTopK));
  }
  if (const Json* value = Find(json, "top_p")) {
    settings.top_p = static_cast<float>(Number(*value, field("top_p"), 0, limits::kMaxTopP));
  }
  if (const Json* value = Find(json, "min_p")) {
    settings.min_p = static_cast<float>(Number(*value, field("min_p"), 0, limits::kMaxMinP));
  }
  if (const Json* value = Find(json, "repetition_penalty")) {
    settings.repetition_penalty = static_cast<float>(
        Number(*value, field("repetition_penalty"), limits::kMinRepetitionPenalty, limits::kMaxRepetitionPenalty));
  }
  if (const Json* value = Find(json, "seed")) {
    if (!value->is_number_unsigned() && !(value->is_number_integer() && value->get<int64_t>() >= 0)) {
      Reject(fmt::format("{} must be a whole number from 0 to {}, not {}", field("seed"),
                         std::numeric_limits<uint64_t>::max(), Quoted(*value)));
    }
    settings.seed = value->get<uint64_t>();
  }
  if (const Json* value = Find(json, "random_seed")) settings.random_seed = Boolean(*value, field("random_seed"));
  if (const Json* value = Find(json, "max_new_tokens")) {
    settings.max_new_tokens = static_cast<uint32_t>(Integer(*value, field("max_new_tokens"), 1, limits::kMaxNewTokens));
  }
  return settings;
}

}  // namespace qvk::store
