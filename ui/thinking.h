#pragma once
// A reply that thinks before it answers, as Qwen3 writes it ("<think>\n...\n</think>\n\nanswer"),
// split so the chat can show the thinking folded above the answer. The store keeps the text as
// the model wrote it (the template gets it back whole); this is only how it is shown.
#include <string_view>

namespace qvk::ui {

struct ReplyThinking {
  bool present = false;       // the reply opens with <think> (a prefix of it while it streams in)
  bool finished = false;      // its </think> has come; until then everything so far is thinking
  std::string_view thinking;  // between the tags, without the whitespace around it
  std::string_view answer;    // after </think> without the whitespace before it; without thinking, the whole reply
};

ReplyThinking SplitThinking(std::string_view reply);

}  // namespace qvk::ui
