#include "ops/quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/convert.h"
#include "ops/cpu_features.h"
#include "ops/matmul_kernels.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {

namespace {

void quantize_row(Quant q, const float* w, int64_t cols, uint8_t* out, uint16_t* scales) {
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const float* x = w + b * kQuantBlock;
    float hi = x[0], lo = x[0];
    for (int64_t i = 1; i < kQuantBlock; ++i) {
      hi = std::max(hi, x[i]);
      lo = std::min(lo, x[i]);
    }
    // On a tie the positive value wins, as in the AVX-512 code.
    const float amax = std::max(hi, -lo), max = -lo > hi ? lo : hi;
    if (q == Quant::Q8_0) {
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      scales[b] = f32_to_f16(d);
      for (int64_t i = 0; i < kQuantBlock; ++i)
        out[b * kQuantBlock + i] = static_cast<uint8_t>(std::clamp<long>(std::lrint(x[i] * id), -127, 127) + 128);
    } else {
      const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      scales[b] = f32_to_f16(d);
      // Block b of each 64-weight group: even blocks fill low nibbles.
      uint8_t* group = out + (b / 2) * kQuantBlock;
      const int shift = (b % 2) * 4;
      for (int64_t i = 0; i < kQuantBlock; ++i) {
        const uint8_t v = static_cast<uint8_t>(std::clamp<long>(std::lrint(x[i] * id) + 8, 0, 15));
        group[i] = static_cast<uint8_t>((shift ? group[i] & 0x0f : 0) | (v << shift));
      }
    }
  }
}

}  // namespace

bool quantizable(int64_t cols) { return cols > 0 && cols % (2 * kQuantBlock) == 0; }

int64_t quant_row_bytes(Quant q, int64_t cols) { return q == Quant::Q4_0 ? cols / 2 : cols; }

void quantize_rows(ThreadPool& pool, Quant q, DType dtype, const void* src, int64_t rows, int64_t cols, uint8_t* quants,
                   uint16_t* scales) {
  const int64_t row_bytes = quant_row_bytes(q, cols), src_row = cols * static_cast<int64_t>(dtype_size(dtype));
  if (dtype == DType::BF16 && (cpu_features().avx512 || cpu_features().avx2_fma)) {
    const auto kernel = cpu_features().avx512 ? kernels::avx512_quantize_bf16_rows : kernels::avx2_quantize_bf16_rows;
    pool.parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
      kernel(q, static_cast<const uint16_t*>(src) + r0 * cols, r1 - r0, cols, quants + r0 * row_bytes,
             scales + r0 * (cols / kQuantBlock));
    });
    return;
  }
  pool.parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      to_f32(dtype, static_cast<const uint8_t*>(src) + r * src_row, cols, row.data());
      quantize_row(q, row.data(), cols, quants + r * row_bytes, scales + r * (cols / kQuantBlock));
    }
  });
}

void quantize_activations(const float* x, int64_t M, int64_t K, Quant weights, int8_t* q, float* scale, int32_t* start) {
  const int32_t offset = weights == Quant::Q8_0 ? 128 : 8;
  for (int64_t i = 0; i < M * K / kQuantBlock; ++i) {
    const float* xb = x + i * kQuantBlock;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int64_t j = 0; j < kQuantBlock; ++j) {
      const auto v = static_cast<int8_t>(std::lrint(xb[j] * id));
      q[i * kQuantBlock + j] = v;
      sum += v;
    }
    for (int64_t l = 0; l < 8; ++l) {
      scale[i * 8 + l] = d;
      start[i * 8 + l] = l == 0 ? -offset * sum : 0;
    }
  }
}

void dequantize_row(Quant q, const uint8_t* quants, const uint16_t* scales, int64_t cols, float* out) {
  for (int64_t i = 0; i < cols; ++i) {
    const int64_t b = i / kQuantBlock;
    const float d = f16_to_f32(scales[b]);
    if (q == Quant::Q8_0) {
      out[i] = d * static_cast<float>(static_cast<int>(quants[i]) - 128);
    } else {
      const uint8_t byte = quants[(b / 2) * kQuantBlock + i % kQuantBlock];
      out[i] = d * static_cast<float>(((b % 2) ? byte >> 4 : byte & 0x0f) - 8);
    }
  }
}

}  // namespace jetmoe::ops
