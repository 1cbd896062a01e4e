// The qwenvk command line as a user (or a script) runs it: JSON shapes on stdout, files
// written, streamed text, clean refusals; always with the validation layer on.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace {

const std::filesystem::path kData = qvk::test::TestDataDir();
const std::string kModel = (kData / "qwen2-tiny").string();

struct Result {
  int status = -1;
  std::string out, err;
};

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs qwenvk with `args` (shell-quoted by the caller), optional stdin text.
Result RunQwenvk(const std::string& args, const std::string& input = "") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto in_path = dir / ("qwenvk-cli-in-" + std::to_string(getpid()));
  const auto err_path = dir / ("qwenvk-cli-err-" + std::to_string(getpid()));
  std::ofstream(in_path) << input;
  const std::string command = "QWENVK_VALIDATION=1 '" + qvk::test::QwenvkBinary().string() + "' " + args + " <'" +
                              in_path.string() + "' 2>'" + err_path.string() + "'";
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) r.out.append(buffer, n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = Slurp(err_path);
  std::filesystem::remove(in_path);
  std::filesystem::remove(err_path);
  return r;
}

// Replies a generate or chat run finished: each ends with its statistics line.
size_t Replies(const std::string& err) {
  size_t replies = 0;
  for (size_t at = 0; (at = err.find("prompt tokens", at)) != std::string::npos; ++at) ++replies;
  return replies;
}

// The prompt sizes of the replies a chat finished, from their statistics lines.
std::vector<uint32_t> PromptTokens(const std::string& err) {
  std::vector<uint32_t> sizes;
  const std::regex line(R"(\[(\d+) prompt tokens)");
  for (auto it = std::sregex_iterator(err.begin(), err.end(), line); it != std::sregex_iterator(); ++it) {
    sizes.push_back(static_cast<uint32_t>(std::stoul((*it)[1])));
  }
  return sizes;
}

