#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"

namespace jetmoe::ops {

class ThreadPool;

// How a matmul multiplies. F32 is the exact mode (results within float32
// rounding of the reference). BF16 rounds the activations to bf16 so
// AVX512_BF16 dot products run at twice the FMA rate; it applies to BF16
// weights on CPUs that have them, and falls back to F32 elsewhere.
enum class Compute : uint8_t { F32, BF16 };

// Quantised weights (see ops/quantize.h): blocks of 32 along each row with
// one f16 scale per block, quants and scales in separate arrays so kernels
// load whole vectors.
enum class Quant : uint8_t { None, Q8_0, Q4_0 };

// A row-major [rows, cols] weight matrix in its file dtype (F32, F16 or
// BF16), usually pointing into a memory-mapped checkpoint; or, with `quant`
// set, `data` holds the packed quants and `scales` [rows, cols/32] f16.
// `packed`, when set, holds the same weights laid out for this CPU's
// kernels by pack_weights; matmul then reads it instead of `data`.
struct WeightMatrix {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  Compute compute = Compute::F32;
  Quant quant = Quant::None;
  const uint16_t* scales = nullptr;
  const void* packed = nullptr;
};

// Bytes one matmul streams from w (quants and scales together).
int64_t weight_bytes(const WeightMatrix& w);

// Bytes pack_weights needs for w on this CPU, or 0 where its kernels read w
// as it is. Worth it for a matrix every row of every step meets, like the
// output head, whose batched decode is bound by compute, not memory.
int64_t packed_bytes(const WeightMatrix& w);
// Writes packed_bytes(w) bytes to `out`; point w.packed at them.
void pack_weights(const WeightMatrix& w, void* out);

// The one matmul entry point: y[m, n] = sum_k x[m, k] * w[n, k] for
// x [M, w.cols] and y [M, w.rows], float32 accumulation, dispatching on the
// weight dtype. Faster kernels slot in here without the model changing.
void matmul(ThreadPool& pool, const float* x, int64_t M, const WeightMatrix& w, float* y);

// One row of w converted to float32 (embedding lookup).
void weight_row_to_f32(const WeightMatrix& w, int64_t row, float* out);

// A whole small tensor (norm weights, biases) converted to float32.
void to_f32(DType dtype, const void* data, int64_t n, float* out);
// The reverse for F32, F16 and BF16 (round to nearest even): values into a
// cache of that dtype.
void from_f32(const float* x, int64_t n, DType dtype, void* out);

}  // namespace jetmoe::ops
