#include <CLI/CLI.hpp>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/tokenizer.h"

namespace jetmoe::cli {

namespace {

struct DetokenizeArgs {
  std::string model;
  bool skip_special_tokens = false;
};

const char* kDetokenizeHelp = R"(Reads JSON lines from stdin, one {"ids": [...]} per line, and writes one
{"text": "..."} line per input line to stdout, the text Hugging Face's fast
tokenizer gives (tokenizer.decode(ids, skip_special_tokens=...)). Byte pieces
that do not form valid UTF-8 become U+FFFD, one per byte of the run. An id
outside the vocabulary is an error. Blank lines are skipped.
Example:
  echo '{"ids": [1, 15043, 3186, 2]}' | jetmoe detokenize --model models/jetmoe-kjv-tiny
  {"text":"<s> Hello world</s>"})";

void run_detokenize(const DetokenizeArgs& a) {
  const Tokenizer tok = Tokenizer::from_pretrained(a.model);
  std::string line;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "stdin line " + std::to_string(n);
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": not valid JSON (" + e.what() + ")");
    }
    if (!in.is_object() || !in.contains("ids") || !in["ids"].is_array())
      throw Error(where + ": expected {\"ids\": [...]}, got " + line.substr(0, 80));
    std::vector<int32_t> ids;
    for (const auto& v : in["ids"]) {
      if (!v.is_number_integer() || v.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
          v.get<int64_t>() > std::numeric_limits<int32_t>::max() || (v.is_number_unsigned() && v.get<uint64_t>() > INT32_MAX))
        throw Error(where + ": ids must be integers, got " + v.dump());
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
    std::string text;
    try {
      text = tok.decode(ids, a.skip_special_tokens);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    std::cout << nlohmann::json{{"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n" << std::flush;
  }
}

}  // namespace

void add_detokenize_command(CLI::App& app) {
  auto args = std::make_shared<DetokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Token ids to text: JSON lines {\"ids\": [...]} on stdin, {\"text\": ...} on stdout");
  cmd->footer(kDetokenizeHelp);
  cmd->add_option("--model", args->model,
                  "Model folder (tokenizer.json, else tokenizer.model, plus tokenizer_config.json), or a tokenizer.json / tokenizer.model file")
      ->required();
  cmd->add_flag("--skip-special-tokens", args->skip_special_tokens, "Drop special tokens (<s>, </s>, <unk>) before decoding");
  cmd->callback([args] { run_detokenize(*args); });
}

}  // namespace jetmoe::cli
