// libFuzzer target: the bytes as a model's reply, which the chat draws while it streams in: split
// into thinking and answer, parsed as Markdown-lite whole and at every length a streaming reply
// passes through on the way (a few of them: its halves, and one byte short), and as one line of
// inline spans and as marked text. Every span and code block must lie inside the text it came
// from. A crash, a sanitizer report, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ui/markdown.h"
#include "ui/thinking.h"

namespace {

void CheckInside(std::string_view view, std::string_view text) {
  if (view.empty()) return;
  if (view.data() < text.data() || view.data() + view.size() > text.data() + text.size()) __builtin_trap();
}

void CheckSpans(const std::vector<qvk::ui::MdSpan>& spans, std::string_view text) {
  for (const qvk::ui::MdSpan& span : spans) CheckInside(span.text, text);
}

void Reply(std::string_view reply) {
  const qvk::ui::ReplyThinking split = qvk::ui::SplitThinking(reply);
  CheckInside(split.thinking, reply);
  CheckInside(split.answer, reply);
  for (const std::string_view text : {split.thinking, split.answer}) {
    for (const qvk::ui::MdBlock& block : qvk::ui::ParseMarkdown(text)) {
      CheckSpans(block.spans, text);
      CheckInside(block.language, text);
      if (block.code.size() > text.size()) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Reply(text);
  if (size > 1) {
    Reply(text.substr(0, size / 2));
    Reply(text.substr(0, size - 1));
  }
  CheckSpans(qvk::ui::ParseInline(text), text);
  CheckSpans(qvk::ui::MarkedSpans(text, '[', ']'), text);
  return 0;
}
