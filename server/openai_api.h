#pragma once
// OpenAI's API as JSON, with no HTTP and no model: requests parsed and checked (every refusal an
// ApiError with the status and words OpenAI's own server would use), responses, streamed chunks
// and errors built, and the pieces a client needs to read them back (server-sent events, chunks,
// error bodies). `qwenvk serve` uses both directions' halves; a client of any OpenAI-compatible
// server can use them too.
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/chat_template.h"

namespace qvk::server {

// An error as OpenAI's API reports it: the HTTP status and {"error": {message, type, param, code}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "");
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }  // the request field at fault, or empty
  const std::string& code() const { return code_; }    // a machine-readable reason, or empty

 private:
  int status_;
  std::string type_, param_, code_;
};

// {"error": {...}}, param and code null when empty.
nlohmann::json ErrorJson(const ApiError& error);
// A response body read back as an ApiError (a client's side); a body that is not OpenAI's error
// shape becomes one whose message is the body itself, at most 200 bytes of it.
ApiError ApiErrorFromBody(int status, std::string_view body);
// OpenAI's error type for a status without a more specific one (401: authentication_error, ...).
std::string ErrorTypeForStatus(int status);

// Largest request body the parsers read; the server refuses larger ones with 413 before parsing.
inline constexpr uint64_t kMaxRequestBytes = uint64_t{8} << 20;
// Objects and arrays inside one another in a request (a chat request needs 4).
inline constexpr int kMaxRequestJsonDepth = 16;
// OpenAI allows up to 4 stop sequences.
inline constexpr size_t kMaxStopSequences = 4;

// What both endpoints take about sampling. Unset fields take the model's defaults
// (generation_config.json); top_k, min_p and repetition_penalty are the extensions vLLM and
// llama.cpp's server accept too.
struct SamplingFields {
  std::optional<float> temperature;  // 0 .. 2; 0: greedy
  std::optional<float> top_p;        // 0 .. 1
  std::optional<uint32_t> top_k;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::optional<uint32_t> max_tokens;  // max_completion_tokens, else max_tokens; none: until the context is full
  std::vector<std::string> stop;       // up to kMaxStopSequences, none empty
  std::optional<uint64_t> seed;        // a negative seed is taken modulo 2^64
};

struct ChatCompletionRequest {
  std::string model;  // empty when the request names none
  std::vector<ChatMessage> messages;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  // vLLM's extension: the last message (the assistant's) carries on instead of a new turn
  // opening, which is how a client continues an unfinished reply.
  bool continue_final_message = false;
  SamplingFields sampling;
  // vLLM's and llama.cpp's chat_template_kwargs: {"enable_thinking": false} turns Qwen3's
  // thinking off. The one variable this server's templates take; any other is refused.
  TemplateOptions template_options;
};

struct CompletionRequest {
  std::string model;
  std::string prompt;
  bool stream = false;
  bool include_usage = false;
  SamplingFields sampling;
};

// Parse a request body; every refusal is an ApiError with status 400 naming the field at fault.
// Fields this API does not know are ignored, as OpenAI's clients send many; fields it knows but
// cannot honour (n > 1, logprobs, tools, penalties, images, ...) are refused, never ignored.
ChatCompletionRequest ParseChatCompletionRequest(std::string_view body);
CompletionRequest ParseCompletionRequest(std::string_view body);
// The request as a client sends it (what the parsers read back to the same request).
nlohmann::json ChatCompletionRequestJson(const ChatCompletionRequest& request);

// --- responses ----------------------------------------------------------------------------
enum class FinishReason {
  Stop,    // a stop token or a stop sequence
  Length,  // max_tokens, or the context is full
};
std::string_view FinishReasonName(FinishReason reason);

struct Usage {
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};
nlohmann::json UsageJson(const Usage& usage);

// What a response and all of its chunks share.
struct ResponseHeader {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;
  std::string model;
};

nlohmann::json ChatCompletionJson(const ResponseHeader& header, std::string_view content, FinishReason finish,
                                  const Usage& usage);
// One chat.completion.chunk: the first carries the role, the next ones content, the last only the
// finish reason (each field null or absent when not given).
nlohmann::json ChatChunkJson(const ResponseHeader& header, std::optional<std::string_view> role,
                             std::optional<std::string_view> content, std::optional<FinishReason> finish);
nlohmann::json CompletionJson(const ResponseHeader& header, std::string_view text, FinishReason finish,
                              const Usage& usage);
nlohmann::json CompletionChunkJson(const ResponseHeader& header, std::string_view text,
                                   std::optional<FinishReason> finish);
// stream_options.include_usage's last chunk: no choices, the usage.
nlohmann::json UsageChunkJson(const ResponseHeader& header, bool chat, const Usage& usage);
nlohmann::json ModelListJson(std::span<const std::string> model_ids, int64_t created);

// A server-sent event carrying `data`, and the stream's last event.
std::string SseEvent(const nlohmann::json& data);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// --- a client's side ----------------------------------------------------------------------
// Largest reply body, and nesting, that a client reads as JSON: a chunk nests 4 levels, a model
// list 5; a server that sends more is not OpenAI's shape, and nlohmann's copies and comparisons
// recurse once a level (base/bounded_json.h).
inline constexpr uint64_t kMaxReplyBytes = uint64_t{8} << 20;
inline constexpr int kMaxReplyJsonDepth = 32;
// A server's reply body parsed within those limits; a discarded value (is_discarded()) where it
// is not JSON or goes past them.
nlohmann::json ParseReplyJson(std::string_view body);

// The data of server-sent events from a byte stream arriving in pieces of any size.
class SseReader {
 public:
  // Every event completed by `bytes`, in order ("[DONE]" included as it is). Throws Error once
  // more than kMaxReplyBytes wait for an event's end.
  std::vector<std::string> Push(std::string_view bytes);

 private:
  std::string buffer_;
};

// A chat.completion.chunk read back (one choice). Throws ApiError for an error event, Error for
// anything else that is not a chunk.
struct ChatChunk {
  std::string role;     // in the first chunk
  std::string content;  // this chunk's text
  std::optional<FinishReason> finish;
  std::optional<Usage> usage;
};
ChatChunk ParseChatChunk(std::string_view data);

// --- stop sequences -----------------------------------------------------------------------
// Streams text while looking for stop sequences: text that may be the start of one is held back
// until it is known not to be, so a client never sees any part of a stop sequence.
class StopScanner {
 public:
  explicit StopScanner(std::vector<std::string> stops);
  // What of `text` (appended to what came before) may be sent now; after a stop sequence, nothing.
  std::string Push(std::string_view text);
  // The text held back, when generation ended without a stop sequence.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace qvk::server
