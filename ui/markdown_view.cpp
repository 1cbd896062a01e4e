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
// than a line are split between characters. A full layout records where each line starts; a
// later frame resumes at the first line in view and stops below the last.
class TextFlow {
 public:
  TextFlow(ImDrawList* draw_list, float left, float right, float top, float line_height)
      : draw_list_(draw_list),
        left_(left),
        right_(std::max(right, left + 1.0f)),
        top_(top),
        line_height_(line_height),
        x_(left) {}

  void Record(std::vector<MarkdownLayout::LineStart>* lines) {
    record_ = lines;
    record_->assign(1, MarkdownLayout::LineStart{});
  }
  void Resume(int line, float stop_below) {
    lines_ = line;
    stop_below_ = stop_below;
  }
  bool stopped() const { return stopped_; }
  // The span the next Add calls lay out: its index in the block, where its text starts, and how
  // many inline code spans came before it.
  void BeginSpan(size_t index, const char* text, int code_spans_before) {
    span_ = index;
    span_text_ = text;
    code_spans_before_ = code_spans_before;
  }

  void Add(std::string_view text, ImFont* font, float size, int code_span, ImU32 color) {
    size_t at = 0;
    while (at < text.size() && !stopped_) {
      if (text[at] == ' ' || text[at] == '\t') {
        size_t end = at;
        while (end < text.size() && (text[end] == ' ' || text[end] == '\t')) ++end;
        if (x_ > left_ || code_span >= 0)
          Place(text.substr(at, end - at), font, size, code_span, color,
                Measure(text.substr(at, end - at), font, size));
        at = end;
        continue;
      }
      at = AddWord(text, at, font, size, code_span, color);
    }
  }

  void Pad(float pixels) { x_ += pixels; }

  // A line break in the text: the next line starts with the next span.
  void NewLine() { BreakLine({span_ + 1, 0, code_spans_before_}); }

  // Draws the last line; returns the height of all lines.
  float Finish() {
    if (!runs_.empty()) {
      Draw();
      ++lines_;
    }
    return static_cast<float>(std::max(lines_, 1)) * line_height_;
  }

 private:
  static float Measure(std::string_view text, ImFont* font, float size) {
    return font->CalcTextSizeA(size, FLT_MAX, 0.0f, text.data(), text.data() + text.size()).x;
  }

  // Wraps before `next`, a point in the current span's text.
  void BreakBefore(const char* next) { BreakLine({span_, static_cast<size_t>(next - span_text_), code_spans_before_}); }

  void BreakLine(const MarkdownLayout::LineStart& next) {
    Draw();
    runs_.clear();
    ++lines_;
    x_ = left_;
    if (record_ != nullptr) record_->push_back(next);
    if (top_ + static_cast<float>(lines_) * line_height_ > stop_below_) stopped_ = true;
  }

