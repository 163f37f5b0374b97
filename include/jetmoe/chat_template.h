#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
};

namespace jinja {
struct Template;  // parsed form; defined in src/tokenizer/jinja_ast.h
}

// A model's chat_template (the Jinja2 string in tokenizer_config.json), rendered the way
// transformers' apply_chat_template renders it: jinja2 with trim_blocks, lstrip_blocks and
// loop controls, raise_exception(), messages as a list of {role, content} dicts, bos_token,
// eos_token, add_generation_prompt, tools = documents = none.
//
// Only the subset of Jinja2 that chat templates use is implemented; parse() rejects
// anything else (macros, includes, unknown filters, ...) with a jetmoe::Error that names the
// construct and its line and column, rather than rendering something subtly different.
class ChatTemplate {
 public:
  // Throws jetmoe::Error on syntax errors and unsupported constructs.
  static ChatTemplate parse(std::string_view source);

  // Throws jetmoe::Error when the template calls raise_exception(msg) (what() == msg, as
  // transformers' TemplateError), on type errors, or when a render limit (output size,
  // loop iterations) is exceeded.
  std::string render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) const;

 private:
  std::shared_ptr<const jinja::Template> template_;
};

}  // namespace jetmoe
