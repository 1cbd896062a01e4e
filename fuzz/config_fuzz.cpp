// libFuzzer target: the same bytes read as config.json and as generation_config.json. Every
// input must end in a config or a qvk::Error; a crash, a sanitizer report, a hang or an
// allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto config = qvk::fuzz::WriteFile("config.json", data, size);
  qvk::fuzz::AllowError([&] { qvk::ModelConfig::FromJsonFile(config); });
  const auto generation = qvk::fuzz::WriteFile("generation_config.json", data, size);
  qvk::fuzz::AllowError([&] { qvk::GenerationConfig::FromJsonFile(generation); });
  return 0;
}
