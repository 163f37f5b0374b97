// AVX2 + FMA kernels for CPUs without AVX-512 (Zen 2/3, Haswell to Alder
// Lake). Every function here carries the AVX2 target through the pragma
// below and runs only after cpu_features() said so; headers come first so no
// inline library code is compiled for AVX2 by accident.
#include <immintrin.h>

#include <cstdint>

#include "ops/convert.h"
#include "ops/matmul_kernels.h"
#include "ops/quantize.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "ops/quantize_row_loop.h"  // after the target: see there

namespace jetmoe::ops::kernels {

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// A vector's lanes summed as ((0+1)+(2+3))+((4+5)+(6+7)): the order hsum8
// sums each of its vectors in, so an output's bits do not depend on which
// tile shape (and so which thread split) computed it.
inline float hsum(__m256 v) {
  const __m128 h = _mm_hadd_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_hadd_ps(h, h);
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// The horizontal sums of eight (four) vectors, in order, in one vector: a
// quarter of the shuffles of hsum calls, which short rows (K = 128) feel.
inline __m256 hsum8(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}
inline __m128 hsum4(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
}

// Eight weights widened to f32, and one for the ragged end of a row.
struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float one(const float* p) { return *p; }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static float one(const uint16_t* p) { return bf16_to_f32(*p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static float one(const uint16_t* p) { return f16_to_f32(*p); }
};

// MR x NR dot products of length k: y[m, n] (+)= x[m, :k] . w[n, :k], for
// decode, where the weights stream from memory. The MR*NR accumulators stay
// in the 16 registers and are reduced once per call; the activations are
// loaded once per step (as FMA memory operands they were reloaded for every
// weight row, and two loads a cycle bound the tile). Output n goes to
// y[m * ldy + n * ys]. `add`: this K block's sums go onto the previous ones.
template <int MR, int NR, class L>
void tile(const float* x, int64_t ldx, const typename L::T* w, int64_t ldw, int64_t k, float* y, int64_t ldy,
          int64_t ys, bool add) {
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm256_setzero_ps();
  const int64_t k8 = k / 8 * 8;
  for (int64_t i = 0; i < k8; i += 8) {
    __m256 xv[MR];
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) xv[m] = _mm256_loadu_ps(x + m * ldx + i);
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      const __m256 wv = L::load(w + n * ldw + i);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[m][n] = _mm256_fmadd_ps(xv[m], wv, acc[m][n]);
    }
  }
  alignas(32) float sums[MR][NR];
  if constexpr (MR * NR == 8) {
    _mm256_store_ps(&sums[0][0], hsum8(&acc[0][0]));
  } else if constexpr (MR * NR % 4 == 0) {
#pragma GCC unroll 8
    for (int i = 0; i < MR * NR; i += 4) _mm_store_ps(&sums[0][0] + i, hsum4(&acc[0][0] + i));
  } else {
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) sums[m][n] = hsum(acc[m][n]);
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      float s = sums[m][n];
      for (int64_t i = k8; i < k; ++i) s += x[m * ldx + i] * L::one(w + n * ldw + i);
      y[m * ldy + n * ys] = add ? y[m * ldy + n * ys] + s : s;
    }
}

// Weight rows per tile for MR activation rows: MR*NR accumulators, MR
// activation vectors and a weight vector in 16 registers.
constexpr int64_t kTileMaxRows = 4;
constexpr int tile_rows(int64_t mr) { return mr == 1 ? 8 : mr == 2 ? 6 : mr == 3 ? 4 : 3; }

template <class L>
using Tile = void (*)(const float*, int64_t, const typename L::T*, int64_t, int64_t, float*, int64_t, int64_t, bool);
template <class L, int MR>
constexpr Tile<L> tile_row[8] = {tile<MR, 1, L>, tile<MR, 2, L>, tile<MR, 3, L>, tile<MR, 4, L>,
                                 tile<MR, 5, L>, tile<MR, 6, L>, tile<MR, 7, L>, tile<MR, 8, L>};
template <class L>
Tile<L> tile_of(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return tile_row<L, 1>[nr - 1];
    case 2: return tile_row<L, 2>[nr - 1];
    case 3: return tile_row<L, 3>[nr - 1];
    default: return tile_row<L, 4>[nr - 1];
  }
}

