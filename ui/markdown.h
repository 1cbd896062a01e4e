#pragma once
// Markdown-lite for chat messages, the parser: text to blocks of inline spans, without ImGui
// (ui/markdown_view.h draws them).
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

// Text that is not Markdown, with some parts marked: what lies between `start` and `end` becomes
// Bold spans, the rest Plain, each '\n' a LineBreak; the markers themselves are dropped (an
// unclosed one marks to the end). Views point into `text`.
std::vector<MdSpan> MarkedSpans(std::string_view text, char start, char end);

}  // namespace qvk::ui
