#include "server/remote_engine.h"

#include <httplib.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "server/openai_api.h"

namespace qvk::server {
namespace {

// An endpoint split as cpp-httplib takes it: "http://host:port" and the API's path ("/v1").
struct Address {
  std::string origin;
  std::string path;
};

Address Split(const std::string& base_url) {
  CheckBaseUrl(base_url);
  const size_t host = base_url.find("://") + 3;
  const size_t slash = base_url.find('/', host);
  Address address{base_url.substr(0, slash), slash == std::string::npos ? "" : base_url.substr(slash)};
  while (!address.path.empty() && address.path.back() == '/') address.path.pop_back();
  return address;
}

httplib::Client Connect(const RemoteEndpoint& endpoint, const Address& address) {
  httplib::Client client(address.origin);
  client.set_connection_timeout(endpoint.connect_timeout_s);
  client.set_read_timeout(endpoint.read_timeout_s);
  client.set_write_timeout(endpoint.connect_timeout_s);
  if (!endpoint.api_key.empty()) client.set_bearer_token_auth(endpoint.api_key);
  return client;
}

// Why a request never got a response, in words a user can act on.
Error TransportError(const RemoteEndpoint& endpoint, httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return Error(fmt::format("Could not connect to {}: is the server running, and are the host and port right?",
                               endpoint.base_url));
    case httplib::Error::ConnectionTimeout:
      return Error(fmt::format("{} did not accept a connection within {} s: check the address and the network.",
                               endpoint.base_url, endpoint.connect_timeout_s));
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
    case httplib::Error::SSLLoadingCerts:
      return Error(fmt::format("The secure connection to {} failed ({}): check its certificate, or use http://.",
                               endpoint.base_url, httplib::to_string(error)));
    default:
      return Error(
          fmt::format("The connection to {} broke ({}), or it sent nothing for {} s: check the server "
                      "and the network.",
                      endpoint.base_url, httplib::to_string(error), endpoint.read_timeout_s));
  }
}

// A response that is not 200, from its status and OpenAI-shaped body.
Error StatusError(const RemoteEndpoint& endpoint, int status, std::string_view body) {
  const ApiError api = ApiErrorFromBody(status, body);
  if (status == 401 || status == 403) {
    return Error(fmt::format("{} refused the API key ({}: {}): set the right key in Settings > Engines.",
                             endpoint.base_url, status, api.what()));
  }
  if (status >= 500) {
    return Error(
        fmt::format("{} failed ({}: {}): try again, or see the server's log.", endpoint.base_url, status, api.what()));
  }
  return Error(fmt::format("{} refused the request ({}: {}).", endpoint.base_url, status, api.what()));
}

}  // namespace

void CheckBaseUrl(const std::string& base_url) {
  const bool https = base_url.starts_with("https://");
  if (!https && !base_url.starts_with("http://")) {
    throw Error(
        fmt::format("The server address \"{}\" must begin with http:// (e.g. http://gpu-box:8000/v1).", base_url));
  }
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
  if (https) {
    throw Error(
        fmt::format("The server address \"{}\" is https://, and this build of QwenVK has no TLS: use "
                    "http://, or a tunnel that ends on this computer.",
                    base_url));
  }
#endif
  if (base_url.size() <= base_url.find("://") + 3) {
    throw Error(fmt::format("The server address \"{}\" names no host.", base_url));
  }
}

std::vector<std::string> ListRemoteModels(const RemoteEndpoint& endpoint) {
  const Address address = Split(endpoint.base_url);
  httplib::Client client = Connect(endpoint, address);
  // The body read as it comes, and no more of it than any list of models holds.
  std::string body;
  bool too_long = false;
  const httplib::Result result = client.Get(address.path + "/models", [&](const char* data, size_t size) {
    too_long = body.size() + size > kMaxReplyBytes;
    if (!too_long) body.append(data, size);
    return !too_long;
  });
  if (too_long) {
    throw Error(fmt::format("{}/models sent more than {} MiB: is this an OpenAI-compatible server?", endpoint.base_url,
                            kMaxReplyBytes >> 20));
  }
  if (!result) throw TransportError(endpoint, result.error());
  if (result->status != 200) throw StatusError(endpoint, result->status, body);
  const nlohmann::json list = ParseReplyJson(body);
  std::vector<std::string> ids;
  if (list.is_object() && list.contains("data") && list["data"].is_array()) {
    for (const nlohmann::json& model : list["data"]) {
      if (model.is_object() && model.contains("id") && model["id"].is_string()) ids.push_back(model["id"]);
    }
  }
  if (ids.empty())
    throw Error(fmt::format("{}/models lists no model: is this an OpenAI-compatible server?", endpoint.base_url));
  return ids;
}

