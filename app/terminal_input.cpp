#include "app/terminal_input.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk::app {
namespace {

// The handler may run on any thread. The pipe wakes a poll() waiting for stdin even when the
// signal lands just before it starts waiting (a flag alone would be missed there), and its write
// end is non-blocking so the handler never waits.
std::atomic<bool> g_interrupted{false};
int g_wake_pipe[2] = {-1, -1};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void OnInterrupt(int) {
  const int saved_errno = errno;
  g_interrupted.store(true);
  const char byte = 1;
  [[maybe_unused]] const ssize_t written = write(g_wake_pipe[1], &byte, 1);
  errno = saved_errno;
}

void DrainWakePipe() {
  char bytes[64];
  while (read(g_wake_pipe[0], bytes, sizeof bytes) > 0) {
  }
}

}  // namespace

TerminalInput::TerminalInput() {
  if (pipe2(g_wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw Error(fmt::format("cannot set up Ctrl-C handling: {}", std::strerror(errno)));
  }
  g_interrupted = false;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  // Interrupted system calls (GPU waits, writes to stdout) resume; the wait for input is a poll()
  // that the pipe wakes.
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &action, &previous_) != 0) {
    close(g_wake_pipe[0]);
    close(g_wake_pipe[1]);
    throw Error(fmt::format("cannot set up Ctrl-C handling: {}", std::strerror(errno)));
  }
}

TerminalInput::~TerminalInput() {
  sigaction(SIGINT, &previous_, nullptr);
  close(g_wake_pipe[0]);
  close(g_wake_pipe[1]);
  g_wake_pipe[0] = g_wake_pipe[1] = -1;
}

bool TerminalInput::interrupted() const {
  return g_interrupted.load();
}

void TerminalInput::ClearInterrupt() {
  g_interrupted = false;
  DrainWakePipe();
}

std::optional<std::string> TerminalInput::NextLine() {
  while (true) {
    if (const size_t end = buffer_.find('\n'); end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return line;
    }
    if (input_ended_) {
      if (buffer_.empty()) return std::nullopt;
      return std::exchange(buffer_, {});  // a last line without a newline
    }
    pollfd waits[2] = {{.fd = STDIN_FILENO, .events = POLLIN, .revents = 0},
                       {.fd = g_wake_pipe[0], .events = POLLIN, .revents = 0}};
    if (poll(waits, 2, -1) < 0) {
      if (errno == EINTR) continue;  // the pipe says whether it was Ctrl-C
      throw Error(fmt::format("cannot read the terminal: {}", std::strerror(errno)));
    }
    if (waits[1].revents != 0) return std::nullopt;
    if (waits[0].revents == 0) continue;
    char bytes[4096];
    const ssize_t n = read(STDIN_FILENO, bytes, sizeof bytes);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw Error(fmt::format("cannot read the terminal: {}", std::strerror(errno)));
    }
    if (n == 0) input_ended_ = true;
    buffer_.append(bytes, static_cast<size_t>(n));
  }
}

}  // namespace qvk::app
