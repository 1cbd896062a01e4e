#pragma once
// Ctrl-C and stdin for the terminal chat. While a ChatInterrupts lives, SIGINT sets a flag the
// generation callback reads (stopping the reply, not the program), and a Ctrl-C while waiting for
// a line ends the wait; the default handler comes back when it goes.
#include <optional>
#include <string>

#include <signal.h>

namespace qvk::app {

class ChatInterrupts {
 public:
  ChatInterrupts();  // throws Error when the handler cannot be installed
  ~ChatInterrupts();
  ChatInterrupts(const ChatInterrupts&) = delete;
  ChatInterrupts& operator=(const ChatInterrupts&) = delete;

  // Ctrl-C was pressed since the last Clear (async-signal-safe to read from any thread).
  bool requested() const;
  // Forgets every Ctrl-C so far, so one that stopped a reply does not also end the next wait.
  void Clear();

  // The next line of stdin without its newline; nullopt at the end of input or on a Ctrl-C
  // pressed while waiting (also one pressed since the last Clear).
  std::optional<std::string> NextLine();

 private:
  struct sigaction previous_ {};
  std::string buffer_;  // read from stdin, not yet returned
  bool input_ended_ = false;
};

}  // namespace qvk::app
