#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jetmoe/chat_template.h"
#include "jetmoe/generate.h"
#include "jetmoe/generation_config.h"
#include "jetmoe/model.h"
#include "jetmoe/tokenizer.h"

namespace jetmoe {

struct TextGenerationOptions {
  // As transformers' pipeline: the prompt followed by the continuation;
  // false returns the continuation alone.
  bool return_full_text = true;
  // BOS as the tokenizer config says (chat prompts already hold it).
  bool add_special_tokens = true;
};

struct GeneratedText {
  std::string generated_text;
  std::vector<int32_t> token_ids;  // the whole sequence, prompt included
  int64_t prompt_tokens = 0;
  int64_t new_tokens = 0;
  GenerateOutput::FinishReason finish_reason = GenerateOutput::FinishReason::Length;
};

// transformers' pipeline("text-generation"): text in, text out. Loads the
// model, its tokenizer and generation_config.json from one folder.
class TextGenerationPipeline {
 public:
  static TextGenerationPipeline from_pretrained(const std::string& path, const LoadOptions& options = {});
  TextGenerationPipeline(std::shared_ptr<const JetMoeForCausalLM> model, Tokenizer tokenizer, GenerationConfig defaults);

  // One prompt; num_return_sequences results. `on_text` receives the new
  // text piece by piece as it is produced (greedy and sampling with one
  // sequence; never splits a UTF-8 character); its pieces concatenate to
  // the returned continuation.
  std::vector<GeneratedText> operator()(const std::string& prompt, const GenerationConfig& config,
                                        const TextGenerationOptions& options = {},
                                        const std::function<void(std::string_view)>& on_text = {}) const;
  // Several prompts as one left-padded batch.
  std::vector<std::vector<GeneratedText>> operator()(const std::vector<std::string>& prompts, const GenerationConfig& config,
                                                     const TextGenerationOptions& options = {}) const;

  // The model folder's chat template applied to `messages`, ready to pass
  // as a prompt (with add_special_tokens = false: it holds its own BOS).
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  bool has_chat_template() const { return chat_template_ != nullptr; }

  const GenerationConfig& generation_config() const { return defaults_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  const JetMoeForCausalLM& model() const { return *model_; }

 private:
  std::vector<std::vector<GeneratedText>> run(const std::vector<std::string>& prompts, const GenerationConfig& config,
                                              const TextGenerationOptions& options,
                                              const std::function<void(std::string_view)>& on_text) const;

  std::shared_ptr<const JetMoeForCausalLM> model_;
  Tokenizer tokenizer_;
  GenerationConfig defaults_;
  std::shared_ptr<const ChatTemplate> chat_template_;
};

}  // namespace jetmoe
