#include <CLI/CLI.hpp>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "jetmoe/perplexity.h"
#include "jetmoe/tokenizer.h"
#include "model_options.h"
#include "progress_bar.h"

namespace jetmoe::cli {

namespace {

struct PerplexityArgs {
  ModelOptions model;
  std::string file;
  int64_t context = 0, stride = 0;
  bool json = false;
};

const char* kPerplexityHelp = R"(Perplexity of a text file, computed as the transformers guide "Perplexity of
fixed-length models" does: the whole file is tokenized once (BOS first),
windows of --context tokens start every --stride tokens, each window scores
only the tokens the previous one did not, and perplexity = exp(mean of the
window losses). Also printed: the token-weighted variant of the newer guide.
Defaults: --context = min(max_position_embeddings, 1024), --stride = context / 2.)";

void run_perplexity(const PerplexityArgs& a) {
  const std::string dir = a.model.resolved_model();
  std::ifstream in(a.file, std::ios::binary);
  if (!in) throw Error(a.file + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  const Tokenizer tok = Tokenizer::from_pretrained(dir);
  const std::vector<int32_t> ids = tok.encode(ss.str(), true);
  auto lm = JetMoeForCausalLM::from_pretrained(dir, a.model.load_options());
  const int64_t context = a.context > 0 ? a.context : std::min<int64_t>(lm->config().max_position_embeddings, 1024);
  const int64_t stride = a.stride > 0 ? a.stride : std::max<int64_t>(1, context / 2);
  ProgressBar bar("perplexity");
  const PerplexityResult r =
      sliding_window_perplexity(*lm, ids, context, stride, [&](int64_t done, int64_t total) { bar.update(done, total, "windows"); });
  bar.finish();
  if (a.json) {
    nlohmann::json j{{"ppl", r.ppl},
                     {"ppl_token_weighted", r.ppl_token_weighted},
                     {"num_tokens", r.num_tokens},
                     {"num_windows", r.num_windows},
                     {"scored_tokens", r.scored_tokens},
                     {"max_length", context},
                     {"stride", stride}};
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << std::setprecision(10) << "perplexity " << r.ppl << "\n"
            << "perplexity (token-weighted) " << r.ppl_token_weighted << "\n"
            << "tokens " << r.num_tokens << ", windows " << r.num_windows << " (context " << context << ", stride " << stride
            << ")\n";
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Sliding-window perplexity of a text file");
  cmd->footer(kPerplexityHelp);
  add_model_options(cmd, args->model);
  cmd->add_option("--file,-f", args->file, "Text file to score")->required();
  cmd->add_option("--context", args->context, "Window length in tokens")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  cmd->add_option("--stride", args->stride, "Tokens between window starts")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->callback([args] { run_perplexity(*args); });
}

}  // namespace jetmoe::cli
