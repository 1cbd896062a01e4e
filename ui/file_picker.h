#pragma once
// A modal picker for a model: a Hugging Face folder (one holding config.json) or a .gguf file.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qvk::ui {

enum class EntryKind { Folder, ModelFolder, GgufFile };

struct DirEntry {
  std::string name;
  EntryKind kind = EntryKind::Folder;
  uint64_t size = 0;  // GgufFile: bytes

  bool operator==(const DirEntry&) const = default;
};

struct DirListing {
  std::vector<DirEntry> entries;  // folders first, then files, each by name ignoring case
  std::string error;              // why the folder could not be read; entries is then empty
};

// Folders and .gguf files in `dir` (names starting with '.' only when `show_hidden`). Entries that
// cannot be examined (broken links, no permission) are left out.
DirListing ListDirectory(const std::filesystem::path& dir, bool show_hidden);

// True for a folder holding config.json.
bool IsModelFolder(const std::filesystem::path& dir);

class FilePicker {
 public:
  // Opens the popup at `start`: a folder, or a file whose folder is shown with the file selected.
  // A missing path opens at its nearest existing ancestor; an empty one at the home folder.
  void Open(std::filesystem::path start);

  // Call every frame; returns the chosen path on the frame the user chooses it.
  std::optional<std::filesystem::path> Draw();
  // Chooses `path` as the Choose button does, at the next Draw (the --script driver's `pick`).
  void Choose(std::filesystem::path path) { pending_choice_ = std::move(path); }

  bool is_open() const { return open_ || open_requested_; }

 private:
  void Navigate(const std::filesystem::path& dir);
  void Refresh();
  std::optional<std::filesystem::path> Selection() const;
  void DrawEntries(std::optional<std::filesystem::path>& chosen);

  std::filesystem::path dir_;
  std::string path_text_;
  DirListing listing_;
  bool dir_is_model_ = false;
  int selected_ = -1;
  bool show_hidden_ = false;
  bool open_requested_ = false;
  bool open_ = false;
  std::optional<std::filesystem::path> pending_choice_;
};

}  // namespace qvk::ui
