// Sections: errors / requests to jobs / replies / routes / the server
#include "server/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "chat/loaded_model.h"
#include "chat/prompt_plan.h"
#include "server/generation_queue.h"
#include "server/openai_api.h"

namespace qvk::server {
namespace {

using nlohmann::json;

// How long a streaming connection waits for text before looking again (server stopping, client
// gone): short enough that neither waits long, long enough to cost nothing.
constexpr std::chrono::milliseconds kStreamPoll{200};

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// --- errors -------------------------------------------------------------------------------

void SendError(httplib::Response& res, const ApiError& error) {
  res.status = error.status();
  res.set_content(Dump(ErrorJson(error)), "application/json");
}

// The body of an error httplib answered by itself (no route, a body over the limit, a request it
// could not parse), or a handler left empty.
ApiError ErrorForStatus(const httplib::Request& req, int status) {
  switch (status) {
    case 400:
      return ApiError(400, "the request could not be read as HTTP");
    case 404:
      return ApiError(404, fmt::format("unknown request URL: {} {}", req.method, req.path), "invalid_request_error", "",
                      "unknown_url");
    case 413:
      return ApiError(413, fmt::format("the request body is over the limit of {} MiB", kMaxRequestBytes >> 20),
                      "invalid_request_error", "", "request_too_large");
    default:
      return ApiError(status, fmt::format("HTTP status {}", status), ErrorTypeForStatus(status));
  }
}

// Compares all of both strings whatever their first difference, so the time a wrong key takes to
// refuse says nothing about how much of it was right.
bool SameSecret(std::string_view given, std::string_view expected) {
  unsigned difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < std::max(given.size(), expected.size()); ++i) {
    const char a = i < given.size() ? given[i] : '\0';
    const char b = i < expected.size() ? expected[i] : '\0';
    difference |= static_cast<unsigned char>(a ^ b);
  }
  return difference == 0;
}

}  // namespace

struct HttpServer::Impl {
  Impl(chat::LoadedModel& loaded, const ServerOptions& o)
      : model(loaded), options(o), queue(loaded, o.max_waiting), id_prefix(std::random_device{}()) {}

  // --- requests to jobs -------------------------------------------------------------------
  void CheckModel(const std::string& requested) const {
    if (!requested.empty() && requested != options.model_id) {
      throw ApiError(404,
                     fmt::format("the model '{}' does not exist: this server serves '{}' (GET /v1/models)", requested,
                                 options.model_id),
                     "invalid_request_error", "model", "model_not_found");
    }
  }

  // The job for a prompt, its sampling the model's defaults under what the request sets.
  GenerationJob PlanJob(std::vector<uint32_t> prompt, const SamplingFields& fields, const char* prompt_param) const {
    const uint32_t context = model.engine().context();
    if (prompt.empty())
      throw ApiError(400, fmt::format("'{}' is empty", prompt_param), "invalid_request_error", prompt_param);
    if (prompt.size() + 1 > context) {
      throw ApiError(400,
                     fmt::format("this model's context is {} tokens and the prompt takes {} (a reply needs at least "
                                 "one more): shorten the {}",
                                 context, prompt.size(), prompt_param),
                     "invalid_request_error", prompt_param, "context_length_exceeded");
    }
    const chat::SamplingChoice choice =
        chat::ModelSamplingChoice(model.files().generation(), {.temperature = fields.temperature,
                                                               .top_k = fields.top_k,
                                                               .top_p = fields.top_p,
                                                               .min_p = fields.min_p,
                                                               .repetition_penalty = fields.repetition_penalty,
                                                               .seed = fields.seed});
    // Without max_tokens a reply may fill the context, where generation stops with "length".
    const uint32_t room = context - static_cast<uint32_t>(prompt.size());
    return {.prompt = std::move(prompt),
            .sampling = chat::PlanSampling(choice),
            .max_tokens = fields.max_tokens.value_or(room),
            .stop = fields.stop};
  }

