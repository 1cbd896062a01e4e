#pragma once
// The app's four faces, loaded into ImGui's font atlas once at start-up.
#include <set>
#include <string_view>

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
//
// `extra_glyphs` (ImGui glyph ranges, or null) adds code points from Noto Sans CJK beyond that
// common set: what a GlyphCoverage found the text on screen needs.
Fonts LoadFonts(float scale, const ImWchar* extra_glyphs = nullptr);

// ImGui 1.86 has no on-demand glyphs, and every ideograph and Hangul syllable in the atlas would
// not fit it. So the chat notes the text it draws; code points the atlas lacks are collected here
// and the app rebuilds the atlas with them between frames (once per new batch).
class GlyphCoverage {
 public:
  // Records the code points of `utf8` that `font` has no glyph for (each only once).
  void Note(std::string_view utf8, const ImFont* font);
  // True when Note found code points since the last rebuild; clears the flag.
  bool TakeNewGlyphs();
  // Every code point asked for so far, as ImGui glyph ranges (valid until the next Note).
  const ImWchar* ranges();

 private:
  std::set<ImWchar> wanted_;
  ImVector<ImWchar> ranges_;
  bool changed_ = false;
};

}  // namespace qvk::ui
