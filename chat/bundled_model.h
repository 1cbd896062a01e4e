#pragma once
// The demo model that ships with QwenVK (assets/wordnet-chat, described in assets/README.md): a
// tiny Qwen2 trained on WordNet, which every model command and the desktop app open when the
// user names no model.
#include <filesystem>
#include <optional>
#include <vector>

namespace qvk::chat {

// What the demo model is, in the words that say it is in use.
inline constexpr char kBundledModelDescription[] = "WordNet dictionary chat, see assets/README.md";

// Where the bundled model may be, in the order they are tried: $QWENVK_BUNDLED_MODEL alone when it
// is set; otherwise <program's folder>/../assets/wordnet-chat (build folders of a checkout),
// <program's folder>/../share/qwenvk/wordnet-chat (an installed program), then the source tree's
// assets/wordnet-chat.
std::vector<std::filesystem::path> BundledModelCandidates();

// The first candidate holding a model (its config.json), canonical; none when it is missing.
std::optional<std::filesystem::path> FindBundledModel();

// FindBundledModel's answer, or an Error saying the bundled model is missing and to pass --model.
std::filesystem::path BundledModelPath();

}  // namespace qvk::chat
