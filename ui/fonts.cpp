#include "ui/fonts.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <imgui_internal.h>
#include <spdlog/spdlog.h>
#include <stb_truetype.h>

namespace qvk::ui {
namespace {

namespace fs = std::filesystem;

constexpr float kBaseSizePixels = 16.0f;
constexpr float kMaxScaleWithStyles = 2.25f;
constexpr float kMaxScaleWithCjkCode = 3.25f;

// Latin with its extensions, Greek, Cyrillic, Vietnamese, and the symbol blocks model replies use
// (quotes and dashes, arrows, math, box drawing for tables, check marks). U+FFFD is included so
// ImGui picks it as the fallback glyph: characters with no glyph (emoji, and everything above
// U+FFFF, which 16-bit ImWchar decodes to U+FFFD) show as the replacement box.
constexpr ImWchar kTextRanges[] = {
    0x0020, 0x024F, 0x0370, 0x03FF, 0x0400, 0x052F, 0x1E00, 0x1EFF, 0x2000, 0x206F, 0x2070, 0x209F, 0x20A0,
    0x20CF, 0x2100, 0x214F, 0x2150, 0x218F, 0x2190, 0x21FF, 0x2200, 0x22FF, 0x2300, 0x23FF, 0x2460, 0x24FF,
    0x2500, 0x257F, 0x2580, 0x259F, 0x25A0, 0x25FF, 0x2600, 0x26FF, 0x2700, 0x27BF, 0xFFFD, 0xFFFD, 0,
};

struct FontFile {
  const char* name;
  int face_index;  // the face within a .ttc collection
};

// Preferred first. In NotoSansCJK-*.ttc the faces are JP, KR, SC, TC, HK: face 2 is Simplified
// Chinese, the most likely CJK text for a Qwen model.
const std::vector<FontFile> kRegularFiles = {{"DejaVuSans.ttf", 0}, {"NotoSans-Regular.ttf", 0}};
const std::vector<FontFile> kBoldFiles = {{"DejaVuSans-Bold.ttf", 0}, {"NotoSans-Bold.ttf", 0}};
const std::vector<FontFile> kItalicFiles = {{"DejaVuSans-Oblique.ttf", 0}, {"NotoSans-Italic.ttf", 0}};
const std::vector<FontFile> kMonoFiles = {{"DejaVuSansMono.ttf", 0}, {"NotoSansMono-Regular.ttf", 0}};
const std::vector<FontFile> kCjkRegularFiles = {
    {"NotoSansCJK-Regular.ttc", 2}, {"NotoSansCJKsc-Regular.otf", 0}, {"NotoSansSC-Regular.otf", 0}};
const std::vector<FontFile> kCjkBoldFiles = {
    {"NotoSansCJK-Bold.ttc", 2}, {"NotoSansCJKsc-Bold.otf", 0}, {"NotoSansSC-Bold.otf", 0}};

std::vector<fs::path> FontDirectories() {
  std::vector<fs::path> dirs;
  if (const char* data_home = std::getenv("XDG_DATA_HOME"); data_home != nullptr && *data_home != '\0') {
    dirs.emplace_back(fs::path(data_home) / "fonts");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    dirs.emplace_back(fs::path(home) / ".local/share/fonts");
    dirs.emplace_back(fs::path(home) / ".fonts");
  }
  dirs.emplace_back("/usr/local/share/fonts");
  dirs.emplace_back("/usr/share/fonts");
  return dirs;
}

// Every font file under the font directories by file name; the first directory listed wins, so a
// user's own copy overrides the system's.
std::map<std::string, fs::path> IndexFontFiles() {
  std::map<std::string, fs::path> files;
  for (const fs::path& dir : FontDirectories()) {
    std::error_code error;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, error);
    for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      const fs::path& path = it->path();
      const std::string extension = path.extension().string();
      if (extension == ".ttf" || extension == ".ttc" || extension == ".otf") {
        files.emplace(path.filename().string(), path);
      }
    }
  }
  return files;
}

struct FoundFont {
  fs::path path;
  int face_index;
};

std::optional<FoundFont> Find(const std::map<std::string, fs::path>& files, const std::vector<FontFile>& wanted) {
  for (const FontFile& candidate : wanted) {
    if (auto it = files.find(candidate.name); it != files.end()) return FoundFont{it->second, candidate.face_index};
  }
  return std::nullopt;
}