// Rows split into K blocks of at most max_kc (a multiple of `unit`), of
// equal length so no block is a sliver; a multiple of `unit` (8: one vector;
// 32: one quantisation block) keeps every block but the last whole.
inline int64_t k_block(int64_t K, int64_t max_kc, int64_t unit) {
  const int64_t blocks = (K + max_kc - 1) / max_kc;
  const int64_t kc = (K + blocks - 1) / blocks;
  return min64(max_kc, (kc + unit - 1) / unit * unit);
}

// Prefill reading weights in place streams them from memory, and rows of
// 2 KB or less end the hardware prefetcher's streams before they run far
// enough ahead: each tile of `step` rows also fetches the rows at least 8 KB
// on (whole tiles). 20-45% more GB/s for 1-2 KB rows on Zen 3; longer rows
// run far enough on their own.
inline int64_t prefetch_rows(int64_t step, int64_t row_bytes) {
  return row_bytes > 2048 ? 0 : step * ((8192 + step * row_bytes - 1) / (step * row_bytes));
}

// One tile of nr weight rows (ldw apart, outputs ys apart) times M <= 8
// activation rows over k columns, (+)= into y. More than 4 activation rows
// take the tile in passes of 4, the later passes finding its weights in L1:
// 1.4x the outer-product tiles' speed at 8 rows, where a one-vector strip
// needs a broadcast per FMA. Every row sums as it would alone.
template <class L>
void dot_tile(const float* x, int64_t ldx, int64_t M, const typename L::T* w, int64_t ldw, int64_t nr, int64_t k,
              float* y, int64_t ldy, int64_t ys, bool add) {
  for (int64_t m = 0; m < M; m += kTileMaxRows)
    tile_of<L>(min64(kTileMaxRows, M - m), nr)(x + m * ldx, ldx, w, ldw, k, y + m * ldy, ldy, ys, add);
}

// Rows [0, rows) of w (ldw apart), adjacent tiles of them.
template <class L>
void dot_rows(const float* x, int64_t ldx, int64_t M, const typename L::T* w, int64_t ldw, int64_t rows, int64_t k,
              float* y, int64_t ldy, bool add) {
  const int64_t step = tile_rows(min64(M, kTileMaxRows));
  for (int64_t n = 0; n < rows; n += step)
    dot_tile<L>(x, ldx, M, w + n * ldw, ldw, min64(step, rows - n), k, y + n, ldy, 1, add);
}

// Decode (M <= kAvx2GemvMaxRows): each weight byte read from memory once,
// widened in registers, the tiles' rows far apart (strided_tiles): 10-40%
// more GB/s than adjacent rows with software prefetch for bf16 rows of
// 2-11 KB on Zen 3, most with several activation rows.
template <class L>
void gemv(const float* x, int64_t M, const typename L::T* w, int64_t K, int64_t N, int64_t n0, int64_t n1, float* y) {
  strided_tiles(n0, n1, tile_rows(min64(M, kTileMaxRows)), [&](int64_t n, int64_t s, int64_t nr) {
    dot_tile<L>(x, K, M, w + n * K, s * K, nr, K, y + n, N, s, false);
  });
}

template <class L>
void widen_panel(const typename L::T* w, int64_t ldw, int64_t rows, int64_t k, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const typename L::T* src = w + r * ldw;
    float* dst = out + r * k;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) _mm256_storeu_ps(dst + i, L::load(src + i));
    for (; i < k; ++i) dst[i] = L::one(src + i);
  }
}

// A Q4 block's 32 codes from its 64-weight group's 32 bytes: the low
// nibbles are the group's even block, the high ones its odd block.
inline __m256i q4_codes(__m256i bytes, bool high) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  return _mm256_and_si256(high ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
}

// x's codes for rows [0, MR) times one block of w's codes (wv, wabs as
// quant_tile forms them), scaled by d[m][n][j] and added to acc[m][n].
// kStart: a Q4 block adds its start value here; whole groups add theirs
// once per group instead (quant_tile).
template <int MR, int NR, bool Q4, bool kStart = Q4>
inline void quant_block(const QuantizedActivations& x, int64_t K, int64_t b, int n, __m256i wv, __m256i wabs,
                        const float (*d)[NR][8], int64_t j, __m256 (*acc)[NR]) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  const int64_t ldx = K / 4;
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + m * K + b * 32));
    __m256i sums;
    if constexpr (Q4) {
      sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xv), ones16);
      if constexpr (kStart)
        sums = _mm256_add_epi32(sums, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.start + m * ldx + b * 8)));
    } else {
      sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, wv)), ones16);
    }
    acc[m][n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_broadcast_ss(&d[m][n][j]), acc[m][n]);
  }
}

