#include "model/router.h"

#include "ops/softmax.h"

namespace jetmoe {

void route_tokens(const float* logits, int64_t rows, int64_t E, int64_t K, Routing* r) {
  r->rows = rows;
  r->top_k = K;
  r->num_experts = E;
  r->expert.resize(static_cast<size_t>(rows * K));
  r->gate.resize(static_cast<size_t>(rows * K));
  for (int64_t n = 0; n < rows; ++n) {
    ops::top_k(logits + n * E, E, K, &r->expert[static_cast<size_t>(n * K)], &r->gate[static_cast<size_t>(n * K)]);
    ops::softmax(&r->gate[static_cast<size_t>(n * K)], K);
  }
  r->offsets.assign(static_cast<size_t>(E + 1), 0);
  for (int32_t e : r->expert) ++r->offsets[static_cast<size_t>(e) + 1];
  for (int64_t e = 0; e < E; ++e) r->offsets[static_cast<size_t>(e + 1)] += r->offsets[static_cast<size_t>(e)];
  r->slots.resize(static_cast<size_t>(rows * K));
  r->next_slot.assign(r->offsets.begin(), r->offsets.end() - 1);
  for (int64_t s = 0; s < rows * K; ++s)
    r->slots[static_cast<size_t>(r->next_slot[static_cast<size_t>(r->expert[static_cast<size_t>(s)])]++)] = s;
}

}  // namespace jetmoe
