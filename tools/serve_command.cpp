#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "read_file.h"
#include "jetmoe/error.h"
#include "jetmoe/generation_config.h"
#include "jetmoe/server.h"
#include "model_options.h"

namespace jetmoe::cli {

namespace {

struct ServeArgs {
  ModelOptions model;
  ServerOptions server;
  std::string model_id;
  std::string chat_template_file;
};

const char* kServeHelp = R"(An OpenAI-compatible HTTP server with continuous batching.

  jetmoe serve --model DIR [--port 8080] [--api-key KEY]

Endpoints: POST /v1/completions, POST /v1/chat/completions (both with
"stream": true as server-sent events), GET /v1/models, GET /health (200 once
the model has loaded), GET /metrics (Prometheus text format).

Up to --max-batch sequences are decoded together; each has --ctx-size
positions of KV cache (prompt + completion). Requests beyond that wait in a
queue of --max-queue; past it they get 503 with Retry-After. A client that
disconnects frees its slot at once. SIGINT/SIGTERM stop accepting work, let
running requests finish (up to --shutdown-grace seconds) and exit 0; a second
signal exits at once. The API key may also come from JETMOE_API_KEY.)";

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  if (g_stop.exchange(true)) std::_Exit(130);
}

void run_serve(ServeArgs& a) {
  ServerOptions& o = a.server;
  if (o.api_key.empty())
    if (const char* env = std::getenv("JETMOE_API_KEY")) o.api_key = env;
  if (o.max_batch < 1) throw Error("--max-batch: " + std::to_string(o.max_batch) + ", expected at least 1");
  if (o.ctx_size < 0) throw Error("--ctx-size: " + std::to_string(o.ctx_size) + ", expected a positive number (0 = the model's)");
  if (o.max_queue < 0) throw Error("--max-queue: " + std::to_string(o.max_queue) + ", expected 0 or more");
  if (o.prefill_chunk < 1) throw Error("--prefill-chunk: " + std::to_string(o.prefill_chunk) + ", expected at least 1");
  const std::string dir = a.model.resolved_model();
  std::optional<ChatTemplate> override_template;
  if (!a.chat_template_file.empty()) override_template = ChatTemplate::parse(read_file(a.chat_template_file));

  g_stop = false;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  o.stop_flag = &g_stop;
  o.on_listening = [](const std::string& host, int port) {
    std::cerr << "jetmoe serve: listening on http://" << host << ":" << port << " (loading the model)" << std::endl;
  };
  Server server(o);
  server.run([&] {
    ServedModel m;
    m.model = JetMoeForCausalLM::from_pretrained(dir, a.model.load_options());
    m.tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_pretrained(dir));
    m.eos_token_ids = GenerationConfig::from_model_folder(dir).eos_token_id;
    if (m.eos_token_ids.empty() && m.tokenizer->eos_token_id()) m.eos_token_ids.push_back(*m.tokenizer->eos_token_id());
    if (override_template) {
      m.chat_template = override_template;
    } else if (!m.tokenizer->chat_template().empty()) {
      m.chat_template = ChatTemplate::parse(m.tokenizer->chat_template());
    }
    // The folder's name, or a model file's name without its extension.
    const std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
    if (!a.model_id.empty()) {
      m.model_id = a.model_id;
    } else if (std::filesystem::is_regular_file(p)) {
      m.model_id = p.stem().string();
    } else {
      m.model_id = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
    }
    const JetMoeConfig& c = m.model->config();
    const int64_t ctx = context_size(o, c);
    const double kv_mb = static_cast<double>(o.max_batch * ctx * c.num_hidden_layers * 2 * c.num_key_value_heads * c.kv_channels *
                                            static_cast<int64_t>(dtype_size(m.model->model().load_options().kv_dtype))) / 1e6;
    std::cerr << "jetmoe serve: model '" << m.model_id << "' from " << dir << "; " << o.max_batch << " slots x " << ctx
              << " positions (KV cache " << kv_mb << " MB)" << (m.chat_template ? "" : "; no chat template: /v1/chat/completions disabled")
              << std::endl;
    return m;
  });
  std::cerr << "jetmoe serve: stopped" << std::endl;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (continuous batching)");
  cmd->footer(kServeHelp);
  add_model_options(cmd, args->model);
  ServerOptions& o = args->server;
  cmd->add_option("--host", o.host, "Address to bind; 0.0.0.0 exposes the server to the network")->capture_default_str();
  cmd->add_option("--port", o.port, "TCP port (0 = any free port, printed on stderr)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on /v1/* and /metrics");
  cmd->add_option("--model-id", args->model_id, "Model name clients send in \"model\" (default: the folder's name)");
  cmd->add_option("--chat-template", args->chat_template_file, "A Jinja chat template file to use instead of the model's");
  cmd->add_option("--max-batch", o.max_batch, "Sequences decoded together (KV-cache slots)")->capture_default_str();
  cmd->add_option("--ctx-size", o.ctx_size, "KV-cache positions per slot; 0 = min(max_position_embeddings, 2048)")->capture_default_str();
  cmd->add_option("--max-queue", o.max_queue, "Requests that may wait for a slot before 503")->capture_default_str();
  cmd->add_option("--prefill-chunk", o.prefill_chunk, "Most tokens per forward pass (bounds how long a new prompt delays running streams)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Largest request body accepted (413 beyond)")->capture_default_str();
  cmd->add_option("--http-threads", o.http_threads, "Connections served at once")->capture_default_str();
  cmd->add_option("--shutdown-grace", o.shutdown_grace_s, "Seconds in-flight requests get to finish on SIGINT/SIGTERM")->capture_default_str();
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace jetmoe::cli
