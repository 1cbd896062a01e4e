#include "ui/file_picker.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cstdlib>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

namespace qvk::ui {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPopupId = "Choose a model###qwenvk-file-picker";

std::string Lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

bool IsGgufName(const fs::path& path) {
  return Lowercase(path.extension().string()) == ".gguf";
}

bool IsFolder(EntryKind kind) {
  return kind == EntryKind::Folder || kind == EntryKind::ModelFolder;
}

std::string HumanSize(uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, kUnits[unit]);
}

fs::path HomeFolder() {
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return home;
  std::error_code error;
  const fs::path current = fs::current_path(error);
  return error ? fs::path("/") : current;
}

}  // namespace

bool IsModelFolder(const fs::path& dir) {
  std::error_code error;
  return fs::is_regular_file(dir / "config.json", error);
}

DirListing ListDirectory(const fs::path& dir, bool show_hidden) {
  DirListing listing;
  std::error_code error;
  fs::directory_iterator it(dir, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    const fs::path& path = it->path();
    std::string name = path.filename().string();
    if (!show_hidden && name.starts_with('.')) continue;
    std::error_code status_error;
    const fs::file_status status = it->status(status_error);  // follows links
    if (status_error) continue;
    if (fs::is_directory(status)) {
      listing.entries.push_back({std::move(name), IsModelFolder(path) ? EntryKind::ModelFolder : EntryKind::Folder});
    } else if (fs::is_regular_file(status) && IsGgufName(path)) {
      const uintmax_t size = it->file_size(status_error);
      listing.entries.push_back({std::move(name), EntryKind::GgufFile, status_error ? 0 : static_cast<uint64_t>(size)});
    }
  }
  if (error) {
    listing.entries.clear();
    listing.error = fmt::format("Cannot open {}: {}", dir.string(), error.message());
    return listing;
  }
  std::sort(listing.entries.begin(), listing.entries.end(), [](const DirEntry& a, const DirEntry& b) {
    if (IsFolder(a.kind) != IsFolder(b.kind)) return IsFolder(a.kind);
    const std::string a_key = Lowercase(a.name);
    const std::string b_key = Lowercase(b.name);
    return a_key != b_key ? a_key < b_key : a.name < b.name;
  });
  return listing;
}

void FilePicker::Open(fs::path start) {
  std::error_code error;
  if (start.empty()) start = HomeFolder();
  std::string select;
  if (fs::is_regular_file(start, error)) {
    select = start.filename().string();
    start = start.parent_path();
  }
  // A path that no longer exists opens at its nearest existing ancestor.
  while (!fs::is_directory(start, error) && start.has_relative_path()) start = start.parent_path();
  if (!fs::is_directory(start, error)) start = HomeFolder();
  Navigate(start);
  for (size_t i = 0; i < listing_.entries.size(); ++i) {
    if (listing_.entries[i].name == select) selected_ = static_cast<int>(i);
  }
  open_requested_ = true;
}

void FilePicker::Navigate(const fs::path& dir) {
  std::error_code error;
  const fs::path absolute = fs::absolute(dir, error);
  dir_ = (error ? dir : absolute).lexically_normal();
  if (dir_.has_relative_path() && dir_.filename().empty()) dir_ = dir_.parent_path();  // "a/b/" -> "a/b"
  path_text_ = dir_.string();
  Refresh();
}

void FilePicker::Refresh() {
  listing_ = ListDirectory(dir_, show_hidden_);
  dir_is_model_ = listing_.error.empty() && IsModelFolder(dir_);
  selected_ = -1;
}

std::optional<fs::path> FilePicker::Selection() const {
  if (selected_ >= 0 && static_cast<size_t>(selected_) < listing_.entries.size()) {
    const DirEntry& entry = listing_.entries[static_cast<size_t>(selected_)];
    if (entry.kind != EntryKind::Folder) return dir_ / entry.name;
  }
  if (dir_is_model_) return dir_;
  return std::nullopt;
}

