// `qwenvk serve` on the fixture model in a child process, for the tests of the app as a client of
// an OpenAI-compatible server: the chat session's remote engine and the desktop app's.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "test_util.h"

namespace qvk::test {

// `qwenvk serve` on a model (the fixture model unless told) in a child process, its log in a file.
class ServeProcess {
 public:
  // port 0: any free one.
  ServeProcess(const std::filesystem::path& log, uint16_t port, const std::string& api_key = "",
               const std::filesystem::path& model = TestDataDir() / "qwen2-tiny")
      : log_(log) {
    std::vector<std::string> args = {QwenvkBinary().string(), "serve",  "--model",
                                     model.string(),          "--port", std::to_string(port)};
    if (!api_key.empty()) args.insert(args.end(), {"--api-key", api_key});
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, STDERR_FILENO);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const std::regex listening("listening on http://127\\.0\\.0\\.1:(\\d+)");
    std::smatch match;
    const bool up = WaitFor([&] {
      const std::string text = std::filesystem::exists(log) ? ReadFile(log) : "";
      if (!std::regex_search(text, match, listening)) return false;
      port_ = static_cast<uint16_t>(std::stoi(match[1]));
      return true;
    });
    if (!up) ADD_FAILURE() << "qwenvk serve did not start: " << ReadFile(log);
  }
  ~ServeProcess() { Kill(); }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  std::filesystem::path log_;
  pid_t pid_ = 0;
  uint16_t port_ = 0;
};

}  // namespace qvk::test
