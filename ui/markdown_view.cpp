// Sections: layout of wrapped text / drawing blocks
#include "ui/markdown_view.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>

namespace qvk::ui {
namespace {

// --- layout of wrapped text -------------------------------------------------------------------

constexpr float kLineSpacing = 1.25f;    // line height over font size
constexpr float kIndentPerLevel = 1.6f;  // list indentation in font sizes
constexpr float kBlockGap = 0.5f;        // between blocks, in font sizes
constexpr float kListItemGap = 0.15f;    // between items of one list
constexpr float kHeadingScale[] = {1.45f, 1.25f, 1.1f, 1.0f, 1.0f, 1.0f};
constexpr float kCodePadding = 3.0f;  // inline code background around its text, in pixels

// Decodes one UTF-8 sequence at `at` (malformed bytes decode as U+FFFD, one byte each); ImWchar is
// 16-bit, so code points above U+FFFF also become U+FFFD.
unsigned DecodeUtf8(std::string_view s, size_t at, size_t& length) {
  const auto lead = static_cast<unsigned char>(s[at]);
  const size_t expected = lead < 0x80           ? 1
                          : (lead >> 5) == 0x6  ? 2
                          : (lead >> 4) == 0xE  ? 3
                          : (lead >> 3) == 0x1E ? 4
                                                : 0;
  if (expected == 0 || at + expected > s.size()) {
    length = 1;
    return 0xFFFD;
  }
  unsigned code_point = expected == 1 ? lead : lead & (0x7F >> expected);
  for (size_t i = 1; i < expected; ++i) {
    const auto byte = static_cast<unsigned char>(s[at + i]);
    if ((byte & 0xC0) != 0x80) {
      length = 1;
      return 0xFFFD;
    }
    code_point = (code_point << 6) | (byte & 0x3F);
  }
  length = expected;
  return code_point > 0xFFFF ? 0xFFFD : code_point;
}

// Ideographs, kana, Hangul and full-width forms: text without spaces may wrap after each.
bool BreaksAfter(unsigned code_point) {
  return (code_point >= 0x2E80 && code_point <= 0x9FFF) || (code_point >= 0xAC00 && code_point <= 0xD7AF) ||
         (code_point >= 0xF900 && code_point <= 0xFAFF) || (code_point >= 0xFF00 && code_point <= 0xFFEF);
}

struct Run {
  ImFont* font;
  float size;
  float x;
  float width;
  std::string_view text;
  int code_span;  // which inline code span the run belongs to, or -1
  ImU32 color;
};

// Places words left to right and starts a new line when the next one does not fit; words longer
// than a line are split between characters.
class TextFlow {
 public:
  TextFlow(ImDrawList* draw_list, float left, float right, float top, float line_height)
      : draw_list_(draw_list),
        left_(left),
        right_(std::max(right, left + 1.0f)),
        top_(top),
        line_height_(line_height),
        x_(left) {}

  void Add(std::string_view text, ImFont* font, float size, int code_span, ImU32 color) {
    size_t at = 0;
    while (at < text.size()) {
      if (text[at] == ' ' || text[at] == '\t') {
        size_t end = at;
        while (end < text.size() && (text[end] == ' ' || text[end] == '\t')) ++end;
        if (x_ > left_ || code_span >= 0)
          Place(text.substr(at, end - at), font, size, code_span, color,
                Measure(text.substr(at, end - at), font, size));
        at = end;
        continue;
      }
      size_t end = at;
      while (end < text.size() && text[end] != ' ' && text[end] != '\t') {
        size_t length = 0;
        const unsigned code_point = DecodeUtf8(text, end, length);
        if (BreaksAfter(code_point)) {
          if (end == at) end += length;
          break;
        }
        end += length;
      }
      AddWord(text.substr(at, end - at), font, size, code_span, color);
      at = end;
    }
  }

  void Pad(float pixels) { x_ += pixels; }

  void NewLine() {
    Draw();
    runs_.clear();
    ++lines_;
    x_ = left_;
  }

  // Draws the last line; returns the height of all lines.
  float Finish() {
    if (!runs_.empty()) NewLine();
    return static_cast<float>(std::max(lines_, 1)) * line_height_;
  }

