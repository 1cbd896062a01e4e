// The qwenvk command line as a user (or a script) runs it: JSON shapes on stdout, files
// written, streamed text, clean refusals; always with the validation layer on.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
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
  const std::string command = "QWENVK_VALIDATION=1 '" + qvk::test::QwenvkBinary().string() + "' " + args + " <'" + in_path.string() +
                              "' 2>'" + err_path.string() + "'";
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
size_t Replies(const Result& r) {
  size_t replies = 0;
  for (size_t at = 0; (at = r.err.find("prompt tokens", at)) != std::string::npos; ++at) ++replies;
  return replies;
}

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
  const Result r = RunQwenvk("logits --model '" + kModel + "' --ids " + Join(ids) + " --top 5 --greedy 3 --dump-last '" +
                       dump.string() + "'");
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
  const Result r = RunQwenvk("attention --model '" + kModel + "' --ids 9707,1879,11,1879 --out '" + out_file.string() + "'");
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
  EXPECT_EQ(Replies(r), 2u) << r.err;
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
    EXPECT_EQ(Replies(r), 2u) << file << ": " << r.err;
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
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("top-p"), std::string::npos) << r.err;
}

}  // namespace
