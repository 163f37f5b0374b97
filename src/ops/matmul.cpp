#include "ops/matmul.h"

#include <algorithm>
#include <vector>

#include "ops/convert.h"
#include "ops/cpu_features.h"
#include "ops/matmul_kernels.h"
#include "ops/quantize.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {

namespace {

// Weight rows per task: enough work to amortise scheduling, small enough
// (16 x 2048 x 4 B = 128 KB converted) to stay in L2 while every x row
// streams past it.
constexpr int64_t kRowBlock = 16;

// Independent accumulators let the compiler vectorise without reassociating
// a single sum (which it may not do without -ffast-math).
inline float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  return acc[0];
}

void rows_to_f32(const WeightMatrix& w, int64_t row0, int64_t nrows, float* out) {
  if (w.quant != Quant::None) {
    const int64_t row_bytes = quant_row_bytes(w.quant, w.cols), blocks = w.cols / kQuantBlock;
    for (int64_t r = row0; r < row0 + nrows; ++r)
      dequantize_row(w.quant, static_cast<const uint8_t*>(w.data) + r * row_bytes, w.scales + r * blocks, w.cols,
                     out + (r - row0) * w.cols);
    return;
  }
  const int64_t n = nrows * w.cols;
  const size_t offset = static_cast<size_t>(row0 * w.cols);
  to_f32(w.dtype, static_cast<const uint8_t*>(w.data) + offset * dtype_size(w.dtype), n, out);
}

}  // namespace

void to_f32(DType dtype, const void* data, int64_t n, float* out) {
  switch (dtype) {
    case DType::F32:
      std::copy_n(static_cast<const float*>(data), n, out);
      return;
    case DType::BF16: {
      const auto* src = static_cast<const uint16_t*>(data);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(src[i]);
      return;
    }
    case DType::F16: {
      const auto* src = static_cast<const uint16_t*>(data);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(src[i]);
      return;
    }
    default:
      // Weight binding accepts only the three float dtypes.
      std::fill_n(out, n, 0.0f);
  }
}

void from_f32(const float* x, int64_t n, DType dtype, void* out) {
  switch (dtype) {
    case DType::F16: {
      auto* dst = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(x[i]);
      return;
    }
    case DType::BF16: {
      auto* dst = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(x[i]);
      return;
    }
    default:
      std::copy_n(x, n, static_cast<float*>(out));
  }
}

int64_t weight_bytes(const WeightMatrix& w) {
  switch (w.quant) {
    case Quant::Q8_0: return w.rows * (w.cols + w.cols / 16);
    case Quant::Q4_0: return w.rows * (w.cols / 2 + w.cols / 16);
    default: return w.rows * w.cols * static_cast<int64_t>(dtype_size(w.dtype));
  }
}

void weight_row_to_f32(const WeightMatrix& w, int64_t row, float* out) { rows_to_f32(w, row, 1, out); }

void kernels::transpose_strips(const float* x, int64_t M, int64_t K, int64_t strip_rows, float* xt) {
  for (int64_t m0 = 0; m0 < strip_rows; m0 += kStrip) {
    float* strip = xt + m0 * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t l = 0; l < kStrip; ++l) strip[k * kStrip + l] = m0 + l < M ? x[(m0 + l) * K + k] : 0.0f;
  }
}

// The packed kernel is AVX2 (AVX-512 CPUs run it too), and only short rows
// gain from it: the dot tiles' horizontal sums weigh on rows of up to 1024
// bf16 columns. At 2048 columns (jetmoe-8b's head) packed and row-major ran
// alike, so that head stays as stored, without the copy.
int64_t packed_bytes(const WeightMatrix& w) {
  const CpuFeatures& cpu = cpu_features();
  if (!cpu.avx2_fma || w.quant != Quant::None || w.dtype != DType::BF16 || w.cols > 1024) return 0;
  return kernels::avx2_packed_words(w.rows, w.cols) * static_cast<int64_t>(sizeof(uint32_t));
}

void pack_weights(const WeightMatrix& w, void* out) {
  kernels::avx2_pack_bf16(static_cast<const uint16_t*>(w.data), w.rows, w.cols, static_cast<uint32_t*>(out));
}

namespace {

// Output columns per parallel_for chunk. GEMV: about 8 chunks per thread so
// a late-starting thread still gets an equal share, in whole tiles. GEMM:
// one converted panel per chunk.
int64_t gemv_grain(const ThreadPool& pool, int64_t N) {
  const int64_t per = N / (8 * static_cast<int64_t>(pool.size()));
  return std::max<int64_t>(64, (per + 7) / 8 * 8);
}
int64_t grain(const ThreadPool& pool, int64_t M, int64_t N) {
  return M > kernels::kGemvMaxRows ? kernels::kPanelRows : gemv_grain(pool, N);
}

// Elements of per-thread activation scratch for M rows of K: never fewer
// than a decode step's kGemvMaxRows rows, so the first decode matmul a thread
// runs sizes it for every later one. Small experts run as whole tasks on
// whichever thread takes them (model/moe.cpp), and how many rows each gets
// varies with the routing.
size_t scratch_elems(int64_t M, int64_t K) { return static_cast<size_t>(std::max(M, kernels::kGemvMaxRows) * K); }

// x's rows quantised per block of 32 for the integer kernels, once per
// matmul and read by every thread. The buffers are per calling thread and
// only grow, so the per-token path does not allocate.
kernels::QuantizedActivations quantized_activations(const float* x, int64_t M, int64_t K, Quant weights) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> scale;
  thread_local std::vector<int32_t> start;
  const size_t n = scratch_elems(M, K);
  if (q.size() < n) {
    q.resize(n);
    scale.resize(n / 4);
    start.resize(n / 4);
  }
  (cpu_features().avx2_fma ? kernels::avx2_quantize_activations : quantize_activations)(x, M, K, weights, q.data(),
                                                                                         scale.data(), start.data());
  return {q.data(), scale.data(), start.data()};
}