 private:
  static float Measure(std::string_view text, ImFont* font, float size) {
    return font->CalcTextSizeA(size, FLT_MAX, 0.0f, text.data(), text.data() + text.size()).x;
  }

  // One pass over the word, however long: a word wider than the line is split between
  // characters as the advances add up, never measured again from the break.
  void AddWord(std::string_view word, ImFont* font, float size, int code_span, ImU32 color) {
    const float width = Measure(word, font, size);
    if (x_ + width > right_ && x_ > left_) NewLine();
    if (x_ + width <= right_) {
      Place(word, font, size, code_span, color, width);
      return;
    }
    const float scale = size / font->FontSize;
    size_t line_start = 0;
    float line_width = 0.0f;
    for (size_t at = 0; at < word.size();) {
      size_t length = 0;
      const unsigned code_point = DecodeUtf8(word, at, length);
      const float advance = font->GetCharAdvance(static_cast<ImWchar>(code_point)) * scale;
      // At least one character a line, however narrow the line.
      if (at > line_start && x_ + line_width + advance > right_) {
        Place(word.substr(line_start, at - line_start), font, size, code_span, color, line_width);
        NewLine();
        line_start = at;
        line_width = 0.0f;
      }
      line_width += advance;
      at += length;
    }
    Place(word.substr(line_start), font, size, code_span, color, line_width);
  }

  void Place(std::string_view text, ImFont* font, float size, int code_span, ImU32 color, float width) {
    runs_.push_back({font, size, x_, width, text, code_span, color});
    x_ += width;
  }

  void Draw() const {
    const float y = top_ + static_cast<float>(lines_) * line_height_;
    if (!ImGui::IsRectVisible(ImVec2(left_, y), ImVec2(right_, y + line_height_))) return;
    const ImU32 code_background = ImGui::GetColorU32(ImGuiCol_FrameBg);
    for (size_t i = 0; i < runs_.size();) {
      size_t end = i + 1;
      if (runs_[i].code_span >= 0) {
        while (end < runs_.size() && runs_[end].code_span == runs_[i].code_span) ++end;
        const float pad_y = (line_height_ - runs_[i].size) * 0.5f - 1.0f;
        draw_list_->AddRectFilled(
            ImVec2(runs_[i].x - kCodePadding, y + pad_y),
            ImVec2(runs_[end - 1].x + runs_[end - 1].width + kCodePadding, y + line_height_ - pad_y), code_background,
            3.0f);
      }
      i = end;
    }
    for (const Run& run : runs_) {
      const float baseline_offset = (line_height_ - run.size) * 0.5f;
      draw_list_->AddText(run.font, run.size, ImVec2(run.x, y + baseline_offset), run.color, run.text.data(),
                          run.text.data() + run.text.size());
    }
  }

  ImDrawList* draw_list_;
  float left_;
  float right_;
  float top_;
  float line_height_;
  float x_;
  int lines_ = 0;
  std::vector<Run> runs_;
};

// --- drawing blocks ---------------------------------------------------------------------------

ImFont* FontFor(SpanStyle style, const Fonts& fonts, bool heading) {
  switch (style) {
    case SpanStyle::Bold:
    case SpanStyle::BoldItalic:
      return fonts.bold;
    case SpanStyle::Italic:
      return fonts.italic;
    case SpanStyle::Code:
      return fonts.mono;
    default:
      return heading ? fonts.bold : fonts.regular;
  }
}

class MarkdownPainter {
 public:
  // `dim_plain`: plain text in the dimmed colour, so that styled words stand out (snippets).
  MarkdownPainter(const Fonts& fonts, MarkdownActions* actions, bool dim_plain = false)
      : fonts_(fonts), actions_(actions), dim_plain_(dim_plain) {
    origin_ = ImGui::GetCursorScreenPos();
    right_ = origin_.x + std::max(ImGui::GetContentRegionAvail().x, 1.0f);
    size_ = fonts.regular->FontSize;
    indent_step_ = std::round(size_ * kIndentPerLevel);
  }

