#pragma once
// The terminal chat's input: lines from stdin, and Ctrl-C. While a TerminalInput lives, SIGINT
// sets a flag the generation callback reads (stopping the reply, not the program), and a Ctrl-C
// while waiting for a line ends the wait; the previous (default) handler comes back when it goes.
// One at a time: the handler's state is global.
#include <optional>
#include <string>

#include <signal.h>

namespace qvk::app {

class TerminalInput {
 public:
  TerminalInput();  // throws Error when the handler cannot be installed
  ~TerminalInput();
  TerminalInput(const TerminalInput&) = delete;
  TerminalInput& operator=(const TerminalInput&) = delete;

  // Ctrl-C was pressed since the last ClearInterrupt (a lock-free flag: any thread may read it).
  bool interrupted() const;
  // Forgets every Ctrl-C so far, so one that stopped a reply does not also end the next wait.
  void ClearInterrupt();

  // The next line of stdin without its newline; nullopt at the end of input or on a Ctrl-C
  // pressed while waiting (also one pressed since the last ClearInterrupt).
  std::optional<std::string> NextLine();

 private:
  struct sigaction previous_ {};
  std::string buffer_;  // read from stdin, not yet returned
  bool input_ended_ = false;
};

}  // namespace qvk::app