// x's strips for the outer-product tiles (kernels::transpose_strips), made
// once per matmul and read by every thread. The buffer is per calling
// thread and only grows.
const float* strips_of(const float* x, int64_t M, int64_t K, int64_t strip_rows) {
  thread_local std::vector<float> xt;
  const auto floats = static_cast<size_t>((strip_rows + kernels::kStrip - 1) / kernels::kStrip * kernels::kStrip * K);
  if (xt.size() < floats) xt.resize(floats);
  kernels::transpose_strips(x, M, K, strip_rows, xt.data());
  return xt.data();
}

// The quantised rows' strips for the integer outer-product tiles
// (kernels::avx512_quant_strips), made once per matmul and read by every
// thread. The buffers are per calling thread and only grow.
kernels::QuantizedStrips quantized_strips_of(const kernels::QuantizedActivations& x, int64_t strip_rows, int64_t K) {
  thread_local std::vector<uint8_t> q;
  thread_local std::vector<float> scale;
  thread_local std::vector<int32_t> start;
  const auto codes = static_cast<size_t>((strip_rows + kernels::kStrip - 1) / kernels::kStrip * kernels::kStrip * K);
  if (q.size() < codes) {
    q.resize(codes);
    scale.resize(codes / kQuantBlock);
    start.resize(codes / kQuantBlock);
  }
  kernels::avx512_quant_strips(x, strip_rows, K, q.data(), scale.data(), start.data());
  return {q.data(), scale.data(), start.data()};
}

// Each worker thread's f32 panel (kPanelFloats) for the GEMM kernels.
float* thread_panel() {
  thread_local std::vector<float> panel(static_cast<size_t>(kernels::kPanelFloats));
  return panel.data();
}

// AVX2: unquantised weights in exact f32 FMA whatever the compute mode (there
// is no bf16 dot product to gain from rounding the activations). Decode:
// quantised weights by integer dot products, the others widened in
// registers, also for batched decode of up to kAvx2GemvMaxRows rows.
// Prefill: outer-product tiles over the transposed activations.
bool avx2_matmul(ThreadPool& pool, const float* x, int64_t M, const WeightMatrix& w, float* y) {
  if (!cpu_features().avx2_fma) return false;
  if (w.packed) {
    const auto* packed = static_cast<const uint32_t*>(w.packed);
    pool.parallel_for(w.rows, gemv_grain(pool, w.rows), [&](int64_t n0, int64_t n1) {
      kernels::avx2_packed_gemv(x, M, packed, w.rows, w.cols, n0, n1, y);
    });
    return true;
  }
  if (w.quant != Quant::None && M <= kernels::kGemvMaxRows) {
    const kernels::QuantizedActivations acts = quantized_activations(x, M, w.cols, w.quant);
    pool.parallel_for(w.rows, gemv_grain(pool, w.rows),
                      [&](int64_t n0, int64_t n1) { kernels::avx2_quant_gemv(acts, M, w, n0, n1, y); });
    return true;
  }
  if (w.quant == Quant::None && M <= kernels::kAvx2GemvMaxRows) {
    pool.parallel_for(w.rows, gemv_grain(pool, w.rows),
                      [&](int64_t n0, int64_t n1) { kernels::avx2_gemv(x, M, w, n0, n1, y); });
    return true;
  }
  const float* xtp = strips_of(x, M, w.cols, kernels::avx2_strip_rows(M));
  pool.parallel_for(w.rows, kernels::kPanelRows,
                    [&](int64_t n0, int64_t n1) { kernels::avx2_gemm(x, xtp, M, w, n0, n1, y, thread_panel()); });
  return true;
}

