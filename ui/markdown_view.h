#pragma once
// Markdown-lite for chat messages, the painter: draws ParseMarkdown's blocks with ImGui, wrapped
// to the available width, in the app's fonts.
#include <string_view>
#include <vector>

#include "ui/fonts.h"
#include "ui/markdown.h"

namespace qvk::ui {

// What the user did during one DrawMarkdown call.
struct MarkdownActions {
  int copied_code_block = -1;  // which code block's Copy was clicked (0 = the text's first), or -1
};

// Draws `text` at the cursor, wrapped to the available width, and leaves the cursor below it.
// Copy puts the block's code on the clipboard (ImGui::SetClipboardText) and, when `actions` is
// given, reports which block. Widget IDs are local to the call: PushID per message.
void DrawMarkdown(std::string_view text, const Fonts& fonts, MarkdownActions* actions = nullptr);

// Draws one paragraph of `spans` as given (no Markdown parsing; see MarkedSpans), wrapped like
// DrawMarkdown's text: styled spans in the text colour, plain ones dimmed, as search snippets
// show their matched words.
void DrawSnippet(const std::vector<MdSpan>& spans, const Fonts& fonts);

}  // namespace qvk::ui
