#pragma once
// An OpenAI-compatible HTTP server (POST /v1/completions and
// /v1/chat/completions, streaming as server-sent events; GET /v1/models,
// /health, /metrics) over a continuously batched scheduler: requests join
// the running batch between forward passes and share them.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jetmoe/chat_template.h"
#include "jetmoe/model.h"
#include "jetmoe/tokenizer.h"

namespace jetmoe {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                 // 0 = any free port (see on_listening)
  std::string api_key;             // non-empty: "Authorization: Bearer <key>" required
  int64_t max_batch = 4;           // KV-cache slots: sequences decoded together
  int64_t ctx_size = 0;            // positions per slot; 0 = min(max_position_embeddings, 2048)
  int64_t max_queue = 64;          // requests waiting for a slot before 503
  int64_t prefill_chunk = 256;     // most tokens one forward pass takes
  size_t max_body_bytes = 1 << 20;
  int http_threads = 64;           // connections served at once
  double shutdown_grace_s = 30.0;  // in-flight requests get this long to finish
  // Polled: true starts a graceful shutdown (signal handlers set it).
  const std::atomic<bool>* stop_flag = nullptr;
  // Called once the port is bound (before the model has loaded).
  std::function<void(const std::string& host, int port)> on_listening;
  std::function<void()> on_ready;
};

// Positions per KV-cache slot for `config`: --ctx-size capped by the model,
// or min(max_position_embeddings, 2048) when it is 0.
int64_t context_size(const ServerOptions& options, const JetMoeConfig& config);

// What the server serves; loaded after the port is bound so that /health can
// say "loading" meanwhile.
struct ServedModel {
  std::shared_ptr<const JetMoeForCausalLM> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::vector<int32_t> eos_token_ids;
  std::optional<ChatTemplate> chat_template;
  std::string model_id;  // the name clients put in "model"
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Binds, loads the model with `load`, serves until shutdown() or the stop
  // flag, then drains: new requests get 503, in-flight ones finish (or are
  // ended after the grace period), and run returns. Throws Error when the
  // port cannot be bound or loading fails.
  void run(const std::function<ServedModel()>& load);
  void shutdown();  // thread-safe
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace jetmoe
