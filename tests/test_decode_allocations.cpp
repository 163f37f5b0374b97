// The per-token loop allocates nothing: every heap allocation of the process
// (all threads) is counted while decode steps run, once the buffers have
// grown to their steady size. Its own executable, because it replaces the
// global operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "generate/logits_processors.h"
#include "generate/sampling.h"
#include "jetmoe/generation_config.h"
#include "jetmoe/kv_cache.h"
#include "jetmoe/model.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void* counted_alloc(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace jetmoe {
namespace {

struct Counting {
  Counting() {
    g_allocations = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  int64_t count() const { return g_allocations.load(); }
};

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

TEST(DecodeAllocations, CounterSeesAllocations) {
  Counting counting;
  auto* p = new std::vector<int>(100);
  delete p;
  EXPECT_EQ(counting.count(), 2);  // the vector and its buffer
}

// Four sequences decoding side by side (the server's step), greedy, in each
// weight and compute mode: after warm-up steps, 16 more steps allocate nothing.
TEST(DecodeAllocations, DecodeStepsAllocateNothing) {
  struct Mode {
    const char* name;
    LoadOptions options;
  };
  const Mode modes[] = {
      {"bf16 exact", {2, WeightFormat::Native, ComputeMode::F32}},
      {"bf16 compute", {2, WeightFormat::Native, ComputeMode::BF16}},
      {"q8_0", {2, WeightFormat::Q8_0, ComputeMode::F32}},
      {"q4_0", {2, WeightFormat::Q4_0, ComputeMode::F32}},
  };
  for (const Mode& mode : modes) {
    SCOPED_TRACE(mode.name);
    const auto lm = JetMoeForCausalLM::from_pretrained(JETMOE_MODELS_DIR "/jetmoe-kjv-tiny", mode.options);
    const int64_t V = lm->config().vocab_size, rows = 4, prompt = 5, steps = 24;
    KVCache cache(lm->config(), rows, prompt + steps + 1);
    TokenBatch batch;
    std::vector<int64_t> logit_rows;
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t p = 0; p < prompt; ++p) {
        batch.token_ids.push_back(p == 0 ? 1 : 100 + 37 * r + p);
        batch.seq.push_back(r);
        batch.pos.push_back(p);
      }
      logit_rows.push_back(static_cast<int64_t>(batch.token_ids.size()) - 1);
    }
    Tensor logits;
    lm->forward_batch(batch, cache, logit_rows, logits);

    // From here on each step feeds one token per row.
    batch.token_ids.resize(rows);
    batch.seq.resize(rows);
    batch.pos.resize(rows);
    for (int64_t r = 0; r < rows; ++r) logit_rows[static_cast<size_t>(r)] = r;
    auto step = [&](int32_t position) {
      for (int32_t r = 0; r < rows; ++r) {
        batch.token_ids[static_cast<size_t>(r)] = argmax(&logits.data[static_cast<size_t>(r * V)], V);
        batch.seq[static_cast<size_t>(r)] = r;
        batch.pos[static_cast<size_t>(r)] = position;
      }
      lm->forward_batch(batch, cache, logit_rows, logits);
    };
    int32_t position = prompt;
    for (int i = 0; i < 8; ++i) step(position++);  // buffers reach their steady size
    Counting counting;
    for (int i = 0; i < steps - 8; ++i) step(position++);
    EXPECT_EQ(counting.count(), 0);
  }
}

// The sampled step's own work (penalties, warpers, the draw) on a
// 32000-token row allocates nothing either once its scratch has grown: with
// top-k before top-p (generate's defaults) and top-p alone (the server's),
// whose near-maximum and all-token paths size the scratch differently.
TEST(DecodeAllocations, SamplingStepsAllocateNothing) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(32000);
  for (float& x : logits) x = normal(rng);
  for (int64_t top_k : {50, 0}) {
    SCOPED_TRACE(top_k);
    GenerationConfig c;
    c.do_sample = true;
    c.temperature = 0.7;
    c.top_k = top_k;
    c.top_p = 0.9;
    c.min_p = 0.01;
    c.repetition_penalty = 1.3;
    std::vector<int32_t> ids = {1, 450, 3186};
    ids.reserve(64);
    std::vector<float> scores;
    scores.reserve(logits.size());
    gen::WarpScratch warp;
    std::vector<float> probs;
    gen::SamplingRng draws(7);
    auto step = [&](double spread) {
      scores.assign(logits.begin(), logits.end());
      for (float& x : scores) x *= static_cast<float>(spread);
      gen::apply_processors(c, ids, 3, scores);
      gen::apply_warpers(c, 1, scores, warp);
      ids.push_back(gen::sample_from_scores(scores, draws.uniform(), probs));
    };
    step(0.05);  // flat: top-p ranks every token
    step(1.0);
    Counting counting;
    for (int i = 0; i < 16; ++i) step(i % 2 ? 1.0 : 0.05);
    EXPECT_EQ(counting.count(), 0);
  }
}

}  // namespace
}  // namespace jetmoe
