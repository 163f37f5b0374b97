#pragma once
#include <cstdint>
#include <vector>

#include "model/router.h"
#include "model/weights.h"
#include "ops/activation.h"

namespace jetmoe {

namespace ops { class ThreadPool; }

// Buffers reused across layers of one forward call.
struct MoeScratch {
  std::vector<float> gathered, expert_out, hidden;
};

// Mixture of attention heads, first half (transformers' JetMoeMoA.map): for
// each token and slot j, q[n, j] = x[n] . input_linear[e_j]^T. q is
// [rows, top_k, experts.rows].
void moa_map(ops::ThreadPool& pool, const float* x, const Routing& routing, const ExpertWeights& experts, float* q,
             MoeScratch& scratch);

// Second half (JetMoeMoA.reduce): y[n] = sum_j gate_j * (o[n, j] .
// output_linear[e_j]^T) + bias, with o [rows, top_k, experts.cols].
void moa_reduce(ops::ThreadPool& pool, const float* o, const Routing& routing, const ExpertWeights& experts,
                const std::vector<float>& bias, float* y, MoeScratch& scratch);

// Mixture of MLP experts (JetMoeMoE): y[n] = sum_j gate_j *
// (act(u[:I]) * u[I:]) . output_linear[e_j]^T + bias, u = x[n] . input_linear[e_j]^T.
void moe_mlp(ops::ThreadPool& pool, const float* x, const Routing& routing, const ExpertWeights& input,
             const ExpertWeights& output, ops::Activation act, const std::vector<float>& bias, float* y,
             MoeScratch& scratch);

}  // namespace jetmoe
