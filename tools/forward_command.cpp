#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "commands.h"
#include "read_file.h"
#include "jetmoe/error.h"
#include "jetmoe/losses.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "jetmoe/safetensors.h"
#include "model_input_json.h"

namespace jetmoe::cli {

namespace {

struct ForwardArgs {
  std::string model, input, output, task, chunks, weights = "bf16", compute = "f32", kv_dtype = "f32";
  bool hidden_states = false, router_logits = false, last_logits_only = false;
  int threads = 0;
};

const char* kForwardHelp = R"(Run one forward pass, exactly as transformers' JetMoe classes compute it,
and write the outputs as float32 tensors to a .safetensors file.

IN.json holds Hugging Face keyword arguments:
  {"input_ids": [[1, 15043, ...], ...],       required, [B, T]
   "attention_mask": [[1, 1, ..., 0], ...],   optional, [B, T], 1 = real token
   "position_ids": [[0, 1, ...], ...],        optional, [B, T]
   "labels": ...}                             optional: causal-lm [B, T] (-100 ignored);
                                              sequence-classification [B] class ids,
                                              [B] floats (regression) or [B, C] (multi-label)

OUT.safetensors receives:
  logits [B, T, V] (causal-lm; [B, 1, V] with --last-logits-only)
  pooled_logits [B, C] (sequence-classification)
  last_hidden_state [B, T, D]
  hidden_states.<i> [B, T, D], i = 0..L (with --hidden-states; the last is the final normed state)
  router_logits.<i> [B*T, E], i = 0..2L-1 (with --router-logits; attention then MLP router per layer)
  aux_loss [] (causal-lm: load-balancing loss over all routers, padding excluded)
  loss [] and total_loss [] (when labels are given; total = loss + aux_loss_coef * aux_loss)
Values at padded positions are unspecified.)";

std::vector<int64_t> parse_chunks(const std::string& text, int64_t T) {
  std::vector<int64_t> chunks;
  if (text.empty()) return {T};
  std::stringstream ss(text);
  std::string item;
  int64_t sum = 0;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v <= 0) throw Error("--chunks: \"" + item + "\" is not a positive integer (expected e.g. 6,1,1)");
    chunks.push_back(v);
    sum += v;
  }
  if (sum != T)
    throw Error("--chunks " + text + " covers " + std::to_string(sum) + " tokens but input_ids rows have " + std::to_string(T));
  return chunks;
}

// Copies the chunk's [B, c, X] tensor into columns [start, start + c) of [B, T, X].
void place(const Tensor& part, int64_t B, int64_t T, int64_t start, Tensor& full) {
  const int64_t per_row = part.numel() / B;  // c * X, contiguous per row in both layouts
  const int64_t X = full.numel() / (B * T);
  for (int64_t b = 0; b < B; ++b)
    std::copy_n(&part.data[static_cast<size_t>(b * per_row)], per_row, &full.data[static_cast<size_t>((b * T + start) * X)]);
}

Task parse_task(const std::string& name, const JetMoeConfig& config) {
  if (name.empty()) return task_from_config(config);
  if (name == "base") return Task::Base;
  if (name == "causal-lm") return Task::CausalLM;
  if (name == "sequence-classification") return Task::SequenceClassification;
  throw Error("--task " + name + ": expected base, causal-lm or sequence-classification");
}