RemoteEngine::RemoteEngine(RemoteEndpoint endpoint, std::string model)
    : endpoint_(std::move(endpoint)), model_(std::move(model)) {}

chat::ReplyOutcome RemoteEngine::Generate(const chat::ReplyRequest& request,
                                          const std::function<bool(std::string_view piece)>& on_text) {
  const Address address = Split(endpoint_.base_url);
  ChatCompletionRequest body{.model = model_,
                             .messages = request.messages,
                             .stream = true,
                             .include_usage = true,
                             .continue_final_message = request.continuation,
                             .sampling = {},
                             .template_options = request.template_options};
  const store::ConversationSettings& s = request.settings;
  body.sampling.temperature = s.temperature;
  body.sampling.top_p = s.top_p;
  body.sampling.top_k = s.top_k;
  body.sampling.min_p = s.min_p;
  body.sampling.repetition_penalty = s.repetition_penalty;
  body.sampling.max_tokens = s.max_new_tokens;
  if (!s.random_seed) body.sampling.seed = s.seed;

  httplib::Client client = Connect(endpoint_, address);
  httplib::Request post;
  post.method = "POST";
  post.path = address.path + "/chat/completions";
  post.set_header("Accept", "text/event-stream");
  post.body = ChatCompletionRequestJson(body).dump();
  post.set_header("Content-Type", "application/json");

  int status = 0;
  std::string error_body;
  SseReader events;
  chat::ReplyOutcome outcome;
  bool finished = false, stopped = false;
  post.response_handler = [&](const httplib::Response& response) {
    status = response.status;
    return true;
  };
  post.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (status != 200) {
      if (error_body.size() < 4096) error_body.append(data, std::min<size_t>(size, 4096 - error_body.size()));
      return true;
    }
    for (const std::string& event : events.Push(std::string_view(data, size))) {
      if (event == "[DONE]") {
        finished = true;
        continue;
      }
      const ChatChunk chunk = ParseChatChunk(event);  // an error event throws ApiError
      if (chunk.usage) {
        outcome.prompt_tokens = chunk.usage->prompt_tokens;
        outcome.completion_tokens = chunk.usage->completion_tokens;
      }
      if (chunk.finish) outcome.length_limit = *chunk.finish == FinishReason::Length;
      if (!chunk.content.empty() && !on_text(chunk.content)) {
        stopped = true;
        return false;
      }
    }
    return true;
  };
  httplib::Result result{nullptr, httplib::Error::Unknown};
  try {
    result = client.send(post);
  } catch (const ApiError& e) {
    throw StatusError(endpoint_, e.status(), ErrorJson(e).dump());
  } catch (const Error& e) {
    // A chunk or a stream no OpenAI-compatible server sends (ParseChatChunk, SseReader).
    throw Error(
        fmt::format("{} sent a reply that is not OpenAI's ({}): what came is kept.", endpoint_.base_url, e.what()));
  }
  if (stopped) return outcome;
  if (!result) {
    if (status == 200) {
      throw Error(
          fmt::format("{} stopped sending before the reply ended ({}): what came is kept, and Continue "
                      "finishes it once the server is back.",
                      endpoint_.base_url, httplib::to_string(result.error())));
    }
    throw TransportError(endpoint_, result.error());
  }
  if (status != 200) throw StatusError(endpoint_, status, error_body);
  if (!finished) {
    throw Error(
        fmt::format("{} ended the stream before the reply ended: what came is kept, and Continue "
                    "finishes it once the server is back.",
                    endpoint_.base_url));
  }
  return outcome;
}

}  // namespace qvk::server
