#pragma once
// A conversation's sampling and prompt settings, the ranges the store holds them to, and their
// JSON form (the database column and the export file share it).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace qvk::store {

// Sampling and prompt settings of one conversation (stored as JSON in its row).
struct ConversationSettings {
  std::string system_prompt;
  float temperature = 0.7f;
  uint32_t top_k = 20;
  float top_p = 0.8f;
  float min_p = 0.0f;
  float repetition_penalty = 1.05f;
  uint64_t seed = 0;
  bool random_seed = true;  // a fresh seed per reply; false: `seed`, so a reply can be reproduced
  uint32_t max_new_tokens = 1024;
  bool operator==(const ConversationSettings&) const = default;
};

inline constexpr size_t kMaxTextBytes = size_t{8} << 20;  // one message, or the system prompt

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

// The JSON form of a conversation's settings, shared by the database rows and the export file.
nlohmann::ordered_json SettingsToJson(const ConversationSettings& settings);
// Missing fields keep their defaults. Throws StoreError(InvalidImport) naming `where`.<field> for
// an unknown field, a wrong type or a value outside settings_limits.
ConversationSettings SettingsFromJson(const nlohmann::ordered_json& json, std::string_view where);

}  // namespace qvk::store