void run_forward(const ForwardArgs& a) {
  const JetMoeConfig config = JetMoeConfig::from_pretrained(a.model);
  const Task task = parse_task(a.task, config);
  const ForwardRequest req = parse_forward_request(read_file(a.input), a.input, task);
  const ModelInput& in = req.input;
  const int64_t B = in.batch_size, T = in.seq_len, D = config.hidden_size, V = config.vocab_size;
  const int64_t E = config.num_local_experts, L = config.num_hidden_layers;
  const std::vector<int64_t> chunks = parse_chunks(a.chunks, T);
  // Checked before the KV cache for the whole sequence is allocated.
  config.check_sequence_length(T);
  if (a.last_logits_only && task != Task::CausalLM) throw Error("--last-logits-only applies to --task causal-lm only");
  if (a.last_logits_only && req.has_labels) throw Error("--last-logits-only cannot be combined with labels (the loss needs every position)");

  LoadOptions load;
  load.num_threads = a.threads;
  load.weights = parse_weight_format(a.weights);
  load.compute = parse_compute_mode(a.compute);
  load.kv_dtype = parse_kv_dtype(a.kv_dtype);
  std::unique_ptr<JetMoeModel> base = std::make_unique<JetMoeModel>(ModelFiles::open(a.model), config, load);
  std::unique_ptr<JetMoeForCausalLM> causal;
  std::unique_ptr<JetMoeForSequenceClassification> classifier;
  const JetMoeModel* model = base.get();
  if (task == Task::CausalLM) {
    causal = std::make_unique<JetMoeForCausalLM>(std::move(base));
    model = &causal->model();
  } else if (task == Task::SequenceClassification) {
    classifier = std::make_unique<JetMoeForSequenceClassification>(std::move(base));
    model = &classifier->model();
  }
  const std::vector<int64_t> pooling = classifier ? classifier->pooling_index(in.input_ids, B, T) : std::vector<int64_t>{};

  ForwardOptions options;
  options.output_hidden_states = a.hidden_states;
  options.output_router_logits = a.router_logits || task == Task::CausalLM;

  Tensor last_hidden({B, T, D});
  Tensor logits({B, a.last_logits_only ? 1 : T, V});
  std::vector<Tensor> hidden(a.hidden_states ? static_cast<size_t>(L + 1) : 0, Tensor({B, T, D}));
  std::vector<Tensor> routers(options.output_router_logits ? static_cast<size_t>(2 * L) : 0, Tensor({B * T, E}));

  KVCache cache = model->make_kv_cache(B, T);
  int64_t start = 0;
  for (const int64_t c : chunks) {
    ModelInput part;
    part.batch_size = B;
    part.seq_len = c;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = start; t < start + c; ++t) {
        part.input_ids.push_back(in.input_ids[static_cast<size_t>(b * T + t)]);
        if (!in.position_ids.empty()) part.position_ids.push_back(in.position_ids[static_cast<size_t>(b * T + t)]);
      }
      if (!in.attention_mask.empty())
        for (int64_t t = 0; t < start + c; ++t) part.attention_mask.push_back(in.attention_mask[static_cast<size_t>(b * T + t)]);
    }
    BaseModelOutput out;
    if (causal) {
      CausalLMOutput lm = causal->forward(part, &cache, options, nullptr, a.last_logits_only);
      if (a.last_logits_only) {
        if (start + c == T) logits = std::move(lm.logits);
      } else {
        place(lm.logits, B, T, start, logits);
      }
      out = std::move(lm.model);
    } else {
      out = model->forward(part, &cache, options);
    }
    place(out.last_hidden_state, B, T, start, last_hidden);
    for (size_t i = 0; i < hidden.size(); ++i) place(out.hidden_states[i], B, T, start, hidden[i]);
    for (size_t i = 0; i < routers.size(); ++i) place(out.router_logits[i], B, T, start, routers[i]);
    start += c;
  }

  if (causal) {
    // A human-readable glance at the result: each row's most likely next token.
    const int64_t cols = logits.shape[1];
    for (int64_t b = 0; b < B; ++b) {
      const float* row = &logits.data[static_cast<size_t>((b * cols + cols - 1) * V)];
      const int64_t best = std::max_element(row, row + V) - row;
      std::cerr << "row " << b << ": most likely next token id " << best << " (logit " << row[best] << ")\n";
    }
  }

  std::vector<std::pair<std::string, Tensor>> results;
  if (causal) {
    const double aux = load_balancing_loss(routers, E, config.num_experts_per_tok, in.attention_mask);
    if (req.has_labels) {
      const double loss = causal_lm_loss(logits, req.token_labels);
      results.emplace_back("loss", Tensor(std::vector<int64_t>{}));
      results.back().second.data[0] = static_cast<float>(loss);
      results.emplace_back("total_loss", Tensor(std::vector<int64_t>{}));
      results.back().second.data[0] = static_cast<float>(loss + config.aux_loss_coef * aux);
    }
    results.emplace_back("aux_loss", Tensor(std::vector<int64_t>{}));
    results.back().second.data[0] = static_cast<float>(aux);
    results.emplace_back("logits", std::move(logits));
  }
  if (classifier) {
    Tensor pooled = classifier->pooled_logits(last_hidden, pooling);
    if (req.has_labels) {
      results.emplace_back("loss", Tensor(std::vector<int64_t>{}));
      results.back().second.data[0] = static_cast<float>(classifier->loss(pooled, req.class_labels));
    }
    results.emplace_back("pooled_logits", std::move(pooled));
  }
  results.emplace_back("last_hidden_state", std::move(last_hidden));
  for (size_t i = 0; i < hidden.size(); ++i) results.emplace_back("hidden_states." + std::to_string(i), std::move(hidden[i]));
  if (a.router_logits)
    for (size_t i = 0; i < routers.size(); ++i) results.emplace_back("router_logits." + std::to_string(i), std::move(routers[i]));

  std::vector<TensorToWrite> entries;
  for (const auto& [name, t] : results) entries.push_back({name, DType::F32, t.shape, t.data.data()});
  write_safetensors(a.output, entries);
  std::cerr << "jetmoe forward: wrote " << entries.size() << " tensors to " << a.output << "\n";
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  CLI::App* cmd = app.add_subcommand("forward", "Run one forward pass and write logits, hidden states, router logits and losses");
  cmd->footer(kForwardHelp);
  cmd->add_option("--model", args->model, "Checkpoint folder (config.json + model.safetensors, or shards + model.safetensors.index.json) or a .gguf file")->required();
  cmd->add_option("--input", args->input, "IN.json with input_ids [, attention_mask, position_ids, labels]")->required();
  cmd->add_option("--output", args->output, "OUT.safetensors to write (float32 tensors)")->required();
  cmd->add_flag("--hidden-states", args->hidden_states, "Also write hidden_states.0 .. hidden_states.L");
  cmd->add_flag("--router-logits", args->router_logits, "Also write router_logits.0 .. router_logits.<2L-1>");
  cmd->add_flag("--last-logits-only", args->last_logits_only, "Write only the last position's logits [B, 1, V]");
  cmd->add_option("--chunks", args->chunks,
                  "Feed the sequence through the KV cache in pieces of these lengths, e.g. 6,1,1 (must add up to T); "
                  "outputs are concatenated and equal a single pass");
  cmd->add_option("--task", args->task, "Head to run: base, causal-lm or sequence-classification (default: from config.json architectures)")
      ->check(CLI::IsMember({"base", "causal-lm", "sequence-classification"}));
  cmd->add_option("--threads", args->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weights", args->weights, "bf16 (as stored), q8_0 or q4_0 (quantised at load)")->capture_default_str();
  cmd->add_option("--compute", args->compute, "f32 (exact) or bf16 (activations rounded to bf16, faster)")->capture_default_str();
  cmd->add_option("--kv-dtype", args->kv_dtype, "KV cache: f32 (exact), f16 or bf16 (rounded, half the memory)")->capture_default_str();
  cmd->callback([args] { run_forward(*args); });
}

}  // namespace jetmoe::cli
