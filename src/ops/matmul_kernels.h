#pragma once
#include <cstdint>

#include "ops/matmul.h"

// SIMD kernels behind ops::matmul. Each computes output columns [n0, n1) of
// y = x·wᵀ for all M rows, so the dispatcher can split N over threads.
namespace jetmoe::ops::kernels {

// Weight rows per GEMM work chunk; the AVX-512 path converts them to f32 per
// cache block, the AVX2 path reads them in place.
constexpr int64_t kPanelRows = 48;
// Longest K run per block: 4 x rows (16 KB) stay in L1 while a 48-row
// panel (192 KB) stays in L2; on AVX2, 32 transposed activation rows of it
// (128 KB) stay in L2.
constexpr int64_t kMaxKc = 1024;
constexpr int64_t kPanelFloats = kPanelRows * kMaxKc;
// At or below this many rows, weights are read straight from memory and
// converted in registers (decode); above it the GEMM kernels reuse each
// weight across rows (prefill, batched decode).
constexpr int64_t kGemvMaxRows = 4;

// Prefill's outer-product tiles (AVX2 and AVX-512) read the activations
// transposed once per matmul into strips of kStrip rows, [K][kStrip] floats
// each, zero past row M: rows [0, strip_rows) of x, strip_rows rounded up to
// whole strips. Each ISA's avx*_strip_rows says how many rows it takes in
// strips; the rest stay in x for its dot tiles.
constexpr int64_t kStrip = 16;
void transpose_strips(const float* x, int64_t M, int64_t K, int64_t strip_rows, float* xt);

// Decode tiles over weight rows [n0, n1), `step` rows each: tile(n, s, nr)
// takes rows n, n + s, ..., n + (nr - 1) * s. A tile's rows lie (n1 - n0) /
// step rows apart, so each row of the tile reads its own long stretch of
// memory; a ragged end of fewer than `step` rows takes one tile of adjacent
// rows. Adjacent short rows put several streams in one 4 KB page, which the
// hardware prefetcher follows poorly: on Zen 3, four adjacent q4_0 rows of
// 1 KB streamed at 11 GB/s on two threads, four rows 32 KB apart at 17-18
// (the read bandwidth), and software prefetching 4-8 KB ahead did not close
// the gap.
template <class Tile>
void strided_tiles(int64_t n0, int64_t n1, int64_t step, Tile&& tile) {
  const int64_t s = (n1 - n0) / step;
  for (int64_t i = 0; i < s; ++i) tile(n0 + i, s, step);
  if (n0 + s * step < n1) tile(n0 + s * step, int64_t{1}, n1 - n0 - s * step);
}

// Exact mode: f32 activations, weights F32/F16/BF16 widened to f32, FMA.
// `panel` holds kPanelFloats floats of per-thread scratch.
void avx512_f32(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, float* panel);

// Fast mode: activations already rounded to bf16 (xb, [M, K]), BF16
// weights, vdpbf16ps with f32 accumulation.
void avx512_bf16_dot(const uint16_t* xb, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y);

// Activations quantised for the integer kernels (see quantize_activations):
// per 64 columns, 64 int8 values, 16 lane scales (8 lanes per block of 32)
// and 16 int32 start values that subtract the weights' offset.
struct QuantizedActivations {
  const int8_t* q = nullptr;       // [M, K]
  const float* scale = nullptr;    // [M, K / 4]
  const int32_t* start = nullptr;  // [M, K / 4]
};

// Q8_0 / Q4_0 weights (w.quant) times quantised activations: vpdpbusd.
void avx512_quant_dot(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y);

// Q8_0 prefill on AVX512_BF16: each 48-row panel is dequantised to bf16 once
// (d * (q - 128), rounded) and multiplied with bf16-rounded activations by
// the vdpbf16ps tiles. The integer tiles below ran 1.6x faster for Q8_0 too
// (jetmoe-8b prefill 87 against 55 tok/s on Zen 4), but quantising the
// activations to 8 bits as well took the golden fixtures' mean KL from
// 5e-4 to 1.4e-2, past the 1e-3 that 8-bit weights are held to; 4-bit
// weights' own error is far larger than the activations'. `panel` holds
// kQuantPanelElems bf16 values of per-thread scratch.
constexpr int64_t kQuantPanelKc = 2048;
constexpr int64_t kQuantPanelElems = kPanelRows * kQuantPanelKc;
void avx512_q8_gemm_bf16(const uint16_t* xb, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                         uint16_t* panel);

// Q4_0 prefill on AVX512_VNNI from kAvx512Q4OuterMinRows rows: integer
// outer-product tiles over x's quantised rows regrouped into strips of 16
// (avx512_quant_strips, made once per matmul and read by every thread): per
// strip and block of 32 columns, 8 vectors of [16 rows][4 codes], then the
// rows' dx and starts as [16] each; rows past M are zero. Each 48-row panel
// is unpacked to a code per byte first (`codes`: kPanelRows * K bytes of
// per-thread scratch, `scales`: kPanelRows * K / 32 floats). A last group of
// 4 rows or fewer goes through the avx512_quant_dot tiles instead, as do
// matrices of fewer rows, where strips would be mostly empty (on Zen 4 the
// dot tiles were as fast at 12 rows, faster below).
struct QuantizedStrips {
  const uint8_t* q = nullptr;      // [strips, K / 32, 8, 16, 4]
  const float* scale = nullptr;    // [strips, K / 32, 16]
  const int32_t* start = nullptr;  // [strips, K / 32, 16]
};
constexpr int64_t kAvx512Q4OuterMinRows = 12;
void avx512_quant_strips(const QuantizedActivations& x, int64_t M, int64_t K, uint8_t* q, float* scale,
                         int32_t* start);
void avx512_q4_gemm(const QuantizedActivations& x, const QuantizedStrips& xs, int64_t M, const WeightMatrix& w,
                    int64_t n0, int64_t n1, float* y, uint8_t* codes, float* scales);

// Exact-mode prefill on AVX-512 from kAvx512OuterMinRows rows: outer-product
// tiles, any unquantised weights widened to f32 per panel, over x's strips
// (transpose_strips, shared by the threads' calls); a last group of 4 rows
// or fewer is read from x by the dot tiles instead. On an Emerald Rapids Xeon
// (2 threads) it ran 1.3-1.5x the dot tiles' GMAC/s at 32 and 128 rows, and
// 0.7x at 8: the strips are half empty there.
constexpr int64_t kAvx512OuterMinRows = 32;
int64_t avx512_strip_rows(int64_t M);
void avx512_gemm_f32(const float* x, const float* xt, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1,
                     float* y, float* panel);

// quantize_rows for BF16 sources (the formats are described in
// ops/quantize.h); same results as the portable code.
void avx512_quantize_bf16_rows(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                               uint16_t* scales);

// Exact-mode GEMV for BF16 weights (M <= kGemvMaxRows) on AVX512_BF16: each
// activation row is split exactly into three bf16 parts (x = hi + mid + lo,
// 24 bits of mantissa like f32), so three vdpbf16ps give f32-exact products
// for half the vector ops per weight of widening bf16 to f32 for FMA.
// xs holds the parts as [3][M][K].
void avx512_bf16x3_gemv(const uint16_t* xs, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y);
void avx512_split_bf16x3(const float* x, int64_t n, uint16_t* hi, uint16_t* mid, uint16_t* lo);

// BF16 matrices packed at load for AVX2 (the output head): panels of
// kPackRows rows; per pair of columns (2q, 2q + 1) a panel holds kPackRows
// 32-bit words, word j = row j's weight 2q in the low half and 2q + 1 in
// the high half (zero past the last column or row). One load gives 16
// weights, and a shift and an AND widen them to f32, against a shuffle and
// a shift per 8 for row-major bf16; the activation is broadcast, so no
// horizontal sums. avx2_packed_gemv takes any M, and each output is one FMA
// chain in k order whatever M or the thread split. The demo model's 32000 x
// 128 head ran 1.2-1.5x as fast as with the dot tiles at 3-8 rows and
// 1.1-1.2x at one (Zen 3, two threads). n0 must be a multiple of kPackRows.
constexpr int64_t kPackRows = 8;
int64_t avx2_packed_words(int64_t N, int64_t K);
void avx2_pack_bf16(const uint16_t* w, int64_t N, int64_t K, uint32_t* out);
void avx2_packed_gemv(const float* x, int64_t M, const uint32_t* packed, int64_t N, int64_t K, int64_t n0, int64_t n1,
                      float* y);

// AVX2 + FMA (+ F16C), decode (M <= kAvx2GemvMaxRows): F32/F16/BF16 weights
// read straight from memory and widened in registers. Each row's sums come
// out as they would for that row alone.
constexpr int64_t kAvx2GemvMaxRows = 8;
void avx2_gemv(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y);
// Q8_0 / Q4_0 weights, decode (M <= kGemvMaxRows): activations quantised by
// quantize_activations, integer dot products per block of 32.
void avx2_quant_gemv(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y);
// Prefill, any weights: x's strips (transpose_strips, shared by the
// threads' avx2_gemm calls) except a last group of 8 rows or fewer, which
// avx2_gemm reads from x. `panel` holds kPanelFloats floats of per-thread
// scratch for F16 and quantised weights.
int64_t avx2_strip_rows(int64_t M);
void avx2_gemm(const float* x, const float* xt, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
               float* panel);

// quantize_activations on AVX2: the same bytes, about ten times faster (it
// runs once per quantised matmul in decode).
void avx2_quantize_activations(const float* x, int64_t M, int64_t K, Quant weights, int8_t* q, float* scale,
                               int32_t* start);
// avx512_quantize_bf16_rows's contract on AVX2 + F16C.
void avx2_quantize_bf16_rows(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                             uint16_t* scales);

// Round-to-nearest-even f32 -> bf16, as f32_to_bf16 does.
void avx512_round_bf16(const float* x, int64_t n, uint16_t* out);

}  // namespace jetmoe::ops::kernels