  ResponseHeader NewHeader(const char* prefix) {
    return {.id = fmt::format("{}-{:08x}{:08x}", prefix, id_prefix, next_id.fetch_add(1)),
            .created = UnixSeconds(),
            .model = options.model_id};
  }

  // --- replies ----------------------------------------------------------------------------
  // Runs the job and answers: one JSON response, or server-sent events as the text arrives.
  void Reply(httplib::Response& res, GenerationJob job, bool chat, bool stream, bool include_usage) {
    const std::shared_ptr<JobStream> output = queue.Submit(std::move(job));
    const ResponseHeader header = NewHeader(chat ? "chatcmpl" : "cmpl");
    if (!stream) {
      std::string text;
      while (true) {
        const JobOutput out = output->Take(kStreamPoll);
        text += out.text;
        if (out.finished) break;
      }
      if (output->error()) throw ApiError(500, *output->error(), "server_error");
      const json body = chat ? ChatCompletionJson(header, text, output->finish_reason(), output->usage())
                             : CompletionJson(header, text, output->finish_reason(), output->usage());
      res.set_content(Dump(body), "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    auto role_sent = std::make_shared<bool>(!chat);  // a completion's chunks carry no role
    res.set_chunked_content_provider(
        "text/event-stream",
        [output, header, chat, include_usage, role_sent](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& event) { return sink.write(event.data(), event.size()); };
          if (!*role_sent) {
            *role_sent = true;
            if (!send(SseEvent(ChatChunkJson(header, "assistant", "", std::nullopt)))) return false;
          }
          const JobOutput out = output->Take(kStreamPoll);
          if (!out.text.empty()) {
            const json chunk = chat ? ChatChunkJson(header, std::nullopt, out.text, std::nullopt)
                                    : CompletionChunkJson(header, out.text, std::nullopt);
            // A client gone away fails the write: returning false ends the response, and the
            // releaser below cancels the job, freeing its slot.
            if (!send(SseEvent(chunk))) return false;
          }
          if (!out.finished) return true;
          if (output->error()) {
            send(SseEvent(ErrorJson(ApiError(500, *output->error(), "server_error"))));
          } else {
            const FinishReason finish = output->finish_reason();
            send(SseEvent(chat ? ChatChunkJson(header, std::nullopt, std::nullopt, finish)
                               : CompletionChunkJson(header, "", finish)));
            if (include_usage) send(SseEvent(UsageChunkJson(header, chat, output->usage())));
          }
          send(std::string(kSseDone));
          sink.done();
          return true;
        },
        [output](bool) { output->Cancel(); });
  }

  // --- routes -----------------------------------------------------------------------------
  void ChatCompletions(const httplib::Request& req, httplib::Response& res) {
    const ChatCompletionRequest request = ParseChatCompletionRequest(req.body);
    CheckModel(request.model);
    std::vector<uint32_t> prompt;
    try {
      prompt =
          request.continue_final_message
              ? model.files().EncodeChatContinuation(request.messages, request.template_options)
              : model.files().EncodeChat(request.messages, /*add_generation_prompt=*/true, request.template_options);
    } catch (const Error& e) {
      throw ApiError(400, fmt::format("the model's chat template cannot render these messages: {}", e.what()),
                     "invalid_request_error", "messages");
    }
    Reply(res, PlanJob(std::move(prompt), request.sampling, "messages"), true, request.stream, request.include_usage);
  }

  void Completions(const httplib::Request& req, httplib::Response& res) {
    const CompletionRequest request = ParseCompletionRequest(req.body);
    CheckModel(request.model);
    Reply(res, PlanJob(model.files().tokenizer().Encode(request.prompt), request.sampling, "prompt"), false,
          request.stream, request.include_usage);
  }

  void Routes() {
    // Every handler's refusal, in OpenAI's error shape.
    auto guarded = [this](void (Impl::*handler)(const httplib::Request&, httplib::Response&)) {
      return [this, handler](const httplib::Request& req, httplib::Response& res) {
        try {
          (this->*handler)(req, res);
        } catch (const ApiError& e) {
          SendError(res, e);
        } catch (const std::exception& e) {
          spdlog::error("{} {}: {}", req.method, req.path, e.what());
          SendError(res, ApiError(500, e.what(), "server_error"));
        }
      };
    };
    const int64_t started = UnixSeconds();
    http.Get("/v1/models", [this, started](const httplib::Request&, httplib::Response& res) {
      const std::string ids[] = {options.model_id};
      res.set_content(Dump(ModelListJson(ids, started)), "application/json");
    });
    http.Get("/v1/models/(.+)", [this, started](const httplib::Request& req, httplib::Response& res) {
      try {
        CheckModel(req.matches[1].str());
        const std::string ids[] = {options.model_id};
        res.set_content(Dump(ModelListJson(ids, started)["data"][0]), "application/json");
      } catch (const ApiError& e) {
        SendError(res, e);
      }
    });
    http.Post("/v1/chat/completions", guarded(&Impl::ChatCompletions));
    http.Post("/v1/completions", guarded(&Impl::Completions));
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });

    // A known path asked with a method it does not take.
    const auto not_allowed = [](const char* allowed) {
      return [allowed](const httplib::Request& req, httplib::Response& res) {
        res.set_header("Allow", allowed);
        SendError(res, ApiError(405, fmt::format("{} {} is not allowed: use {}", req.method, req.path, allowed),
                                "invalid_request_error", "", "method_not_allowed"));
      };
    };
    for (const char* path : {"/v1/models", "/v1/models/(.+)", "/health"}) {
      http.Post(path, not_allowed("GET"));
      http.Put(path, not_allowed("GET"));
      http.Patch(path, not_allowed("GET"));
      http.Delete(path, not_allowed("GET"));
    }
    for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
      http.Get(path, not_allowed("POST"));
      http.Put(path, not_allowed("POST"));
      http.Patch(path, not_allowed("POST"));
      http.Delete(path, not_allowed("POST"));
    }

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!options.api_key || SameSecret(req.get_header_value("Authorization"), "Bearer " + *options.api_key)) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      SendError(res, ApiError(401, "a valid API key is needed: send the header 'Authorization: Bearer <key>'",
                              "authentication_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          SendError(res, ErrorForStatus(req, res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      SendError(res, ApiError(500, message, "server_error"));
    });
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      spdlog::info("{} {} {}", req.method, req.path, res.status);
    });
  }

  chat::LoadedModel& model;
  ServerOptions options;
  GenerationQueue queue;
  httplib::Server http;
  uint32_t id_prefix;
  std::atomic<uint32_t> next_id{0};
  std::atomic<bool> listen_returned{false};
};

// --- the server -------------------------------------------------------------------------------

HttpServer::HttpServer(chat::LoadedModel& model, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, options)) {
  httplib::Server& http = impl_->http;
  impl_->Routes();
  http.set_payload_max_length(kMaxRequestBytes);
  http.set_read_timeout(options.timeout_s);
  http.set_write_timeout(options.timeout_s);
  // A thread per connection: every slot's request and every waiting one streams from its own, with
  // a few more for /health and /v1/models while all of those are busy.
  const size_t threads = impl_->queue.slots() + options.max_waiting + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

HttpServer::~HttpServer() = default;

uint16_t HttpServer::Bind() {
  const ServerOptions& o = impl_->options;
  const int port =
      o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0) {
    throw Error(fmt::format("cannot listen on {}:{} (the port is taken, or the address is not this machine's)", o.host,
                            o.port));
  }
  return static_cast<uint16_t>(port);
}

void HttpServer::Listen() {
  impl_->http.listen_after_bind();
  impl_->listen_returned = true;
}

void HttpServer::Stop() {
  impl_->queue.Shutdown();
  // httplib's stop() does nothing before listening has begun, so a Stop that comes first (a
  // signal right after Bind) waits for it.
  while (!impl_->listen_returned) {
    if (impl_->http.is_running()) {
      impl_->http.stop();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace qvk::server