// Block b (the group's j-th) of NR weight rows.
template <int MR, int NR, bool Q4>
inline void quant_single(const QuantizedActivations& x, int64_t K, const uint8_t* w, int64_t ldw, int64_t b, int64_t j,
                         const float (*d)[NR][8], __m256 (*acc)[NR]) {
#pragma GCC unroll 4
  for (int n = 0; n < NR; ++n) {
    if constexpr (Q4) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + b / 2 * 32));
      const __m256i wv = q4_codes(bytes, b % 2);
      quant_block<MR, NR, Q4>(x, K, b, n, wv, wv, d, j, acc);
    } else {
      const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + b * 32)),
                                          _mm256_set1_epi8(static_cast<char>(0x80)));
      quant_block<MR, NR, Q4>(x, K, b, n, wv, _mm256_abs_epi8(wv), d, j, acc);
    }
  }
}

// A whole group of 8 blocks from block g, in block order (Q4: without the
// start values, which quant_tile adds for the group). Its j are
// constants, so the unrolled code carries no branches or index arithmetic,
// and a Q4 pair of blocks shares one 32-byte load: 1.3-2x the speed of a
// loop over j.
template <int MR, int NR, bool Q4>
inline void quant_group(const QuantizedActivations& x, int64_t K, const uint8_t* w, int64_t ldw, int64_t g,
                        const float (*d)[NR][8], __m256 (*acc)[NR]) {
  if constexpr (Q4) {
#pragma GCC unroll 4
    for (int j = 0; j < 8; j += 2) {
      const int64_t b = g + j;
#pragma GCC unroll 4
      for (int n = 0; n < NR; ++n) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + b / 2 * 32));
        const __m256i lo = q4_codes(bytes, false), hi = q4_codes(bytes, true);
        quant_block<MR, NR, Q4, false>(x, K, b, n, lo, lo, d, j, acc);
        quant_block<MR, NR, Q4, false>(x, K, b + 1, n, hi, hi, d, j + 1, acc);
      }
    }
  } else {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) quant_single<MR, NR, Q4>(x, K, w, ldw, g + j, j, d, acc);
  }
}

// Quantised weights, decode: integer dot products per block of 32, scaled
// by dx * dw and accumulated in f32, as the AVX-512 VNNI tiles do.
// vpmaddubsw multiplies unsigned by signed bytes and saturates its int16
// pair sums. Q4 codes (0..15) go in as they are: pairs stay <= 3810, and the
// start values add the -8 * sum(x) the codes' offset owes. Q8 codes are
// signed (code - 128) with w's sign moved onto x: |w|, |x| <= 127 keep each
// pair <= 32258.
// The scales of 8 blocks are multiplied ahead as vectors into d, so each
// block costs one broadcast from L1 instead of a scalar f16 conversion and
// multiply; the code keeps fewer than 16 vectors live so the accumulators
// never spill (a spilled one put a store-to-load round trip on every block).
template <int MR, int NR, bool Q4>
void quant_tile(const QuantizedActivations& x, int64_t K, const uint8_t* w, int64_t ldw, const uint16_t* ws, int64_t ldws,
                float* y, int64_t ldy, int64_t ys) {
  const int64_t blocks = K / 32, ldx = K / 4;
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm256_setzero_ps();
  for (int64_t g = 0; g < blocks; g += 8) {
    const int64_t count = min64(8, blocks - g);
    alignas(32) float d[MR][NR][8];
    if (count == 8) {
      __m256 dw[NR];
#pragma GCC unroll 4
      for (int n = 0; n < NR; ++n)
        dw[n] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + n * ldws + g)));
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        alignas(32) float dx[8];
        for (int64_t j = 0; j < 8; ++j) dx[j] = x.scale[m * ldx + (g + j) * 8];
        const __m256 dxv = _mm256_load_ps(dx);
        // Q4: the group's 8 start values (-8 * sum(x), in lane 0 of each
        // block's 8) as one vector times the 8 scales, one FMA per weight row
        // instead of an integer add per block and row: 1.06x the speed for
        // one row in cache, 1.4x for four rows from memory. The int32 values
        // are exact as floats (|start| <= 8 * 32 * 127).
        __m256 startv = _mm256_setzero_ps();
        if constexpr (Q4) {
          alignas(32) int32_t st[8];
          for (int64_t j = 0; j < 8; ++j) st[j] = x.start[m * ldx + (g + j) * 8];
          startv = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(st)));
        }
