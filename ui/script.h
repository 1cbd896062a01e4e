#pragma once
// `qwenvk --script FILE`: drives the running app from a file of UI actions, one per line, for
// tests, demos and screenshots. Keys and typing go where GLFW's callbacks put them (the window's
// input queue) and the rest through ui/actions.h, the functions the buttons call, so a script exercises what a
// user's clicks and keystrokes do. The command list is in script.cpp and the README.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "ui/app_state.h"

namespace qvk::ui {

class ScriptRunner {
 public:
  // Reads the file; throws Error naming the line of an unknown command.
  explicit ScriptRunner(const std::filesystem::path& path);

  // Called once per frame before the frame starts (where GLFW delivers real input): runs
  // commands until one has to wait for frames, a reply or the model. Sets state.quit when the
  // script ends or fails.
  void Step(AppState& state);
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  // While waiting on generation or a model the app renders quickly so waits end promptly.
  bool waiting() const { return waiting_; }

 private:
  struct Command {
    int line = 0;
    std::string name;
    std::string argument;
  };
  // Returns false while the command is not finished (it is retried next frame).
  bool Run(AppState& state, const Command& command);
  void Fail(const Command& command, const std::string& why);

  std::vector<Command> commands_;
  size_t next_ = 0;
  int frames_left_ = -1;  // for `frames N`
  std::chrono::steady_clock::time_point wait_started_{};
  bool waiting_ = false;
  std::string error_;
};

}  // namespace qvk::ui