bool simd_matmul(ThreadPool& pool, const float* x, int64_t M, const WeightMatrix& w, float* y) {
  const CpuFeatures& cpu = cpu_features();
  // A packed matrix (packed_bytes) has only the AVX2 kernel; on Zen 4 it ran
  // the demo model's head faster than the AVX-512 tiles at 1 and 8 rows.
  if (!cpu.avx512 || w.packed) return avx2_matmul(pool, x, M, w, y);
  const int64_t K = w.cols;
  if (w.quant == Quant::Q8_0 && M > kernels::kGemvMaxRows && cpu.avx512_bf16) {
    thread_local std::vector<uint16_t> xb;
    if (xb.size() < static_cast<size_t>(M * K)) xb.resize(static_cast<size_t>(M * K));
    kernels::avx512_round_bf16(x, M * K, xb.data());
    const uint16_t* xbp = xb.data();
    pool.parallel_for(w.rows, kernels::kPanelRows, [&](int64_t n0, int64_t n1) {
      thread_local std::vector<uint16_t> panel(static_cast<size_t>(kernels::kQuantPanelElems));
      kernels::avx512_q8_gemm_bf16(xbp, M, w, n0, n1, y, panel.data());
    });
    return true;
  }
  if (w.quant != Quant::None) {
    if (!cpu.avx512_vnni) return false;
    const kernels::QuantizedActivations acts = quantized_activations(x, M, K, w.quant);
    if (w.quant == Quant::Q4_0 && M >= kernels::kAvx512Q4OuterMinRows) {
      const kernels::QuantizedStrips strips = quantized_strips_of(acts, kernels::avx512_strip_rows(M), K);
      pool.parallel_for(w.rows, kernels::kPanelRows, [&](int64_t n0, int64_t n1) {
        // Per worker; grows only, so a later prefill reuses it.
        thread_local std::vector<uint8_t> codes;
        thread_local std::vector<float> scales;
        if (codes.size() < static_cast<size_t>(kernels::kPanelRows * K)) {
          codes.resize(static_cast<size_t>(kernels::kPanelRows * K));
          scales.resize(static_cast<size_t>(kernels::kPanelRows * K / kQuantBlock));
        }
        kernels::avx512_q4_gemm(acts, strips, M, w, n0, n1, y, codes.data(), scales.data());
      });
      return true;
    }
    pool.parallel_for(w.rows, grain(pool, M, w.rows),
                      [&](int64_t n0, int64_t n1) { kernels::avx512_quant_dot(acts, M, w, n0, n1, y); });
    return true;
  }
  if (w.compute == Compute::BF16 && w.dtype == DType::BF16 && cpu.avx512_bf16) {
    // Rounded once here, read by every thread; grows only, so the per-token
    // path does not allocate.
    thread_local std::vector<uint16_t> xb;
    if (xb.size() < scratch_elems(M, K)) xb.resize(scratch_elems(M, K));
    kernels::avx512_round_bf16(x, M * K, xb.data());
    const uint16_t* xbp = xb.data();
    pool.parallel_for(w.rows, grain(pool, M, w.rows),
                      [&](int64_t n0, int64_t n1) { kernels::avx512_bf16_dot(xbp, M, w, n0, n1, y); });
    return true;
  }
  if (w.dtype == DType::BF16 && M <= kernels::kGemvMaxRows && cpu.avx512_bf16) {
    thread_local std::vector<uint16_t> parts;
    if (parts.size() < 3 * scratch_elems(M, K)) parts.resize(3 * scratch_elems(M, K));
    uint16_t* p = parts.data();
    kernels::avx512_split_bf16x3(x, M * K, p, p + M * K, p + 2 * M * K);
    pool.parallel_for(w.rows, grain(pool, M, w.rows),
                      [&](int64_t n0, int64_t n1) { kernels::avx512_bf16x3_gemv(p, M, w, n0, n1, y); });
    return true;
  }
  if (M >= kernels::kAvx512OuterMinRows) {
    const float* xtp = strips_of(x, M, K, kernels::avx512_strip_rows(M));
    pool.parallel_for(w.rows, kernels::kPanelRows, [&](int64_t n0, int64_t n1) {
      kernels::avx512_gemm_f32(x, xtp, M, w, n0, n1, y, thread_panel());
    });
    return true;
  }
  pool.parallel_for(w.rows, grain(pool, M, w.rows),
                    [&](int64_t n0, int64_t n1) { kernels::avx512_f32(x, M, w, n0, n1, y, thread_panel()); });
  return true;
}

}  // namespace

void matmul(ThreadPool& pool, const float* x, int64_t M, const WeightMatrix& w, float* y) {
  const int64_t N = w.rows, K = w.cols;
  if (M <= 0 || N <= 0) return;
  if (simd_matmul(pool, x, M, w, y)) return;
  pool.parallel_for(N, kRowBlock, [&](int64_t n0, int64_t n1) {
    for (int64_t nb = n0; nb < n1; nb += kRowBlock) {
      const int64_t nrows = std::min(kRowBlock, n1 - nb);
      const float* wrows;
      thread_local std::vector<float> converted;
      if (w.dtype == DType::F32 && w.quant == Quant::None) {
        wrows = static_cast<const float*>(w.data) + nb * K;
      } else {
        converted.resize(static_cast<size_t>(nrows * K));
        rows_to_f32(w, nb, nrows, converted.data());
        wrows = converted.data();
      }
      for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * K;
        float* yr = y + m * N + nb;
        for (int64_t r = 0; r < nrows; ++r) yr[r] = dot(xr, wrows + r * K, K);
      }
    }
  });
}

}  // namespace jetmoe::ops
