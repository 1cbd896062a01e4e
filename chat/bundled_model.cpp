#include "chat/bundled_model.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk::chat {

std::vector<std::filesystem::path> BundledModelCandidates() {
  // Tests name their stand-in here; when set it is the only place looked, so a test never
  // picks up the real model by accident.
  if (const char* named = std::getenv("QWENVK_BUNDLED_MODEL"); named != nullptr && *named != '\0') {
    return {std::filesystem::path(named)};
  }
  std::vector<std::filesystem::path> candidates;
  std::error_code ec;
  const std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path prefix = program.parent_path().parent_path().lexically_normal();
    candidates.push_back(prefix / "assets" / "wordnet-chat");
    candidates.push_back(prefix / "share" / "qwenvk" / "wordnet-chat");
  }
  // A program run from a build folder outside the checkout still finds the checkout's model.
  const std::filesystem::path source = std::filesystem::path(QWENVK_SOURCE_ASSETS) / "wordnet-chat";
  if (std::find(candidates.begin(), candidates.end(), source) == candidates.end()) candidates.push_back(source);
  return candidates;
}

std::optional<std::filesystem::path> FindBundledModel() {
  for (const std::filesystem::path& candidate : BundledModelCandidates()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(candidate / "config.json", ec)) continue;
    const std::filesystem::path found = std::filesystem::canonical(candidate, ec);
    return ec ? candidate : found;
  }
  return std::nullopt;
}

std::filesystem::path BundledModelPath() {
  if (auto found = FindBundledModel()) return *found;
  std::string searched;
  for (const std::filesystem::path& candidate : BundledModelCandidates()) {
    searched += (searched.empty() ? "" : ", ") + candidate.string();
  }
  throw Error(fmt::format(
      "the bundled demo model is missing (no config.json in {}): pass --model with a Hugging Face model folder or "
      "a .gguf file",
      searched));
}

}  // namespace qvk::chat
