// Sections: running qwenvk / model commands / bench / the bundled demo model
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
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#include "tests/test_util.h"

namespace {

// --- running qwenvk ------------------------------------------------------------------------------

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

// Runs qwenvk with `args` (shell-quoted by the caller), optional stdin text, and `environment`
// (NAME=VALUE ..., shell-quoted) on top of the test's.
Result RunQwenvk(const std::string& args, const std::string& input = "", const std::string& environment = "") {
  const auto dir = std::filesystem::temp_directory_path();
  const auto in_path = dir / ("qwenvk-cli-in-" + std::to_string(getpid()));
  const auto err_path = dir / ("qwenvk-cli-err-" + std::to_string(getpid()));
  std::ofstream(in_path) << input;
  // The program's data (its database) in a folder of this test run, never the user's: a bench run
  // is kept by default, and a database from another build could refuse to open.
  const auto data_path = dir / ("qwenvk-cli-data-" + std::to_string(getpid()));
  const std::string command = "QWENVK_VALIDATION=1 XDG_DATA_HOME='" + data_path.string() + "' " + environment + " '" +
                              qvk::test::QwenvkBinary().string() + "' " + args + " <'" + in_path.string() + "' 2>'" +
                              err_path.string() + "'";
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

// --- model commands ------------------------------------------------------------------------------

// `qwenvk kernels` builds the kernels it names on the device and lists them; lavapipe reports no
// statistics of compiled code, which it says (the H200's driver gives registers and the rest).
TEST(CliTest, KernelsListsWhatItBuilt) {
  const Result r = RunQwenvk("kernels --only rmsnorm");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| rmsnorm | 256 |"), std::string::npos) << r.out;
  const Result json = RunQwenvk("kernels --only matvec_q4_0 --json");
  ASSERT_EQ(json.status, 0) << json.err;
  const nlohmann::json parsed = nlohmann::json::parse(json.out);
  ASSERT_EQ(parsed["kernels"].size(), 1u);
  EXPECT_EQ(parsed["kernels"][0]["name"], "matvec_q4_0");
  EXPECT_TRUE(parsed["kernels"][0]["built"].get<bool>());
  EXPECT_EQ(parsed["statistics"].get<bool>(), !parsed["kernels"][0]["statistics"].empty());
  const Result none = RunQwenvk("kernels --only no_such_kernel");
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.err.find("no kernel's name contains \"no_such_kernel\""), std::string::npos) << none.err;
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

// Split by layers across two logical devices on the one GPU: the output of one device, and the
// log says which device holds which layers and how the hidden state goes from one to the other. A
// split that cannot be made says why.
TEST(CliTest, DevicesSplitTheModelWithTheSameResults) {
  const std::string args = "logits --model '" + kModel + "' --ids 9707,1879,11 --top 10 --greedy 2 --context 256";
  const Result one = RunQwenvk(args);
  const Result split = RunQwenvk(args + " --devices 0,0");
  const Result even = RunQwenvk(args + " --devices 0,0 --split 1,1");
  ASSERT_EQ(one.status, 0) << one.err;
  ASSERT_EQ(split.status, 0) << split.err;
  ASSERT_EQ(even.status, 0) << even.err;
  EXPECT_EQ(split.out, one.out);
  EXPECT_EQ(even.out, one.out);
  qvk::test::ExpectMentions(split.err,
                            {"layers 0 to 0 of 2", "layers 1 to 1 of 2", "hidden state from device 0 to device 0: "});
  for (const auto& [options, message] : std::vector<std::pair<std::string, std::string>>{
           {"--devices 0,7", "Device 7 does not exist"},
           {"--devices 0,x", "--devices 0,x: expected whole numbers separated by commas"},
           {"--devices 0,0 --split 0,1", "--split 0,1: every part must be at least 1"},
           {"--devices 0,0 --split 1,1,1", "the split has 3 parts for 2 devices"},
           {"--devices 0,0,0", "3 devices for a model of 2 layers"},
           {"--split 1,1", "--split needs --devices"},
           {"--device 0 --devices 0,0", "give --device or --devices, not both"}}) {
    const Result r = RunQwenvk(args + " " + options);
    EXPECT_EQ(r.status, 1) << options;
    EXPECT_NE(r.err.find(message), std::string::npos) << options << ": " << r.err;
  }
}

TEST(CliTest, WritesAttentionMaps) {
  const auto out_file = std::filesystem::temp_directory_path() / "qwenvk-cli-attention.f32";
  const Result r =
      RunQwenvk("attention --model '" + kModel + "' --ids 9707,1879,11,1879 --out '" + out_file.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["shape"], nlohmann::json({2, 4, 4, 4}));
  EXPECT_EQ(std::filesystem::file_size(out_file), 2u * 4 * 4 * 4 * 4);
  // What the capture held on the GPU (PlanCapture): one chunk's probabilities of the 4 heads over
  // the 4 rows, 256 bytes, and the maps of 2 layers x 4 heads, 512 bytes; stderr says it too.
  EXPECT_EQ(nlohmann::json::parse(r.out)["capture_gpu_bytes"], 4 * 4 * 4 * 4 + 2 * 4 * 4 * 4 * 4);
  EXPECT_NE(r.err.find("MiB on the GPU at a time"), std::string::npos) << r.err;
  std::filesystem::remove(out_file);
}

// One layer and head (or a reduction of a layer's heads) as raw floats, PNG, CSV and NPY, each
// read back against the every-head file: the same values, the heatmap coloured by its scale with
// the causal mask grey.
TEST(CliTest, WritesOneAttentionMapAsPngCsvAndNpy) {
  const qvk::test::TempDir dir;
  const auto path = [&](const std::string& name) { return (dir.path() / name).string(); };
  const std::string attention = "attention --model '" + kModel + "' --ids 9707,1879,11,1879,13,2585 ";
  const uint32_t heads = 4, tokens = 6;
  ASSERT_EQ(RunQwenvk(attention + "--out '" + path("all.f32") + "'").status, 0);
  const std::string all_bytes = Slurp(path("all.f32"));
  ASSERT_EQ(all_bytes.size(), 4u * 2 * heads * tokens * tokens);
  std::vector<float> all(all_bytes.size() / 4);
  std::memcpy(all.data(), all_bytes.data(), all_bytes.size());
  const auto at = [&](uint32_t layer, uint32_t head, uint32_t row, uint32_t col) {
    return all[((size_t{layer} * heads + head) * tokens + row) * tokens + col];
  };

  const Result one = RunQwenvk(attention + "--layer 1 --head 2 --out '" + path("one.f32") + "' --png '" +
                               path("one.png") + "' --csv '" + path("one.csv") + "' --npy '" + path("one.npy") + "'");
  ASSERT_EQ(one.status, 0) << one.err;
  const nlohmann::json report = nlohmann::json::parse(one.out);
  EXPECT_EQ(report["shape"], nlohmann::json({1, 1, tokens, tokens}));
  EXPECT_EQ(report["png"], path("one.png"));
  EXPECT_EQ(Slurp(path("one.f32")),
            all_bytes.substr(4 * (size_t{1} * heads + 2) * tokens * tokens, 4 * tokens * tokens));
  const qvk::test::Npy npy = qvk::test::ReadNpy(path("one.npy"));
  EXPECT_EQ(npy.shape, (std::vector<size_t>{tokens, tokens}));
  const auto csv = qvk::test::ParseCsv(Slurp(path("one.csv")));
  ASSERT_EQ(csv.size(), tokens);
  float top = 0;  // the scale's: the largest value after the first query row (always 1)
  for (uint32_t r = 0; r < tokens; ++r) {
    ASSERT_EQ(csv[r].size(), tokens);
    for (uint32_t c = 0; c < tokens; ++c) {
      EXPECT_EQ(npy.values[r * tokens + c], at(1, 2, r, c)) << r << ", " << c;
      EXPECT_EQ(std::stof(csv[r][c]), at(1, 2, r, c)) << r << ", " << c;
      if (r > 0) top = std::max(top, at(1, 2, r, c));
    }
  }
  EXPECT_EQ(report["scale_max"].get<float>(), top);
  // 512 pixels a side at least: 86 pixels per value. Viridis' top is (253, 231, 37) (the first
  // query's 1 is past the top); masked cells grey.
  int width = 0, height = 0, channels = 0;
  unsigned char* png = stbi_load(path("one.png").c_str(), &width, &height, &channels, 3);
  ASSERT_NE(png, nullptr);
  EXPECT_EQ(width, 6 * 86);
  EXPECT_EQ(height, 6 * 86);
  for (uint32_t r = 0; r < tokens; ++r) {
    for (uint32_t c = 0; c < tokens; ++c) {
      const unsigned char* pixel = png + ((r * 86 + 43) * width + c * 86 + 43) * 3;
      const std::vector<int> rgb(pixel, pixel + 3);
      if (c > r) {
        EXPECT_EQ(rgb, (std::vector<int>{200, 200, 200})) << r << ", " << c;
      } else if (at(1, 2, r, c) >= top) {
        EXPECT_EQ(rgb, (std::vector<int>{253, 231, 37})) << r << ", " << c;
      } else {
        EXPECT_NE(rgb, (std::vector<int>{200, 200, 200})) << r << ", " << c;
      }
    }
  }
  stbi_image_free(png);

  // Reductions: the mean of a layer's heads, the max of one KV head's query heads, and every
  // KV head's mean as planes.
  ASSERT_EQ(RunQwenvk(attention + "--layer 0 --reduce mean --npy '" + path("mean.npy") + "'").status, 0);
  ASSERT_EQ(RunQwenvk(attention + "--layer 1 --reduce group-max --head 1 --npy '" + path("max.npy") + "'").status, 0);
  const Result groups = RunQwenvk(attention + "--reduce group-mean --out '" + path("groups.f32") + "'");
  ASSERT_EQ(groups.status, 0) << groups.err;
  EXPECT_EQ(nlohmann::json::parse(groups.out)["shape"], nlohmann::json({2, 2, tokens, tokens}));
  const std::string group_bytes = Slurp(path("groups.f32"));
  ASSERT_EQ(group_bytes.size(), 4u * 2 * 2 * tokens * tokens);
  std::vector<float> group_means(group_bytes.size() / 4);
  std::memcpy(group_means.data(), group_bytes.data(), group_bytes.size());
  const qvk::test::Npy mean = qvk::test::ReadNpy(path("mean.npy")), max = qvk::test::ReadNpy(path("max.npy"));
  ASSERT_EQ(mean.values.size(), tokens * tokens);
  ASSERT_EQ(max.values.size(), tokens * tokens);
  for (uint32_t r = 0; r < tokens; ++r) {
    for (uint32_t c = 0; c < tokens; ++c) {
      const float layer0_mean = (at(0, 0, r, c) + at(0, 1, r, c) + at(0, 2, r, c) + at(0, 3, r, c)) / 4;
      EXPECT_NEAR(mean.values[r * tokens + c], layer0_mean, 1e-6) << r << ", " << c;
      EXPECT_EQ(max.values[r * tokens + c], std::max(at(1, 2, r, c), at(1, 3, r, c))) << r << ", " << c;
      for (uint32_t l = 0; l < 2; ++l) {
        for (uint32_t g = 0; g < 2; ++g) {
          EXPECT_NEAR(group_means[((l * 2 + g) * tokens + r) * tokens + c],
                      (at(l, 2 * g, r, c) + at(l, 2 * g + 1, r, c)) / 2, 1e-6);
        }
      }
    }
  }
}

// Layers and heads the model does not have, and files that cannot be written, are refused with a
// sentence before anything is computed.
TEST(CliTest, AttentionRefusesWhatTheModelDoesNotHave) {
  const qvk::test::TempDir dir;
  const std::string attention = "attention --model '" + kModel + "' --ids 9707,1879 ";
  const std::string npy = "--npy '" + (dir.path() / "x.npy").string() + "'";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--layer 2 --head 0 " + npy, "--layer 2 is out of range: the model has 2 layers (0 to 1)"},
      {"--layer 0 --head 4 " + npy, "--head 4 is out of range: the model has 4 attention heads (0 to 3)"},
      {"--layer 0 --reduce group-mean --head 2 " + npy, "--head 2 is out of range: the model has 2 KV heads"},
      {"--layer 0 --head 0 --png /nonexistent-dir/x.png", "cannot write /nonexistent-dir/x.png"},
      {"--out /nonexistent-dir/x.f32", "cannot write /nonexistent-dir/x.f32"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = RunQwenvk(attention + args);
    EXPECT_EQ(r.status, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
  }
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

// Qwen3's thinking switch on the command line: --thinking off ends the chat prompt with the empty
// think block (four more prompt tokens: <think> \n\n </think> \n\n), on is the template's
// default; a model whose template has no switch says the option changes nothing.
TEST(CliTest, ThinkingOffAddsTheEmptyThinkBlockToTheChatPrompt) {
  const qvk::test::TempDir folder;
  const std::string qwen3 =
      qvk::test::LinkModelFolder(kData / "family/qwen3-tiny", kData / "family/qwen3-tokenizer", folder.path()).string();
  const std::string generate = "generate --model '" + qwen3 + "' --prompt Hi --chat --max-tokens 2 --greedy";
  const Result unset = RunQwenvk(generate);
  const Result on = RunQwenvk(generate + " --thinking on");
  const Result off = RunQwenvk(generate + " --thinking off");
  for (const Result* r : {&unset, &on, &off}) ASSERT_EQ(r->status, 0) << r->err;
  ASSERT_EQ(PromptTokens(unset.err).size(), 1u) << unset.err;
  EXPECT_EQ(PromptTokens(on.err), PromptTokens(unset.err));
  EXPECT_EQ(PromptTokens(off.err), std::vector<uint32_t>{PromptTokens(unset.err)[0] + 4}) << off.err;
  const Result chat = RunQwenvk("chat --model '" + qwen3 + "' --max-tokens 2 --greedy --thinking off", "Hi\n/exit\n");
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_EQ(PromptTokens(chat.err), PromptTokens(off.err));
  EXPECT_EQ(off.err.find("changes nothing"), std::string::npos) << off.err;
  const Result info = RunQwenvk("info --model '" + qwen3 + "'");
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["chat_template_thinking"], true);
  EXPECT_TRUE(
      nlohmann::json::parse(RunQwenvk("info --model '" + kModel + "'").out)["chat_template_thinking"].is_null());

  const Result qwen2 = RunQwenvk("generate --model '" + kModel + "' --prompt Hi --chat --max-tokens 1 --thinking off");
  ASSERT_EQ(qwen2.status, 0) << qwen2.err;
  EXPECT_NE(qwen2.err.find("--thinking changes nothing here: the chat template of qwen2-tiny has no thinking switch"),
            std::string::npos)
      << qwen2.err;
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
      {generate + "--chat --thinking maybe", "--thinking: expected on or off, got maybe"},
      {generate + "--thinking off", "--thinking requires --chat"},
      {"chat --model '" + kModel + "' --thinking 0", "--thinking: expected on or off, got 0"},
      {"logits --model '" + kModel + "' --ids 1,abc",
       "--ids: expected token ids: whole numbers separated by commas, got abc"},
      {"attention --model '" + kModel + "' --out x --ids -1",
       "--ids: expected token ids: whole numbers separated by commas, got -1"},
      {"attention --model '" + kModel + "' --ids 1,2", "give --out, or --png, --csv or --npy with one map"},
      {"attention --model '" + kModel + "' --ids 1,2 --out x --reduce median",
       "--reduce: expected mean, max, group-mean or group-max, got median"},
      {"attention --model '" + kModel + "' --ids 1,2 --out x --layer -1",
       "--layer: expected a whole number from 0 to 4294967295, got -1"},
      {"attention --model '" + kModel + "' --ids 1,2 --out x --head 1 --reduce max",
       "--head: picks one head, and --reduce max reduces every head of a layer: give one or the other"},
      {"attention --model '" + kModel + "' --ids 1,2 --layer 0 --png x.png", "--png, --csv and --npy: write one map"},
      {"attention --model '" + kModel + "' --ids 1,2 --head 0 --csv x.csv", "--png, --csv and --npy: write one map"},
      {"attention --model '" + kModel + "' --ids 1,2 --layer 0 --reduce group-max --npy x.npy",
       "--png, --csv and --npy: write one map"},
      {"devices --device x", "--device: expected a device number"},
      {"bench --model '" + kModel + "' -p abc", "--n-prompt: expected a whole number from 0 to 16777216, got abc"},
      {"bench --model '" + kModel + "' -d 1,x", "--n-depth: expected a whole number from 0 to 16777216, got x"},
      {"bench --model '" + kModel + "' -r 0", "--repetitions: expected a whole number from 1 to 1000, got 0"},
      {"bench --model '" + kModel + "' -o xml", "--output: expected md, json or csv, got xml"},
      {"bench --model '" + kModel + "' --peak-mib 0", "--peak-mib: expected a whole number from 1 to 1048576, got 0"},
      {"tokenize --model '" + kModel + "'", "Exactly 1 option from [--text,--text-file,--chat] is required"},
      {"tokenize --model '" + kModel + "' --text a --chat b",
       "Exactly 1 option from [--text,--text-file,--chat] is required and 2 were given"},
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

// --- bench ---------------------------------------------------------------------------------------

// The fields every bench result names, whatever the format.
void ExpectBenchFields(const nlohmann::json& row) {
  for (const char* field : {"device", "driver", "vulkan", "qwenvk_version", "commit", "model_path", "model_type"}) {
    ASSERT_TRUE(row.contains(field) && row[field].is_string()) << field << " in " << row.dump();
    EXPECT_FALSE(row[field].get<std::string>().empty()) << field;
  }
  EXPECT_EQ(row["layers"], 2);
  EXPECT_EQ(row["hidden"], 64);
  EXPECT_GT(row["params"].get<uint64_t>(), 0u);
  EXPECT_GT(row["file_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(row["weight_types"], nlohmann::json({"BF16", "F32"}));
  EXPECT_GE(row["allocated_bytes"].get<uint64_t>(),
            row["weights_bytes"].get<uint64_t>() + row["kv_cache_bytes"].get<uint64_t>());
}

const std::vector<std::string> kBenchTests = {"pp8", "tg4", "pp8 @ d8", "tg4 @ d8"};
const std::string kBenchArgs = "bench --model '" + kModel + "' -p 8 -n 4 -r 2 -d 0,8";

// One row per test of -p x -n x -d, each with positive speeds and the build, device and model;
// the structure of each format, never the timings themselves.
TEST(CliTest, BenchReportsEveryTestAsJson) {
  const Result r = RunQwenvk(kBenchArgs + " -o json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_TRUE(doc["device_peak"].is_null());
  ASSERT_EQ(doc["results"].size(), kBenchTests.size());
  for (size_t i = 0; i < kBenchTests.size(); ++i) {
    const auto& row = doc["results"][i];
    EXPECT_EQ(row["test"], kBenchTests[i]);
    EXPECT_EQ(row["repetitions"], 2);
    ASSERT_EQ(row["samples_s"].size(), 2u);
    EXPECT_GT(row["avg_ts"].get<double>(), 0);
    EXPECT_GE(row["stddev_ts"].get<double>(), 0);
    EXPECT_GT(row["avg_s"].get<double>(), 0);
    EXPECT_EQ(row["context"], 256);  // 16 positions, rounded up
    ExpectBenchFields(row);
  }
}

// --live-attention measures generation with the attention rows a live map reads, reduced to the
// view the attention panel opens with; the report says so.
TEST(CliTest, BenchMeasuresLiveAttentionRows) {
  const Result plain = RunQwenvk("bench --model '" + kModel + "' -p 0 -n 3 -r 1 -o json");
  const Result live = RunQwenvk("bench --model '" + kModel + "' -p 0 -n 3 -r 1 -o json --live-attention");
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_EQ(live.status, 0) << live.err;
  EXPECT_EQ(nlohmann::json::parse(plain.out)["results"][0]["live_attention"], false);
  EXPECT_EQ(nlohmann::json::parse(live.out)["results"][0]["live_attention"], true);
  EXPECT_EQ(nlohmann::json::parse(plain.out)["results"][0]["live_attention_views"], nlohmann::json::array());
  EXPECT_EQ(nlohmann::json::parse(live.out)["results"][0]["live_attention_views"], nlohmann::json({"layer 0 head 0"}));
  EXPECT_GT(nlohmann::json::parse(live.out)["results"][0]["avg_ts"].get<double>(), 0);
  const Result md = RunQwenvk("bench --model '" + kModel + "' -p 0 -n 3 -r 1 --live-attention");
  EXPECT_NE(md.out.find("live attention: every decode step also reduced its attention to layer 0 head 0 on the GPU"),
            std::string::npos)
      << md.out;
}

TEST(CliTest, BenchReportsEveryTestAsCsv) {
  const Result r = RunQwenvk(kBenchArgs + " -o csv");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto rows = qvk::test::ParseCsv(r.out);
  ASSERT_EQ(rows.size(), 1 + kBenchTests.size()) << r.out;
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < rows[0].size(); ++i) column[rows[0][i]] = i;
  for (size_t i = 0; i < kBenchTests.size(); ++i) {
    const auto& row = rows[i + 1];
    ASSERT_EQ(row.size(), rows[0].size()) << r.out;
    EXPECT_EQ(row[column.at("test")], kBenchTests[i]);
    EXPECT_GT(std::stod(row[column.at("avg_ts")]), 0);
    for (const char* field : {"device", "driver", "vulkan", "commit", "model_path", "weights_bytes"}) {
      EXPECT_FALSE(row[column.at(field)].empty()) << field;
    }
    EXPECT_EQ(row[column.at("weight_types")], "BF16, F32");
  }
}

TEST(CliTest, BenchReportsEveryTestAsMarkdown) {
  const Result r = RunQwenvk(kBenchArgs + " -o md");
  ASSERT_EQ(r.status, 0) << r.err;
  qvk::test::ExpectMentions(
      r.out, {"qwenvk 0.", "(commit ", "device: ", "; driver ", "; Vulkan 1.", "model: ", "2 layers, hidden 64",
              "weights BF16, F32", "| model | size | params | test | t/s | ms |", "GPU memory: weights ", "KV cache ",
              "in use", "context 256 tokens"});
  const std::regex row(
      R"(\| qwen2 [^|]+ \| [0-9.]+ MiB \| [0-9.]+ M \| ([^|]+) \| ([0-9.]+) ± ([0-9.]+) \| ([0-9.]+) \|)");
  std::vector<std::string> tests;
  for (const std::string& line : qvk::test::Split(r.out, "\n")) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    tests.push_back(m[1]);
    EXPECT_GT(std::stod(m[2]), 0) << line;
    EXPECT_GT(std::stod(m[4]), 0) << line;
  }
  EXPECT_EQ(tests, kBenchTests) << r.out;
}

// One profiled step per test, every label of the forward pass with its share, against the
// device's measured peaks.
TEST(CliTest, BenchKernelsShowsTheForwardsLabels) {
  const Result r = RunQwenvk("bench --model '" + kModel + "' -p 8 -n 2 -r 1 --kernels --peak-mib 1 -o json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_GT(doc["device_peak"]["copy_gbps"].get<double>(), 0);
  ASSERT_EQ(doc["results"].size(), 2u);
  for (const auto& row : doc["results"]) {
    std::set<std::string> labels;
    double shares = 0;
    uint32_t waits = 0;
    for (const auto& k : row["kernels"]) {
      labels.insert(k["kernel"].get<std::string>());
      shares += k["share"].get<double>();
      EXPECT_LE(k["waits"].get<uint32_t>(), k["dispatches"].get<uint32_t>());
      waits += k["waits"].get<uint32_t>();
      EXPECT_GE(k["gbps"].get<double>(), 0);
      EXPECT_GE(k["of_copy_peak"].get<double>(), 0);
    }
    for (const char* label : {"embed", "qkv", "attention", "o_proj", "gate_up", "down", "lm_head", "ranking"}) {
      EXPECT_TRUE(labels.count(label)) << label << " in " << row["test"];
    }
    // A prefill chunk normalizes and rotates in dispatches of their own; a decode step folds them
    // into the projections. Both fold the SwiGLU into gate|up.
    for (const char* label : {"qkv_norm", "rope", "gate_up_norm"}) {
      EXPECT_EQ(labels.count(label), row["kind"] == "pp" ? 1u : 0u) << label << " in " << row["test"];
    }
    EXPECT_EQ(labels.count("gate_up_swiglu"), 0u) << row["test"];
    EXPECT_NEAR(shares, 1, 1e-6);
    EXPECT_GT(waits, 0u) << row["test"];  // a layer's products wait for the one before
  }
  const Result md = RunQwenvk("bench --model '" + kModel + "' -p 0 -n 2 -r 1 --kernels --peak-mib 1");
  ASSERT_EQ(md.status, 0) << md.err;
  qvk::test::ExpectMentions(md.out, {"device peak: copy", "kernels of tg2", "of them after a barrier",
                                     "| kernel | dispatches | after a barrier | share |", "| attention | 2 |",
                                     "| qkv | 2 |", "| lm_head | 1 |"});
}

// A split model's bench names each device's layers and each profiled step's time on each device.
TEST(CliTest, BenchReportsEachDevicesTime) {
  const Result r =
      RunQwenvk("bench --model '" + kModel + "' -p 4 -n 2 -r 1 --kernels --peak-mib 1 -o json --devices 0,0");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["results"].size(), 2u);
  for (const auto& row : doc["results"]) {
    ASSERT_EQ(row["split_devices"].size(), 2u);
    ASSERT_EQ(row["device_us"].size(), 2u) << row;
    for (const auto& us : row["device_us"]) EXPECT_GT(us.get<double>(), 0);
  }
  // Kept, the run says it was split and keeps each device's time: list, show and export.
  const qvk::test::TempDir dir;
  const std::string db = " --db '" + (dir.path() / "runs.db").string() + "'";
  const Result md =
      RunQwenvk("bench --model '" + kModel + "' -p 0 -n 2 -r 1 --kernels --peak-mib 1 --devices 0,0" + db);
  ASSERT_EQ(md.status, 0) << md.err;
  qvk::test::ExpectMentions(md.out, {"split by layers across devices: device 0 (", "): layers 1-1",
                                     "GPU time by device, in layer order: device 0 "});
  const Result list = RunQwenvk("bench list" + db);
  ASSERT_EQ(list.status, 0) << list.err;
  qvk::test::ExpectMentions(list.out, {", split across 2 devices | qwen2-tiny |"});
  const Result show = RunQwenvk("bench show 1" + db);
  ASSERT_EQ(show.status, 0) << show.err;
  qvk::test::ExpectMentions(show.out, {"split by layers across devices: device 0 (",
                                       "): layers 0-0; hand-off: ", ", device 0 (", "): layers 1-1\n", "kernels of tg2",
                                       "GPU time by device, in layer order: device 0 ", " us, device 1 "});
  const std::string exported = (dir.path() / "split.json").string();
  ASSERT_EQ(RunQwenvk("bench export --out '" + exported + "' 1" + db).status, 0);
  const auto run = nlohmann::json::parse(Slurp(exported))["runs"][0];
  ASSERT_EQ(run["stages"].size(), 2u);
  ASSERT_EQ(run["rows"][0]["device_us"].size(), 2u);
  for (const auto& us : run["rows"][0]["device_us"]) EXPECT_GT(us.get<double>(), 0);
}

TEST(CliTest, BenchMeasuresTheDevicePeakWithoutAModel) {
  const Result r = RunQwenvk("bench --device-peak --peak-mib 4 -o json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  const auto& peak = doc["device_peak"];
  EXPECT_GT(peak["copy_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(peak["copy_bytes"].get<uint64_t>(), 4u << 20);
  EXPECT_GT(peak["copy_gbps"].get<double>(), 0);
  EXPECT_GT(peak["copy_buffer_gbps"].get<double>(), 0);
  EXPECT_GT(peak["fma_tflops"].get<double>(), 0);
  EXPECT_FALSE(doc["device"]["name"].get<std::string>().empty());
  EXPECT_TRUE(doc["results"].empty());
  const Result md = RunQwenvk("bench --device-peak --peak-mib 4");
  ASSERT_EQ(md.status, 0) << md.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(md.out, m, std::regex(R"(copy ([0-9.]+) GB/s.*FMA ([0-9.]+) TFLOP/s)"))) << md.out;
  EXPECT_GT(std::stod(m[1]), 0);
  EXPECT_GT(std::stod(m[2]), 0);
}

// What the command line can take but the model or device cannot: a sentence, status 1.
TEST(CliTest, BenchRefusesWhatCannotRun) {
  struct Case {
    std::string args, message;
  };
  const std::string bench = "bench --model '" + kModel + "' -r 1 ";
  const std::vector<Case> cases = {
      {"bench --model /nonexistent", "/nonexistent"},
      {bench + "-p 0 -n 0", "-p and -n are all 0: there is no test to run"},
      {bench + "-p 8 -n 0 -d 40000", "pp8 @ d40000 needs 40008 positions; the model has 32768"},
      {bench + "-p 8 -n 4 -d 4 --context 8", "the tests need a context of 12 tokens; --context 8 is too small"},
      {bench + "-p 8 --device 99", "Device 99 does not exist"},
      {bench + "-p 8 --gpu-mem 1", "do not fit the GPU budget of 1 MiB"},
  };
  for (const Case& c : cases) {
    const Result r = RunQwenvk(c.args);
    EXPECT_EQ(r.status, 1) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << ": " << r.out;
  }
}

// Every run is kept (--save is the default) and read back by list, show and export; a file of
// llama-bench's imports beside it; --no-save keeps nothing; a bad file changes nothing.
TEST(CliTest, BenchKeepsRunsToListShowExportAndImport) {
  const qvk::test::TempDir dir;
  const std::string db = " --db '" + (dir.path() / "runs.db").string() + "'";
  const Result run = RunQwenvk("bench --model '" + kModel + "' -p 8 -n 2 -r 1 --kernels --peak-mib 1 -o json" + db);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["results"].size(), 2u);  // stdout stays the report alone
  qvk::test::ExpectMentions(run.err, {"qwenvk: saved as benchmark run 1 in ", "(see `qwenvk bench show 1`)"});

  const Result list = RunQwenvk("bench list" + db);
  ASSERT_EQ(list.status, 0) << list.err;
  qvk::test::ExpectMentions(list.out, {"| id | measured | source | device | model |", "| 1 | ", "| qwenvk |",
                                       "| qwen2-tiny | BF16, F32 |", "pp8 ", "tg2 ", "\n1 runs\n"});
  const Result show = RunQwenvk("bench show 1" + db);
  ASSERT_EQ(show.status, 0) << show.err;
  qvk::test::ExpectMentions(
      show.out,
      {"run 1: qwenvk, measured ", "device: ", "device peak (measured ", "FP32 FMA ", "FP16 FMA ",
       "cooperative matrix ", "model: qwen2-tiny: qwen2, 2 layers", "method: -p 8 -n 2 -d 0 -r 1; context 256",
       "| pp8 | ", "kernels of tg2", "| kernel | dispatches | after a barrier | share |",
       "flops/byte | of copy peak | of FP32 peak | of roof | limited by |", "| lm_head | 1 | 1 | "});

  const std::string exported = (dir.path() / "shared.json").string();
  const Result out = RunQwenvk("bench export --out '" + exported + "' 1" + db);
  ASSERT_EQ(out.status, 0) << out.err;
  const auto file = nlohmann::json::parse(Slurp(exported));
  EXPECT_EQ(file["format"], "qwenvk-bench");
  ASSERT_EQ(file["runs"].size(), 1u);
  EXPECT_EQ(file["version"], 3);
  EXPECT_EQ(file["runs"][0]["stages"], nlohmann::json::array());  // one device
  EXPECT_FALSE(file["runs"][0]["rows"][1]["kernels"].empty());
  uint32_t waits = 0;  // kept with the run: a layer's products wait for the one before
  for (const auto& k : file["runs"][0]["rows"][1]["kernels"]) {
    EXPECT_LE(k["waits"].get<uint32_t>(), k["dispatches"].get<uint32_t>()) << k;
    waits += k["waits"].get<uint32_t>();
  }
  EXPECT_GT(waits, 0u);
  EXPECT_FALSE(file["devices"][0]["peaks"].is_null());

  const std::string llama = (kData / "bench" / "llama-bench-h200-qwen2.5-0.5B-Q4_0.json").string();
  const Result in = RunQwenvk("bench import '" + llama + "'" + db);
  ASSERT_EQ(in.status, 0) << in.err;
  EXPECT_EQ(in.out, "imported 2 runs from " + llama + " (ids 2, 3)\n");
  const Result again = RunQwenvk("bench import '" + exported + "'" + db);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, "imported 0 runs from " + exported + "; 1 already stored\n");

  const Result unsaved = RunQwenvk("bench --model '" + kModel + "' -p 0 -n 2 -r 1 --no-save" + db);
  ASSERT_EQ(unsaved.status, 0) << unsaved.err;
  EXPECT_EQ(unsaved.err.find("saved"), std::string::npos) << unsaved.err;
  const std::string bad = (dir.path() / "bad.json").string();
  std::ofstream(bad) << Slurp(exported).substr(0, 100);
  const Result refused = RunQwenvk("bench import '" + bad + "'" + db);
  EXPECT_EQ(refused.status, 1);
  qvk::test::ExpectMentions(refused.err, {"qwenvk: " + bad + " was not imported, nothing changed: ", "not valid JSON"});
  const Result after = RunQwenvk("bench list" + db);
  qvk::test::ExpectMentions(after.out, {"| NVIDIA H200 | qwen2.5-0.5B-Q4_0.gguf | Q4_0 |", "\n3 runs\n"});
  const Result filtered = RunQwenvk("bench list --weight-type q4_0" + db);
  qvk::test::ExpectMentions(filtered.out, {"\n2 runs\n"});
  const Result missing = RunQwenvk("bench show 99" + db);
  EXPECT_EQ(missing.status, 1);
  qvk::test::ExpectMentions(missing.err, {"benchmark run 99 does not exist"});
}

// A peak alone is kept with its device; FP16 and cooperative-matrix rates are measured where
// the device has them and said to be "not available" where it has not.
TEST(CliTest, BenchDevicePeakIsKeptWithTheDevice) {
  const qvk::test::TempDir dir;
  const std::string db = " --db '" + (dir.path() / "runs.db").string() + "'";
  const Result r = RunQwenvk("bench --device-peak --peak-mib 1 -o json" + db);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto peak = nlohmann::json::parse(r.out)["device_peak"];
  for (const char* rate : {"f16_tflops", "coopmat_tflops"}) {
    ASSERT_TRUE(peak.contains(rate)) << peak.dump();
    EXPECT_TRUE(peak[rate].is_null() || peak[rate].get<double>() > 0) << rate;
  }
  qvk::test::ExpectMentions(r.err, {"qwenvk: saved the peaks of "});
  const Result md = RunQwenvk("bench --device-peak --peak-mib 1 --no-save" + db);
  ASSERT_EQ(md.status, 0) << md.err;
  qvk::test::ExpectMentions(md.out, {"; FP16 FMA ", "; cooperative matrix "});
  if (peak["coopmat_tflops"].is_null()) qvk::test::ExpectMentions(md.out, {"cooperative matrix not available"});
  const Result list = RunQwenvk("bench list" + db);
  qvk::test::ExpectMentions(list.out, {"\n0 runs\n"});
}

// --- the bundled demo model ----------------------------------------------------------------------

// Tests name the bundled model (the fixture stands in for it), so that they never depend on
// whether the real one is in the checkout.
const std::string kBundledIsTheFixture = "QWENVK_BUNDLED_MODEL='" + kModel + "'";
const std::string kBundledIsMissing = "QWENVK_BUNDLED_MODEL=/nonexistent/wordnet-chat";

// What a command without --model says on stderr, once.
void ExpectUsesTheBundledModel(const Result& r, const std::string& args) {
  const std::string line = "qwenvk: no --model given, using the bundled demo model " +
                           std::filesystem::canonical(kModel).string() +
                           " (WordNet dictionary chat, see assets/README.md)\n";
  size_t said = 0;
  for (size_t at = 0; (at = r.err.find(line, at)) != std::string::npos; ++at) ++said;
  EXPECT_EQ(said, 1u) << args << ": " << r.err;
}

// Without --model every command that runs a model runs the bundled one, with the same output as
// naming it; with --model nothing is said about it.
TEST(CliTest, CommandsWithoutAModelUseTheBundledModelAndSaySo) {
  const std::vector<std::string> commands = {"generate --prompt Hello --chat --max-tokens 6 --seed 7", "info",
                                             "tokenize --text 'Hello world'",
                                             "logits --ids 9707,1879 --top 3 --greedy 1"};
  for (const std::string& args : commands) {
    const Result bundled = RunQwenvk(args, "", kBundledIsTheFixture);
    ASSERT_EQ(bundled.status, 0) << args << ": " << bundled.err;
    ExpectUsesTheBundledModel(bundled, args);
    const Result named = RunQwenvk(args + " --model '" + kModel + "'", "", kBundledIsTheFixture);
    ASSERT_EQ(named.status, 0) << args << ": " << named.err;
    EXPECT_EQ(named.err.find("bundled"), std::string::npos) << args << ": " << named.err;
    if (args != "info") {  // info names the path it was given
      EXPECT_EQ(bundled.out, named.out) << args;
    }
  }
  const Result chat = RunQwenvk("chat --max-tokens 4 --greedy", "Hi there\n/exit\n", kBundledIsTheFixture);
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_EQ(Replies(chat.err), 1u) << chat.err;
  ExpectUsesTheBundledModel(chat, "chat");
}

// bench runs the bundled model too, --kernels included (it profiles a model's steps); only
// --device-peak alone measures the device without one.
TEST(CliTest, BenchWithoutAModelUsesTheBundledModelUnlessOnlyThePeakIsAsked) {
  const Result r = RunQwenvk("bench -p 8 -n 2 -r 1 -o json", "", kBundledIsTheFixture);
  ASSERT_EQ(r.status, 0) << r.err;
  ExpectUsesTheBundledModel(r, "bench");
  const auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["results"].size(), 2u);
  ExpectBenchFields(doc["results"][0]);
  const Result kernels =
      RunQwenvk("bench --device-peak --kernels -p 0 -n 2 -r 1 --peak-mib 1 -o json", "", kBundledIsTheFixture);
  ASSERT_EQ(kernels.status, 0) << kernels.err;
  ExpectUsesTheBundledModel(kernels, "bench --kernels");
  EXPECT_FALSE(nlohmann::json::parse(kernels.out)["results"][0]["kernels"].empty());
  const Result peak = RunQwenvk("bench --device-peak --peak-mib 1 -o json", "", kBundledIsMissing);
  ASSERT_EQ(peak.status, 0) << peak.err;
  EXPECT_EQ(peak.err.find("bundled"), std::string::npos) << peak.err;
  EXPECT_TRUE(nlohmann::json::parse(peak.out)["results"].empty());
}

// No --model and no bundled model: a sentence that says so and what to do, status 1, nothing run.
TEST(CliTest, AMissingBundledModelIsAClearError) {
  for (const std::string args : {"chat", "generate --prompt Hello", "bench -p 8", "bench --device-peak --kernels",
                                 "info", "tokenize --text Hello", "logits --ids 1", "attention --ids 1 --out x"}) {
    const Result r = RunQwenvk(args, "", kBundledIsMissing);
    EXPECT_EQ(r.status, 1) << args << ": " << r.err;
    qvk::test::ExpectMentions(r.err, {"qwenvk: the bundled demo model is missing (no config.json in "
                                      "/nonexistent/wordnet-chat): pass --model with a Hugging Face model folder "
                                      "or a .gguf file\n"});
    EXPECT_TRUE(r.out.empty()) << args << ": " << r.out;
  }
}

}  // namespace
