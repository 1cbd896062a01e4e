// libFuzzer target: the input as a chat template's source, parsed, then rendered over a small
// fixed conversation with and without the generation prompt; and as a whole
// tokenizer_config.json. Every input must end in a rendered prompt or a qvk::Error; a crash, a
// sanitizer report, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "model/chat_template.h"

namespace {

const std::vector<qvk::ChatMessage> kMessages = {
    {"system", "You are a helpful assistant."},
    {"user", "Hi! \xE4\xBD\xA0\xE5\xA5\xBD"},
    {"assistant", "  Hello.\n"},
    {"user", ""},
};

void Render(const qvk::ChatTemplate& chat_template) {
  chat_template.Apply(kMessages, /*add_generation_prompt=*/true);
  chat_template.Apply(kMessages, /*add_generation_prompt=*/false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvk::fuzz::AllowError([&] { Render(qvk::ChatTemplate(std::string(reinterpret_cast<const char*>(data), size))); });
  const auto config = qvk::fuzz::WriteFile("tokenizer_config.json", data, size);
  qvk::fuzz::AllowError([&] { Render(qvk::ChatTemplate::FromTokenizerConfig(config)); });
  return 0;
}