  void Draw(const std::vector<MdBlock>& blocks) {
    const MdBlock* previous = nullptr;
    for (const MdBlock& block : blocks) {
      const ImVec2 cursor = ImGui::GetCursorScreenPos();
      const float gap = previous == nullptr                          ? 0.0f
                        : IsListPart(*previous) && IsListPart(block) ? kListItemGap
                                                                     : kBlockGap;
      ImGui::SetCursorScreenPos(ImVec2(origin_.x, cursor.y + std::round(gap * size_)));
      switch (block.kind) {
        case MdBlockKind::CodeBlock:
          DrawCodeBlock(block);
          break;
        case MdBlockKind::Rule:
          DrawRule();
          break;
        default:
          DrawText(block);
          break;
      }
      previous = &block;
    }
  }

 private:
  static bool IsListItem(const MdBlock& block) {
    return block.kind == MdBlockKind::BulletItem || block.kind == MdBlockKind::NumberedItem;
  }
  // Items and what is indented under them sit closer together than other blocks.
  static bool IsListPart(const MdBlock& block) { return IsListItem(block) || block.indent > 0; }

  void DrawText(const MdBlock& block) {
    const bool heading = block.kind == MdBlockKind::Heading;
    const float size = heading ? std::round(size_ * kHeadingScale[std::clamp(block.level, 1, 6) - 1]) : size_;
    const float line_height = std::round(size * kLineSpacing);
    const ImVec2 top_left = ImGui::GetCursorScreenPos();
    const float left = top_left.x + static_cast<float>(block.indent + (IsListItem(block) ? 1 : 0)) * indent_step_;
    ImDrawList* draw_list = ImGui::GetWindowDrawList();

    TextFlow flow(draw_list, left, right_, top_left.y, line_height);
    const ImU32 text_color = ImGui::GetColorU32(ImGuiCol_Text);
    const ImU32 plain_color = dim_plain_ ? ImGui::GetColorU32(ImGuiCol_TextDisabled) : text_color;
    int code_span = 0;
    for (const MdSpan& span : block.spans) {
      if (span.style == SpanStyle::LineBreak) {
        flow.NewLine();
      } else if (span.style == SpanStyle::Code) {
        flow.Pad(kCodePadding);
        flow.Add(span.text, fonts_.mono, size, code_span++, text_color);
        flow.Pad(kCodePadding);
      } else {
        flow.Add(span.text, FontFor(span.style, fonts_, heading), size, -1,
                 span.style == SpanStyle::Plain ? plain_color : text_color);
      }
    }
    float height = flow.Finish();

    const float middle = top_left.y + line_height * 0.5f;
    if (block.kind == MdBlockKind::BulletItem) {
      const ImVec2 center(left - indent_step_ * 0.5f, middle);
      const float radius = std::max(2.0f, size * 0.17f);
      if (block.indent == 0) {
        draw_list->AddCircleFilled(center, radius, text_color);
      } else if (block.indent == 1) {
        draw_list->AddCircle(center, radius, text_color, 0, 1.0f);
      } else {
        draw_list->AddRectFilled(ImVec2(center.x - radius, center.y - radius),
                                 ImVec2(center.x + radius, center.y + radius), text_color);
      }
    } else if (block.kind == MdBlockKind::NumberedItem) {
      char label[16];
      std::snprintf(label, sizeof(label), "%d.", block.number);
      const float width = fonts_.regular->CalcTextSizeA(size, FLT_MAX, 0.0f, label).x;
      draw_list->AddText(fonts_.regular, size, ImVec2(left - width - size * 0.35f, middle - size * 0.5f), text_color,
                         label);
    } else if (heading && block.level <= 2) {
      const float y = top_left.y + height + 2.0f;
      draw_list->AddLine(ImVec2(top_left.x, y), ImVec2(right_, y), ImGui::GetColorU32(ImGuiCol_Separator));
      height += 4.0f;
    }
    ImGui::Dummy(ImVec2(right_ - top_left.x, height));
  }

  void DrawRule() {
    const ImVec2 top_left = ImGui::GetCursorScreenPos();
    const float y = std::round(top_left.y + size_ * 0.5f);
    ImGui::GetWindowDrawList()->AddLine(ImVec2(top_left.x, y), ImVec2(right_, y),
                                        ImGui::GetColorU32(ImGuiCol_Separator));
    ImGui::Dummy(ImVec2(right_ - top_left.x, size_));
  }

