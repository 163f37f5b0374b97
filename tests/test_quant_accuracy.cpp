// Accuracy of the fast modes against the exact one: top-1 agreement and
// KL(exact || fast) of the next-token distributions on the golden fixtures'
// inputs, and perplexity of the trained demo model on its validation text.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "golden_fixture.h"

namespace jetmoe::testing {
namespace {

struct Mode {
  const char* name;
  WeightFormat weights;
  ComputeMode compute;
  double min_top1, max_mean_kl;            // golden fixtures
  double max_ppl_ratio, min_demo_top1;     // demo model vs exact
  double min_decode_top1, max_decode_kl;   // demo model, decoding token by token
};

// The golden fixtures are random tiny models whose next-token logits are
// nearly tied (top-2 gaps of a few hundredths), and one routes top-1, where
// a perturbed router flips a token to another expert: 8-bit weight noise
// alone flips ~2% of their argmaxes (98% top-1 with exact activations), so
// the 8-bit top-1 limit there is 95% instead of the 99% (its KL limit
// holds), and the 4-bit limits only catch broken kernels; measured values
// are printed. The trained demo model is held to the limits: perplexity
// within +0.5% (bf16 compute), +1% (8-bit), +5% (4-bit). Decoding with
// quantised weights also quantises the activations (integer dot products),
// which costs the demo model 8-bit top-1 (98.9% against 99.6% in prefill,
// 5 flips in 448) while its KL stays within the 1e-3.
const Mode kModes[] = {
    {"bf16-compute", WeightFormat::Native, ComputeMode::BF16, 0.99, 1e-3, 1.005, 0.99, 0.99, 1e-3},
    {"q8_0", WeightFormat::Q8_0, ComputeMode::F32, 0.95, 1e-3, 1.01, 0.99, 0.98, 1e-3},
    {"q4_0", WeightFormat::Q4_0, ComputeMode::F32, 0.6, 0.4, 1.05, 0.9, 0.9, 0.05},
};

std::unique_ptr<JetMoeForCausalLM> load(const std::string& dir, const Mode* mode) {
  LoadOptions o;
  if (mode) {
    o.weights = mode->weights;
    o.compute = mode->compute;
  }
  return JetMoeForCausalLM::from_pretrained(dir, o);
}

std::vector<double> log_softmax(const float* z, int64_t n) {
  double mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(z[i]));
  for (int64_t i = 0; i < n; ++i) sum += std::exp(z[i] - mx);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = z[i] - mx - std::log(sum);
  return out;
}

struct Agreement {
  int64_t positions = 0, same_top1 = 0;
  double kl_sum = 0;

  void add(const float* exact, const float* fast, int64_t V) { add(exact, fast, log_softmax(fast, V), V); }
  void add(const float* exact, const float* fast, const std::vector<double>& q, int64_t V) {
    const auto p = log_softmax(exact, V);
    double kl = 0;
    for (int64_t i = 0; i < V; ++i) kl += std::exp(p[static_cast<size_t>(i)]) * (p[static_cast<size_t>(i)] - q[static_cast<size_t>(i)]);
    kl_sum += kl;
    same_top1 += std::max_element(exact, exact + V) - exact == std::max_element(fast, fast + V) - fast;
    ++positions;
  }
  double top1() const { return static_cast<double>(same_top1) / static_cast<double>(positions); }
  double mean_kl() const { return kl_sum / static_cast<double>(positions); }
};

TEST(QuantAccuracy, GoldenFixturesTop1AndKL) {
  const char* fixtures[] = {"tiny-bf16", "small-llama-vocab", "tiny-tied-f32", "tiny-sharded", "tiny-topall", "tiny-untied-top1"};
  for (const Mode& mode : kModes) {
    Agreement a;
    for (const char* name : fixtures) {
      const GoldenFixture fx(name);
      Agreement mine;
      const auto exact = load(fx.dir, nullptr), fast = load(fx.dir, &mode);
      const int64_t V = exact->config().vocab_size;
      for (const auto& c : fx.cases) {
        if (c.at("kind") != "forward" || c.at("model_class") != "JetMoeForCausalLM") continue;
        const cli::ForwardRequest req = request(c.at("inputs"), Task::CausalLM);
        const int64_t B = req.input.batch_size, T = req.input.seq_len;
        const auto mask = valid_mask(c, B, T);
        const Tensor le = exact->forward(req.input).logits, lf = fast->forward(req.input).logits;
        for (int64_t i = 0; i < B * T; ++i)
          if (mask[static_cast<size_t>(i)]) {
            a.add(&le.data[static_cast<size_t>(i * V)], &lf.data[static_cast<size_t>(i * V)], V);
            mine.add(&le.data[static_cast<size_t>(i * V)], &lf.data[static_cast<size_t>(i * V)], V);
          }
      }
      std::cout << "  " << name << " " << mode.name << ": top-1 " << mine.top1() << " KL " << mine.mean_kl() << "\n";
    }
    std::cout << "[accuracy] golden fixtures, " << mode.name << ": top-1 agreement " << a.top1() << " over " << a.positions
              << " positions, mean KL " << a.mean_kl() << "\n";
    ASSERT_GT(a.positions, 100);
    EXPECT_GE(a.top1(), mode.min_top1) << mode.name;
    EXPECT_LE(a.mean_kl(), mode.max_mean_kl) << mode.name;
  }
}

std::vector<int32_t> validation_ids() {
  std::ifstream f(std::string(JETMOE_TEST_DATA) + "/kjv-validation-ids.txt");
  std::string line;
  std::getline(f, line);  // comment
  std::vector<int32_t> ids;
  for (int32_t id; f >> id;) ids.push_back(id);
  return ids;
}

// Hugging Face's fixed-length perplexity with stride = window: every token
// but each window's first is scored once. Also gathers agreement with
// `reference` logits when given.
double perplexity(const JetMoeForCausalLM& lm, const std::vector<int32_t>& ids, int64_t window,
                  std::vector<Tensor>* logits_out, const std::vector<Tensor>* reference, Agreement* agree) {
  const int64_t V = lm.config().vocab_size;
  double nll = 0;
  int64_t scored = 0, w = 0;
  for (size_t begin = 0; begin + 1 < ids.size(); begin += static_cast<size_t>(window), ++w) {
    const std::vector<int32_t> part(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                    ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), begin + static_cast<size_t>(window))));
    Tensor logits = lm.forward(ModelInput::from_ids({part})).logits;
    for (size_t t = 0; t + 1 < part.size(); ++t) {
      const auto lp = log_softmax(&logits.data[t * static_cast<size_t>(V)], V);
      nll -= lp[static_cast<size_t>(part[t + 1])];
      ++scored;
      if (reference)
        agree->add(&(*reference)[static_cast<size_t>(w)].data[t * static_cast<size_t>(V)], &logits.data[t * static_cast<size_t>(V)], lp, V);
    }
    if (logits_out) logits_out->push_back(std::move(logits));
  }
  return std::exp(nll / static_cast<double>(scored));
}

