#include "jetmoe/chat_template.h"

#include "jetmoe/error.h"
#include "tokenizer/jinja_eval.h"
#include "tokenizer/jinja_parser.h"

namespace jetmoe {

ChatTemplate ChatTemplate::parse(std::string_view source) {
  ChatTemplate t;
  t.template_ = std::make_shared<const jinja::Template>(jinja::parse_template(source));
  return t;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) const {
  using jinja::Value;
  if (!template_) throw Error("ChatTemplate::render called on a template that was never parsed");
  jinja::List list;
  list.reserve(messages.size());
  for (const auto& m : messages)
    list.push_back(Value::make_dict({{"role", Value::string(m.role)}, {"content", Value::string(m.content)}}));
  // The variables transformers' apply_chat_template passes to the template.
  std::vector<std::pair<std::string, Value>> globals = {
      {"messages", Value::make_list(std::move(list))},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"add_generation_prompt", Value::boolean(options.add_generation_prompt)},
      {"bos_token", Value::string(options.bos_token)},
      {"eos_token", Value::string(options.eos_token)},
  };
  return jinja::render(*template_, std::move(globals));
}

}  // namespace jetmoe
