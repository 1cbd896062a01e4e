// `qwenvk serve`: the model behind OpenAI's HTTP API until Ctrl-C or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "app/commands.h"
#include "app/runtime.h"
#include "server/http_server.h"

namespace qvk::app {
namespace {

// The name /v1/models lists: the model's folder or file name ("Qwen2.5-0.5B-Instruct").
std::string ModelId(const std::filesystem::path& path) {
  const std::filesystem::path name = std::filesystem::weakly_canonical(path).filename();
  return name.empty() ? path.string() : name.string();
}

}  // namespace

int RunServe(const ServeOptions& o) {
  // SIGINT and SIGTERM are taken by one thread with sigwait, which stops the server from outside a
  // signal handler. They are blocked before any thread starts (the Vulkan driver starts some), so
  // every thread inherits the mask and none is ended by them. A client gone away must fail a write,
  // never end the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Runtime runtime(o.model);
  server::ServerOptions options{
      .host = o.host, .port = o.port, .api_key = o.api_key, .model_id = ModelId(runtime.files().path())};
  server::HttpServer server(runtime.model(), options);
  const uint16_t port = server.Bind();
  // Tests and scripts read the port from this line (with --port 0 it is the one chosen).
  std::fprintf(stderr, "qwenvk serve: listening on http://%s:%u (model %s, %u parallel, context %u tokens%s)\n",
               o.host.c_str(), port, options.model_id.c_str(), o.parallel, runtime.engine().context(),
               o.api_key ? ", API key required" : "");

  // Whichever comes first, a signal or the server ending by itself, ends the other.
  std::atomic<bool> ending{false};
  std::thread signals([&] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    if (ending.exchange(true)) return;
    std::fprintf(stderr, "qwenvk serve: stopping (%s)\n", signal_number == SIGINT ? "Ctrl-C" : "SIGTERM");
    server.Stop();
  });
  server.Listen();
  if (!ending.exchange(true)) pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return 0;
}

}  // namespace qvk::app
