// Sections: errors / field readers / requests / responses / a client's side / stop sequences
#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "base/bounded_json.h"
#include "base/error.h"

namespace qvk::server {

using nlohmann::json;

// --- errors -------------------------------------------------------------------------------

ApiError::ApiError(int status, const std::string& message, std::string type, std::string param, std::string code)
    : std::runtime_error(message),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

json ErrorJson(const ApiError& error) {
  auto or_null = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"error",
           {{"message", error.what()},
            {"type", error.type()},
            {"param", or_null(error.param())},
            {"code", or_null(error.code())}}}};
}

std::string ErrorTypeForStatus(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 503:
      return "server_overloaded";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

json ParseReplyJson(std::string_view body) {
  try {
    return ParseBoundedJson(body, "the reply", {.max_bytes = kMaxReplyBytes, .max_depth = kMaxReplyJsonDepth});
  } catch (const Error&) {
    return json(json::value_t::discarded);
  }
}

ApiError ApiErrorFromBody(int status, std::string_view body) {
  const json doc = ParseReplyJson(body);
  if (doc.is_object() && doc.contains("error") && doc["error"].is_object()) {
    const json& e = doc["error"];
    auto text = [&](const char* key) { return e.contains(key) && e[key].is_string() ? e[key].get<std::string>() : ""; };
    return ApiError(status, text("message"), e.contains("type") ? text("type") : ErrorTypeForStatus(status),
                    text("param"), text("code"));
  }
  return ApiError(status, std::string(body.substr(0, 200)), ErrorTypeForStatus(status));
}

namespace {

ApiError BadField(const std::string& param, const std::string& message) {
  return ApiError(400, message, "invalid_request_error", param);
}

// --- field readers ------------------------------------------------------------------------
// Each returns nothing for an absent or null field (OpenAI's clients send null for "unset") and
// refuses a value of the wrong type or range, naming the field and what it takes.

std::optional<double> ReadNumber(const json& request, const char* name, double low, double high) {
  if (!request.contains(name) || request[name].is_null()) return std::nullopt;
  const json& value = request[name];
  if (!value.is_number() || value.get<double>() < low || value.get<double>() > high) {
    throw BadField(name, fmt::format("'{}' must be a number from {} to {}, got {}", name, low, high, BriefJson(value)));
  }
  return value.get<double>();
}

std::optional<int64_t> ReadInteger(const json& request, const char* name, int64_t low, int64_t high) {
  if (!request.contains(name) || request[name].is_null()) return std::nullopt;
  const json& value = request[name];
  const bool whole = value.is_number_integer() || (value.is_number_float() && std::isfinite(value.get<double>()) &&
                                                   std::trunc(value.get<double>()) == value.get<double>());
  if (!whole || value.get<double>() < static_cast<double>(low) || value.get<double>() > static_cast<double>(high)) {
    throw BadField(name,
                   fmt::format("'{}' must be a whole number from {} to {}, got {}", name, low, high, BriefJson(value)));
  }
  return value.is_number_unsigned() ? static_cast<int64_t>(value.get<uint64_t>()) : value.get<int64_t>();
}

bool ReadBool(const json& request, const char* name) {
  if (!request.contains(name) || request[name].is_null()) return false;
  if (!request[name].is_boolean()) {
    throw BadField(name, fmt::format("'{}' must be true or false, got {}", name, BriefJson(request[name])));
  }
  return request[name].get<bool>();
}

std::string ReadString(const json& request, const char* name) {
  if (!request.contains(name) || request[name].is_null()) return "";
  if (!request[name].is_string()) {
    throw BadField(name, fmt::format("'{}' must be a string, got {}", name, BriefJson(request[name])));
  }
  return request[name].get<std::string>();
}

// A field this server knows and cannot honour: refused unless absent, null or `off` (its "off" value).
void RefuseUnless(const json& request, const char* name, const std::function<bool(const json&)>& off,
                  const std::string& why) {
  if (request.contains(name) && !request[name].is_null() && !off(request[name])) {
    throw ApiError(400, fmt::format("'{}' is not supported: {}", name, why), "invalid_request_error", name,
                   "unsupported_parameter");
  }
}

bool Empty(const json& value) {
  return value.empty();
}
bool IsFalse(const json& value) {
  return value == false;
}
bool Never(const json&) {
  return false;
}

json Root(std::string_view body) {
  json request;
  try {
    request =
        ParseBoundedJson(body, "the request body", {.max_bytes = kMaxRequestBytes, .max_depth = kMaxRequestJsonDepth});
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!request.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return request;
}

void ReadStreamFields(const json& request, bool& stream, bool& include_usage) {
  stream = ReadBool(request, "stream");
  if (request.contains("stream_options") && !request["stream_options"].is_null()) {
    const json& options = request["stream_options"];
    if (!options.is_object()) throw BadField("stream_options", "'stream_options' must be an object");
    include_usage = ReadBool(options, "include_usage");
  }
}

// --- requests -----------------------------------------------------------------------------

SamplingFields ReadSampling(const json& request) {
  SamplingFields s;
  if (const auto t = ReadNumber(request, "temperature", 0, 2)) s.temperature = static_cast<float>(*t);
  if (const auto p = ReadNumber(request, "top_p", 0, 1)) s.top_p = static_cast<float>(*p);
  if (const auto k = ReadInteger(request, "top_k", -1, std::numeric_limits<int32_t>::max())) {
    s.top_k = static_cast<uint32_t>(std::max<int64_t>(*k, 0));  // -1: off, as vLLM reads it
  }
  if (const auto p = ReadNumber(request, "min_p", 0, 1)) s.min_p = static_cast<float>(*p);
  if (const auto r = ReadNumber(request, "repetition_penalty", 0.01, 10)) s.repetition_penalty = static_cast<float>(*r);
  constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();
  if (const auto n = ReadInteger(request, "max_tokens", 1, kMaxTokens)) s.max_tokens = static_cast<uint32_t>(*n);
  if (const auto n = ReadInteger(request, "max_completion_tokens", 1, kMaxTokens)) {
    s.max_tokens = static_cast<uint32_t>(*n);
  }
  if (const auto seed =
          ReadInteger(request, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    s.seed = static_cast<uint64_t>(*seed);
  }

  if (request.contains("stop") && !request["stop"].is_null()) {
    const json& stop = request["stop"];
    const json list = stop.is_string() ? json::array({stop}) : stop;
    if (!list.is_array() || list.size() > kMaxStopSequences ||
        !std::all_of(list.begin(), list.end(), [](const json& item) {
          return item.is_string() && !item.get_ref<const std::string&>().empty();
        })) {
      throw BadField("stop", fmt::format("'stop' must be a non-empty string or a list of up to {} of them, got {}",
                                         kMaxStopSequences, BriefJson(stop)));
    }
    for (const json& sequence : list) s.stop.push_back(sequence.get<std::string>());
  }

  // The sampler has no presence or frequency penalty (its repetition_penalty is transformers'
  // multiplicative one, a different curve), so a non-zero one is refused rather than approximated.
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    if (const auto penalty = ReadNumber(request, name, -2, 2); penalty && *penalty != 0) {
      throw ApiError(400,
                     fmt::format("'{}' is not supported (only 0): this server's sampler has no additive penalties; "
                                 "use 'repetition_penalty' (1 is off, above 1 discourages repeats)",
                                 name),
                     "invalid_request_error", name, "unsupported_parameter");
    }
  }
  if (const auto n = ReadInteger(request, "n", 1, std::numeric_limits<int32_t>::max()); n && *n != 1) {
    throw ApiError(400, "'n' is not supported (only 1): this server generates one choice per request",
                   "invalid_request_error", "n", "unsupported_parameter");
  }
  RefuseUnless(request, "logit_bias", Empty, "this server does not bias logits");
  return s;
}

// A message's text: a string, or a list of text parts (joined), as OpenAI's clients send it.
std::string MessageText(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    throw BadField(where,
                   fmt::format("'{}' must be a string or a list of text parts, got {}", where, BriefJson(content)));
  }
  std::string text;
  for (const json& part : content) {
    const std::string type =
        part.is_object() && part.contains("type") && part["type"].is_string() ? part["type"].get<std::string>() : "";
    if (type != "text") {
      throw ApiError(
          400,
          fmt::format("'{}': content part {} is not supported: this model reads text only", where, BriefJson(part)),
          "invalid_request_error", where, "unsupported_content");
    }
    if (!part.contains("text") || !part["text"].is_string()) {
      throw BadField(where, fmt::format("'{}': a text part needs a string 'text'", where));
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

ChatMessage ReadMessage(const json& message, size_t index) {
  const std::string where = fmt::format("messages[{}]", index);
  if (!message.is_object())
    throw BadField(where, fmt::format("'{}' must be an object with 'role' and 'content'", where));
  const std::string role = ReadString(message, "role");
  // "developer" is what newer OpenAI clients call the system prompt.
  if (role == "system" || role == "developer" || role == "user" || role == "assistant") {
    if (message.contains("tool_calls") && !message["tool_calls"].is_null() && !message["tool_calls"].empty()) {
      throw ApiError(400, fmt::format("'{}.tool_calls' is not supported: this server has no tools", where),
                     "invalid_request_error", where + ".tool_calls", "unsupported_parameter");
    }
    if (!message.contains("content") || message["content"].is_null()) {
      throw BadField(where + ".content", fmt::format("'{}.content' is missing", where));
    }
    return {role == "developer" ? "system" : role, MessageText(message["content"], where + ".content")};
  }
  if (role == "tool" || role == "function") {
    throw ApiError(400, fmt::format("'{}.role' {} is not supported: this server has no tools", where, role),
                   "invalid_request_error", where + ".role", "unsupported_parameter");
  }
  throw BadField(where + ".role", fmt::format("'{}.role' must be system, developer, user or assistant, got {}", where,
                                              BriefJson(message.value("role", json(nullptr)))));
}

TemplateOptions ReadTemplateKwargs(const json& request) {
  TemplateOptions options;
  if (!request.contains("chat_template_kwargs") || request["chat_template_kwargs"].is_null()) return options;
  const json& kwargs = request["chat_template_kwargs"];
  if (!kwargs.is_object()) {
    throw BadField("chat_template_kwargs",
                   fmt::format("'chat_template_kwargs' must be an object, got {}", BriefJson(kwargs)));
  }
  for (const auto& [name, value] : kwargs.items()) {
    const std::string param = "chat_template_kwargs." + name;
    if (name != "enable_thinking") {
      throw ApiError(
          400, fmt::format("'{}' is not supported: this server gives the chat template only enable_thinking", param),
          "invalid_request_error", param, "unsupported_parameter");
    }
    if (!value.is_boolean()) {
      throw BadField(param, fmt::format("'{}' must be true or false, got {}", param, BriefJson(value)));
    }
    options.enable_thinking = value.get<bool>();
  }
  return options;
}

}  // namespace

ChatCompletionRequest ParseChatCompletionRequest(std::string_view body) {
  const json request = Root(body);
  ChatCompletionRequest r;
  r.model = ReadString(request, "model");
  if (!request.contains("messages") || !request["messages"].is_array() || request["messages"].empty()) {
    throw BadField("messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects");
  }
  const json& messages = request["messages"];
  for (size_t i = 0; i < messages.size(); ++i) r.messages.push_back(ReadMessage(messages[i], i));
  ReadStreamFields(request, r.stream, r.include_usage);
  r.continue_final_message = ReadBool(request, "continue_final_message");
  if (r.continue_final_message && r.messages.back().role != "assistant") {
    throw BadField("continue_final_message", "'continue_final_message' needs the last message to be the assistant's");
  }
  r.sampling = ReadSampling(request);
  r.template_options = ReadTemplateKwargs(request);
  RefuseUnless(request, "logprobs", IsFalse, "this server does not return log probabilities");
  RefuseUnless(request, "top_logprobs", Never, "this server does not return log probabilities");
  RefuseUnless(request, "tools", Empty, "this server has no tools");
  RefuseUnless(request, "functions", Empty, "this server has no tools");
  RefuseUnless(
      request, "tool_choice", [](const json& v) { return v == "none"; }, "this server has no tools");
  RefuseUnless(
      request, "response_format",
      [](const json& v) { return v.is_object() && v.value("type", json(nullptr)) == "text"; },
      "this server writes plain text only (no JSON mode or schemas)");
  return r;
}

CompletionRequest ParseCompletionRequest(std::string_view body) {
  const json request = Root(body);
  CompletionRequest r;
  r.model = ReadString(request, "model");
  const json prompt = request.value("prompt", json(nullptr));
  if (prompt.is_string()) {
    r.prompt = prompt.get<std::string>();
  } else if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
    r.prompt = prompt[0].get<std::string>();
  } else {
    throw BadField("prompt",
                   fmt::format("'prompt' must be a string (or a list of one string), got {}", BriefJson(prompt)));
  }
  ReadStreamFields(request, r.stream, r.include_usage);
  r.sampling = ReadSampling(request);
  RefuseUnless(request, "logprobs", Never, "this server does not return log probabilities");
  RefuseUnless(request, "echo", IsFalse, "the reply does not repeat the prompt");
  RefuseUnless(request, "suffix", Never, "this server does not fill in the middle");
  RefuseUnless(
      request, "best_of", [](const json& v) { return v == 1; }, "this server generates one choice per request");
  return r;
}

json ChatCompletionRequestJson(const ChatCompletionRequest& r) {
  json messages = json::array();
  for (const ChatMessage& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  json request = {{"model", r.model}, {"messages", messages}, {"stream", r.stream}};
  if (r.stream && r.include_usage) request["stream_options"] = {{"include_usage", true}};
  if (r.continue_final_message) {
    // vLLM refuses continue_final_message beside its default add_generation_prompt = true.
    request["continue_final_message"] = true;
    request["add_generation_prompt"] = false;
  }
  const SamplingFields& s = r.sampling;
  if (s.temperature) request["temperature"] = *s.temperature;
  if (s.top_p) request["top_p"] = *s.top_p;
  if (s.top_k) request["top_k"] = *s.top_k;
  if (s.min_p) request["min_p"] = *s.min_p;
  if (s.repetition_penalty) request["repetition_penalty"] = *s.repetition_penalty;
  if (s.max_tokens) request["max_tokens"] = *s.max_tokens;
  if (!s.stop.empty()) request["stop"] = s.stop;
  if (s.seed) request["seed"] = static_cast<int64_t>(*s.seed);
  if (r.template_options.enable_thinking) {
    request["chat_template_kwargs"] = {{"enable_thinking", *r.template_options.enable_thinking}};
  }
  return request;
}

// --- responses ----------------------------------------------------------------------------

std::string_view FinishReasonName(FinishReason reason) {
  return reason == FinishReason::Stop ? "stop" : "length";
}

json UsageJson(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

namespace {

json Envelope(const ResponseHeader& header, std::string_view object) {
  return {{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model}};
}

json FinishJson(std::optional<FinishReason> finish) {
  return finish ? json(FinishReasonName(*finish)) : json(nullptr);
}

}  // namespace

json ChatCompletionJson(const ResponseHeader& header, std::string_view content, FinishReason finish,
                        const Usage& usage) {
  json response = Envelope(header, "chat.completion");
  response["choices"] = json::array({{{"index", 0},
                                      {"message", {{"role", "assistant"}, {"content", content}}},
                                      {"logprobs", nullptr},
                                      {"finish_reason", FinishReasonName(finish)}}});
  response["usage"] = UsageJson(usage);
  return response;
}

json ChatChunkJson(const ResponseHeader& header, std::optional<std::string_view> role,
                   std::optional<std::string_view> content, std::optional<FinishReason> finish) {
  json delta = json::object();
  if (role) delta["role"] = *role;
  if (content) delta["content"] = *content;
  json chunk = Envelope(header, "chat.completion.chunk");
  chunk["choices"] =
      json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", FinishJson(finish)}}});
  return chunk;
}

json CompletionJson(const ResponseHeader& header, std::string_view text, FinishReason finish, const Usage& usage) {
  json response = Envelope(header, "text_completion");
  response["choices"] =
      json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", FinishReasonName(finish)}}});
  response["usage"] = UsageJson(usage);
  return response;
}

json CompletionChunkJson(const ResponseHeader& header, std::string_view text, std::optional<FinishReason> finish) {
  json chunk = Envelope(header, "text_completion");
  chunk["choices"] =
      json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", FinishJson(finish)}}});
  return chunk;
}

json UsageChunkJson(const ResponseHeader& header, bool chat, const Usage& usage) {
  json chunk = Envelope(header, chat ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array();
  chunk["usage"] = UsageJson(usage);
  return chunk;
}

json ModelListJson(std::span<const std::string> model_ids, int64_t created) {
  json data = json::array();
  for (const std::string& id : model_ids) {
    data.push_back({{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "qwenvk"}});
  }
  return {{"object", "list"}, {"data", data}};
}

std::string SseEvent(const json& data) {
  // Invalid UTF-8 cannot reach here (the decoder writes whole characters), but a dump must never
  // throw mid-stream, so any such byte is replaced rather than ending the reply.
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// --- a client's side ----------------------------------------------------------------------

std::vector<std::string> SseReader::Push(std::string_view bytes) {
  // "\r\n" line ends are allowed by the specification: kept as "\n" alone.
  std::copy_if(bytes.begin(), bytes.end(), std::back_inserter(buffer_), [](char c) { return c != '\r'; });
  std::vector<std::string> events;
  // An event is its lines up to a blank line; its data is its "data:" lines joined.
  for (size_t end; (end = buffer_.find("\n\n")) != std::string::npos;) {
    std::string_view event(buffer_.data(), end);
    std::string data;
    while (!event.empty()) {
      const size_t line_end = event.find('\n');
      std::string_view line = event.substr(0, line_end);
      if (line.starts_with("data:")) {
        line.remove_prefix(5);
        if (line.starts_with(' ')) line.remove_prefix(1);
        if (!data.empty()) data += '\n';
        data += line;
      }
      event = line_end == std::string_view::npos ? std::string_view() : event.substr(line_end + 1);
    }
    if (!data.empty()) events.push_back(std::move(data));
    buffer_.erase(0, end + 2);
  }
  // A server that keeps sending without ever ending an event would fill memory.
  if (buffer_.size() > kMaxReplyBytes) {
    throw Error(fmt::format("the server sent {} bytes without ending an event: not an OpenAI stream", buffer_.size()));
  }
  return events;
}

namespace {

// A count a server reported, or 0 where it sent none that fits (a string, a negative number, ...).
uint32_t ReportedCount(const json& usage, const char* key) {
  const auto it = usage.find(key);
  if (it == usage.end() || !it->is_number_unsigned()) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(it->get<uint64_t>(), std::numeric_limits<uint32_t>::max()));
}

}  // namespace

ChatChunk ParseChatChunk(std::string_view data) {
  const json chunk = ParseReplyJson(data);
  if (!chunk.is_object()) throw Error(fmt::format("a streamed chunk is not JSON: {}", data.substr(0, 200)));
  if (chunk.contains("error")) throw ApiErrorFromBody(500, data);
  ChatChunk out;
  if (const auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
    out.usage = Usage{.prompt_tokens = ReportedCount(*usage, "prompt_tokens"),
                      .completion_tokens = ReportedCount(*usage, "completion_tokens")};
  }
  const auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array()) {
    throw Error(fmt::format("a streamed chunk has no choices: {}", data.substr(0, 200)));
  }
  if (choices->empty()) return out;
  const json& choice = (*choices)[0];
  if (!choice.is_object()) {
    throw Error(fmt::format("a streamed chunk's choice is not an object: {}", data.substr(0, 200)));
  }
  if (const auto delta = choice.find("delta"); delta != choice.end() && delta->is_object()) {
    const auto text = [&](const char* key) {
      const auto it = delta->find(key);
      return it != delta->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    out.role = text("role");
    out.content = text("content");
  }
  if (const auto finish = choice.find("finish_reason"); finish != choice.end()) {
    if (*finish == "stop") out.finish = FinishReason::Stop;
    if (*finish == "length") out.finish = FinishReason::Length;
  }
  return out;
}

// --- stop sequences -----------------------------------------------------------------------

StopScanner::StopScanner(std::vector<std::string> stops) : stops_(std::move(stops)) {}

std::string StopScanner::Push(std::string_view text) {
  if (stopped_) return "";
  held_.append(text);
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string sent = held_.substr(0, first);
    held_.clear();
    return sent;
  }
  // Hold back the longest tail that is the start of some stop sequence.
  size_t keep = 0;
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string sent = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return sent;
}

std::string StopScanner::Flush() {
  return std::exchange(held_, std::string());
}

}  // namespace qvk::server
