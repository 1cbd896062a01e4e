#pragma once
// The app as a client of an OpenAI-compatible server (vLLM, `qwenvk serve`, ...): a ReplySource
// that streams /v1/chat/completions over cpp-httplib, and the model list of /v1/models. Every
// failure (no server, a timeout, a refused key, a server error, a stream that stops mid-reply)
// is an Error with a sentence that names the server and what to do.
#include <string>
#include <vector>

#include "chat/reply_source.h"

namespace qvk::server {

struct RemoteEndpoint {
  std::string base_url;  // "http://host:8000/v1": the scheme, host, port and the API's path
  std::string api_key;   // sent as "Authorization: Bearer"; empty: none
  int connect_timeout_s = 10;
  // Longest wait for the next bytes: a big model's prefill of a long prompt comes before any.
  int read_timeout_s = 300;
};

// Throws Error when `base_url` is not an http:// (or, with TLS, https://) URL.
void CheckBaseUrl(const std::string& base_url);

// The ids /v1/models lists.
std::vector<std::string> ListRemoteModels(const RemoteEndpoint& endpoint);

class RemoteEngine : public chat::ReplySource {
 public:
  RemoteEngine(RemoteEndpoint endpoint, std::string model);
  chat::ReplyOutcome Generate(const chat::ReplyRequest& request,
                              const std::function<bool(std::string_view piece)>& on_text) override;

 private:
  RemoteEndpoint endpoint_;
  std::string model_;
};

}  // namespace qvk::server