#pragma GCC unroll 4
        for (int n = 0; n < NR; ++n) {
          const __m256 dmn = _mm256_mul_ps(dxv, dw[n]);
          _mm256_store_ps(d[m][n], dmn);
          if constexpr (Q4) acc[m][n] = _mm256_fmadd_ps(dmn, startv, acc[m][n]);
        }
      }
      quant_group<MR, NR, Q4>(x, K, w, ldw, g, d, acc);
    } else {
      // A ragged last group (every group when K < 256) in scalars: vectors
      // assembled from scalar stores wait for the stores to retire.
      for (int64_t j = 0; j < count; ++j)
#pragma GCC unroll 4
        for (int n = 0; n < NR; ++n) {
          const float dwj = _cvtsh_ss(ws[n * ldws + g + j]);
#pragma GCC unroll 4
          for (int m = 0; m < MR; ++m) d[m][n][j] = x.scale[m * ldx + (g + j) * 8] * dwj;
        }
      for (int64_t j = 0; j < count; ++j) quant_single<MR, NR, Q4>(x, K, w, ldw, g + j, j, d, acc);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int n = 0; n < NR; ++n) y[m * ldy + n * ys] = hsum(acc[m][n]);
}

constexpr int quant_tile_rows(int mr) { return mr == 1 ? 4 : mr == 2 ? 3 : 2; }

using QuantTile = void (*)(const QuantizedActivations&, int64_t, const uint8_t*, int64_t, const uint16_t*, int64_t, float*,
                           int64_t, int64_t);
template <bool Q4, int MR>
constexpr QuantTile quant_tile_row[4] = {quant_tile<MR, 1, Q4>, quant_tile<MR, 2, Q4>, quant_tile<MR, 3, Q4>,
                                         quant_tile<MR, 4, Q4>};
template <bool Q4>
QuantTile quant_tile_of(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return quant_tile_row<Q4, 1>[nr - 1];
    case 2: return quant_tile_row<Q4, 2>[nr - 1];
    case 3: return quant_tile_row<Q4, 3>[nr - 1];
    default: return quant_tile_row<Q4, 4>[nr - 1];
  }
}

template <bool Q4>
void quant_gemv(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  const int64_t K = w.cols, N = w.rows, ldw = Q4 ? K / 2 : K, ldws = K / 32;
  const auto* wq = static_cast<const uint8_t*>(w.data);
  strided_tiles(n0, n1, quant_tile_rows(static_cast<int>(M)), [&](int64_t n, int64_t s, int64_t nr) {
    quant_tile_of<Q4>(M, nr)(x, K, wq + n * ldw, s * ldw, w.scales + n * ldws, s * ldws, y + n, N, s);
  });
}

// Rows [rows, kl] of quantised weights from column k0 (a multiple of 32) as
// f32 values d * (q - offset), as dequantize_row gives them.
constexpr int64_t kPanelAhead = 4;
void dequantize_panel(Quant q, const uint8_t* w, int64_t ldw, const uint16_t* ws, int64_t ldws, int64_t rows, int64_t k0,
                      int64_t kl, float* out) {
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m256i offset = _mm256_set1_epi32(q == Quant::Q4_0 ? 8 : 128);
  const int64_t code_bytes = q == Quant::Q4_0 ? 16 : 32, first = k0 / 32 * code_bytes, last = (k0 + kl) / 32 * code_bytes;
  for (int64_t r = 0; r < rows; ++r) {
    // A row's part of the block is 1 KB or less and ends the hardware
    // prefetcher's stream before it starts; fetch the row kPanelAhead on.
    for (int64_t byte = first; byte < last; byte += 64)
      _mm_prefetch(reinterpret_cast<const char*>(w + (r + kPanelAhead) * ldw + byte), _MM_HINT_T0);
    for (int64_t b = k0 / 32; b < (k0 + kl) / 32; ++b) {
      __m128i codes[2];
      if (q == Quant::Q4_0) {
        const __m128i* group = reinterpret_cast<const __m128i*>(w + r * ldw + (b / 2) * 32);
        for (int h = 0; h < 2; ++h) {
          const __m128i bytes = _mm_loadu_si128(group + h);
          codes[h] = b % 2 ? _mm_and_si128(_mm_srli_epi16(bytes, 4), low4) : _mm_and_si128(bytes, low4);
        }
      } else {
        codes[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * ldw + b * 32));
        codes[1] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * ldw + b * 32 + 16));
      }
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(ws[r * ldws + b]));
      float* dst = out + r * kl + (b * 32 - k0);
      for (int h = 0; h < 2; ++h) {
        const __m128i c = codes[h];
        const __m256i lo = _mm256_sub_epi32(_mm256_cvtepu8_epi32(c), offset);
        const __m256i hi = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)), offset);
        _mm256_storeu_ps(dst + 16 * h, _mm256_mul_ps(d, _mm256_cvtepi32_ps(lo)));
        _mm256_storeu_ps(dst + 16 * h + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(hi)));
      }
    }
  }
}