TEST(QuantAccuracy, DemoModelPerplexityPerMode) {
  const std::string dir = std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny";
  const std::vector<int32_t> ids = validation_ids();
  ASSERT_EQ(ids.size(), 2049u);
  std::vector<Tensor> exact_logits;
  const double exact = perplexity(*load(dir, nullptr), ids, 256, &exact_logits, nullptr, nullptr);
  std::cout << "[accuracy] demo model perplexity (2048 validation tokens, windows of 256): exact " << exact << "\n";
  // transformers reports 56.15 over the whole validation text this way; the
  // first 2048 tokens land in the same region.
  EXPECT_GT(exact, 30.0);
  EXPECT_LT(exact, 90.0);
  for (const Mode& mode : kModes) {
    Agreement a;
    const double ppl = perplexity(*load(dir, &mode), ids, 256, nullptr, &exact_logits, &a);
    std::cout << "[accuracy] demo model " << mode.name << ": perplexity " << ppl << " (" << 100.0 * (ppl / exact - 1.0)
              << "% vs exact), top-1 agreement " << a.top1() << ", mean KL " << a.mean_kl() << "\n";
    EXPECT_LE(ppl, exact * mode.max_ppl_ratio) << mode.name;
    EXPECT_GE(a.top1(), mode.min_demo_top1) << mode.name;
  }
}

// Generation runs the decode kernels, which for quantised weights also
// quantise the activations per block of 32 (integer dot products); prefill
// keeps them in f32. The demo model's validation text, 64 tokens prefilled
// and 448 decoded one at a time, against the exact mode's decode.
TEST(QuantAccuracy, DemoModelDecodePerMode) {
  const std::string dir = std::string(JETMOE_MODELS_DIR) + "/jetmoe-kjv-tiny";
  const std::vector<int32_t> all = validation_ids();
  const std::vector<int32_t> ids(all.begin(), all.begin() + 512);
  auto decode_logits = [&](const JetMoeForCausalLM& lm) {
    const int64_t prefill = 64, V = lm.config().vocab_size;
    KVCache cache(lm.config(), 1, static_cast<int64_t>(ids.size()));
    lm.forward(ModelInput::from_ids({{ids.begin(), ids.begin() + prefill}}), &cache);
    std::vector<float> logits;
    for (size_t t = static_cast<size_t>(prefill); t < ids.size(); ++t) {
      const Tensor step = lm.forward(ModelInput::from_ids({{ids[t]}}), &cache).logits;
      logits.insert(logits.end(), step.data.begin(), step.data.begin() + V);
    }
    return logits;
  };
  const auto exact_lm = load(dir, nullptr);
  const int64_t V = exact_lm->config().vocab_size;
  const std::vector<float> exact = decode_logits(*exact_lm);
  for (const Mode& mode : kModes) {
    const std::vector<float> fast = decode_logits(*load(dir, &mode));
    Agreement a;
    for (size_t i = 0; i < exact.size(); i += static_cast<size_t>(V)) a.add(&exact[i], &fast[i], V);
    std::cout << "[accuracy] demo model decode, " << mode.name << ": top-1 agreement " << a.top1() << " over "
              << a.positions << " positions, mean KL " << a.mean_kl() << "\n";
    EXPECT_GE(a.top1(), mode.min_decode_top1) << mode.name;
    EXPECT_LE(a.mean_kl(), mode.max_decode_kl) << mode.name;
  }
}

}  // namespace
}  // namespace jetmoe::testing
