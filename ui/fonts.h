#pragma once
// The app's four faces, loaded into ImGui's font atlas once at start-up.
#include <imgui.h>

namespace qvk::ui {

// Faces that are not installed point at `regular`; with no font file at all, every face is ImGui's
// built-in font.
struct Fonts {
  ImFont* regular = nullptr;
  ImFont* bold = nullptr;
  ImFont* italic = nullptr;
  ImFont* mono = nullptr;
};

// Adds the faces to ImGui::GetIO().Fonts at 16 px * `scale`, each merged with Noto Sans CJK (common
// simplified Chinese, kana, CJK punctuation) where installed; missing glyphs draw as U+FFFD. The
// caller builds and uploads the atlas, and may then call Fonts->ClearInputData() to free the ~40 MB
// of font files the atlas holds.
Fonts LoadFonts(float scale);

}  // namespace qvk::ui
