#include "model/moe.h"

#include <algorithm>

#include "ops/matmul.h"
#include "ops/thread_pool.h"

namespace jetmoe {

namespace {

// Below this many weight bytes an expert's matmul is over in tens of
// microseconds, and splitting its rows over the threads costs about as much
// as it saves (a 512x128 bf16 expert takes 6 us on one thread or two); the
// experts then run side by side, one per thread, in a single dispatch.
constexpr int64_t kSmallExpertBytes = int64_t{1} << 20;

// The rows feeding every slot, in routing order (grouped by expert), so
// expert e's rows are dst[offsets[e] .. offsets[e+1]) and it runs as one
// matmul over all its tokens. `per_slot` says whether source rows are
// indexed by slot (row * top_k + j) or by token row.
void gather(const Routing& r, const float* src, int64_t width, bool per_slot, std::vector<float>& dst) {
  const auto n = static_cast<int64_t>(r.slots.size());
  dst.resize(static_cast<size_t>(n * width));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = r.slots[static_cast<size_t>(i)];
    const int64_t row = per_slot ? slot : slot / r.top_k;
    std::copy_n(src + row * width, width, dst.data() + i * width);
  }
}

// out[i] = in[i] . experts[e]^T for each expert e and its routed rows i.
void run_experts(ops::ThreadPool& pool, const Routing& r, const ExpertWeights& experts, const float* in, float* out) {
  auto run = [&](int64_t e) {
    const int64_t begin = r.offsets[static_cast<size_t>(e)], count = r.offsets[static_cast<size_t>(e + 1)] - begin;
    if (count) ops::matmul(pool, in + begin * experts.cols, count, experts.expert(e), out + begin * experts.rows);
  };
  int64_t active = 0;
  for (int64_t e = 0; e < r.num_experts; ++e)
    active += r.offsets[static_cast<size_t>(e + 1)] > r.offsets[static_cast<size_t>(e)];
  if (ops::weight_bytes(experts.expert(0)) <= kSmallExpertBytes && active >= pool.size()) {
    // Each matmul called inside a task runs on that thread alone.
    pool.parallel_for(r.num_experts, 1, [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) run(e);
    });
    return;
  }
  for (int64_t e = 0; e < r.num_experts; ++e) run(e);
}

// y[token] += gate * out[i] for every slot, in routing order: each token's
// experts added in the order of their indices.
void scatter_gated(const Routing& r, const std::vector<float>& out, int64_t width, float* y) {
  for (size_t i = 0; i < r.slots.size(); ++i) {
    const int64_t slot = r.slots[i];
    const float g = r.gate[static_cast<size_t>(slot)];
    float* yr = y + (slot / r.top_k) * width;
    const float* src = out.data() + static_cast<int64_t>(i) * width;
    for (int64_t k = 0; k < width; ++k) yr[k] += g * src[k];
  }
}

void add_bias(const std::vector<float>& bias, int64_t rows, float* y) {
  const int64_t width = static_cast<int64_t>(bias.size());
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < width; ++k) y[n * width + k] += bias[static_cast<size_t>(k)];
}

}  // namespace

void moa_map(ops::ThreadPool& pool, const float* x, const Routing& r, const ExpertWeights& experts, float* q,
             MoeScratch& s) {
  const int64_t out_width = experts.rows;
  gather(r, x, experts.cols, /*per_slot=*/false, s.gathered);
  s.expert_out.resize(r.slots.size() * static_cast<size_t>(out_width));
  run_experts(pool, r, experts, s.gathered.data(), s.expert_out.data());
  for (size_t i = 0; i < r.slots.size(); ++i)
    std::copy_n(s.expert_out.data() + static_cast<int64_t>(i) * out_width, out_width, q + r.slots[i] * out_width);
}

void moa_reduce(ops::ThreadPool& pool, const float* o, const Routing& r, const ExpertWeights& experts,
                const std::vector<float>& bias, float* y, MoeScratch& s) {
  const int64_t out_width = experts.rows;
  std::fill_n(y, r.rows * out_width, 0.0f);
  gather(r, o, experts.cols, /*per_slot=*/true, s.gathered);
  s.expert_out.resize(r.slots.size() * static_cast<size_t>(out_width));
  run_experts(pool, r, experts, s.gathered.data(), s.expert_out.data());
  scatter_gated(r, s.expert_out, out_width, y);
  add_bias(bias, r.rows, y);
}

void moe_mlp(ops::ThreadPool& pool, const float* x, const Routing& r, const ExpertWeights& input,
             const ExpertWeights& output, ops::Activation act, const std::vector<float>& bias, float* y,
             MoeScratch& s) {
  const int64_t I = output.cols;
  const auto slots = static_cast<int64_t>(r.slots.size());
  std::fill_n(y, r.rows * output.rows, 0.0f);
  gather(r, x, input.cols, /*per_slot=*/false, s.gathered);
  s.hidden.resize(static_cast<size_t>(slots * input.rows));
  run_experts(pool, r, input, s.gathered.data(), s.hidden.data());
  // The gated activation shrinks [slots, 2I] to [slots, I]; reuse `gathered`.
  // Its exp per element (1.4M per layer in a 128-token jetmoe-8b prefill) is
  // worth both threads; each element's result is the same however split.
  s.gathered.resize(static_cast<size_t>(slots * I));
  const float* hidden = s.hidden.data();
  float* activated = s.gathered.data();
  pool.parallel_for(slots, 1, [&](int64_t r0, int64_t r1) {
    ops::gated_activation(hidden + r0 * 2 * I, r1 - r0, I, act, activated + r0 * I);
  });
  s.expert_out.resize(static_cast<size_t>(slots * output.rows));
  run_experts(pool, r, output, s.gathered.data(), s.expert_out.data());
  scatter_gated(r, s.expert_out, output.rows, y);
  add_bias(bias, r.rows, y);
}

}  // namespace jetmoe