// One block of 32 BF16 weights: its scale (f16) and the codes as 32 bytes in
// order, the portable quantize_row's values (same f32 products, and
// vcvtps2dq rounds to nearest even as lrint does).
template <bool Q4>
__m256i quantize_block(const uint16_t* src, uint16_t* scale) {
  __m256 v[4];
  for (int i = 0; i < 4; ++i) v[i] = LoadBF16::load(src + 8 * i);
  const __m256 hi = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
  const __m256 lo = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
  alignas(32) float his[8], los[8];
  _mm256_store_ps(his, hi);
  _mm256_store_ps(los, lo);
  float h = his[0], l = los[0];
  for (int i = 1; i < 8; ++i) {
    h = his[i] > h ? his[i] : h;
    l = los[i] < l ? los[i] : l;
  }
  // On a tie the positive value wins, as in the portable code.
  const float d = Q4 ? (-l > h ? l : h) / -8.0f : (h < -l ? -l : h) / 127.0f;
  *scale = f32_to_f16(d);
  const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
  const __m256i offset = _mm256_set1_epi32(Q4 ? 8 : 128), top = _mm256_set1_epi32(Q4 ? 15 : 255),
                bottom = _mm256_set1_epi32(Q4 ? 0 : 1);
  __m256i q[4];
  for (int i = 0; i < 4; ++i)
    q[i] = _mm256_min_epi32(
        _mm256_max_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], id)), offset), bottom), top);
  // The packs interleave the 128-bit lanes; the permute puts the four groups of 8 back in order.
  const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Prefill: outer-product tiles. The activations are transposed once per
// matmul into strips of 16 rows, so one k-step of a tile loads the strip's
// 16 values in two vectors, broadcasts each weight w[n][k] and does two FMAs
// with it. Every weight is read in place, once per strip, with no
// horizontal sums and no widened copy: 75-80% of the FMA peak against
// 35-50% for dot-product tiles over widened panels. Each output is one FMA
// chain in k order, whatever the tile or thread. A last group of 8 rows or
// fewer (the tail) goes through the dot tiles instead, which beat a
// half-empty strip and a one-vector strip alike.
inline int64_t tail_rows(int64_t M) { return M % kStrip != 0 && M % kStrip <= 8 ? M % kStrip : 0; }

// Transposes eight vectors in place: lane j of v[i] swaps with lane i of v[j].
inline void transpose8(__m256* v) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// y[l][0 .. N) (+)= lane l of rows[0 .. N) for the first `valid` rows l: a
// tile's sum for this K block added to the previous blocks' in block order.
template <int N>
void store_transposed(__m256* rows, int64_t valid, float* y, int64_t ldy, bool add) {
  transpose8(rows);
  for (int64_t l = 0; l < valid; ++l) {
    float* out = y + l * ldy;
    alignas(32) float sums[8];
    _mm256_store_ps(sums, rows[l]);
#pragma GCC unroll 8
    for (int n = 0; n < N; ++n) out[n] = add ? out[n] + sums[n] : sums[n];
  }
}