  // The word starting at `at` (up to a space, or a character lines may break after); returns
  // where it ends. Each character is measured once, walking forward: a word wider than a line is
  // split between characters as the advances add up, and its walk ends when the flow stops, so
  // a megabyte-long word costs what the lines in view hold.
  size_t AddWord(std::string_view text, size_t at, ImFont* font, float size, int code_span, ImU32 color) {
    const float scale = size / font->FontSize;
    const float line_width = right_ - left_;
    size_t end = at;
    float width = 0.0f;
    bool over_long = false;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t') {
      size_t length = 0;
      const unsigned code_point = DecodeUtf8(text, end, length);
      const bool breaks_after = BreaksAfter(code_point);
      if (breaks_after && end > at) break;
      width += font->GetCharAdvance(static_cast<ImWchar>(code_point)) * scale;
      end += length;
      if (breaks_after) break;
      if (width > line_width) {
        over_long = true;
        break;
      }
    }
    if (x_ + width > right_ && x_ > left_) {
      BreakBefore(text.data() + at);
      if (stopped_) return text.size();
    }
    if (!over_long) {
      Place(text.substr(at, end - at), font, size, code_span, color, width);
      return end;
    }
    size_t line_start = at;
    float placed_width = 0.0f;
    for (end = at; end < text.size() && text[end] != ' ' && text[end] != '\t';) {
      size_t length = 0;
      const unsigned code_point = DecodeUtf8(text, end, length);
      if (end > at && BreaksAfter(code_point)) break;
      const float advance = font->GetCharAdvance(static_cast<ImWchar>(code_point)) * scale;
      // At least one character a line, however narrow the line.
      if (end > line_start && x_ + placed_width + advance > right_) {
        Place(text.substr(line_start, end - line_start), font, size, code_span, color, placed_width);
        BreakBefore(text.data() + end);
        if (stopped_) return text.size();
        line_start = end;
        placed_width = 0.0f;
      }
      placed_width += advance;
      end += length;
    }
    Place(text.substr(line_start, end - line_start), font, size, code_span, color, placed_width);
    return end;
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
  std::vector<MarkdownLayout::LineStart>* record_ = nullptr;
  float stop_below_ = FLT_MAX;
  bool stopped_ = false;
  size_t span_ = 0;
  const char* span_text_ = nullptr;
  int code_spans_before_ = 0;
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
  // `layout`: what earlier frames laid out of these blocks (one entry per block), or null.
  MarkdownPainter(const Fonts& fonts, MarkdownActions* actions, bool dim_plain, MarkdownLayout* layout)
      : fonts_(fonts), actions_(actions), dim_plain_(dim_plain), layout_(layout) {
    origin_ = ImGui::GetCursorScreenPos();
    right_ = origin_.x + std::max(ImGui::GetContentRegionAvail().x, 1.0f);
    size_ = fonts.regular->FontSize;
    indent_step_ = std::round(size_ * kIndentPerLevel);
  }

