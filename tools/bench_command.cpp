// `jetmoe bench`: prefill and decode speed against the memory roofline.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "generate/sampling.h"
#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "ops/bandwidth.h"
#include "ops/thread_pool.h"

namespace jetmoe::cli {

namespace {

struct BenchArgs {
  std::string model, weights = "bf16", compute = "f32", kv_dtype = "f32";
  int64_t prompt_tokens = 128, new_tokens = 32, batch = 1;
  int threads = 0, repetitions = 3;
  bool json = false;
};

struct Run {
  double prefill_s = 0, decode_s = 0;
  double bytes_per_token = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int32_t argmax(const float* row, int64_t n) { return gen::argmax(std::span<const float>(row, static_cast<size_t>(n))); }

// The prompts (one per sequence) then greedy decoding through the KV cache,
// one token per sequence per step: the server's allocation-free step, the
// sequences sharing each forward pass as continuous batching makes them.
Run run_once(const JetMoeForCausalLM& lm, const std::vector<std::vector<int32_t>>& prompts, int64_t new_tokens) {
  const JetMoeConfig& c = lm.config();
  const auto B = static_cast<int64_t>(prompts.size());
  const auto prompt_len = static_cast<int32_t>(prompts[0].size());
  KVCache cache = lm.make_kv_cache(B, prompt_len + new_tokens);
  Run r;
  auto t0 = std::chrono::steady_clock::now();
  CausalLMOutput out = lm.forward(ModelInput::from_ids(prompts), &cache, {}, nullptr, /*logits_last_only=*/true);
  TokenBatch step;
  std::vector<int64_t> logit_rows;
  for (int64_t b = 0; b < B; ++b) {
    step.token_ids.push_back(argmax(out.logits.data.data() + b * c.vocab_size, c.vocab_size));
    step.seq.push_back(static_cast<int32_t>(b));
    step.pos.push_back(prompt_len);
    logit_rows.push_back(b);
  }
  r.prefill_s = seconds_since(t0);
  ForwardStats stats;
  Tensor logits;
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < new_tokens; ++i) {
    lm.forward_batch(step, cache, logit_rows, logits, &stats);
    for (int64_t b = 0; b < B; ++b) {
      step.token_ids[static_cast<size_t>(b)] = argmax(logits.data.data() + b * c.vocab_size, c.vocab_size);
      ++step.pos[static_cast<size_t>(b)];
    }
  }
  r.decode_s = seconds_since(t0);
  r.bytes_per_token = static_cast<double>(stats.weight_bytes + stats.kv_bytes) / static_cast<double>(new_tokens * B);
  return r;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

void run_bench(const BenchArgs& a) {
  LoadOptions load;
  load.num_threads = a.threads;
  load.weights = parse_weight_format(a.weights);
  load.compute = parse_compute_mode(a.compute);
  load.kv_dtype = parse_kv_dtype(a.kv_dtype);
  if (a.prompt_tokens < 1) throw Error("--prompt-tokens: " + std::to_string(a.prompt_tokens) + ", expected at least 1");
  if (a.new_tokens < 1) throw Error("--new-tokens: " + std::to_string(a.new_tokens) + ", expected at least 1");
  if (a.repetitions < 1) throw Error("--repetitions: " + std::to_string(a.repetitions) + ", expected at least 1");
  if (a.batch < 1) throw Error("--batch: " + std::to_string(a.batch) + ", expected at least 1");

  // Measured before the model is loaded, so the 512 MiB buffer is gone by the
  // time the weights set the peak RSS.
  double bandwidth = 0;
  {
    ops::ThreadPool pool(a.threads);
    std::cerr << "bench: measuring read bandwidth with " << pool.size() << " threads...\n";
    // Best of 30 passes (under a second): on a shared VM, 5 passes often all
    // met a busy moment and read 10-20% below what decode then achieved.
    bandwidth = ops::measure_read_bandwidth(pool, int64_t{1} << 29, 30);
  }
  std::cerr << "bench: loading " << a.model << " (weights " << a.weights << ", compute " << a.compute << ")...\n";
  auto t0 = std::chrono::steady_clock::now();
  auto lm = JetMoeForCausalLM::from_pretrained(a.model, load);
  const double load_s = seconds_since(t0);
  const JetMoeConfig& c = lm->config();
  // A quantised .gguf runs as stored whatever --weights said (bf16 = as stored).
  const std::string weights = weight_format_name(lm->model().weight_format());
  c.check_sequence_length(a.prompt_tokens + a.new_tokens);

  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(c.vocab_size - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(a.batch));
  for (auto& prompt : prompts) {
    prompt.resize(static_cast<size_t>(a.prompt_tokens));
    for (auto& t : prompt) t = token(rng);
  }

  // An untimed short run faults the mapped weights in.
  std::cerr << "bench: warm-up...\n";
  run_once(*lm, prompts, 2);
  std::vector<double> prefill, decode, ttft, bytes;
  for (int rep = 0; rep < a.repetitions; ++rep) {
    const Run r = run_once(*lm, prompts, a.new_tokens);
    prefill.push_back(static_cast<double>(a.prompt_tokens * a.batch) / r.prefill_s);
    decode.push_back(static_cast<double>(a.new_tokens * a.batch) / r.decode_s);
    ttft.push_back(r.prefill_s * 1e3);
    bytes.push_back(r.bytes_per_token);
    std::fprintf(stderr, "bench: repetition %d/%d: prefill %.2f tok/s, decode %.2f tok/s\n", rep + 1, a.repetitions,
                 prefill.back(), decode.back());
  }
  const double prefill_tps = median(prefill), decode_tps = median(decode), bpt = median(bytes);
  const double roofline = decode_tps * bpt / (bandwidth * 1e9);
  const double rss = peak_rss_mb();

  if (a.json) {
    nlohmann::json j;
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    j["decode_bytes_per_token"] = bpt;
    j["read_bandwidth_gb_s"] = bandwidth;
    j["roofline_fraction"] = roofline;
    j["peak_rss_mb"] = rss;
    j["weights"] = weights;
    j["compute"] = a.compute;
    j["kv_dtype"] = a.kv_dtype;
    j["time_to_first_token_ms"] = median(ttft);
    j["threads"] = lm->model().thread_pool().size();
    j["batch"] = a.batch;
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("model            %s (weights %s, compute %s)\n", a.model.c_str(), weights.c_str(), a.compute.c_str());
  std::printf("load             %.2f s\n", load_s);
  std::printf("prefill          %.2f tok/s (%lld tokens x %lld sequences)\n", prefill_tps, static_cast<long long>(a.prompt_tokens),
              static_cast<long long>(a.batch));
  std::printf("time to 1st tok  %.1f ms\n", median(ttft));
  std::printf("decode           %.2f tok/s (%lld tokens x %lld sequences)\n", decode_tps, static_cast<long long>(a.new_tokens),
              static_cast<long long>(a.batch));
  std::printf("bytes per token  %.3f GB (weights + KV read per decoded token)\n", bpt / 1e9);
  std::printf("read bandwidth   %.1f GB/s\n", bandwidth);
  std::printf("roofline         %.1f tok/s; achieved %.1f%%\n", bandwidth * 1e9 / bpt, 100.0 * roofline);
  std::printf("peak RSS         %.0f MB\n", rss);
  std::printf("(medians of %d repetitions)\n", a.repetitions);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode speed against the memory-bandwidth roofline");
  cmd->add_option("--model", args->model, "Checkpoint folder")->required();
  cmd->add_option("--prompt-tokens", args->prompt_tokens, "Prompt length (random token ids)")->capture_default_str();
  cmd->add_option("--new-tokens", args->new_tokens, "Tokens decoded one at a time through the KV cache")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weights", args->weights, "bf16 (as stored), q8_0 or q4_0")->capture_default_str();
  cmd->add_option("--compute", args->compute, "f32 (exact) or bf16 (activations rounded for AVX512_BF16)")->capture_default_str();
  cmd->add_option("--kv-dtype", args->kv_dtype, "KV cache: f32 (exact), f16 or bf16 (half the bytes attention reads)")
      ->capture_default_str();
  cmd->add_option("--batch", args->batch,
                  "Sequences decoded together, one token each per forward pass (continuous batching); "
                  "tok/s are their sum")
      ->capture_default_str();
  cmd->add_option("--repetitions", args->repetitions, "Timed runs; medians are reported")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object instead of text");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace jetmoe::cli
