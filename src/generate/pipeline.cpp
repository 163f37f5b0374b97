#include "jetmoe/pipeline.h"

#include <algorithm>

#include "jetmoe/error.h"

namespace jetmoe {

namespace {

// The new text of one row as it grows (the decoder continues after the
// prompt, so the first new token gets the leading space that decoding the
// whole sequence would give it).
struct RowText {
  IncrementalDecoder decoder;
  std::string text;

  RowText(const Tokenizer& tok, const std::vector<int32_t>& prompt) : decoder(tok, /*skip_special_tokens=*/true, prompt) {}
  std::string_view push(int32_t id) {
    const std::string piece = decoder.push(id);
    text.append(piece);
    return std::string_view(text).substr(text.size() - piece.size());
  }
};

bool ends_in_stop(const std::string& text, size_t new_bytes, const std::vector<std::string>& stops) {
  for (const std::string& s : stops) {
    // Only a match that the last piece completed is new.
    const size_t from = text.size() >= new_bytes + s.size() ? text.size() - new_bytes - s.size() + 1 : 0;
    if (text.find(s, from) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TextGenerationPipeline TextGenerationPipeline::from_pretrained(const std::string& path, const LoadOptions& options) {
  return TextGenerationPipeline(JetMoeForCausalLM::from_pretrained(path, options), Tokenizer::from_pretrained(path),
                                GenerationConfig::from_model_folder(path));
}

TextGenerationPipeline::TextGenerationPipeline(std::shared_ptr<const JetMoeForCausalLM> model, Tokenizer tokenizer,
                                               GenerationConfig defaults)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), defaults_(std::move(defaults)) {
  if (tokenizer_.vocab_size() > model_->config().vocab_size)
    throw Error("tokenizer has " + std::to_string(tokenizer_.vocab_size()) + " tokens but the model's vocab_size is " +
                std::to_string(model_->config().vocab_size));
  if (!tokenizer_.chat_template().empty())
    chat_template_ = std::make_shared<const ChatTemplate>(ChatTemplate::parse(tokenizer_.chat_template()));
}

std::string TextGenerationPipeline::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  if (!chat_template_)
    throw Error("this model's tokenizer_config.json has no chat_template; chat needs a chat model (e.g. jetmoe-8b-chat)");
  ChatTemplateOptions o;
  o.add_generation_prompt = add_generation_prompt;
  o.bos_token = tokenizer_.bos_token();
  o.eos_token = tokenizer_.eos_token();
  return chat_template_->render(messages, o);
}

std::vector<GeneratedText> TextGenerationPipeline::operator()(const std::string& prompt, const GenerationConfig& config,
                                                              const TextGenerationOptions& options,
                                                              const std::function<void(std::string_view)>& on_text) const {
  return run({prompt}, config, options, on_text).at(0);
}

std::vector<std::vector<GeneratedText>> TextGenerationPipeline::operator()(const std::vector<std::string>& prompts,
                                                                           const GenerationConfig& config,
                                                                           const TextGenerationOptions& options) const {
  return run(prompts, config, options, {});
}

std::vector<std::vector<GeneratedText>> TextGenerationPipeline::run(const std::vector<std::string>& prompts,
                                                                    const GenerationConfig& config,
                                                                    const TextGenerationOptions& options,
                                                                    const std::function<void(std::string_view)>& on_text) const {
  if (prompts.empty()) return {};
  config.validate();
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& p : prompts) {
    ids.push_back(tokenizer_.encode(p, options.add_special_tokens));
    if (ids.back().empty())
      throw Error("the prompt is empty and the tokenizer adds no BOS; give at least one token of text");
  }
  const int32_t pad = config.pad_token_id ? *config.pad_token_id
                      : tokenizer_.pad_token_id() ? *tokenizer_.pad_token_id()
                      : !config.eos_token_id.empty() ? config.eos_token_id[0]
                                                     : 0;
  const GenerateInput input = left_pad(ids, pad);
  const int64_t copies = config.num_beams > 1 ? 1 : config.num_return_sequences;

  // Rows of the output follow the prompts, num_return_sequences each.
  const bool track_text = on_text || !config.stop_strings.empty();
  std::vector<RowText> rows;
  if (track_text && config.num_beams == 1)
    for (const auto& p : ids)
      for (int64_t c = 0; c < copies; ++c) rows.emplace_back(tokenizer_, p);
  GenerateCallbacks callbacks;
  size_t last_piece = 0;
  if (!rows.empty()) {
    callbacks.on_token = [&](int64_t row, int32_t token) {
      const std::string_view piece = rows[static_cast<size_t>(row)].push(token);
      last_piece = piece.size();
      if (on_text && row == 0 && rows.size() == 1 && !piece.empty()) on_text(piece);
    };
    if (!config.stop_strings.empty())
      callbacks.should_stop = [&](int64_t row, std::span<const int32_t>) {
        return ends_in_stop(rows[static_cast<size_t>(row)].text, last_piece, config.stop_strings);
      };
  }
  const GenerateOutput out = generate(*model_, input, config, callbacks);
  // Streaming could hold back text at the very end (an unfinished UTF-8
  // sequence becomes U+FFFD only when the decode is complete).
  if (on_text && rows.size() == 1) {
    const std::string tail = rows[0].decoder.flush();
    if (!tail.empty()) on_text(tail);
  }

  std::vector<std::vector<GeneratedText>> results(prompts.size());
  const int64_t per_prompt = static_cast<int64_t>(out.sequences.size()) / static_cast<int64_t>(prompts.size());
  for (size_t i = 0; i < out.sequences.size(); ++i) {
    const size_t p = i / static_cast<size_t>(per_prompt);
    const auto& seq = out.sequences[i];
    // As transformers' pipeline: decode the whole row, cut the decoded
    // prompt's length off, and put the prompt text back in front.
    const std::string all = tokenizer_.decode(seq, /*skip_special_tokens=*/true);
    const std::string prompt_decoded = tokenizer_.decode(input.input_ids[p], true);
    std::string fresh = all.size() >= prompt_decoded.size() ? all.substr(prompt_decoded.size()) : std::string();
    GeneratedText g;
    g.generated_text = options.return_full_text ? prompts[p] + fresh : fresh;
    g.token_ids.assign(seq.begin() + static_cast<std::ptrdiff_t>(input.input_ids[p].size() - ids[p].size()), seq.end());
    g.prompt_tokens = static_cast<int64_t>(ids[p].size());
    g.new_tokens = out.num_new_tokens.empty() ? 0 : out.num_new_tokens[i];
    g.token_ids.resize(static_cast<size_t>(g.prompt_tokens + g.new_tokens));
    g.finish_reason = out.finish_reasons.empty() ? GenerateOutput::FinishReason::Length : out.finish_reasons[i];
    results[p].push_back(std::move(g));
  }
  return results;
}

}  // namespace jetmoe
