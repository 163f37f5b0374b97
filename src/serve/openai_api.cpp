#include "serve/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "jetmoe/chat_template.h"
#include "jetmoe/error.h"
#include "jetmoe/tokenizer.h"

namespace jetmoe::serve {

using nlohmann::json;

namespace {

// Generated text may hold bytes that are not UTF-8 on their own (a byte
// token in logprobs); they become U+FFFD rather than an exception.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

int64_t get_int(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json& v = body.at(name);
  if (!v.is_number_integer())
    throw bad(name, std::string("'") + name + "' must be an integer, got " + dump(v).substr(0, 40));
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw bad(name, std::string("'") + name + "' = " + dump(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw bad(name, std::string("'") + name + "' = " + std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
  return x;
}

double get_number(const json& body, const char* name, double lo, double hi) {
  const json& v = body.at(name);
  if (!v.is_number()) throw bad(name, std::string("'") + name + "' must be a number, got " + dump(v).substr(0, 40));
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(name, std::string("'") + name + "' = " + dump(v) + " is out of range [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}

bool get_bool(const json& body, const char* name) {
  const json& v = body.at(name);
  if (!v.is_boolean()) throw bad(name, std::string("'") + name + "' must be true or false, got " + dump(v).substr(0, 40));
  return v.get<bool>();
}

bool present(const json& body, const char* name) { return body.contains(name) && !body.at(name).is_null(); }

std::vector<int32_t> token_array(const json& v, const ApiContext& ctx, const char* param) {
  std::vector<int32_t> ids;
  for (const json& t : v) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= ctx.tokenizer.vocab_size())
      throw bad(param, std::string("'") + param + "' token " + dump(t).substr(0, 40) + " is not an id in [0, " +
                           std::to_string(ctx.tokenizer.vocab_size()) + ")");
    ids.push_back(t.get<int32_t>());
  }
  return ids;
}

std::vector<std::vector<int32_t>> completion_prompts(const json& body, const ApiContext& ctx) {
  if (!body.contains("prompt")) throw bad("prompt", "'prompt' is required");
  const json& p = body.at("prompt");
  auto text = [&](const json& s) {
    try {
      return ctx.tokenizer.encode(s.get<std::string>(), true);
    } catch (const Error& e) {
      throw bad("prompt", std::string("'prompt': ") + e.what());
    }
  };
  std::vector<std::vector<int32_t>> prompts;
  if (p.is_string()) {
    prompts.push_back(text(p));
  } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& x) { return x.is_string(); })) {
    for (const json& s : p) prompts.push_back(text(s));
  } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& x) { return x.is_number(); })) {
    prompts.push_back(token_array(p, ctx, "prompt"));
  } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& x) { return x.is_array(); })) {
    for (const json& a : p) prompts.push_back(token_array(a, ctx, "prompt"));
  } else {
    throw bad("prompt", "'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays");
  }
  return prompts;
}

std::vector<int32_t> chat_prompt(const json& body, const ApiContext& ctx) {
  if (!body.contains("messages")) throw bad("messages", "'messages' is required");
  const json& m = body.at("messages");
  if (!m.is_array()) throw bad("messages", "'messages' must be an array of {role, content} objects");
  if (m.empty()) throw bad("messages", "'messages' must hold at least one message");
  static const std::set<std::string> roles = {"system", "developer", "user", "assistant"};
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& msg = m[i];
    if (!msg.is_object()) throw bad(where, "'" + where + "' must be an object with 'role' and 'content'");
    for (auto it = msg.begin(); it != msg.end(); ++it)
      if (it.key() != "role" && it.key() != "content" && it.key() != "name")
        throw bad(where + "." + it.key(), "'" + where + "." + it.key() + "' is not supported (tools and function calls are not)");
    if (!msg.contains("role") || !msg.at("role").is_string() || !roles.count(msg.at("role").get<std::string>()))
      throw bad(where + ".role", "'" + where + ".role' must be one of system, developer, user, assistant");
    if (!msg.contains("content")) throw bad(where + ".content", "'" + where + ".content' is required");
    const json& c = msg.at("content");
    std::string content;
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      for (const json& part : c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part.at("text").is_string())
          throw bad(where + ".content", "'" + where + ".content' parts must be {\"type\": \"text\", \"text\": ...} (only text is supported)");
        content += part.at("text").get<std::string>();
      }
    } else {
      throw bad(where + ".content", "'" + where + ".content' must be a string or an array of text parts");
    }
    std::string role = msg.at("role").get<std::string>();
    if (role == "developer") role = "system";
    messages.push_back({role, content});
  }
  if (!ctx.chat_template)
    throw bad("messages", "model '" + ctx.model_id +
                              "' has no chat_template in its tokenizer_config.json; start the server with --chat-template FILE, "
                              "or use /v1/completions");
  std::string prompt;
  try {
    prompt = ctx.chat_template->render(messages, {true, ctx.tokenizer.bos_token(), ctx.tokenizer.eos_token()});
  } catch (const Error& e) {
    throw bad("messages", std::string("the chat template refused the messages: ") + e.what());
  }
  // As transformers' apply_chat_template: the template writes its own BOS.
  return ctx.tokenizer.encode(prompt, false);
}

