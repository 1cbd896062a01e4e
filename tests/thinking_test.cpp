// A reply's thinking split from its answer, as the chat shows it: stored replies and one streaming
// in, piece by piece.
#include "ui/thinking.h"

#include <string>

#include <gtest/gtest.h>

namespace qvk::ui {
namespace {

TEST(ThinkingTest, AFinishedReplySplitsAtItsTags) {
  const ReplyThinking parts = SplitThinking("<think>\nThe user greets me.\n\n</think>\n\nHello!\n\nHow can I help?");
  EXPECT_TRUE(parts.present);
  EXPECT_TRUE(parts.finished);
  EXPECT_EQ(parts.thinking, "The user greets me.");
  EXPECT_EQ(parts.answer, "Hello!\n\nHow can I help?");
}

TEST(ThinkingTest, AnEmptyThinkBlockIsThinkingOfNothing) {
  // What Qwen3 writes after a prompt that asked for no thinking, had the prompt not held it already.
  const ReplyThinking parts = SplitThinking("<think>\n\n</think>\n\nParis.");
  EXPECT_TRUE(parts.present);
  EXPECT_TRUE(parts.finished);
  EXPECT_EQ(parts.thinking, "");
  EXPECT_EQ(parts.answer, "Paris.");
}

TEST(ThinkingTest, RepliesWithoutThinkingAreAllAnswer) {
  for (const std::string reply :
       {"Hello!", "", "  \n", "Write <think> tags like this: <think>x</think>", "<thinking>"}) {
    SCOPED_TRACE(reply);
    const ReplyThinking parts = SplitThinking(reply);
    EXPECT_FALSE(parts.present);
    EXPECT_EQ(parts.answer, reply);
    EXPECT_EQ(parts.thinking, "");
  }
}

// Every prefix of a reply as it streams: thinking in progress until </think> is whole, never a
// piece of a tag on screen, and the answer only ever grows.
TEST(ThinkingTest, AStreamingReplyIsThinkingUntilItsCloseTagComes) {
  const std::string reply = "\n<think>\nLet me count: 1, 2, 3.\n</think>\n\nThree.";
  const size_t close_end = reply.find("</think>") + std::string("</think>").size();
  std::string answer_before;
  for (size_t length = 2; length <= reply.size(); ++length) {  // from its first character past the newline
    const std::string prefix = reply.substr(0, length);
    SCOPED_TRACE(prefix);
    const ReplyThinking parts = SplitThinking(prefix);
    EXPECT_TRUE(parts.present);
    EXPECT_EQ(parts.finished, length >= close_end);
    EXPECT_EQ(parts.thinking.find('<'), std::string_view::npos) << parts.thinking;
    if (!parts.finished) {
      EXPECT_EQ(parts.answer, "");
      EXPECT_TRUE(std::string_view("Let me count: 1, 2, 3.").starts_with(parts.thinking)) << parts.thinking;
    } else {
      EXPECT_EQ(parts.thinking, "Let me count: 1, 2, 3.");
      EXPECT_TRUE(std::string_view(parts.answer).starts_with(answer_before));
      answer_before = parts.answer;
    }
  }
  EXPECT_EQ(answer_before, "Three.");
}

}  // namespace
}  // namespace qvk::ui
