#pragma once
// `qwenvk serve`'s HTTP side: OpenAI's endpoints over cpp-httplib, on a loaded model whose
// engines are the GenerationQueue's slots. Every error leaves in OpenAI's JSON error shape.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace qvk::chat {
class LoadedModel;
}

namespace qvk::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                // 0: any free port (Bind returns it)
  std::optional<std::string> api_key;  // set: every request needs "Authorization: Bearer <key>"
  std::string model_id;                // what /v1/models lists and requests may name
  size_t max_waiting = 32;             // requests waiting for a slot before the next gets 503
  // A client that sends nothing, or reads nothing, for this long is dropped (its slot freed).
  int timeout_s = 30;
};

class HttpServer {
 public:
  // The model must outlive the server; its engines are the slots.
  HttpServer(chat::LoadedModel& model, const ServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the address; returns the port. Throws Error when the address cannot be bound.
  uint16_t Bind();
  // Serves until Stop (from any thread). Returns once every connection has closed.
  void Listen();
  // Cancels every request in progress and stops listening; from any thread, once.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qvk::server