  void Draw(const std::vector<MdBlock>& blocks) {
    const MdBlock* previous = nullptr;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const MdBlock& block = blocks[i];
      const ImVec2 cursor = ImGui::GetCursorScreenPos();
      const float gap = previous == nullptr                          ? 0.0f
                        : IsListPart(*previous) && IsListPart(block) ? kListItemGap
                                                                     : kBlockGap;
      const float top = cursor.y + std::round(gap * size_);
      ImGui::SetCursorScreenPos(ImVec2(origin_.x, top));
      previous = &block;
      MarkdownLayout::Block* cached = layout_ != nullptr ? &layout_->layout[i] : nullptr;
      // A block laid out before and out of view now: only its height.
      if (cached != nullptr && cached->height >= 0 &&
          !ImGui::IsRectVisible(ImVec2(origin_.x, top), ImVec2(right_, top + cached->height))) {
        if (block.kind == MdBlockKind::CodeBlock) ++code_blocks_;  // the next blocks keep their numbers
        ImGui::Dummy(ImVec2(right_ - origin_.x, cached->height));
        continue;
      }
      switch (block.kind) {
        case MdBlockKind::CodeBlock:
          DrawCodeBlock(block, cached);
          break;
        case MdBlockKind::Rule:
          DrawRule();
          break;
        default:
          DrawText(block, cached);
          break;
      }
      if (cached != nullptr) cached->height = ImGui::GetCursorScreenPos().y - top;
    }
  }

 private:
  static bool IsListItem(const MdBlock& block) {
    return block.kind == MdBlockKind::BulletItem || block.kind == MdBlockKind::NumberedItem;
  }
  // Items and what is indented under them sit closer together than other blocks.
  static bool IsListPart(const MdBlock& block) { return IsListItem(block) || block.indent > 0; }

  void DrawText(const MdBlock& block, MarkdownLayout::Block* cached) {
    const bool heading = block.kind == MdBlockKind::Heading;
    const bool underlined = heading && block.level <= 2;
    const float size = heading ? std::round(size_ * kHeadingScale[std::clamp(block.level, 1, 6) - 1]) : size_;
    const float line_height = std::round(size * kLineSpacing);
    const ImVec2 top_left = ImGui::GetCursorScreenPos();
    const float left = top_left.x + static_cast<float>(block.indent + (IsListItem(block) ? 1 : 0)) * indent_step_;
    ImDrawList* draw_list = ImGui::GetWindowDrawList();

    TextFlow flow(draw_list, left, right_, top_left.y, line_height);
    MarkdownLayout::LineStart start;
    const bool resume = cached != nullptr && cached->height >= 0 && !cached->lines.empty();
    if (resume) {
      const float lines_above = std::floor((draw_list->GetClipRectMin().y - top_left.y) / line_height);
      const size_t line = std::min(static_cast<size_t>(std::max(lines_above, 0.0f)), cached->lines.size() - 1);
      start = cached->lines[line];
      flow.Resume(static_cast<int>(line), draw_list->GetClipRectMax().y);
    } else if (cached != nullptr) {
      flow.Record(&cached->lines);
    }
    const ImU32 text_color = ImGui::GetColorU32(ImGuiCol_Text);
    const ImU32 plain_color = dim_plain_ ? ImGui::GetColorU32(ImGuiCol_TextDisabled) : text_color;
    int code_span = start.code_span;
    for (size_t i = start.span; i < block.spans.size() && !flow.stopped(); ++i) {
      const MdSpan& span = block.spans[i];
      const bool continued = i == start.span && start.offset > 0;
      const std::string_view text = continued ? span.text.substr(start.offset) : span.text;
      flow.BeginSpan(i, span.text.data(), code_span);
      if (span.style == SpanStyle::LineBreak) {
        flow.NewLine();
      } else if (span.style == SpanStyle::Code) {
        if (!continued) flow.Pad(kCodePadding);
        flow.Add(text, fonts_.mono, size, code_span++, text_color);
        flow.Pad(kCodePadding);
      } else {
        flow.Add(text, FontFor(span.style, fonts_, heading), size, -1,
                 span.style == SpanStyle::Plain ? plain_color : text_color);
      }
    }
    float height = flow.Finish();
    if (resume) height = cached->height - (underlined ? 4.0f : 0.0f);

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
    } else if (underlined) {
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
  void DrawCodeBlock(const MdBlock& block, MarkdownLayout::Block* cached) {
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
    ImVec2 code_size;
    if (cached != nullptr && cached->height >= 0) {
      code_size = ImVec2(cached->code_width, cached->code_height);
    } else {
      code_size = fonts_.mono->CalcTextSizeA(fonts_.mono->FontSize, FLT_MAX, 0.0f, code_begin, code_end);
      if (cached != nullptr) {
        cached->code_width = code_size.x;
        cached->code_height = code_size.y;
      }
    }
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
  MarkdownLayout* layout_;
  ImVec2 origin_;
  float right_;
  float size_;
  float indent_step_;
  int code_blocks_ = 0;
};

}  // namespace

void DrawMarkdown(std::string_view text, const Fonts& fonts, MarkdownActions* actions, MarkdownLayout* layout) {
  if (actions != nullptr) actions->copied_code_block = -1;
  std::vector<MdBlock> parsed;
  const std::vector<MdBlock>* blocks = &parsed;
  if (layout != nullptr) {
    const float width = std::max(ImGui::GetContentRegionAvail().x, 1.0f);
    if (layout->width != width || layout->font_size != fonts.regular->FontSize || layout->text != text) {
      layout->text.assign(text);
      layout->width = width;
      layout->font_size = fonts.regular->FontSize;
      layout->blocks = ParseMarkdown(layout->text);
      layout->layout.assign(layout->blocks.size(), MarkdownLayout::Block{});
    }
    blocks = &layout->blocks;
  } else {
    parsed = ParseMarkdown(text);
  }
  // Block spacing is explicit; ImGui's item spacing would add to it after every line.
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0.0f));
  MarkdownPainter(fonts, actions, false, layout).Draw(*blocks);
  ImGui::PopStyleVar();
}

void DrawSnippet(const std::vector<MdSpan>& spans, const Fonts& fonts) {
  if (spans.empty()) return;
  MdBlock paragraph;
  paragraph.spans = spans;
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(ImGui::GetStyle().ItemSpacing.x, 0.0f));
  MarkdownPainter(fonts, nullptr, true, nullptr).Draw({paragraph});
  ImGui::PopStyleVar();
}

}  // namespace qvk::ui
