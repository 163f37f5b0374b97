#pragma once
// OpenAI's /v1/completions and /v1/chat/completions wire format: request
// bodies validated and turned into a GenerationRequest (every mistake an
// ApiError with OpenAI's error shape), and response bodies and stream chunks
// built from what the scheduler produced.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "serve/request_state.h"

namespace jetmoe {
class Tokenizer;
class ChatTemplate;
}  // namespace jetmoe

namespace jetmoe::serve {

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "")
      : std::runtime_error(message), status(status), param(std::move(param)), type(std::move(type)), code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);

enum class Endpoint { Completions, ChatCompletions };

struct ApiContext {
  const Tokenizer& tokenizer;
  const ChatTemplate* chat_template;  // null: chat requests are refused
  std::string model_id;
  int64_t ctx_size;
  int64_t max_batch;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  GenerationRequest generation;
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
};

// Throws ApiError (400 for bad requests, 404 for an unknown model).
ApiRequest parse_request(const std::string& body, Endpoint endpoint, const ApiContext& context);

struct ChoiceResult {
  std::string text;
  FinishReason finish = FinishReason::None;
  std::vector<TokenLogprob> logprobs;
};

struct ResponseIds {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// The whole (non-streaming) response.
std::string response_body(const ApiRequest& request, const ResponseIds& ids, const std::vector<ChoiceResult>& choices,
                          int64_t prompt_tokens, int64_t completion_tokens, const Tokenizer& tokenizer);
// One server-sent-events chunk ("data: {...}\n\n"). For chat, `first` adds
// the assistant role to the delta.
std::string stream_chunk(const ApiRequest& request, const ResponseIds& ids, int choice, const std::string& text,
                         const std::vector<TokenLogprob>& logprobs, FinishReason finish, bool first, const Tokenizer& tokenizer);
// The final chunk with usage and no choices (stream_options.include_usage).
std::string usage_chunk(const ApiRequest& request, const ResponseIds& ids, int64_t prompt_tokens, int64_t completion_tokens);

// The token as OpenAI shows it: "▁" as a space, byte tokens as their byte.
std::string token_text(const Tokenizer& tokenizer, int32_t id);

}  // namespace jetmoe::serve