std::vector<std::string> stop_strings(const json& v) {
  std::vector<std::string> stops;
  if (v.is_string()) {
    stops.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > 4) throw bad("stop", "'stop' holds " + std::to_string(v.size()) + " strings; at most 4 are allowed");
    for (const json& s : v) {
      if (!s.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    throw bad("stop", "'stop' must be a string or an array of up to 4 strings");
  }
  for (const std::string& s : stops)
    if (s.empty()) throw bad("stop", "'stop' strings must not be empty");
  return stops;
}

}  // namespace

std::string error_body(const ApiError& e) {
  json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return dump(json{{"error", err}});
}

ApiRequest parse_request(const std::string& body_text, Endpoint endpoint, const ApiContext& ctx) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::exception& e) {
    throw bad("", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw bad("", "the request body must be a JSON object");
  const bool chat = endpoint == Endpoint::ChatCompletions;

  static const std::set<std::string> common = {"model", "max_tokens", "temperature", "top_p", "n", "stop", "seed",
                                               "presence_penalty", "frequency_penalty", "logprobs", "user", "stream",
                                               "stream_options", "logit_bias"};
  static const std::set<std::string> completions_only = {"prompt", "echo", "suffix", "best_of"};
  static const std::set<std::string> chat_only = {"messages", "top_logprobs", "max_completion_tokens", "response_format",
                                                  "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
                                                  "store", "metadata", "service_tier"};
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!common.count(it.key()) && !(chat ? chat_only : completions_only).count(it.key()))
      throw bad(it.key(), "Unrecognized request argument supplied: " + it.key());

  if (!body.contains("model") || !body.at("model").is_string()) throw bad("model", "'model' is required and must be a string");
  if (body.at("model").get<std::string>() != ctx.model_id)
    throw ApiError(404, "The model '" + body.at("model").get<std::string>() + "' does not exist; this server serves '" + ctx.model_id + "'",
                   "model", "invalid_request_error", "model_not_found");

  ApiRequest r;
  r.endpoint = endpoint;
  GenerationRequest& g = r.generation;
  SamplingParams& s = g.sampling;

  // Features OpenAI has that this server does not: refuse, never ignore.
  if (chat) {
    for (const char* f : {"tools", "functions"})
      if (present(body, f) && !(body.at(f).is_array() && body.at(f).empty()))
        throw bad(f, std::string("'") + f + "' (tool calling) is not supported");
    for (const char* f : {"tool_choice", "function_call"})
      if (present(body, f) && body.at(f) != "none") throw bad(f, std::string("'") + f + "' (tool calling) is not supported");
    if (present(body, "response_format")) {
      const json& rf = body.at("response_format");
      if (!rf.is_object() || rf.value("type", "") != "text")
        throw bad("response_format", "'response_format' supports only {\"type\": \"text\"}");
    }
  } else {
    if (present(body, "suffix")) throw bad("suffix", "'suffix' (insertion) is not supported");
    if (present(body, "echo") && get_bool(body, "echo")) throw bad("echo", "'echo' is not supported");
  }

  if (present(body, "n")) r.n = static_cast<int>(get_int(body, "n", 1, 128));
  if (!chat && present(body, "best_of") && get_int(body, "best_of", 1, 128) != r.n)
    throw bad("best_of", "'best_of' must equal 'n' (server-side ranking is not supported)");
  if (present(body, "temperature")) s.temperature = get_number(body, "temperature", 0.0, 2.0);
  if (present(body, "top_p")) s.top_p = get_number(body, "top_p", 0.0, 1.0);
  if (present(body, "presence_penalty")) s.presence_penalty = get_number(body, "presence_penalty", -2.0, 2.0);
  if (present(body, "frequency_penalty")) s.frequency_penalty = get_number(body, "frequency_penalty", -2.0, 2.0);
  if (present(body, "seed"))
    s.seed = static_cast<uint64_t>(get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (present(body, "stop")) g.stop = stop_strings(body.at("stop"));
  if (present(body, "user") && !body.at("user").is_string()) throw bad("user", "'user' must be a string");
  if (present(body, "stream")) r.stream = get_bool(body, "stream");
  if (present(body, "stream_options")) {
    const json& so = body.at("stream_options");
    if (!r.stream) throw bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (!so.is_object()) throw bad("stream_options", "'stream_options' must be an object");
    for (auto it = so.begin(); it != so.end(); ++it)
      if (it.key() != "include_usage") throw bad("stream_options." + it.key(), "Unrecognized request argument supplied: stream_options." + it.key());
    if (present(so, "include_usage")) r.include_usage = get_bool(so, "include_usage");
  }
  if (present(body, "logit_bias")) {
    const json& lb = body.at("logit_bias");
    if (!lb.is_object()) throw bad("logit_bias", "'logit_bias' must be an object {token id: bias}");
    for (auto it = lb.begin(); it != lb.end(); ++it) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(it.key(), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != it.key().size() || id < 0 || id >= ctx.tokenizer.vocab_size())
        throw bad("logit_bias", "'logit_bias' key '" + it.key() + "' is not a token id in [0, " + std::to_string(ctx.tokenizer.vocab_size()) + ")");
      const double bias = get_number(lb, it.key().c_str(), -100.0, 100.0);
      s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
    }
  }
  if (chat) {
    if (present(body, "logprobs")) r.logprobs = get_bool(body, "logprobs");
    if (present(body, "top_logprobs")) {
      const auto k = get_int(body, "top_logprobs", 0, 20);
      if (!r.logprobs) throw bad("top_logprobs", "'top_logprobs' requires 'logprobs': true");
      s.top_logprobs = static_cast<int>(k);
    } else if (r.logprobs) {
      s.top_logprobs = 0;
    }
  } else if (present(body, "logprobs")) {
    s.top_logprobs = static_cast<int>(get_int(body, "logprobs", 0, 5));
    r.logprobs = true;
  }

  const std::vector<std::vector<int32_t>> prompts = chat ? std::vector<std::vector<int32_t>>{chat_prompt(body, ctx)} : completion_prompts(body, ctx);
  const int64_t choices = static_cast<int64_t>(prompts.size()) * r.n;
  if (choices > ctx.max_batch)
    throw bad("n", std::to_string(choices) + " choices (prompts x n) exceed the server's --max-batch " + std::to_string(ctx.max_batch));
  size_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw bad(chat ? "messages" : "prompt", "the prompt is empty after tokenization");
    longest = std::max(longest, p.size());
  }
  const auto prompt_len = static_cast<int64_t>(longest);
  const char* max_name = chat && present(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (prompt_len >= ctx.ctx_size)
    throw bad(chat ? "messages" : "prompt", "This model's maximum context length is " + std::to_string(ctx.ctx_size) +
                                                " tokens. However, your prompt is " + std::to_string(prompt_len) +
                                                " tokens, which leaves no room for a completion.");
  if (present(body, max_name)) {
    g.max_tokens = get_int(body, max_name, 1, std::numeric_limits<int64_t>::max());
    if (prompt_len + g.max_tokens > ctx.ctx_size)
      throw bad(max_name, "This model's maximum context length is " + std::to_string(ctx.ctx_size) + " tokens. However, you requested " +
                              std::to_string(prompt_len + g.max_tokens) + " tokens (" + std::to_string(prompt_len) + " in the " +
                              (chat ? "messages" : "prompt") + ", " + std::to_string(g.max_tokens) +
                              " in the completion). Please reduce the length of the messages or completion.");
  } else {
    // OpenAI's defaults: 16 for completions, the rest of the context for chat.
    g.max_tokens = chat ? ctx.ctx_size - prompt_len : std::min<int64_t>(16, ctx.ctx_size - prompt_len);
  }
  for (const auto& p : prompts)
    for (int i = 0; i < r.n; ++i) g.prompts.push_back(p);
  return r;
}

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  std::string piece(tokenizer.id_to_piece(id));
  if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>')
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  return out;
}

