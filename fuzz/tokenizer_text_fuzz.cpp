// libFuzzer target: the bytes as text a user types into the chat, encoded by Qwen2's own
// tokenizer (tests/data/qwen2-tiny/tokenizer.json: the 151 643 tokens, the merges and the added
// tokens of Qwen2.5). Invalid UTF-8 must end in a qvk::Error; anything else must encode, and its
// ids must decode to text that encodes to the same ids (added tokens split out, NFC and the byte
// mapping applied once, not again), and decode one at a time to the same text as at once. A
// crash, a sanitizer report, another exception, a hang or an allocation past libFuzzer's limit is
// a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const qvk::Tokenizer tokenizer = qvk::Tokenizer::FromTokenizerJson(QWENVK_FUZZ_TOKENIZER);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<uint32_t> ids;
  qvk::fuzz::AllowError([&] { ids = tokenizer.Encode(text); });
  if (ids.empty()) return 0;
  const std::string decoded = tokenizer.Decode(ids);
  if (tokenizer.Encode(decoded) != ids) __builtin_trap();
  for (const bool skip_special : {false, true}) {
    qvk::StreamDecoder stream(tokenizer, skip_special);
    std::string streamed;
    for (const uint32_t id : ids) streamed += stream.Push(id);
    streamed += stream.Flush();
    if (streamed != tokenizer.Decode(ids, skip_special)) __builtin_trap();
  }
  return 0;
}
