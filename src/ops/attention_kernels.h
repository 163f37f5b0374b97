#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"

// SIMD kernels behind ops::attention.
namespace jetmoe::ops::kernels {

// One token's `groups` query heads that share one KV head (query g at
// q + g * q_stride, output at out + g * q_stride) attend to positions
// [0, visible) of that head: keys and values of position s at element
// s * kv_stride of keys/values (dtype F32, F16 or BF16), mask[s] != 0 for a
// real token. Flash-style: keys are taken 8 at a time with an online
// softmax, so each key and value row is read once for all the groups and no
// score row is stored. Masked positions never reach the sums; with none
// visible the output is zeros. `scale` multiplies the dot products.
// head_dim: a multiple of 8.
void avx2_attend_group(const float* q, int64_t q_stride, int64_t groups, const void* keys, const void* values, DType dtype,
                       int64_t kv_stride, const int32_t* mask, int64_t visible, int64_t head_dim, float scale, float* out);

}  // namespace jetmoe::ops::kernels
