#include "ui/thinking.h"

#include <algorithm>

namespace qvk::ui {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
constexpr std::string_view kSpace = " \t\r\n";

std::string_view TrimStart(std::string_view text) {
  const size_t begin = text.find_first_not_of(kSpace);
  return begin == std::string_view::npos ? std::string_view() : text.substr(begin);
}

std::string_view Trim(std::string_view text) {
  text = TrimStart(text);
  return text.substr(0, text.find_last_not_of(kSpace) + 1);
}

}  // namespace

ReplyThinking SplitThinking(std::string_view reply) {
  const std::string_view start = TrimStart(reply);
  // "<thi" is where a streaming <think> may stand for a frame, when it comes as several tokens.
  if (!start.empty() && start.size() < kOpen.size() && kOpen.starts_with(start)) return {.present = true};
  if (!start.starts_with(kOpen)) return {.answer = reply};
  const std::string_view rest = start.substr(kOpen.size());
  const size_t close = rest.find(kClose);
  if (close == std::string_view::npos) {
    // A </think> arriving in pieces is not shown as text in the meantime.
    std::string_view thinking = rest;
    for (size_t piece = std::min(thinking.size(), kClose.size() - 1); piece > 0; --piece) {
      if (kClose.starts_with(thinking.substr(thinking.size() - piece))) {
        thinking.remove_suffix(piece);
        break;
      }
    }
    return {.present = true, .thinking = Trim(thinking)};
  }
  return {.present = true,
          .finished = true,
          .thinking = Trim(rest.substr(0, close)),
          .answer = TrimStart(rest.substr(close + kClose.size()))};
}

}  // namespace qvk::ui
