#pragma once
// What the test files share: where the data and the qwenvk binary are, reading files, CSV,
// checking error messages (expect_error.h), and llama.cpp's tokenizer vectors.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "store/settings.h"
#include "tests/expect_error.h"

namespace qvk::test {

// Polls `done` until it holds or `limit` passes; whether it held.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

// Greedy on the GPU's argmax, as the CLI's --greedy, so a reply can be predicted.
inline store::ConversationSettings GreedySettings(uint32_t max_new_tokens) {
  store::ConversationSettings s;
  s.temperature = 0;
  s.repetition_penalty = 1.0f;
  s.random_seed = false;
  s.max_new_tokens = max_new_tokens;
  return s;
}

// Compiled in, overridable by the environment variables of the same names, so a built suite
// can run from another checkout (as on a remote GPU machine).
inline std::filesystem::path TestDataDir() {
  const char* dir = std::getenv("QWENVK_TEST_DATA");
  return dir != nullptr && *dir != '\0' ? std::filesystem::path(dir) : std::filesystem::path(QWENVK_TEST_DATA);
}

// The checkout's assets/ (the bundled demo model), beside tests/data; also QWENVK_ASSETS.
inline std::filesystem::path AssetsDir() {
  const char* dir = std::getenv("QWENVK_ASSETS");
  return dir != nullptr && *dir != '\0'
             ? std::filesystem::path(dir)
             : std::filesystem::path(QWENVK_TEST_DATA).parent_path().parent_path() / "assets";
}

inline std::filesystem::path QwenvkBinary() {
  const char* path = std::getenv("QWENVK_BINARY");
  return path != nullptr && *path != '\0' ? std::filesystem::path(path) : std::filesystem::path(QWENVK_BINARY);
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

inline std::vector<std::string> Split(const std::string& text, const std::string& separator) {
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t at = text.find(separator); at != std::string::npos; at = text.find(separator, begin)) {
    parts.push_back(text.substr(begin, at - begin));
    begin = at + separator.size();
  }
  parts.push_back(text.substr(begin));
  return parts;
}

// CSV text as RFC 4180 writes it: one row per non-empty line, fields split at commas outside
// quotes, a doubled quote inside quotes read as one.
inline std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  for (const std::string& line : Split(text, "\n")) {
    if (line.empty()) continue;
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (c == ',' && !quoted) {
        fields.emplace_back();
      } else {
        fields.back() += c;
      }
    }
    rows.push_back(fields);
  }
  return rows;
}

// A NumPy .npy file of little-endian float32 in C order, read as numpy reads it: the magic, version
// 1.0, the header dict (its length making the data start at a multiple of 64 bytes), the values.
struct Npy {
  std::vector<size_t> shape;
  std::vector<float> values;
};
inline Npy ReadNpy(const std::filesystem::path& path) {
  const std::string bytes = ReadFile(path);
  Npy npy;
  EXPECT_GE(bytes.size(), 10u) << path;
  if (bytes.size() < 10) return npy;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8)) << path;
  const size_t header_size = static_cast<uint8_t>(bytes[8]) | static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8;
  const std::string header = bytes.substr(10, header_size);
  EXPECT_EQ((10 + header_size) % 64, 0u) << header;
  EXPECT_EQ(header.back(), '\n') << header;
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  const size_t open = header.find("'shape': (");
  EXPECT_NE(open, std::string::npos) << header;
  if (open == std::string::npos) return npy;
  std::istringstream dims(header.substr(open + 10, header.find(')', open) - open - 10));
  size_t elements = 1;
  for (std::string dim; std::getline(dims, dim, ',');) {
    if (dim.find_first_not_of(' ') == std::string::npos) continue;
    npy.shape.push_back(std::stoul(dim));
    elements *= npy.shape.back();
  }
  EXPECT_EQ(bytes.size(), 10 + header_size + 4 * elements) << path;
  npy.values.resize(std::min(elements, (bytes.size() - std::min(bytes.size(), 10 + header_size)) / 4));
  std::memcpy(npy.values.data(), bytes.data() + 10 + header_size, npy.values.size() * 4);
  return npy;
}

// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qwenvk-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(std::strerror(errno));
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { std::filesystem::remove_all(path_); }

  const std::filesystem::path& path() const { return path_; }
  // Writes `bytes` to the file `name` in the directory; returns its path.
  std::filesystem::path Write(const std::string& name, const std::string& bytes) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return file;
  }

 private:
  std::filesystem::path path_;
};

// A model folder in `dir` of links to the files of `model`, and to the tokenizer files of
// `tokenizer` that `model` lacks (tests/data/family's models share tests/data/family's tokenizers).
inline std::filesystem::path LinkModelFolder(const std::filesystem::path& model, const std::filesystem::path& tokenizer,
                                             const std::filesystem::path& dir) {
  for (const auto& file : std::filesystem::directory_iterator(model)) {
    std::filesystem::create_symlink(file.path(), dir / file.path().filename());
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!std::filesystem::exists(dir / name)) std::filesystem::create_symlink(tokenizer / name, dir / name);
  }
  return dir;
}

// GPT-2's byte-level alphabet in byte order: the 256 tokens every byte-level BPE vocabulary holds.
inline std::vector<std::string> ByteLevelAlphabet() {
  std::vector<std::string> alphabet;
  int extra = 0;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
    const int codepoint = printable ? byte : 256 + extra++;
    if (codepoint < 0x80) {
      alphabet.emplace_back(1, static_cast<char>(codepoint));
    } else {
      alphabet.push_back({static_cast<char>(0xC0 | (codepoint >> 6)), static_cast<char>(0x80 | (codepoint & 0x3F))});
    }
  }
  return alphabet;
}

// The smallest tokenizer.json this tokenizer accepts, with Qwen2's normalizer and pre-tokenizer
// shape, around the given "vocab" object and "merges" array (JSON text).
inline std::string MinimalJson(const std::string& vocab, const std::string& merges) {
  std::string json = R"({
  "added_tokens": [],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\s+|\\S+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
  "model": {"type": "BPE", "vocab": VOCAB, "merges": MERGES}
})";
  json.replace(json.find("VOCAB"), 5, vocab);
  json.replace(json.find("MERGES"), 6, merges);
  return json;
}

// A "vocab" object: the byte-level alphabet (ids 0-255), then `extra` from id 256.
inline std::string AlphabetVocabJson(const std::vector<std::string>& extra) {
  nlohmann::json vocab = nlohmann::json::object();
  std::vector<std::string> tokens = ByteLevelAlphabet();
  tokens.insert(tokens.end(), extra.begin(), extra.end());
  for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
  return vocab.dump();
}

struct TokenizerVector {
  std::string text;
  std::vector<uint32_t> ids;
};

// llama.cpp's test-tokenizer-0 files: the inputs are separated (and ended) by the separator, the
// outputs are one line of ids per input, each id preceded by a space. 46 vectors for Qwen2.
inline std::vector<TokenizerVector> LlamaCppVectors() {
  const auto dir = TestDataDir() / "tokenizer";
  std::vector<std::string> inputs = Split(ReadFile(dir / "ggml-vocab-qwen2.gguf.inp"), "\n__ggml_vocab_test__\n");
  std::vector<std::string> outputs = Split(ReadFile(dir / "ggml-vocab-qwen2.gguf.out"), "\n");
  EXPECT_EQ(inputs.back(), "");
  EXPECT_EQ(outputs.back(), "");
  inputs.pop_back();
  outputs.pop_back();
  EXPECT_EQ(outputs.size(), inputs.size());
  std::vector<TokenizerVector> vectors;
  for (size_t i = 0; i < inputs.size() && i < outputs.size(); ++i) {
    TokenizerVector v{inputs[i], {}};
    std::istringstream line(outputs[i]);
    for (uint32_t id = 0; line >> id;) v.ids.push_back(id);
    vectors.push_back(std::move(v));
  }
  return vectors;
}

}  // namespace qvk::test