// NR weight rows times one strip of 16 activation rows over kl columns,
// (+)= into y's first `valid` strip rows. kBf16: w holds bf16 rows ldw
// apart, and a weight is the high half of the 32-bit word one element before
// it, broadcast with its low half (the element before) masked off: one load
// and one AND, where a 16-bit broadcast costs a shuffle and a shift. The
// first step of the matrix (`peel`) has no element before it and loads its
// weights on their own.
template <int NR, bool kBf16>
void outer_tile(const float* xt, int64_t kl, const void* w, int64_t ldw, bool peel, int64_t ahead, float* y,
                int64_t ldy, int64_t valid, bool add) {
  constexpr int MV = kStrip / 8;
  const __m256 high = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  __m256 acc[MV][NR];
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[v][n] = _mm256_setzero_ps();
  const auto step = [&](int64_t k, bool first) {
    __m256 xv[MV];
#pragma GCC unroll 2
    for (int v = 0; v < MV; ++v) xv[v] = _mm256_loadu_ps(xt + k * kStrip + 8 * v);
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      __m256 wv;
      if constexpr (kBf16) {
        const uint16_t* p = static_cast<const uint16_t*>(w) + n * ldw + k;
        if (first) {
          wv = _mm256_set1_ps(bf16_to_f32(*p));
        } else {
          // vbroadcastss and vandps: both in the FP domain, no bypass delay.
          wv = _mm256_and_ps(_mm256_broadcast_ss(reinterpret_cast<const float*>(p - 1)), high);
        }
      } else {
        wv = _mm256_broadcast_ss(static_cast<const float*>(w) + n * ldw + k);
      }
#pragma GCC unroll 2
      for (int v = 0; v < MV; ++v) acc[v][n] = _mm256_fmadd_ps(wv, xv[v], acc[v][n]);
    }
  };
  int64_t k = 0;
  if (peel && kl > 0) step(k++, true);
  constexpr int64_t kLine = kBf16 ? 32 : 16;
  while (k < kl) {
    if (ahead) {
      const char* line = static_cast<const char*>(w) + (ahead * ldw + k) * (kBf16 ? 2 : 4);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) _mm_prefetch(line + n * ldw * (kBf16 ? 2 : 4), _MM_HINT_T0);
    }
    for (const int64_t end = min64(kl, (k / kLine + 1) * kLine); k < end; ++k) step(k, false);
  }
  // Copied out so acc's address is never taken: that kept it in memory.
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v) {
    if (valid <= 8 * v) break;
    __m256 cols[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) cols[i] = i < NR ? acc[v][i < NR ? i : 0] : _mm256_setzero_ps();
    store_transposed<NR>(cols, min64(8, valid - 8 * v), y + 8 * v * ldy, ldy, add);
  }
}

// Tiles fill 16 registers: 6 rows x 2 vectors (12 accumulators, 2
// activation vectors, the weight, the mask).
constexpr int64_t kOuterRows = 6;
// Weight rows per group: the outer and the dot tiles (3 rows) divide it.
constexpr int64_t kOuterGroup = 24;

using OuterTile = void (*)(const float*, int64_t, const void*, int64_t, bool, int64_t, float*, int64_t, int64_t, bool);
template <bool kBf16>
constexpr OuterTile outer_tiles[kOuterRows] = {outer_tile<1, kBf16>, outer_tile<2, kBf16>, outer_tile<3, kBf16>,
                                               outer_tile<4, kBf16>, outer_tile<5, kBf16>, outer_tile<6, kBf16>};
OuterTile outer_tile_of(bool bf16, int64_t nr) { return bf16 ? outer_tiles<true>[nr - 1] : outer_tiles<false>[nr - 1]; }

}  // namespace

int64_t avx2_strip_rows(int64_t M) { return M - tail_rows(M); }

