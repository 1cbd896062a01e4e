// libFuzzer target: GGUF parsing from memory, then the model config and the tokenizer vocabulary
// read from whatever parsed. Every input must end in a parsed file or a qvk::Error; a crash, a
// sanitizer report, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <spdlog/spdlog.h>

#include "fuzz/fuzz_util.h"
#include "model/gguf.h"
#include "model/gguf_model.h"

namespace {

using qvk::fuzz::AllowError;

// Every typed accessor on every key: each must return or throw Error, whatever the value's type.
void ReadAllMetadata(const qvk::GgufFile& file) {
  for (const std::string& key : file.Keys()) {
    AllowError([&] { file.GetString(key); });
    AllowError([&] { file.GetUint(key); });
    AllowError([&] { file.GetFloat(key); });
    AllowError([&] { file.GetBool(key); });
    AllowError([&] { file.GetStringArray(key); });
    AllowError([&] { file.GetIntArray(key); });
  }
}

// The parser promises each tensor's bytes lie inside the input; reading the first and last byte
// lets AddressSanitizer check that (libFuzzer's input buffer is exactly `size` bytes long).
void CheckTensors(const qvk::GgufFile& file, std::span<const std::byte> input) {
  unsigned sum = 0;
  for (const qvk::GgufTensor& t : file.tensors()) {
    if (t.data.empty() || t.data.data() < input.data() || t.data.data() + t.data.size() > input.data() + input.size()) {
      __builtin_trap();
    }
    sum += std::to_integer<unsigned>(t.data.front()) + std::to_integer<unsigned>(t.data.back());
    if (file.FindTensor(t.name) == nullptr || qvk::TraitsOf(t.type) == std::nullopt) __builtin_trap();
  }
  [[maybe_unused]] volatile unsigned sink = sum;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // ConfigFromGguf logs defaults it applies
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto input = std::as_bytes(std::span(data, size));
  AllowError([&] {
    const qvk::GgufFile file = qvk::GgufFile::FromBytes(input, "fuzz input");
    CheckTensors(file, input);
    ReadAllMetadata(file);
    AllowError([&] { qvk::ConfigFromGguf(file); });
    AllowError([&] { qvk::TokenizerVocabFromGguf(file); });
    AllowError([&] { qvk::ChatTemplateFromGguf(file); });
  });
  return 0;
}