void FilePicker::DrawEntries(std::optional<fs::path>& chosen) {
  if (!listing_.error.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
    ImGui::TextWrapped("%s", listing_.error.c_str());
    ImGui::PopStyleColor();
    return;
  }
  if (listing_.entries.empty()) {
    ImGui::TextDisabled("No folders or .gguf files here.");
    return;
  }
  std::optional<fs::path> enter;
  if (ImGui::BeginTable("entries", 3, ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("Name", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableSetupColumn("Kind", ImGuiTableColumnFlags_WidthFixed, ImGui::CalcTextSize("Hugging Face model").x);
    ImGui::TableSetupColumn("Size", ImGuiTableColumnFlags_WidthFixed, ImGui::CalcTextSize("1023.9 GiB").x);
    ImGui::TableHeadersRow();
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(listing_.entries.size()));
    while (clipper.Step()) {
      for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
        const DirEntry& entry = listing_.entries[static_cast<size_t>(row)];
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::PushID(row);
        const std::string label = IsFolder(entry.kind) ? entry.name + "/" : entry.name;
        const ImGuiSelectableFlags flags = ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowDoubleClick |
                                           ImGuiSelectableFlags_DontClosePopups;
        if (ImGui::Selectable(label.c_str(), selected_ == row, flags)) {
          selected_ = row;
          if (ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) {
            if (IsFolder(entry.kind)) {
              enter = dir_ / entry.name;
            } else {
              chosen = dir_ / entry.name;
            }
          }
        }
        ImGui::PopID();
        ImGui::TableNextColumn();
        switch (entry.kind) {
          case EntryKind::ModelFolder:
            ImGui::TextColored(ImVec4(0.45f, 0.85f, 0.45f, 1.0f), "Hugging Face model");
            break;
          case EntryKind::GgufFile:
            ImGui::TextColored(ImVec4(0.45f, 0.85f, 0.45f, 1.0f), "GGUF");
            ImGui::TableNextColumn();
            ImGui::TextUnformatted(HumanSize(entry.size).c_str());
            break;
          case EntryKind::Folder:
            ImGui::TextDisabled("folder");
            break;
        }
      }
    }
    ImGui::EndTable();
  }
  if (enter) Navigate(*enter);  // after the loop: navigating replaces the entries it walks
}

std::optional<fs::path> FilePicker::Draw() {
  if (open_requested_) {
    ImGui::OpenPopup(kPopupId);
    open_requested_ = false;
    open_ = true;
  }
  if (!open_) return std::nullopt;
  const float font_size = ImGui::GetFontSize();
  ImGui::SetNextWindowSize(ImVec2(font_size * 48, font_size * 30), ImGuiCond_Appearing);
  ImGui::SetNextWindowPos(ImGui::GetMainViewport()->GetCenter(), ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  bool keep_open = true;
  if (!ImGui::BeginPopupModal(kPopupId, &keep_open)) {
    open_ = false;  // closed with the title bar's button
    return std::nullopt;
  }

  if (ImGui::Button("Up")) Navigate(dir_.parent_path());
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-FLT_MIN);
  if (ImGui::InputText("##path", &path_text_, ImGuiInputTextFlags_EnterReturnsTrue)) {
    const fs::path typed = path_text_;
    std::error_code error;
    if (fs::is_regular_file(typed, error)) {
      Navigate(typed.parent_path());
      for (size_t i = 0; i < listing_.entries.size(); ++i) {
        if (listing_.entries[i].name == typed.filename().string()) selected_ = static_cast<int>(i);
      }
    } else {
      Navigate(typed);
    }
  }
  if (dir_is_model_) {
    ImGui::TextColored(ImVec4(0.45f, 0.85f, 0.45f, 1.0f), "This folder is a Hugging Face model.");
  } else {
    ImGui::TextDisabled("Choose a Hugging Face model folder (with config.json) or a .gguf file.");
  }

  std::optional<fs::path> chosen = std::exchange(pending_choice_, std::nullopt);
  const float footer_height = ImGui::GetFrameHeightWithSpacing();
  if (ImGui::BeginChild("listing", ImVec2(0, -footer_height), true)) DrawEntries(chosen);
  ImGui::EndChild();

  if (ImGui::Checkbox("Show hidden files", &show_hidden_)) Refresh();
  const ImGuiStyle& style = ImGui::GetStyle();
  const float buttons_width = ImGui::CalcTextSize("Cancel").x + ImGui::CalcTextSize("Choose").x +
                              style.FramePadding.x * 4 + style.ItemSpacing.x;
  ImGui::SameLine(ImGui::GetWindowContentRegionMax().x - buttons_width);
  const bool escape = ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape), false) && !ImGui::IsAnyItemActive();
  const bool cancel = ImGui::Button("Cancel") || escape;
  ImGui::SameLine();
  const std::optional<fs::path> selection = Selection();
  ImGui::BeginDisabled(!selection);
  if (ImGui::Button("Choose")) chosen = selection;
  ImGui::EndDisabled();

  if (chosen || cancel) {
    ImGui::CloseCurrentPopup();
    open_ = false;
  }
  ImGui::EndPopup();
  return chosen;
}

}  // namespace qvk::ui