namespace {

const char* finish_name(FinishReason f) {
  switch (f) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    default: return nullptr;
  }
}

json finish_json(FinishReason f) {
  const char* n = finish_name(f);
  return n ? json(n) : json(nullptr);
}

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json chat_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok) {
  json content = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string t = token_text(tok, lp.token);
    json top = json::array();
    for (const auto& [id, l] : lp.top) {
      const std::string tt = token_text(tok, id);
      top.push_back({{"token", tt}, {"logprob", l}, {"bytes", bytes_of(tt)}});
    }
    content.push_back({{"token", t}, {"logprob", lp.logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json completion_logprobs(const std::vector<TokenLogprob>& lps, const Tokenizer& tok, int64_t offset) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), text_offset = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string t = token_text(tok, lp.token);
    tokens.push_back(t);
    token_logprobs.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [id, l] : lp.top) top[token_text(tok, id)] = l;
    top_logprobs.push_back(top);
    text_offset.push_back(offset);
    offset += static_cast<int64_t>(t.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
}

json usage(int64_t prompt, int64_t completion) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

}  // namespace

std::string response_body(const ApiRequest& r, const ResponseIds& ids, const std::vector<ChoiceResult>& choices,
                          int64_t prompt_tokens, int64_t completion_tokens, const Tokenizer& tok) {
  const bool chat = r.endpoint == Endpoint::ChatCompletions;
  json out = {{"id", ids.id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", ids.created}, {"model", ids.model}};
  json cs = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    json choice = {{"index", i}, {"finish_reason", finish_json(c.finish)}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] = r.logprobs ? chat_logprobs(c.logprobs, tok) : json(nullptr);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = r.logprobs ? completion_logprobs(c.logprobs, tok, 0) : json(nullptr);
    }
    cs.push_back(choice);
  }
  out["choices"] = cs;
  out["usage"] = usage(prompt_tokens, completion_tokens);
  return dump(out);
}

std::string stream_chunk(const ApiRequest& r, const ResponseIds& ids, int choice, const std::string& text,
                         const std::vector<TokenLogprob>& logprobs, FinishReason finish, bool first, const Tokenizer& tok) {
  const bool chat = r.endpoint == Endpoint::ChatCompletions;
  json c = {{"index", choice}, {"finish_reason", finish_json(finish)}};
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && finish == FinishReason::None)) delta["content"] = text;
    c["delta"] = delta;
    c["logprobs"] = r.logprobs && !logprobs.empty() ? chat_logprobs(logprobs, tok) : json(nullptr);
  } else {
    c["text"] = text;
    c["logprobs"] = r.logprobs && !logprobs.empty() ? completion_logprobs(logprobs, tok, 0) : json(nullptr);
  }
  json out = {{"id", ids.id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", ids.created},
              {"model", ids.model}, {"choices", json::array({c})}};
  if (r.include_usage) out["usage"] = nullptr;
  return "data: " + dump(out) + "\n\n";
}

std::string usage_chunk(const ApiRequest& r, const ResponseIds& ids, int64_t prompt_tokens, int64_t completion_tokens) {
  const bool chat = r.endpoint == Endpoint::ChatCompletions;
  json out = {{"id", ids.id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", ids.created},
              {"model", ids.model}, {"choices", json::array()}, {"usage", usage(prompt_tokens, completion_tokens)}};
  return "data: " + dump(out) + "\n\n";
}

}  // namespace jetmoe::serve
