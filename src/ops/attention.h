#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"

namespace jetmoe::ops {

class ThreadPool;

// Where the keys and values live: the head_dim elements of KV head h at
// position s of sequence b start at element b * row_stride + h * head_stride
// + s * position_stride of keys and values, which hold `dtype` elements (F32,
// F16 or BF16); mask[b * capacity + s] is 1 for a real token. The KV cache
// keeps each head's positions contiguous (position_stride = head_dim).
struct KVView {
  const void* keys;
  const void* values;
  const int32_t* mask;
  int64_t capacity;
  int64_t num_kv_heads;
  DType dtype;
  int64_t row_stride, head_stride, position_stride;
};

// Causal scaled-dot-product attention for a ragged batch: query token n
// belongs to cache row rows[n] and sits at position positions[n] there; its
// head h attends with kv head h % num_kv_heads to that row's positions
// <= positions[n] whose mask is 1. Masked keys are skipped (not multiplied by
// zero), so garbage in padded rows cannot leak; a query with no visible key
// gets zeros. q and out: [num_tokens, num_q_heads, head_dim].
void attention(ThreadPool& pool, const float* q, int64_t num_tokens, const int64_t* rows, const int64_t* positions,
               int64_t num_q_heads, int64_t head_dim, const KVView& kv, float* out);

// The rectangular case: `q_len` new queries per sequence at positions
// past .. past+q_len-1. q and out: [batch, q_len, num_q_heads, head_dim].
void attention(ThreadPool& pool, const float* q, int64_t batch, int64_t q_len, int64_t num_q_heads, int64_t head_dim,
               const KVView& kv, int64_t past, float* out);

}  // namespace jetmoe::ops
