#pragma once
// Markdown-lite for chat messages: a pure parser (blocks of inline spans) and an ImGui renderer.
//
// Blocks: paragraphs (split by blank lines; single line breaks are kept, as chat text expects),
// ATX headings, bullet and numbered list items with nesting, fenced code blocks (``` or ~~~; an
// unclosed fence runs to the end, as in a reply still streaming) and rules. Inline: **bold**,
// __bold__, *italic*, _italic_, ***both***, `code` and backslash escapes, with CommonMark's
// flanking rules except that any non-ASCII character counts as punctuation, so "**注意：**这"
// works as Chinese writers expect. Emphasis does not cross line breaks. Unmatched markers stay
// literal. Everything else (links, tables, quotes, HTML) is shown as written.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ui/fonts.h"

namespace qvk::ui {

enum class SpanStyle : uint8_t { Plain, Bold, Italic, BoldItalic, Code, LineBreak };

struct MdSpan {
  SpanStyle style = SpanStyle::Plain;
  std::string_view text;  // into the parsed text; empty for LineBreak

  bool operator==(const MdSpan&) const = default;
};

enum class MdBlockKind : uint8_t { Paragraph, Heading, BulletItem, NumberedItem, CodeBlock, Rule };

struct MdBlock {
  MdBlockKind kind = MdBlockKind::Paragraph;
  int level = 0;              // Heading: 1 to 6
  int indent = 0;             // list nesting depth; paragraphs and code blocks inside a list item count too
  int number = 0;             // NumberedItem: the number as written
  std::string_view language;  // CodeBlock: the first word after the opening fence
  std::string code;           // CodeBlock: lines joined by '\n', without the fence's indentation
  bool closed = false;        // CodeBlock: false while the closing fence has not arrived
  std::vector<MdSpan> spans;  // Paragraph, Heading and list items
};

// The blocks' views point into `text`, which must outlive them.
std::vector<MdBlock> ParseMarkdown(std::string_view text);

// One line's inline spans (no LineBreak); views point into `line`.
std::vector<MdSpan> ParseInline(std::string_view line);

// What the user did during one DrawMarkdown call.
struct MarkdownActions {
  int copied_code_block = -1;  // which code block's Copy was clicked (0 = the text's first), or -1
};

// Draws `text` at the cursor, wrapped to the available width, and leaves the cursor below it.
// Copy puts the block's code on the clipboard (ImGui::SetClipboardText) and, when `actions` is
// given, reports which block. Widget IDs are local to the call: PushID per message.
void DrawMarkdown(std::string_view text, const Fonts& fonts, MarkdownActions* actions = nullptr);

}  // namespace qvk::ui
