#include "model/moe.h"

#include <algorithm>

#include "ops/matmul.h"

namespace jetmoe {

namespace {

// Copies the rows feeding expert e's slots into one contiguous block, so the
// expert runs as a single matmul over all its tokens. `per_slot` says whether
// source rows are indexed by slot (row * top_k + j) or by token row.
int64_t gather(const Routing& r, int64_t e, const float* src, int64_t width, bool per_slot, std::vector<float>& dst) {
  const int64_t begin = r.offsets[static_cast<size_t>(e)], end = r.offsets[static_cast<size_t>(e + 1)];
  dst.resize(static_cast<size_t>((end - begin) * width));
  for (int64_t i = begin; i < end; ++i) {
    const int64_t slot = r.slots[static_cast<size_t>(i)];
    const int64_t row = per_slot ? slot : slot / r.top_k;
    std::copy_n(src + row * width, width, dst.data() + (i - begin) * width);
  }
  return end - begin;
}

// y[token] += gate * expert_out[i] for each of expert e's slots.
void scatter_gated(const Routing& r, int64_t e, const std::vector<float>& expert_out, int64_t width, float* y) {
  const int64_t begin = r.offsets[static_cast<size_t>(e)], end = r.offsets[static_cast<size_t>(e + 1)];
  for (int64_t i = begin; i < end; ++i) {
    const int64_t slot = r.slots[static_cast<size_t>(i)];
    const float g = r.gate[static_cast<size_t>(slot)];
    float* yr = y + (slot / r.top_k) * width;
    const float* src = expert_out.data() + (i - begin) * width;
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
  const int64_t out_width = experts.rows, in_width = experts.cols;
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t count = gather(r, e, x, in_width, /*per_slot=*/false, s.gathered);
    if (!count) continue;
    s.expert_out.resize(static_cast<size_t>(count * out_width));
    ops::matmul(pool, s.gathered.data(), count, experts.expert(e), s.expert_out.data());
    const int64_t begin = r.offsets[static_cast<size_t>(e)];
    for (int64_t i = 0; i < count; ++i)
      std::copy_n(s.expert_out.data() + i * out_width, out_width, q + r.slots[static_cast<size_t>(begin + i)] * out_width);
  }
}

void moa_reduce(ops::ThreadPool& pool, const float* o, const Routing& r, const ExpertWeights& experts,
                const std::vector<float>& bias, float* y, MoeScratch& s) {
  const int64_t out_width = experts.rows, in_width = experts.cols;
  std::fill_n(y, r.rows * out_width, 0.0f);
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t count = gather(r, e, o, in_width, /*per_slot=*/true, s.gathered);
    if (!count) continue;
    s.expert_out.resize(static_cast<size_t>(count * out_width));
    ops::matmul(pool, s.gathered.data(), count, experts.expert(e), s.expert_out.data());
    scatter_gated(r, e, s.expert_out, out_width, y);
  }
  add_bias(bias, r.rows, y);
}

void moe_mlp(ops::ThreadPool& pool, const float* x, const Routing& r, const ExpertWeights& input,
             const ExpertWeights& output, ops::Activation act, const std::vector<float>& bias, float* y,
             MoeScratch& s) {
  const int64_t D = input.cols, I = output.cols;
  std::fill_n(y, r.rows * output.rows, 0.0f);
  std::vector<float>& up = s.hidden;
  for (int64_t e = 0; e < r.num_experts; ++e) {
    const int64_t count = gather(r, e, x, D, /*per_slot=*/false, s.gathered);
    if (!count) continue;
    up.resize(static_cast<size_t>(count * input.rows));
    ops::matmul(pool, s.gathered.data(), count, input.expert(e), up.data());
    // The gated activation shrinks [count, 2I] to [count, I]; reuse `gathered`.
    s.gathered.resize(static_cast<size_t>(count * I));
    ops::gated_activation(up.data(), count, I, act, s.gathered.data());
    s.expert_out.resize(static_cast<size_t>(count * output.rows));
    ops::matmul(pool, s.gathered.data(), count, output.expert(e), s.expert_out.data());
    scatter_gated(r, e, s.expert_out, output.rows, y);
  }
  add_bias(bias, r.rows, y);
}

}  // namespace jetmoe