// Font bytes in ImGui's allocator: the atlas frees the data of the config that owns it.
struct FontData {
  void* bytes = nullptr;
  int size = 0;
};

std::optional<FontData> ReadFontFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return std::nullopt;
  const std::streamoff size = in.tellg();
  if (size <= 0 || size > (1 << 30)) return std::nullopt;
  void* bytes = ImGui::MemAlloc(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(static_cast<char*>(bytes), size)) {
    ImGui::MemFree(bytes);
    return std::nullopt;
  }
  return FontData{bytes, static_cast<int>(size)};
}

// ImGui sizes a font by its ascent minus descent; this is the em square's share of that, or 0 when
// the file has no such face. Noto Sans CJK's is ~0.69 and DejaVu Sans's ~0.86.
float EmShareOfPixelHeight(const FontData& data, int face_index) {
  const auto* bytes = static_cast<const unsigned char*>(data.bytes);
  const int offset = stbtt_GetFontOffsetForIndex(bytes, face_index);
  stbtt_fontinfo info;
  if (offset < 0 || stbtt_InitFont(&info, bytes, offset) == 0) return 0.0f;
  return stbtt_ScaleForPixelHeight(&info, 1.0f) / stbtt_ScaleForMappingEmToPixels(&info, 1.0f);
}

// Adds fonts to the atlas, reading each file once: the CJK collection is ~20 MB and is merged into
// every face, so only its first use hands the bytes to the atlas and later ones share them.
class AtlasLoader {
 public:
  AtlasLoader(ImFontAtlas& atlas, float size) : atlas_(atlas), size_(size) {}

  // Merged fonts take the em size of the face they merge into, so ideographs match Latin text.
  ImFont* Add(const FoundFont& font, const ImWchar* ranges, bool merge) {
    auto [cached, inserted] = loaded_.try_emplace(font.path.string());
    bool owned_by_atlas = false;
    if (inserted) {
      std::optional<FontData> data = ReadFontFile(font.path);
      if (!data) {
        loaded_.erase(cached);
        spdlog::warn("Cannot read font file {}", font.path.string());
        return nullptr;
      }
      cached->second = *data;
      owned_by_atlas = true;
    }
    const float em_share = EmShareOfPixelHeight(cached->second, font.face_index);
    if (em_share <= 0.0f) {
      spdlog::warn("{} has no usable face {}", font.path.string(), font.face_index);
      if (owned_by_atlas) {
        ImGui::MemFree(cached->second.bytes);
        loaded_.erase(cached);
      }
      return nullptr;
    }
    if (!merge) face_em_share_ = em_share;
    const float pixels = merge ? size_ * face_em_share_ / em_share : size_;
    ImFontConfig config;
    config.FontDataOwnedByAtlas = owned_by_atlas;
    config.FontNo = font.face_index;
    config.MergeMode = merge;
    // Horizontal oversampling sharpens text at fractional x positions; ideographs are as wide as
    // they are tall and large text needs none, so either would only double atlas area.
    config.OversampleH = merge || size_ >= 2 * kBaseSizePixels ? 1 : 2;
    config.OversampleV = 1;
    std::snprintf(config.Name, sizeof(config.Name), "%s, %.0fpx", font.path.filename().string().c_str(), pixels);
    return atlas_.AddFontFromMemoryTTF(cached->second.bytes, cached->second.size, pixels, &config, ranges);
  }

 private:
  ImFontAtlas& atlas_;
  float size_;
  float face_em_share_ = 1.0f;  // of the face merges go into
  std::map<std::string, FontData> loaded_;
};

}  // namespace

