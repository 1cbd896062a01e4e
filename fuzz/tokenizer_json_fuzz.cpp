// libFuzzer target: tokenizer.json, then, when it loads, encoding a fixed text and decoding the
// ids at once and one at a time. Every input must end in a tokenizer or a qvk::Error; a crash, a
// sanitizer report, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = qvk::fuzz::WriteFile("tokenizer.json", data, size);
  qvk::fuzz::AllowError([&] {
    const qvk::Tokenizer tokenizer = qvk::Tokenizer::FromTokenizerJson(path, /*declared_vocab_size=*/1u << 16);
    const std::vector<uint32_t> ids =
        tokenizer.Encode("Hello, world! <|im_start|>user\n  ab  \xE4\xBD\xA0\xE5\xA5\xBD 123\n<|im_end|>");
    tokenizer.Decode(ids);
    qvk::StreamDecoder stream(tokenizer);
    for (const uint32_t id : ids) stream.Push(id);
    stream.Flush();
  });
  return 0;
}
