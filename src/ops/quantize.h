#pragma once
#include <cstdint>

#include "jetmoe/tensor.h"
#include "ops/matmul.h"

namespace jetmoe::ops {

class ThreadPool;

// Both formats: blocks of 32 consecutive weights of a row share one f16
// scale d, and kernels take 64 weights (two blocks) per step, so rows must
// hold a multiple of 64.
//
// Q8_0: w = d * q, q in [-127, 127], d = max|w| / 127, stored as the byte
// q + 128 (unsigned, so VNNI's u8 x s8 dot takes the weights as they are).
// Q4_0: w = d * (q - 8), q in [0, 15], d = (the value of largest magnitude)
// / -8, as llama.cpp's q4_0 (18 bytes per 32: the 4-bit roofline). Each 32
// bytes of a row hold 64 weights: byte j = q[j] | q[j + 32] << 4, so one
// mask and one shift yield two whole blocks in order.
constexpr int64_t kQuantBlock = 32;
bool quantizable(int64_t cols);
int64_t quant_row_bytes(Quant q, int64_t cols);

// Quantises `rows` rows of a F32/F16/BF16 matrix into quants
// [rows, quant_row_bytes] and scales [rows, cols / 32], over the pool.
void quantize_rows(ThreadPool& pool, Quant q, DType dtype, const void* src, int64_t rows, int64_t cols, uint8_t* quants,
                   uint16_t* scales);

// The row of weights a quantised row stands for (tests, embedding).
void dequantize_row(Quant q, const uint8_t* quants, const uint16_t* scales, int64_t cols, float* out);

// Activations for the integer kernels: each block of 32 of x's rows [M, K]
// becomes int8 q = round(x / dx), dx = max|x| / 127. Per 64 columns, scale
// holds dx of the two blocks spread over 8 lanes each, and start holds
// -offset * sum(q) of each block in lanes 0 and 8 (zero elsewhere), where
// offset is what the weights' stored bytes add (128 for Q8_0, 8 for Q4_0).
void quantize_activations(const float* x, int64_t M, int64_t K, Quant weights, int8_t* q, float* scale, int32_t* start);

}  // namespace jetmoe::ops
