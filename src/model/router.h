#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace jetmoe {

// Each token's K chosen experts and their gates, plus the same choices
// grouped by expert so each expert runs once over all its tokens.
struct Routing {
  int64_t rows = 0, top_k = 0, num_experts = 0;
  std::vector<int32_t> expert;  // [rows * top_k], descending logit order
  std::vector<float> gate;      // [rows * top_k], softmax over the K chosen logits
  // Slots (row * top_k + j) of expert e are slots[offsets[e] .. offsets[e+1]),
  // in increasing row order.
  std::vector<int64_t> offsets;  // [num_experts + 1]
  std::vector<int64_t> slots;    // [rows * top_k]
  std::vector<int64_t> next_slot;  // scratch for grouping, kept so routing never allocates once grown
};

// transformers' JetMoeTopKGating: top-k of the router logits [rows, E],
// gates = softmax of those k logits only.
void route_tokens(const float* router_logits, int64_t rows, int64_t num_experts, int64_t top_k, Routing* out);

}  // namespace jetmoe
