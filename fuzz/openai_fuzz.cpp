// libFuzzer target: the same bytes as every piece of OpenAI's API that arrives from the network.
// As a request body to `qwenvk serve` (chat and plain completions): a request it accepts, written
// back as a client would send it, must parse to the same request. As what a server sends the
// app's remote engine: an error body, a streamed chunk, and a server-sent event stream cut into
// pieces at places the input chooses, which must yield the events of the whole stream. Every
// input must end in a result, an ApiError or a qvk::Error; a crash, a sanitizer report, another
// exception, a hang or an allocation past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "server/openai_api.h"

namespace {

using qvk::server::ApiError;

// An ApiError or an Error is an answer; anything else escapes to libFuzzer.
template <typename F>
void AllowRefusal(const F& f) {
  try {
    f();
  } catch (const ApiError&) {
  } catch (const qvk::Error&) {
  }
}

void RequestsRoundTrip(std::string_view body) {
  std::optional<nlohmann::json> sent;
  AllowRefusal([&] { sent = qvk::server::ChatCompletionRequestJson(qvk::server::ParseChatCompletionRequest(body)); });
  // What the server accepted, sent again by a client, is accepted (a refusal escapes) as the same
  // request.
  if (sent && qvk::server::ChatCompletionRequestJson(qvk::server::ParseChatCompletionRequest(sent->dump())) != *sent) {
    __builtin_trap();
  }
  AllowRefusal([&] { qvk::server::ParseCompletionRequest(body); });
}

void ServerReplies(std::string_view bytes) {
  (void)qvk::server::ApiErrorFromBody(500, bytes);
  AllowRefusal([&] { qvk::server::ParseChatChunk(bytes); });

  // The stream whole, then in pieces cut where the input's bytes say: the same events.
  qvk::server::SseReader whole;
  const std::vector<std::string> expected = whole.Push(bytes);
  qvk::server::SseReader pieces;
  std::vector<std::string> got;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t length = 1 + static_cast<unsigned char>(bytes[at]) % 17;
    for (std::string& event : pieces.Push(bytes.substr(at, length))) got.push_back(std::move(event));
    at += length;
  }
  if (got != expected) __builtin_trap();
  for (const std::string& event : expected) AllowRefusal([&] { qvk::server::ParseChatChunk(event); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  RequestsRoundTrip(bytes);
  ServerReplies(bytes);
  return 0;
}
