#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"

// SIMD kernels behind ops::attention.
namespace jetmoe::ops::kernels {

// A query head's query and output (head_dim floats each) and how many
// positions it sees: [0, visible).
struct AttendQuery {
  const float* q;
  float* out;
  int64_t visible;
};

// Up to kAttendMaxQueries queries per step that share one KV head (query
// heads of the same KV head, of one or several tokens of one sequence)
// attend to their visible positions of that head: keys and values of
// position s at element s * kv_stride of keys/values (dtype F32, F16 or
// BF16), mask[s] != 0 for a real token. Flash-style: keys are taken 32 at a
// time with an online softmax, so each key and value row is read from
// memory once for all the queries and no score row is stored. Each query's
// result is the same bits whichever queries share its call. Masked
// positions never reach the sums; with none visible the output is zeros.
// `scale` multiplies the dot products. head_dim: a multiple of 8.
constexpr int64_t kAttendMaxQueries = 32;
void avx2_attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, DType dtype,
                 int64_t kv_stride, const int32_t* mask, int64_t head_dim, float scale);

// The same on AVX-512 (F, BW, VL), for head sizes avx512_attends: 16 to 128
// in steps of 16.
bool avx512_attends(int64_t head_dim);
void avx512_attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, DType dtype,
                   int64_t kv_stride, const int32_t* mask, int64_t head_dim, float scale);

}  // namespace jetmoe::ops::kernels