Fonts LoadFonts(float scale, const ImWchar* extra_glyphs) {
  ImFontAtlas& atlas = *ImGui::GetIO().Fonts;
  const float size = kBaseSizePixels * scale;
  const std::map<std::string, fs::path> files = IndexFontFiles();
  const std::optional<FoundFont> cjk_regular = Find(files, kCjkRegularFiles);
  std::optional<FoundFont> cjk_bold = Find(files, kCjkBoldFiles);
  if (!cjk_bold) cjk_bold = cjk_regular;
  if (!cjk_regular) spdlog::info("Noto Sans CJK not found: Chinese and Japanese text will show as boxes");

  // Common simplified Chinese (2500 ideographs), CJK punctuation, kana, full-width forms and
  // U+FFFD. Hangul syllables (11172) or the full ideograph set (20000+) would, merged into four
  // faces, overflow a 4096x4096 atlas at 2x scale and take seconds to rasterize.
  const ImWchar* cjk_ranges = atlas.GetGlyphRangesChineseSimplifiedCommon();

  // Only the rows in use are uploaded (about 2048x1900 at 1x instead of 2048x2048).
  atlas.Flags |= ImFontAtlasFlags_NoPowerOfTwoHeight;
  AtlasLoader loader(atlas, size);
  auto add_face = [&](const std::vector<FontFile>& wanted, const std::optional<FoundFont>& cjk) -> ImFont* {
    const std::optional<FoundFont> found = Find(files, wanted);
    if (!found) return nullptr;
    ImFont* font = loader.Add(*found, kTextRanges, false);
    if (font != nullptr && cjk) {
      loader.Add(*cjk, cjk_ranges, true);
      if (extra_glyphs != nullptr) loader.Add(*cjk, extra_glyphs, true);
    }
    return font;
  };

  Fonts fonts;
  fonts.regular = add_face(kRegularFiles, cjk_regular);
  if (fonts.regular == nullptr) {
    spdlog::warn("No DejaVu Sans or Noto Sans font found under the font directories; using ImGui's built-in font");
    ImFontConfig config;
    config.SizePixels = 13.0f * scale;
    fonts.regular = atlas.AddFontDefault(&config);
  }
  // Measured: the four faces with CJK fill a 4096x4096 atlas at about 2.3x scale (build ~0.6 s on
  // two cores). Beyond that, bold and italic text is drawn in the regular face rather than lose its
  // glyphs, and beyond 3.25x code shows CJK as boxes (then it fits up to ~4.4x).
  if (!cjk_regular || scale <= kMaxScaleWithStyles) {
    fonts.bold = add_face(kBoldFiles, cjk_bold);
    fonts.italic = add_face(kItalicFiles, cjk_regular);
  } else {
    spdlog::info("UI scale {:.2f}: bold and italic use the regular face to keep the font atlas within 4096x4096",
                 scale);
  }
  fonts.mono = add_face(kMonoFiles, scale <= kMaxScaleWithCjkCode ? cjk_regular : std::nullopt);
  if (fonts.bold == nullptr) fonts.bold = fonts.regular;
  if (fonts.italic == nullptr) fonts.italic = fonts.regular;
  if (fonts.mono == nullptr) fonts.mono = fonts.regular;
  return fonts;
}

// --- glyphs on demand -----------------------------------------------------------------------

void GlyphCoverage::Note(std::string_view utf8, const ImFont* font) {
  // Bounds the atlas: a few thousand extra glyphs per face keep it within 4096x4096 at 1x.
  constexpr size_t kMaxExtraGlyphs = 6000;
  const char* at = utf8.data();
  const char* const end = utf8.data() + utf8.size();
  while (at < end) {
    if (static_cast<unsigned char>(*at) < 0x80) {  // ASCII: always in the atlas
      ++at;
      continue;
    }
    unsigned int code = 0;
    const int length = ImTextCharFromUtf8(&code, at, end);
    at += length > 0 ? length : 1;
    if (code == IM_UNICODE_CODEPOINT_INVALID || code > IM_UNICODE_CODEPOINT_MAX) continue;
    const auto glyph = static_cast<ImWchar>(code);
    if (font->FindGlyphNoFallback(glyph) != nullptr || wanted_.size() >= kMaxExtraGlyphs) continue;
    if (wanted_.insert(glyph).second) changed_ = true;
  }
}

bool GlyphCoverage::TakeNewGlyphs() {
  const bool changed = changed_;
  changed_ = false;
  return changed;
}

const ImWchar* GlyphCoverage::ranges() {
  ranges_.clear();
  for (const ImWchar glyph : wanted_) {
    ranges_.push_back(glyph);
    ranges_.push_back(glyph);
  }
  ranges_.push_back(0);
  return ranges_.Data;
}

}  // namespace qvk::ui
