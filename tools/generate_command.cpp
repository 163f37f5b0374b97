#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "commands.h"
#include "read_file.h"
#include "generation_flags.h"
#include "jetmoe/error.h"
#include "jetmoe/generate.h"
#include "jetmoe/pipeline.h"
#include "model_input_json.h"
#include "model_options.h"

namespace jetmoe::cli {

namespace {

struct GenerateArgs {
  ModelOptions model;
  GenerationFlags gen;
  std::vector<std::string> prompts;
  std::string input;
  bool output_ids = false, stream = false, no_stream = false, json = false, verbose = false, no_bos = false;
  bool return_full_text = true;
};

const char* kGenerateHelp = R"(Generate text, as transformers' pipeline("text-generation") / model.generate do.

  jetmoe generate --prompt "In the beginning"
  jetmoe generate -m DIR --prompt "..." --do-sample --temperature 0.8 --seed 1
  jetmoe generate -m DIR --input IN.json --output-ids     (exact token ids)

--prompt prints the prompt followed by the continuation (streamed when stdout
is a terminal, or with --stream). Text prompts generate up to 64 new tokens
unless a flag or the model's generation_config.json sets a length.
--input IN.json ("-" = stdin) takes {"input_ids": [[...]], "attention_mask": [[...]]}
(left-padded rows) and follows transformers exactly, including its default
max_length of 20; with --output-ids it prints {"sequences": [[...]]} (plus
"sequences_scores" for beam search), the prompt included, as generate returns.)";

const char* finish_reason_name(GenerateOutput::FinishReason r) {
  switch (r) {
    case GenerateOutput::FinishReason::Eos: return "eos";
    case GenerateOutput::FinishReason::StopString: return "stop_string";
    case GenerateOutput::FinishReason::Length: break;
  }
  return "length";
}

void run_ids(const GenerateArgs& a, const JetMoeForCausalLM& lm, const GenerationConfig& config, const Tokenizer* tok) {
  const ForwardRequest req = parse_forward_request(read_file(a.input), a.input, Task::CausalLM);
  if (req.has_labels) throw Error(a.input + ": \"labels\" have no meaning for generate");
  if (!req.input.position_ids.empty())
    throw Error(a.input + ": \"position_ids\" are derived from attention_mask during generation; leave them out");
  GenerateInput in;
  const auto B = static_cast<size_t>(req.input.batch_size), T = static_cast<size_t>(req.input.seq_len);
  for (size_t b = 0; b < B; ++b) {
    in.input_ids.emplace_back(req.input.input_ids.begin() + static_cast<std::ptrdiff_t>(b * T),
                              req.input.input_ids.begin() + static_cast<std::ptrdiff_t>((b + 1) * T));
    if (!req.input.attention_mask.empty())
      in.attention_mask.emplace_back(req.input.attention_mask.begin() + static_cast<std::ptrdiff_t>(b * T),
                                     req.input.attention_mask.begin() + static_cast<std::ptrdiff_t>((b + 1) * T));
  }
  const GenerateOutput out = generate(lm, in, config);
  if (a.output_ids || !tok) {
    nlohmann::json j;
    j["sequences"] = out.sequences;
    if (!out.sequences_scores.empty()) j["sequences_scores"] = out.sequences_scores;
    std::cout << j.dump() << "\n";
    return;
  }
  for (const auto& seq : out.sequences) std::cout << tok->decode(seq, true) << "\n";
}

void run_generate(const GenerateArgs& a) {
  if (a.prompts.empty() == a.input.empty()) throw Error("generate: give either --prompt TEXT or --input IN.json");
  const std::string dir = a.model.resolved_model();
  GenerationConfig defaults = GenerationConfig::from_model_folder(dir);
  if (!a.input.empty()) {
    const GenerationConfig config = a.gen.apply(defaults);
    auto lm = JetMoeForCausalLM::from_pretrained(dir, a.model.load_options());
    run_ids(a, *lm, config, nullptr);
    return;
  }
  if (!defaults.max_new_tokens && defaults.max_length == GenerationConfig{}.max_length) defaults.max_new_tokens = 64;
  const GenerationConfig config = a.gen.apply(defaults);
  const auto pipe = TextGenerationPipeline::from_pretrained(dir, a.model.load_options());
  TextGenerationOptions opts;
  opts.return_full_text = a.return_full_text;
  opts.add_special_tokens = !a.no_bos;

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<GeneratedText>> results;
  const bool single = a.prompts.size() == 1 && config.num_return_sequences == 1 && config.num_beams == 1;
  const bool stream = single && !a.json && !a.output_ids && !a.no_stream && (a.stream || ::isatty(STDOUT_FILENO));
  if (stream) {
    if (opts.return_full_text) std::cout << a.prompts[0] << std::flush;
    results.push_back(pipe(a.prompts[0], config, opts, [](std::string_view piece) { std::cout << piece << std::flush; }));
    std::cout << "\n";
  } else if (a.prompts.size() == 1) {
    results.push_back(pipe(a.prompts[0], config, opts));
  } else {
    results = pipe(a.prompts, config, opts);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int64_t new_tokens = 0;
  for (size_t p = 0; p < results.size(); ++p) {
    for (size_t k = 0; k < results[p].size(); ++k) {
      const GeneratedText& g = results[p][k];
      new_tokens += g.new_tokens;
      if (stream) continue;
      if (a.json) {
        nlohmann::json j;
        j["prompt"] = a.prompts[p];
        j["generated_text"] = g.generated_text;
        j["token_ids"] = g.token_ids;
        j["finish_reason"] = finish_reason_name(g.finish_reason);
        std::cout << j.dump() << "\n";
      } else if (a.output_ids) {
        std::cout << nlohmann::json{{"sequences", {g.token_ids}}}.dump() << "\n";
      } else {
        if (results.size() * results[p].size() > 1) std::cout << "--- prompt " << p + 1 << ", sequence " << k + 1 << "\n";
        std::cout << g.generated_text << "\n";
      }
    }
  }
  if (a.verbose)
    std::cerr << "jetmoe: " << new_tokens << " new tokens in " << seconds << " s (" << (seconds > 0 ? new_tokens / seconds : 0)
              << " tokens/s including the prompt)\n";
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (or exact token ids from IN.json)");
  cmd->footer(kGenerateHelp);
  add_model_options(cmd, args->model);
  cmd->add_option("--prompt,-p", args->prompts, "Prompt text; repeat for a batch (left-padded, as transformers does)");
  cmd->add_option("--input", args->input, "IN.json with input_ids / attention_mask (\"-\" = stdin)");
  cmd->add_flag("--output-ids", args->output_ids, "Print {\"sequences\": [[...]]} token ids instead of text");
  cmd->add_flag("--stream", args->stream, "Print text as it is generated (default when stdout is a terminal)");
  cmd->add_flag("--no-stream", args->no_stream, "Print the text only when generation has finished");
  cmd->add_option("--return-full-text", args->return_full_text, "Print the prompt before the continuation (default true)");
  cmd->add_flag("--no-bos", args->no_bos, "Do not add the tokenizer's BOS token to the prompt");
  cmd->add_flag("--json", args->json, "One JSON object per result: prompt, generated_text, token_ids, finish_reason");
  cmd->add_flag("--verbose,-v", args->verbose, "Report tokens and speed on stderr");
  add_generation_flags(cmd, args->gen);
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace jetmoe::cli
