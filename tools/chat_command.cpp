#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "commands.h"
#include "read_file.h"
#include "generation_flags.h"
#include "jetmoe/error.h"
#include "jetmoe/pipeline.h"
#include "model_options.h"

namespace jetmoe::cli {

namespace {

struct ChatArgs {
  ModelOptions model;
  GenerationFlags gen;
  std::string system, template_file;
};

const char* kChatHelp = R"(Chat with a model through its chat template (tokenizer_config.json's
chat_template, or --chat-template FILE). Each line on stdin is a user message;
the reply streams to stdout. As transformers' apply_chat_template, the
rendered conversation is tokenized without adding BOS (templates write their
own). Replies default to at most 256 new tokens.
Commands: /reset forgets the conversation, /exit (or end of input) quits.)";

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

void run_chat(const ChatArgs& a) {
  const std::string dir = a.model.resolved_model();
  Tokenizer tok = Tokenizer::from_pretrained(dir);
  std::shared_ptr<const JetMoeForCausalLM> lm = JetMoeForCausalLM::from_pretrained(dir, a.model.load_options());
  GenerationConfig defaults = GenerationConfig::from_model_folder(dir);
  if (!defaults.max_new_tokens && defaults.max_length == GenerationConfig{}.max_length) defaults.max_new_tokens = 256;
  const GenerationConfig config = a.gen.apply(defaults);
  if (config.num_beams != 1 || config.num_return_sequences != 1)
    throw Error("chat: one reply at a time; --num-beams and --num-return-sequences must be 1");
  const TextGenerationPipeline pipe(lm, tok, config);
  std::optional<ChatTemplate> override_template;
  if (!a.template_file.empty()) override_template = ChatTemplate::parse(read_file(a.template_file));
  if (!override_template && !pipe.has_chat_template())
    throw Error(dir + ": tokenizer_config.json has no chat_template; use a chat model or pass --chat-template FILE");
  auto render = [&](const std::vector<ChatMessage>& messages) {
    if (!override_template) return pipe.apply_chat_template(messages, true);
    return override_template->render(messages, {true, tok.bos_token(), tok.eos_token()});
  };

  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  std::vector<ChatMessage> messages;
  if (!a.system.empty()) messages.push_back({"system", a.system});
  const size_t base = messages.size();
  TextGenerationOptions opts;
  opts.return_full_text = false;
  opts.add_special_tokens = false;
  std::string line;
  while (true) {
    if (interactive) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    const std::string text = trim(line);
    if (text.empty()) continue;
    if (text == "/exit" || text == "/quit") break;
    if (text == "/reset") {
      messages.resize(base);
      continue;
    }
    messages.push_back({"user", text});
    const std::string prompt = render(messages);
    const auto result = pipe(prompt, config, opts, [](std::string_view piece) { std::cout << piece << std::flush; });
    std::cout << "\n" << std::flush;
    messages.push_back({"assistant", trim(result.at(0).generated_text)});
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive chat using the model's chat template");
  cmd->footer(kChatHelp);
  add_model_options(cmd, args->model);
  cmd->add_option("--system", args->system, "System message that starts the conversation");
  cmd->add_option("--chat-template", args->template_file, "A Jinja chat template file to use instead of the model's");
  add_generation_flags(cmd, args->gen);
  cmd->callback([args] { run_chat(*args); });
}

}  // namespace jetmoe::cli
