#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"

namespace jetmoe::ops {

class ThreadPool;

// A row-major [rows, cols] weight matrix in its file dtype (F32, F16 or
// BF16), usually pointing into a memory-mapped checkpoint.
struct WeightMatrix {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// The one matmul entry point: y[m, n] = sum_k x[m, k] * w[n, k] for
// x [M, w.cols] and y [M, w.rows], float32 accumulation, dispatching on the
// weight dtype. Faster kernels slot in here without the model changing.
void matmul(ThreadPool& pool, const float* x, int64_t M, const WeightMatrix& w, float* y);

// One row of w converted to float32 (embedding lookup).
void weight_row_to_f32(const WeightMatrix& w, int64_t row, float* out);

// A whole small tensor (norm weights, biases) converted to float32.
void to_f32(DType dtype, const void* data, int64_t n, float* out);

}  // namespace jetmoe::ops