void avx2_gemm(const float* x, const float* xt, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
               float* panel) {
  const int64_t K = w.cols, N = w.rows;
  const bool quant = w.quant != Quant::None;
  // BF16 and F32 weights are read in place; F16 and quantised ones are
  // widened per group of rows and K block into `panel` first.
  const bool bf16 = !quant && w.dtype == DType::BF16, in_place = bf16 || (!quant && w.dtype == DType::F32);
  const int64_t elem = bf16 ? 2 : 4;  // bytes per weight as the tiles read them
  const int64_t kc = k_block(K, kMaxKc, quant ? 32 : 8);
  const int64_t ldq = quant ? quant_row_bytes(w.quant, K) : 0, ldqs = K / 32;
  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t kl = min64(kc, K - k0);
    for (int64_t nb = n0; nb < n1; nb += kOuterGroup) {
      const int64_t rows = min64(kOuterGroup, n1 - nb);
      const void* src = panel;
      int64_t ldw = kl;
      if (in_place) {
        src = static_cast<const uint8_t*>(w.data) + (nb * K + k0) * elem;
        ldw = K;
      } else if (quant) {
        dequantize_panel(w.quant, static_cast<const uint8_t*>(w.data) + nb * ldq, ldq, w.scales + nb * ldqs, ldqs, rows,
                         k0, kl, panel);
      } else {
        widen_panel<LoadF16>(static_cast<const uint16_t*>(w.data) + nb * K + k0, K, rows, kl, panel);
      }
      const int64_t tail = tail_rows(M), strips_end = M - tail;
      for (int64_t m0 = 0; m0 < strips_end; m0 += kStrip) {
        // The first strip streams the weights from memory; later ones find them in cache.
        const int64_t ahead = in_place && m0 == 0 ? prefetch_rows(kOuterRows, ldw * elem) : 0;
        for (int64_t r = 0; r < rows; r += kOuterRows) {
          const int64_t nr = min64(kOuterRows, rows - r);
          outer_tile_of(bf16, nr)(xt + m0 * K + k0 * kStrip, kl, static_cast<const uint8_t*>(src) + r * ldw * elem, ldw,
                                  bf16 && nb + r == 0 && k0 == 0, ahead, y + m0 * N + nb + r, N, min64(kStrip, M - m0),
                                  k0 > 0);
        }
      }
      if (tail > 0) {
        const float* xs = x + strips_end * K + k0;
        float* ys = y + strips_end * N + nb;
        // No prefetch: unquantised weights get here only after 16-row strips
        // (fewer rows go to avx2_gemv), which brought them in; panels sit in L2.
        if (bf16)
          dot_rows<LoadBF16>(xs, K, tail, static_cast<const uint16_t*>(src), ldw, rows, kl, ys, N, k0 > 0);
        else
          dot_rows<LoadF32>(xs, K, tail, static_cast<const float*>(src), ldw, rows, kl, ys, N, k0 > 0);
      }
    }
  }
}

void avx2_quant_gemv(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  if (w.quant == Quant::Q4_0) return quant_gemv<true>(x, M, w, n0, n1, y);
  quant_gemv<false>(x, M, w, n0, n1, y);
}

void avx2_quantize_activations(const float* x, int64_t M, int64_t K, Quant weights, int8_t* q, float* scale,
                               int32_t* start) {
  const int32_t offset = weights == Quant::Q8_0 ? 128 : 8;
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < M * K / kQuantBlock; ++i) {
    const float* xb = x + i * kQuantBlock;
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(xb + 8 * j);
      // |x| first so a NaN leaves amax as it was, as std::max(amax, |x|) does.
      amax = _mm256_max_ps(_mm256_and_ps(v[j], magnitude), amax);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, amax);
    float a = lanes[0];
    for (int l = 1; l < 8; ++l) a = lanes[l] > a ? lanes[l] : a;
    const float d = a / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256i codes[4], sum = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      codes[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], _mm256_set1_ps(id)));  // nearest even, as lrint
      sum = _mm256_add_epi32(sum, codes[j]);
    }
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(codes[0], codes[1]), _mm256_packs_epi32(codes[2], codes[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i * kQuantBlock),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    alignas(32) int32_t sums[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums), sum);
    const int32_t total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
    _mm256_storeu_ps(scale + i * 8, _mm256_set1_ps(d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(start + i * 8), _mm256_setr_epi32(-offset * total, 0, 0, 0, 0, 0, 0, 0));
  }
}

void avx2_quantize_bf16_rows(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                             uint16_t* scales) {
  quantize_bf16_rows_with<quantize_block<false>, quantize_block<true>>(q, src, rows, cols, quants, scales);
}

void avx2_gemv(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  const int64_t K = w.cols, N = w.rows;
  switch (w.dtype) {
    case DType::BF16: return gemv<LoadBF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y);
    case DType::F16: return gemv<LoadF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y);
    default: return gemv<LoadF32>(x, M, static_cast<const float*>(w.data), K, N, n0, n1, y);
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
