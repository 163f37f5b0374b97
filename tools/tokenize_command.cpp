#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/tokenizer.h"

namespace jetmoe::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  bool no_bos = false;
};

const char* kTokenizeHelp = R"(Reads JSON lines from stdin, one {"text": "..."} per line, and writes one
{"ids": [...]} line per input line to stdout, with the ids Hugging Face's fast
tokenizer gives (AutoTokenizer(...)(text)["input_ids"]). Blank lines are skipped.
Example:
  echo '{"text": "Hello world"}' | jetmoe tokenize --model models/jetmoe-kjv-tiny
  {"ids":[1,15043,3186]})";

void run_tokenize(const TokenizeArgs& a) {
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
    if (!in.is_object() || !in.contains("text") || !in["text"].is_string())
      throw Error(where + ": expected {\"text\": \"...\"}, got " + line.substr(0, 80));
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(in["text"].get<std::string>(), !a.no_bos);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n" << std::flush;
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text to token ids: JSON lines {\"text\": ...} on stdin, {\"ids\": [...]} on stdout");
  cmd->footer(kTokenizeHelp);
  cmd->add_option("--model", args->model,
                  "Model folder (tokenizer.json, else tokenizer.model, plus tokenizer_config.json), or a tokenizer.json / tokenizer.model file")
      ->required();
  cmd->add_flag("--no-bos", args->no_bos, "Add no special tokens (add_special_tokens=False): no BOS, no EOS");
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace jetmoe::cli
