// libFuzzer target: the input as a safetensors file (header and data), and as
// model.safetensors.index.json over a folder that holds one small valid shard. Every input must
// end in parsed tensors or a qvk::Error; a crash, a sanitizer report, a hang or an allocation
// past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fuzz/fuzz_util.h"
#include "model/safetensors.h"

namespace {

// The parser promises each tensor's bytes lie inside the file: reading the first and last byte
// lets AddressSanitizer check that.
unsigned TouchTensors(const qvk::SafetensorsFile& file) {
  unsigned sum = 0;
  for (const qvk::TensorView& t : file.tensors()) {
    if (t.data.size() != t.elements() * qvk::BlockBytes(t.dtype)) __builtin_trap();
    if (!t.data.empty()) sum += std::to_integer<unsigned>(t.data.front()) + std::to_integer<unsigned>(t.data.back());
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The shard an index may name: one F32 tensor "w" of two elements.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string shard(8, '\0');
  for (size_t i = 0; i < 8; ++i) shard[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  shard += header + std::string(8, '\x01');
  qvk::fuzz::WriteFile("model-00001-of-00001.safetensors", reinterpret_cast<const uint8_t*>(shard.data()),
                       shard.size());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  unsigned sum = 0;
  const auto file = qvk::fuzz::WriteFile("fuzz.safetensors", data, size);
  qvk::fuzz::AllowError([&] { sum += TouchTensors(qvk::SafetensorsFile::Open(file)); });
  qvk::fuzz::WriteFile("model.safetensors.index.json", data, size);
  qvk::fuzz::AllowError([&] {
    const qvk::SafetensorsModel model(qvk::fuzz::Folder());
    for (const std::string& name : model.names()) sum += static_cast<unsigned>(model.Get(name).data.size());
  });
  [[maybe_unused]] volatile unsigned sink = sum;
  return 0;
}