  // A header row (language, Copy) over a child window that scrolls long lines sideways.
  void DrawCodeBlock(const MdBlock& block) {
    const ImGuiStyle& style = ImGui::GetStyle();
    const int index = code_blocks_++;
    ImGui::PushID(index);
    const ImVec2 top_left(ImGui::GetCursorScreenPos().x + static_cast<float>(block.indent) * indent_step_,
                          ImGui::GetCursorScreenPos().y);
    const float width = std::max(right_ - top_left.x, 1.0f);
    const float padding = std::round(size_ * 0.5f);
    const float header_height = std::round(size_ + padding);
    const char* code_begin = block.code.data();
    const char* code_end = code_begin + block.code.size();
    const ImVec2 code_size = fonts_.mono->CalcTextSizeA(fonts_.mono->FontSize, FLT_MAX, 0.0f, code_begin, code_end);
    const float lines_height = std::max(code_size.y, fonts_.mono->FontSize);
    const bool scrolls = code_size.x + 2 * padding > width;
    const float child_height = lines_height + padding + (scrolls ? style.ScrollbarSize : 0.0f);

    ImDrawList* draw_list = ImGui::GetWindowDrawList();
    draw_list->AddRectFilled(top_left, ImVec2(top_left.x + width, top_left.y + header_height + child_height),
                             ImGui::GetColorU32(ImGuiCol_FrameBg), 4.0f);
    if (!block.language.empty()) {
      draw_list->AddText(fonts_.mono, fonts_.mono->FontSize, ImVec2(top_left.x + padding, top_left.y + padding * 0.5f),
                         ImGui::GetColorU32(ImGuiCol_TextDisabled), block.language.data(),
                         block.language.data() + block.language.size());
    }

    ImGuiStorage* storage = ImGui::GetStateStorage();
    const ImGuiID copied_at_id = ImGui::GetID("copied at");
    const bool recently_copied = ImGui::GetTime() - static_cast<double>(storage->GetFloat(copied_at_id, -100.0f)) < 1.5;
    const char* label = recently_copied ? "Copied###copy" : "Copy###copy";
    ImGui::PushFont(fonts_.regular);
    const float button_width = ImGui::CalcTextSize(label, nullptr, true).x + style.FramePadding.x * 2;
    ImGui::SetCursorScreenPos(
        ImVec2(top_left.x + width - button_width - padding * 0.5f, top_left.y + (header_height - size_) * 0.5f));
    if (ImGui::SmallButton(label)) {
      ImGui::SetClipboardText(block.code.c_str());
      storage->SetFloat(copied_at_id, static_cast<float>(ImGui::GetTime()));
      if (actions_ != nullptr) actions_->copied_code_block = index;
    }
    ImGui::PopFont();

    ImGui::SetCursorScreenPos(ImVec2(top_left.x, top_left.y + header_height));
    ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(padding, padding * 0.5f));
    ImGui::PushStyleColor(ImGuiCol_ChildBg, IM_COL32(0, 0, 0, 0));
    if (ImGui::BeginChild("code", ImVec2(width, child_height), false,
                          ImGuiWindowFlags_HorizontalScrollbar | ImGuiWindowFlags_AlwaysUseWindowPadding)) {
      ImGui::PushFont(fonts_.mono);
      ImGui::TextUnformatted(code_begin, code_end);
      ImGui::PopFont();
    }
    ImGui::EndChild();
    ImGui::PopStyleColor();
    ImGui::PopStyleVar();
    ImGui::PopID();
  }

  const Fonts& fonts_;
  MarkdownActions* actions_;
  bool dim_plain_;
  ImVec2 origin_;
  float right_;
  float size_;
  float indent_step_;
  int code_blocks_ = 0;
};

}  // namespace

void DrawMarkdown(std::string_view text, const Fonts& fonts, MarkdownActions* actions) {
  if (actions != nullptr) actions->copied_code_block = -1;
  const std::vector<MdBlock> blocks = ParseMarkdown(text);
  // Block spacing is explicit; ImGui's item spacing would add to it after every line.
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0.0f));
  MarkdownPainter(fonts, actions).Draw(blocks);
  ImGui::PopStyleVar();
}

void DrawSnippet(const std::vector<MdSpan>& spans, const Fonts& fonts) {
  if (spans.empty()) return;
  MdBlock paragraph;
  paragraph.spans = spans;
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0.0f));
  MarkdownPainter(fonts, nullptr, true).Draw({paragraph});
  ImGui::PopStyleVar();
}

}  // namespace qvk::ui
