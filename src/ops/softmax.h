#pragma once
#include <cstdint>

namespace jetmoe::ops {

// In-place softmax over n values, max-subtracted, float32.
void softmax(float* x, int64_t n);

// The k largest of x[0..n) in descending order (ties: lower index first).
void top_k(const float* x, int64_t n, int64_t k, int32_t* index_out, float* value_out);

}  // namespace jetmoe::ops
