#pragma once
// Markdown-lite for chat messages, the painter: draws ParseMarkdown's blocks with ImGui, wrapped
// to the available width, in the app's fonts.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ui/fonts.h"
#include "ui/markdown.h"

namespace qvk::ui {

// What the user did during one DrawMarkdown call.
struct MarkdownActions {
  int copied_code_block = -1;  // which code block's Copy was clicked (0 = the text's first), or -1
};

// What DrawMarkdown keeps of one text between frames, so that a frame lays out only the lines in
// view: the parsed blocks, each block's height, where each wrapped line starts and the size of
// each code block. Valid for one text, width and font size; DrawMarkdown starts it over when any
// of them changed.
class MarkdownLayout {
 public:
  MarkdownLayout() = default;
  // Kept in place: the blocks point into `text`, which a move of a short string would not keep.
  MarkdownLayout(const MarkdownLayout&) = delete;
  MarkdownLayout& operator=(const MarkdownLayout&) = delete;

  // Where a wrapped line starts: a span of its block and a byte offset into that span's text.
  struct LineStart {
    size_t span = 0;
    size_t offset = 0;
    int code_span = 0;  // inline code spans before it in the block
  };
  struct Block {
    float height = -1.0f;  // below 0: not laid out yet
    std::vector<LineStart> lines;
    float code_width = 0.0f;  // code blocks: the widest line
    float code_height = 0.0f;
  };

  std::string text;  // the blocks' views point here
  float width = -1.0f;
  float font_size = 0.0f;
  std::vector<MdBlock> blocks;
  std::vector<Block> layout;  // one per block
};

// Draws `text` at the cursor, wrapped to the available width, and leaves the cursor below it.
// Copy puts the block's code on the clipboard (ImGui::SetClipboardText) and, when `actions` is
// given, reports which block. Widget IDs are local to the call: PushID per message. With a
// `layout` kept from the last frame, only the lines in the window's clip rectangle are laid out.
void DrawMarkdown(std::string_view text, const Fonts& fonts, MarkdownActions* actions = nullptr,
                  MarkdownLayout* layout = nullptr);

// Draws one paragraph of `spans` as given (no Markdown parsing; see MarkedSpans), wrapped like
// DrawMarkdown's text: styled spans in the text colour, plain ones dimmed, as search snippets
// show their matched words.
void DrawSnippet(const std::vector<MdSpan>& spans, const Fonts& fonts);

}  // namespace qvk::ui
