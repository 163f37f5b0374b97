// jetmoe::Server: cpp-httplib routes over the continuous-batching scheduler.
#include <httplib.h>

#include <csignal>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "jetmoe/error.h"
#include "jetmoe/server.h"
#include "serve/connection.h"
#include "serve/metrics.h"
#include "serve/openai_api.h"
#include "serve/scheduler.h"

namespace jetmoe {

using serve::ApiError;
using serve::Endpoint;
using serve::Event;
using serve::FinishReason;
using serve::RequestState;
using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kPoll(20);

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(serve::error_body(e), "application/json");
}

const char* endpoint_name(Endpoint e) { return e == Endpoint::ChatCompletions ? "/v1/chat/completions" : "/v1/completions"; }

// What a streaming response has sent so far.
struct StreamProgress {
  std::vector<char> started;  // per choice: the first chunk (with the role) went out
  int finished = 0;
  bool done = false;
};

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}
  ServerOptions options;
  httplib::Server http;
  serve::Metrics metrics;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int64_t> in_flight{0};
  ServedModel served;
  int64_t ctx_size = 0;
  int64_t created = 0;
  std::unique_ptr<serve::Scheduler> scheduler;
  std::mutex mutex;
  std::condition_variable cv;
  bool shutdown_requested = false;
  std::mutex id_mutex;
  std::mt19937_64 id_rng{std::random_device{}()};

  std::string new_id(const char* prefix) {
    std::lock_guard<std::mutex> lock(id_mutex);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s%016llx", prefix, static_cast<unsigned long long>(id_rng()));
    return buf;
  }

  void routes();
  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
};

void Server::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth != "Bearer " + options.api_key) {
      send_error(res, ApiError(401, auth.empty() ? "Missing API key: send 'Authorization: Bearer <key>'" : "Incorrect API key provided",
                               "", "invalid_request_error", "invalid_api_key"));
      metrics.request_finished(req.path, 401);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "HTTP " + std::to_string(res.status);
    if (res.status == 404) message = "Unknown endpoint " + req.method + " " + req.path;
    if (res.status == 413) message = "The request body exceeds the server's limit of " + std::to_string(options.max_body_bytes) + " bytes";
    if (res.status == 400) message = "Malformed HTTP request";
    res.set_content(serve::error_body(ApiError(res.status, message)), "application/json");
    metrics.request_finished("other", res.status);
  });
  http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "Internal error: " + what, "", "server_error"));
    metrics.request_finished(req.path, 500);
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = ready && !draining;
    res.status = ok ? 200 : 503;
    res.set_content(json{{"status", ok ? "ok" : draining ? "shutting down" : "loading"}}.dump(), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4");
  });
  auto model_object = [this] {
    return json{{"id", served.model_id}, {"object", "model"}, {"created", created}, {"owned_by", "jetmoe.cpp"}};
  };
  http.Get("/v1/models", [this, model_object](const httplib::Request&, httplib::Response& res) {
    if (!ready) return send_error(res, ApiError(503, "The model is still loading", "", "server_error"));
    res.set_content(json{{"object", "list"}, {"data", json::array({model_object()})}}.dump(), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [this, model_object](const httplib::Request& req, httplib::Response& res) {
    if (!ready) return send_error(res, ApiError(503, "The model is still loading", "", "server_error"));
    if (req.matches[1] != served.model_id)
      return send_error(res, ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist", "model",
                                      "invalid_request_error", "model_not_found"));
    res.set_content(model_object().dump(), "application/json");
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, Endpoint::Completions); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, Endpoint::ChatCompletions); });
}