// qwenvk running with pipes on stdin, stdout and stderr, for a test to talk to and signal.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    // A child that quit too early fails the next Write instead of killing the test binary.
    signal(SIGPIPE, SIG_IGN);
    int in[2], stdout_pipe[2], stderr_pipe[2];
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(stdout_pipe, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(stderr_pipe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, stdout_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, stderr_pipe[1], STDERR_FILENO);
    const std::string binary = qvk::test::QwenvkBinary().string();
    std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::string validation = "QWENVK_VALIDATION=1";
    std::vector<char*> env = {validation.data()};
    for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
    env.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), env.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(stdout_pipe[1]);
    close(stderr_pipe[1]);
    input_ = in[1];
    out_ = stdout_pipe[0];
    err_ = stderr_pipe[0];
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && status_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int fd : {input_, out_, err_}) {
      if (fd >= 0) close(fd);
    }
  }

  void Write(const std::string& text) {
    EXPECT_EQ(write(input_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void Signal(int signal) { EXPECT_EQ(kill(pid_, signal), 0); }

  // Reads stdout and stderr until `done()` holds; false when both ended first, or when nothing
  // came for two minutes (a hung child fails the test rather than hanging the suite).
  bool ReadUntil(const std::function<bool()>& done) {
    while (!done()) {
      pollfd fds[2] = {{.fd = out_, .events = POLLIN, .revents = 0}, {.fd = err_, .events = POLLIN, .revents = 0}};
      if (out_ < 0 && err_ < 0) return false;
      if (poll(fds, 2, 120000) <= 0) return false;
      ReadInto(fds[0], out_, out);
      ReadInto(fds[1], err_, err);
    }
    return true;
  }

  bool ended() const { return out_ < 0 && err_ < 0; }

  // Closes stdin, reads both pipes to their end and returns the exit status (-1: killed by a signal).
  int Wait() {
    close(input_);
    input_ = -1;
    ReadUntil([] { return false; });
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return status_;
  }

  std::string out, err;

 private:
  static void ReadInto(const pollfd& polled, int& fd, std::string& text) {
    if (fd < 0 || polled.revents == 0) return;
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else {
      close(fd);
      fd = -1;
    }
  }

  pid_t pid_ = -1;
  int status_ = -1;
  int input_ = -1, out_ = -1, err_ = -1;
};

std::string Join(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

TEST(CliTest, TokenizesText) {
  const Result r = RunQwenvk("tokenize --model '" + kModel + "' --text 'Hello world'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["ids"], nlohmann::json({9707, 1879}));
  EXPECT_EQ(out["text"], "Hello world");
}

TEST(CliTest, TokenizesAChatWithTheTemplate) {
  const auto chat = std::filesystem::temp_directory_path() / "qwenvk-cli-chat.json";
  std::ofstream(chat) << R"([{"role": "user", "content": "What is the capital of France?"}])";
  const Result r = RunQwenvk("tokenize --model '" + kModel + "' --chat '" + chat.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto reference = nlohmann::json::parse(Slurp(kData / "reference/hf/qwen2-tiny/reference.json"));
  EXPECT_EQ(nlohmann::json::parse(r.out)["ids"], reference["prompts"]["chat_en"]["input_ids"]);
  std::ofstream(chat) << "[{\"role\": 1}]";
  EXPECT_EQ(RunQwenvk("tokenize --model '" + kModel + "' --chat '" + chat.string() + "'").status, 1);
  std::filesystem::remove(chat);
}

TEST(CliTest, LogitsOfEveryPositionThenGreedySteps) {
  const auto reference = nlohmann::json::parse(Slurp(kData / "reference/hf/qwen2-tiny/reference.json"));
  const auto& prompt = reference["prompts"]["text"];
  const auto ids = prompt["input_ids"].get<std::vector<uint32_t>>();
  const auto dump = std::filesystem::temp_directory_path() / "qwenvk-cli-last.f32";
  const Result r = RunQwenvk("logits --model '" + kModel + "' --ids " + Join(ids) +
                             " --top 5 --greedy 3 --dump-last '" + dump.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto out = nlohmann::json::parse(r.out);
  ASSERT_EQ(out["positions"].size(), ids.size());
  for (size_t p = 0; p < ids.size(); ++p) {
    ASSERT_EQ(out["positions"][p]["ids"].size(), 5u);
    EXPECT_EQ(out["positions"][p]["ids"][0], prompt["positions"][p]["ids"][0]) << "position " << p;
  }
  ASSERT_EQ(out["greedy"]["tokens"].size(), 4u);
  ASSERT_EQ(out["greedy"]["steps"].size(), 3u);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(out["greedy"]["steps"][k]["input_id"], out["greedy"]["tokens"][k]);
  EXPECT_EQ(out["greedy"]["tokens"][0], prompt["greedy"]["tokens"][0]);
  EXPECT_EQ(std::filesystem::file_size(dump), 151936u * 4);
  std::filesystem::remove(dump);
}

// A GPU budget too small for the weights keeps them in host memory: same output, and it says so.
TEST(CliTest, SmallGpuBudgetKeepsWeightsInHostMemoryWithTheSameResults) {
  const std::string args = "logits --model '" + kModel + "' --ids 9707,1879,11 --top 10 --greedy 2 --context 256";
  const Result full = RunQwenvk(args);
  const Result tight = RunQwenvk(args + " --gpu-mem 60");
  ASSERT_EQ(full.status, 0) << full.err;
  ASSERT_EQ(tight.status, 0) << tight.err;
  EXPECT_EQ(tight.out, full.out);
  EXPECT_NE(tight.err.find("stay in host memory"), std::string::npos) << tight.err;
  const Result impossible = RunQwenvk(args + " --gpu-mem 1");
  EXPECT_EQ(impossible.status, 1);
  EXPECT_NE(impossible.err.find("--gpu-mem"), std::string::npos) << impossible.err;
}

TEST(CliTest, WritesAttentionMaps) {
  const auto out_file = std::filesystem::temp_directory_path() / "qwenvk-cli-attention.f32";
  const Result r =
      RunQwenvk("attention --model '" + kModel + "' --ids 9707,1879,11,1879 --out '" + out_file.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["shape"], nlohmann::json({2, 4, 4, 4}));
  EXPECT_EQ(std::filesystem::file_size(out_file), 2u * 4 * 4 * 4 * 4);
  std::filesystem::remove(out_file);
}

TEST(CliTest, GeneratesAndReportsSpeed) {
  const Result r = RunQwenvk("generate --model '" + kModel + "' --prompt 'Hello' --chat --max-tokens 6 --seed 7");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("time to first token"), std::string::npos) << r.err;
  // The same seed gives the same text.
  EXPECT_EQ(RunQwenvk("generate --model '" + kModel + "' --prompt 'Hello' --chat --max-tokens 6 --seed 7").out, r.out);
}

TEST(CliTest, ChatsInTheTerminal) {
  const Result r = RunQwenvk("chat --model '" + kModel + "' --max-tokens 4 --greedy", "Hi there\nAnd again\n/exit\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Replies(r.err), 2u) << r.err;
}

// One .gguf file is a whole model: info, then a terminal chat, for every quantization the
// fixtures hold (Q8_0; Q5_0 + Q8_0 from Q4_K_M; Q4_K + Q6_K).
TEST(CliTest, ChatsWithGgufModelsOfEveryFixtureType) {
  for (const char* file : {"qwen2-tiny-q8_0.gguf", "qwen2-tiny-Q4_K_M.gguf", "qwen2-kq-Q4_K_M.gguf"}) {
    const std::string model = (kData / "gguf" / file).string();
    const Result info = RunQwenvk("info --model '" + model + "'");
    ASSERT_EQ(info.status, 0) << info.err;
    EXPECT_EQ(nlohmann::json::parse(info.out)["format"], "gguf");
    const Result r = RunQwenvk("chat --model '" + model + "' --max-tokens 3 --temperature 0.8 --seed 5",
                               "Hi there\nAnd again\n/exit\n");
    ASSERT_EQ(r.status, 0) << file << ": " << r.err;
    EXPECT_EQ(Replies(r.err), 2u) << file << ": " << r.err;
  }
}

TEST(CliTest, RefusesBadInputClearly) {
  Result r = RunQwenvk("logits --model /nonexistent --ids 1,2");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
  r = RunQwenvk("logits --model '" + kModel + "' --ids 1,999999999");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("999999999"), std::string::npos) << r.err;
  r = RunQwenvk("generate --model '" + kModel + "' --prompt x --top-p 7");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("top-p"), std::string::npos) << r.err;
}

// A value an option does not take is a usage error (status 2) whose sentence names the option,
// what it takes and the value given.
TEST(CliTest, RefusesBadOptionValuesNamingWhatEachAccepts) {
  struct Case {
    std::string args, message;
  };
  const std::string generate = "generate --model '" + kModel + "' --prompt x ";
  const std::vector<Case> cases = {
      {generate + "--temperature -1", "--temperature: expected a number from 0 to 10, got -1"},
      {generate + "--temperature warm", "--temperature: expected a number from 0 to 10, got warm"},
      {generate + "--top-k -5", "--top-k: expected a whole number from 0 to 16777216, got -5"},
      {generate + "--top-k 2.5", "--top-k: expected a whole number from 0 to 16777216, got 2.5"},
      {generate + "--max-tokens -1", "--max-tokens: expected a whole number from 1 to 16777216, got -1"},
      {generate + "--max-tokens 0", "--max-tokens: expected a whole number from 1 to 16777216, got 0"},
      {generate + "--top-p 2", "--top-p: expected a number from 0 to 1, got 2"},
      {generate + "--min-p -0.1", "--min-p: expected a number from 0 to 1, got -0.1"},
      {generate + "--repeat-penalty 0", "--repeat-penalty: expected a number from 0.01 to 10, got 0"},
      {generate + "--seed -1", "--seed: expected a whole number from 0 to 18446744073709551615, got -1"},
      {generate + "--context -3", "--context: expected a whole number from 1 to 16777216, got -3"},
      {generate + "--gpu-mem -1", "--gpu-mem: expected a whole number of MiB, at least 1, got -1"},
      {generate + "--device x", "--device: expected a device number as `qwenvk devices` lists them (0, 1, ...), got x"},
      {"chat --model '" + kModel + "' --top-k -5", "--top-k: expected a whole number from 0 to 16777216, got -5"},
      {"logits --model '" + kModel + "' --ids 1,abc",
       "--ids: expected token ids: whole numbers separated by commas, got abc"},
      {"attention --model '" + kModel + "' --out x --ids -1",
       "--ids: expected token ids: whole numbers separated by commas, got -1"},
      {"devices --device x", "--device: expected a device number"},
  };
  for (const Case& c : cases) {
    const Result r = RunQwenvk(c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(r.err.find("Could not convert"), std::string::npos) << c.args << ": " << r.err;
  }
}

// The config's own value (1e-06), not the float's nearest double (9.999999974752427e-07).
TEST(CliTest, InfoPrintsTheConfigsNormEpsilon) {
  const Result r = RunQwenvk("info --model '" + kModel + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"rms_norm_eps\": 1e-06,"), std::string::npos) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["rms_norm_eps"].get<double>(), 1e-6);
}

// /reset says so, and each reply ends its own line in a file: after a reset the same question
// gets the same greedy reply, line after line.
TEST(CliTest, ChatResetConfirmsAndEachReplyEndsItsLine) {
  const Result r =
      RunQwenvk("chat --model '" + kModel + "' --max-tokens 4 --greedy", "Hi there\n/reset\nHi there\n/exit\n");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(Replies(r.err), 2u) << r.err;
  EXPECT_NE(r.err.find("[conversation cleared]"), std::string::npos) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_EQ(r.out.size() % 2, 0u) << r.out;
  EXPECT_EQ(r.out.substr(0, r.out.size() / 2), r.out.substr(r.out.size() / 2)) << r.out;
  EXPECT_EQ(PromptTokens(r.err), std::vector<uint32_t>(2, PromptTokens(r.err).front()));
}

// Ctrl-C while a reply streams stops that reply only: the chat goes on with its history.
TEST(CliTest, CtrlCStopsTheReplyAndTheChatGoesOn) {
  Child chat({"chat", "--model", kModel, "--greedy", "--context", "4096", "--max-tokens", "16000000"});
  for (const char* message : {"Hi there\n", "And again\n"}) {
    const size_t out_before = chat.out.size(), stopped_before = Replies(chat.err);
    chat.Write(message);
    ASSERT_TRUE(chat.ReadUntil([&] { return chat.out.size() > out_before; })) << chat.err;
    chat.Signal(SIGINT);
    ASSERT_TRUE(chat.ReadUntil([&] { return Replies(chat.err) > stopped_before; })) << chat.err;
  }
  chat.Write("/exit\n");
  EXPECT_EQ(chat.Wait(), 0) << chat.err;
  size_t notices = 0;
  for (size_t at = 0; (at = chat.err.find("[stopped: Ctrl-C", at)) != std::string::npos; ++at) ++notices;
  EXPECT_EQ(notices, 2u) << chat.err;
  // The second prompt holds the first exchange.
  const std::vector<uint32_t> prompts = PromptTokens(chat.err);
  ASSERT_EQ(prompts.size(), 2u) << chat.err;
  EXPECT_GT(prompts[1], prompts[0] + 2) << chat.err;
}

// Ctrl-C at the prompt quits cleanly, as Ctrl-D does.
TEST(CliTest, CtrlCAtThePromptQuits) {
  Child chat({"chat", "--model", kModel, "--greedy"});
  ASSERT_TRUE(chat.ReadUntil([&] { return chat.err.find("\n> ") != std::string::npos; })) << chat.err;
  chat.Signal(SIGINT);
  // Closing stdin would also quit, so the output must end with stdin still open.
  chat.ReadUntil([] { return false; });
  EXPECT_TRUE(chat.ended()) << chat.err;
  EXPECT_EQ(chat.Wait(), 0) << chat.err;
  EXPECT_EQ(Replies(chat.err), 0u);
}

}  // namespace
