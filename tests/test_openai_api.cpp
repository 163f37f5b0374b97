// OpenAI request validation and response shapes (the HTTP layer is tested
// end to end in tests/server with the openai npm client).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "jetmoe/chat_template.h"
#include "jetmoe/tokenizer.h"
#include "serve/openai_api.h"

namespace jetmoe::serve {
namespace {

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::from_pretrained(JETMOE_MODELS_DIR "/jetmoe-kjv-tiny");
  return t;
}

ApiContext context(const ChatTemplate* chat = nullptr) { return ApiContext{tok(), chat, "demo", 64, 4}; }

ApiError error_of(const std::string& body, Endpoint e = Endpoint::Completions, const ChatTemplate* chat = nullptr) {
  try {
    (void)parse_request(body, e, context(chat));
  } catch (const ApiError& err) {
    return err;
  }
  return ApiError(0, "no error");
}

TEST(OpenAiApi, CompletionDefaultsFollowOpenAI) {
  const ApiRequest r = parse_request(R"({"model": "demo", "prompt": "In the beginning"})", Endpoint::Completions, context());
  EXPECT_EQ(r.generation.max_tokens, 16);
  EXPECT_EQ(r.generation.sampling.temperature, 1.0);
  EXPECT_EQ(r.generation.sampling.top_logprobs, -1);
  ASSERT_EQ(r.generation.prompts.size(), 1u);
  EXPECT_EQ(r.generation.prompts[0], tok().encode("In the beginning"));
  EXPECT_FALSE(r.stream);
}

TEST(OpenAiApi, PromptsTimesNBecomeChoicesInOrder) {
  const ApiRequest r =
      parse_request(R"({"model": "demo", "prompt": [[1, 450], [1, 512, 3478]], "n": 2, "seed": -3})", Endpoint::Completions, context());
  ASSERT_EQ(r.generation.prompts.size(), 4u);
  EXPECT_EQ(r.generation.prompts[0], (std::vector<int32_t>{1, 450}));
  EXPECT_EQ(r.generation.prompts[1], (std::vector<int32_t>{1, 450}));
  EXPECT_EQ(r.generation.prompts[2], (std::vector<int32_t>{1, 512, 3478}));
  EXPECT_EQ(*r.generation.sampling.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": ["a", "b"], "n": 3})").param, "n");
}

TEST(OpenAiApi, ChatUsesTheTemplateWithoutASecondBos) {
  const ChatTemplate chat = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}");
  const ApiRequest r = parse_request(
      R"({"model": "demo", "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "logprobs": true})",
      Endpoint::ChatCompletions, context(&chat));
  EXPECT_EQ(r.generation.prompts.at(0), tok().encode("<s><|system|>Be brief.<|user|>Hi<|assistant|>", false));
  EXPECT_EQ(r.generation.max_tokens, 64 - static_cast<int64_t>(r.generation.prompts[0].size())) << "chat defaults to the rest of the context";
  EXPECT_EQ(r.generation.sampling.top_logprobs, 0);
  EXPECT_EQ(error_of(R"({"model": "demo", "messages": [{"role": "user", "content": "x"}]})", Endpoint::ChatCompletions).param, "messages")
      << "no chat template";
}

TEST(OpenAiApi, ContextLimitsUseOpenAIsWording) {
  const ApiError e = error_of(R"({"model": "demo", "prompt": "In the beginning", "max_tokens": 61})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_NE(std::string(e.what()).find("maximum context length is 64 tokens. However, you requested 65 tokens (4 in the prompt, 61 in the completion)"),
            std::string::npos)
      << e.what();
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "In the beginning", "max_tokens": 60})").status, 0);
}

TEST(OpenAiApi, MistakesNameTheirParameter) {
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "x", "temperature": null, "top_p": 2})").param, "top_p");
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "x", "max_tokens": 18446744073709551615})").param, "max_tokens");
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "x", "logit_bias": {"12": 101}})").param, "12");
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "x", "echo": true})").param, "echo");
  EXPECT_EQ(error_of(R"({"model": "demo", "prompt": "x", "stop": ""})").param, "stop");
  const ApiError unknown = error_of(R"({"model": "demo", "prompt": "x", "messages": []})");
  EXPECT_STREQ(unknown.what(), "Unrecognized request argument supplied: messages");
  const ApiError model = error_of(R"({"model": "other", "prompt": "x"})");
  EXPECT_EQ(model.status, 404);
  EXPECT_EQ(model.code, "model_not_found");
  const nlohmann::json body = nlohmann::json::parse(error_body(model));
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "model");
}

TEST(OpenAiApi, TokenTextShowsSpacesAndBytes) {
  EXPECT_EQ(token_text(tok(), *tok().piece_to_id("\xE2\x96\x81the")), " the");
  EXPECT_EQ(token_text(tok(), *tok().piece_to_id("<0x0A>")), "\n");
}

TEST(OpenAiApi, StreamChunksEndWithFinishAndCarryTheRoleFirst) {
  ApiRequest r;
  r.endpoint = Endpoint::ChatCompletions;
  const ResponseIds ids{"chatcmpl-1", 7, "demo"};
  const std::string first = stream_chunk(r, ids, 0, "Hi", {}, FinishReason::None, true, tok());
  ASSERT_EQ(first.rfind("data: ", 0), 0u);
  ASSERT_EQ(first.substr(first.size() - 2), "\n\n");
  const auto j = nlohmann::json::parse(first.substr(6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["delta"]["content"], "Hi");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  const auto last = nlohmann::json::parse(stream_chunk(r, ids, 0, "", {}, FinishReason::Length, false, tok()).substr(6));
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(last["choices"][0]["delta"].contains("content"));
}

}  // namespace
}  // namespace jetmoe::serve