void Server::Impl::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const char* name = endpoint_name(endpoint);
  auto fail = [&](const ApiError& e) {
    send_error(res, e);
    if (e.status == 503) res.set_header("Retry-After", "1");
    metrics.request_finished(name, e.status);
  };
  if (!ready) return fail(ApiError(503, "The model is still loading", "", "server_error"));
  if (draining) return fail(ApiError(503, "The server is shutting down", "", "server_error"));

  serve::ApiRequest request;
  try {
    const serve::ApiContext context{*served.tokenizer, served.chat_template ? &*served.chat_template : nullptr, served.model_id,
                                    ctx_size, options.max_batch};
    request = serve::parse_request(req.body, endpoint, context);
  } catch (const ApiError& e) {
    return fail(e);
  }
  auto state = std::make_shared<RequestState>(request.generation, request.stream);
  switch (scheduler->submit(state)) {
    case serve::Scheduler::Admission::Queued: break;
    case serve::Scheduler::Admission::QueueFull:
      return fail(ApiError(503, "The server is busy (" + std::to_string(options.max_queue) + " requests queued); retry later", "",
                           "server_error"));
    case serve::Scheduler::Admission::ShuttingDown: return fail(ApiError(503, "The server is shutting down", "", "server_error"));
    case serve::Scheduler::Admission::TooManyChoices:
      return fail(ApiError(400, "Too many choices for --max-batch " + std::to_string(options.max_batch), "n"));
  }
  const int fd = serve::find_connection_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  const serve::ResponseIds ids{new_id(endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)),
                               served.model_id};
  const int choices = static_cast<int>(request.generation.prompts.size());

  if (!request.stream) {
    std::vector<serve::ChoiceResult> results(static_cast<size_t>(choices));
    std::deque<Event> events;
    std::string error;
    int finished = 0;
    while (finished < choices) {
      state->wait(events, kPoll);
      for (Event& e : events) {
        serve::ChoiceResult& c = results[static_cast<size_t>(e.choice)];
        c.text += e.text;
        for (auto& lp : e.logprobs) c.logprobs.push_back(std::move(lp));
        if (e.finish != FinishReason::None) {
          c.finish = e.finish;
          ++finished;
        }
        if (!e.error.empty()) error = e.error;
      }
      events.clear();
      if (finished < choices && serve::peer_closed(fd)) {
        state->cancelled = true;
        metrics.request_cancelled();
        metrics.request_finished(name, 499);
        return;
      }
    }
    if (!error.empty()) return fail(ApiError(503, error, "", "server_error"));
    res.set_content(serve::response_body(request, ids, results, state->prompt_tokens, state->completion_tokens, *served.tokenizer),
                    "application/json");
    metrics.request_finished(name, 200);
    return;
  }

  ++in_flight;
  auto progress = std::make_shared<StreamProgress>();
  progress->started.assign(static_cast<size_t>(choices), false);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state, progress, request, ids, fd, choices, name](size_t, httplib::DataSink& sink) {
        if (progress->done) return false;
        std::deque<Event> events;
        state->wait(events, kPoll);
        std::string out;
        std::string error;
        for (const Event& e : events) {
          auto& started = progress->started[static_cast<size_t>(e.choice)];
          if (!e.error.empty()) {
            error = e.error;
          } else if (!e.text.empty() || !e.logprobs.empty() || e.finish != FinishReason::None || !started) {
            out += serve::stream_chunk(request, ids, e.choice, e.text, e.logprobs, e.finish, !started, *served.tokenizer);
            started = true;
          }
          if (e.finish != FinishReason::None) ++progress->finished;
        }
        if (!error.empty()) out += "data: " + serve::error_body(ApiError(503, error, "", "server_error")) + "\n\n";
        if (progress->finished == choices) {
          if (request.include_usage && error.empty())
            out += serve::usage_chunk(request, ids, state->prompt_tokens, state->completion_tokens);
          out += "data: [DONE]\n\n";
        }
        if ((!out.empty() && !sink.write(out.data(), out.size())) || (progress->finished < choices && serve::peer_closed(fd))) {
          state->cancelled = true;
          metrics.request_cancelled();
          return false;
        }
        if (progress->finished == choices) {
          progress->done = true;
          metrics.request_finished(name, 200);
          sink.done();
        }
        return true;
      },
      [this, state](bool success) {
        if (!success) state->cancelled = true;
        --in_flight;
      });
}

int64_t context_size(const ServerOptions& o, const JetMoeConfig& c) {
  return std::min<int64_t>(o.ctx_size > 0 ? o.ctx_size : 2048, c.max_position_embeddings);
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() = default;

void Server::shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->shutdown_requested = true;
  }
  impl_->cv.notify_all();
}

void Server::run(const std::function<ServedModel()>& load) {
  Impl& s = *impl_;
  const ServerOptions& o = s.options;
  // A client that hangs up mid-stream must cost a failed write, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  const int threads = std::max(o.http_threads, 2);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_payload_max_length(o.max_body_bytes);
  s.http.set_keep_alive_timeout(2);
  s.http.set_read_timeout(30);
  s.http.set_write_timeout(30);
  s.routes();
  int port = o.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(o.host);
    if (port <= 0) throw Error("cannot listen on " + o.host + " (any port)");
  } else if (!s.http.bind_to_port(o.host, port)) {
    throw Error("cannot listen on " + o.host + ":" + std::to_string(port) + " (in use, or not an address of this machine)");
  }
  std::thread listener([&] { s.http.listen_after_bind(); });
  auto stop_listener = [&] {
    s.http.stop();
    listener.join();
  };
  if (o.on_listening) o.on_listening(o.host, port);

  try {
    s.served = load();
    const JetMoeConfig& c = s.served.model->config();
    s.ctx_size = context_size(o, c);
    serve::SchedulerOptions so;
    so.max_batch = o.max_batch;
    so.ctx_size = s.ctx_size;
    so.max_queue = o.max_queue;
    so.prefill_chunk = o.prefill_chunk;
    s.scheduler = std::make_unique<serve::Scheduler>(*s.served.model, *s.served.tokenizer, s.served.eos_token_ids, so, s.metrics);
  } catch (...) {
    stop_listener();
    throw;
  }
  s.created = static_cast<int64_t>(std::time(nullptr));
  s.ready = true;
  if (o.on_ready) o.on_ready();

  {
    std::unique_lock<std::mutex> lock(s.mutex);
    while (!s.shutdown_requested && !(o.stop_flag && o.stop_flag->load())) s.cv.wait_for(lock, std::chrono::milliseconds(50));
  }
  // Graceful: refuse new work, let what is running finish, then close.
  s.draining = true;
  s.scheduler->drain(std::chrono::milliseconds(static_cast<int64_t>(o.shutdown_grace_s * 1000)));
  for (int i = 0; i < 250 && s.in_flight > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop_listener();
  s.scheduler.reset();
}

}  // namespace jetmoe
