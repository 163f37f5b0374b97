// AVX-512 kernels. Every function here carries the AVX-512 target through
// the pragma below and runs only after cpu_features() said so; headers come
// first so no inline library code is compiled for AVX-512 by accident.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/convert.h"
#include "ops/matmul_kernels.h"

#pragma GCC push_options
// GCC 12's intrinsics headers build some results from _mm512_undefined_*(),
// which -Wuninitialized reports at every use; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx512vnni,avx2,fma,f16c")

#include "ops/quantize_row_loop.h"  // after the target: see there

namespace jetmoe::ops::kernels {

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline __mmask16 tail16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline __mmask32 tail32(int64_t n) { return static_cast<__mmask32>((uint64_t{1} << n) - 1u); }

// Horizontal sum in four steps.
inline float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Sixteen weights widened to f32, whole or masked (masked lanes read 0).
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load(__mmask16 m, const uint16_t* p) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load(__mmask16 m, const uint16_t* p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};

// MR x NR dot products of length k: y[m, n] (+)= x[m, :k] . w[n, :k]. The
// accumulators stay in registers (MR*NR + NR <= 32) and are reduced once
// per call, so the horizontal sums cost little against k/16 FMA steps.
template <int MR, int NR, class L>
void tile_f32(const float* x, int64_t ldx, const typename L::T* w, int64_t ldw, int64_t k, float* y, int64_t ldy,
              bool add) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) wv[n] = L::load(w + n * ldw + i);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512 xv = _mm512_loadu_ps(x + m * ldx + i);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_fmadd_ps(xv, wv[n], acc[m][n]);
    }
  }
  if (i < k) {
    const __mmask16 mask = tail16(k - i);
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) wv[n] = L::load(mask, w + n * ldw + i);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * ldx + i);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_fmadd_ps(xv, wv[n], acc[m][n]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      const float s = hsum(acc[m][n]);
      y[m * ldy + n] = add ? y[m * ldy + n] + s : s;
    }
}

// Same shape for bf16 pairs: 32 products per vdpbf16ps, f32 accumulation.
template <int MR, int NR>
void tile_bf16_dot(const uint16_t* x, int64_t ldx, const uint16_t* w, int64_t ldw, int64_t k, float* y, int64_t ldy,
                   bool add) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) wv[n] = _mm512_loadu_si512(w + n * ldw + i);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512i xv = _mm512_loadu_si512(x + m * ldx + i);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_dpbf16_ps(acc[m][n], (__m512bh)xv, (__m512bh)wv[n]);
    }
  }
  if (i < k) {
    const __mmask32 mask = tail32(k - i);
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) wv[n] = _mm512_maskz_loadu_epi16(mask, w + n * ldw + i);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512i xv = _mm512_maskz_loadu_epi16(mask, x + m * ldx + i);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_dpbf16_ps(acc[m][n], (__m512bh)xv, (__m512bh)wv[n]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      const float s = hsum(acc[m][n]);
      y[m * ldy + n] = add ? y[m * ldy + n] + s : s;
    }
}


// tile_bf16_dot with each activation row given as three bf16 parts (hi,
// mid, lo at x, x + plane, x + 2 * plane), all accumulated into one sum.
template <int MR, int NR>
void tile_bf16x3(const uint16_t* x, int64_t ldx, int64_t plane, const uint16_t* w, int64_t ldw, int64_t k, float* y,
                 int64_t ldy) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_setzero_ps();
  auto step = [&](int64_t i, __mmask32 mask) {
    __m512i wv[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      // The next tile's rows, a tile ahead: hardware prefetchers stop at 4 KB
      // page boundaries, and mapped weights sit in 4 KB pages.
      _mm_prefetch(reinterpret_cast<const char*>(w + (NR + n) * ldw + i), _MM_HINT_T0);
      wv[n] = _mm512_maskz_loadu_epi16(mask, w + n * ldw + i);
    }
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512i lo = _mm512_maskz_loadu_epi16(mask, x + 2 * plane + m * ldx + i);
      const __m512i mid = _mm512_maskz_loadu_epi16(mask, x + plane + m * ldx + i);
      const __m512i hi = _mm512_maskz_loadu_epi16(mask, x + m * ldx + i);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) {
        acc[m][n] = _mm512_dpbf16_ps(acc[m][n], (__m512bh)lo, (__m512bh)wv[n]);
        acc[m][n] = _mm512_dpbf16_ps(acc[m][n], (__m512bh)mid, (__m512bh)wv[n]);
        acc[m][n] = _mm512_dpbf16_ps(acc[m][n], (__m512bh)hi, (__m512bh)wv[n]);
      }
    }
  };
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) step(i, ~__mmask32{0});
  if (i < k) step(i, tail32(k - i));
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) y[m * ldy + n] = hsum(acc[m][n]);
}

using Bf16x3Tile = void (*)(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);
template <int MR>
constexpr Bf16x3Tile bf16x3_tile_row[8] = {tile_bf16x3<MR, 1>, tile_bf16x3<MR, 2>, tile_bf16x3<MR, 3>,
                                           tile_bf16x3<MR, 4>, tile_bf16x3<MR, 5>, tile_bf16x3<MR, 6>,
                                           tile_bf16x3<MR, 7>, tile_bf16x3<MR, 8>};
Bf16x3Tile bf16x3_tile(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return bf16x3_tile_row<1>[nr - 1];
    case 2: return bf16x3_tile_row<2>[nr - 1];
    case 3: return bf16x3_tile_row<3>[nr - 1];
    default: return bf16x3_tile_row<4>[nr - 1];
  }
}

// Runtime (mr, nr) -> the instantiation, for the ragged edges of M and N.
template <class L>
using F32Tile = void (*)(const float*, int64_t, const typename L::T*, int64_t, int64_t, float*, int64_t, bool);
template <class L, int MR>
constexpr F32Tile<L> f32_tile_row[8] = {tile_f32<MR, 1, L>, tile_f32<MR, 2, L>, tile_f32<MR, 3, L>, tile_f32<MR, 4, L>,
                                        tile_f32<MR, 5, L>, tile_f32<MR, 6, L>, tile_f32<MR, 7, L>, tile_f32<MR, 8, L>};
template <class L>
F32Tile<L> f32_tile(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return f32_tile_row<L, 1>[nr - 1];
    case 2: return f32_tile_row<L, 2>[nr - 1];
    case 3: return f32_tile_row<L, 3>[nr - 1];
    default: return f32_tile_row<L, 4>[nr - 1];
  }
}

using Bf16Tile = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t, bool);
template <int MR>
constexpr Bf16Tile bf16_tile_row[8] = {tile_bf16_dot<MR, 1>, tile_bf16_dot<MR, 2>, tile_bf16_dot<MR, 3>,
                                       tile_bf16_dot<MR, 4>, tile_bf16_dot<MR, 5>, tile_bf16_dot<MR, 6>,
                                       tile_bf16_dot<MR, 7>, tile_bf16_dot<MR, 8>};
Bf16Tile bf16_tile(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return bf16_tile_row<1>[nr - 1];
    case 2: return bf16_tile_row<2>[nr - 1];
    case 3: return bf16_tile_row<3>[nr - 1];
    default: return bf16_tile_row<4>[nr - 1];
  }
}

// Weight rows per tile: 8 while MR <= 2 (more independent streams for the
// memory-bound GEMV), 6 above so MR*NR accumulators + NR weights fit in 32
// registers.
inline int64_t tile_rows(int64_t mr) { return mr <= 2 ? 8 : 6; }

// Rows split into K blocks of at most kMaxKc, of equal length so no block is
// a sliver; a multiple of 16 keeps every block but the last unmasked.
inline int64_t k_block(int64_t K, int64_t max_kc) {
  const int64_t blocks = (K + max_kc - 1) / max_kc;
  const int64_t kc = (K + blocks - 1) / blocks;
  return min64(max_kc, (kc + 15) / 16 * 16);
}

// GEMV: each weight byte read once, widened in registers.
template <class L>
void gemv_direct(const float* x, int64_t M, const typename L::T* w, int64_t K, int64_t N, int64_t n0, int64_t n1,
                 float* y) {
  const int64_t step = tile_rows(M);
  for (int64_t n = n0; n < n1; n += step) {
    const int64_t nr = min64(step, n1 - n);
    f32_tile<L>(M, nr)(x, K, w + n * K, K, K, y + n, N, false);
  }
}

template <class L>
void widen_panel(const typename L::T* w, int64_t ldw, int64_t rows, int64_t k, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const typename L::T* src = w + r * ldw;
    float* dst = out + r * k;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) _mm512_storeu_ps(dst + i, L::load(src + i));
    if (i < k) _mm512_mask_storeu_ps(dst + i, tail16(k - i), L::load(tail16(k - i), src + i));
  }
}

template <class L>
void gemm_f32(const float* x, int64_t M, const typename L::T* w, int64_t K, int64_t N, int64_t n0, int64_t n1, float* y,
              float* panel) {
  if (M <= kGemvMaxRows) return gemv_direct<L>(x, M, w, K, N, n0, n1, y);
  const int64_t kc = k_block(K, kMaxKc);
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      widen_panel<L>(w + nb * K + k0, K, rows, kl, panel);
      for (int64_t m = 0; m < M; m += 4) {
        const int64_t mr = min64(4, M - m);
        for (int64_t r = 0; r < rows; r += 6) {
          const int64_t nr = min64(6, rows - r);
          f32_tile<LoadF32>(mr, nr)(x + m * K + k0, K, panel + r * kl, kl, kl, y + m * N + nb + r, N, k0 > 0);
        }
      }
    }
  }
}


// Integer tile: per 64 columns, one vpdpbusd (u8 weights x s8 activations,
// started at -offset*sum(x) so the stored offset cancels) per (m, n), then
// the int32 lanes are scaled by dx*dw and accumulated in f32. The scales of
// eight 64-column steps are widened in one go and spread per step by one
// permute; with one activation row dx is folded in there too, leaving four
// vector ops per 64 weights.
template <int MR, int NR, bool Q4>
void tile_quant(const int8_t* xq, const float* xs, const int32_t* x0, int64_t ldx, const uint8_t* w, int64_t ldw,
                const uint16_t* ws, int64_t ldws, int64_t k, float* y, int64_t ldy, int64_t ys, bool add) {
  const __m512i low4x2 = _mm512_set1_epi8(0x0f);
  const __m512i nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm512_setzero_ps();
  const int64_t steps = k / 64;
  for (int64_t g0 = 0; g0 < steps; g0 += 8) {
    const int64_t chunk = min64(8, steps - g0);
    const __mmask16 blocks = static_cast<__mmask16>((1u << (2 * chunk)) - 1u);
    __m512 s16[NR];
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) s16[n] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(blocks, ws + n * ldws + 2 * g0));
    if constexpr (MR == 1) {
      // Each block's dx repeats over its 8 lanes of the lane scales: gather
      // one per block and fold it into the weight scales.
      const __m512i every8 = _mm512_set_epi32(120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24, 16, 8, 0);
      const __m512 dx = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), blocks, every8, xs + g0 * 16, 4);
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) s16[n] = _mm512_mul_ps(s16[n], dx);
    }
    for (int64_t g = g0; g < g0 + chunk; ++g) {
      const int j = static_cast<int>(2 * (g - g0));
      const __m512i spread = _mm512_set_epi32(j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j + 1, j, j, j, j, j, j, j, j);
      __m512i wv[NR];
      __m512 sw[NR];
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) {
        if constexpr (Q4) {
          // The 32 bytes in both halves, the upper half shifted down a nibble.
          const __m512i b = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + g * 32)));
          wv[n] = _mm512_and_si512(_mm512_srlv_epi16(b, nibble_shift), low4x2);
        } else {
          wv[n] = _mm512_loadu_si512(w + n * ldw + g * 64);
        }
        sw[n] = _mm512_permutexvar_ps(spread, s16[n]);
      }
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m512i xv = _mm512_loadu_si512(xq + m * ldx + g * 64);
        const __m512 sx = MR == 1 ? _mm512_setzero_ps() : _mm512_loadu_ps(xs + m * (ldx / 4) + g * 16);
        const __m512i start = _mm512_loadu_si512(x0 + m * (ldx / 4) + g * 16);
#pragma GCC unroll 8
        for (int n = 0; n < NR; ++n) {
          const __m512i p = _mm512_dpbusd_epi32(start, wv[n], xv);
          if constexpr (MR == 1) {
            acc[m][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sw[n], acc[m][n]);
          } else {
            acc[m][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(sx, sw[n]), acc[m][n]);
          }
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      const float s = hsum(acc[m][n]);
      y[m * ldy + n * ys] = add ? y[m * ldy + n * ys] + s : s;
    }
}

using QuantTile = void (*)(const int8_t*, const float*, const int32_t*, int64_t, const uint8_t*, int64_t, const uint16_t*,
                           int64_t, int64_t, float*, int64_t, int64_t, bool);
template <bool Q4, int MR>
constexpr QuantTile quant_tile_row[8] = {tile_quant<MR, 1, Q4>, tile_quant<MR, 2, Q4>, tile_quant<MR, 3, Q4>,
                                         tile_quant<MR, 4, Q4>, tile_quant<MR, 5, Q4>, tile_quant<MR, 6, Q4>,
                                         tile_quant<MR, 7, Q4>, tile_quant<MR, 8, Q4>};
template <bool Q4>
QuantTile quant_tile(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return quant_tile_row<Q4, 1>[nr - 1];
    case 2: return quant_tile_row<Q4, 2>[nr - 1];
    case 3: return quant_tile_row<Q4, 3>[nr - 1];
    default: return quant_tile_row<Q4, 4>[nr - 1];
  }
}

template <bool Q4>
void quant_dot(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  const int64_t K = w.cols, N = w.rows, ldw = Q4 ? K / 2 : K, ldws = K / 32;
  const auto* wq = static_cast<const uint8_t*>(w.data);
  // Four rows at most (MR*NR + 2*NR registers); 4x4 for GEMM tiles.
  const int64_t step = M <= 2 ? 8 : 4;
  if (M <= kGemvMaxRows) {
    strided_tiles(n0, n1, step, [&](int64_t n, int64_t s, int64_t nr) {
      quant_tile<Q4>(M, nr)(x.q, x.scale, x.start, K, wq + n * ldw, s * ldw, w.scales + n * ldws, s * ldws, K, y + n, N,
                            s, false);
    });
    return;
  }
  // 2048-column blocks: 4 rows of int8 values, lane scales and starts are
  // 24 KB of L1, and a 48-row panel of 8-bit weights 96 KB of L2.
  const int64_t blocks = (K + 2047) / 2048;
  const int64_t kc = ((K + blocks - 1) / blocks + 63) / 64 * 64;
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      for (int64_t m = 0; m < M; m += 4)
        for (int64_t r = 0; r < rows; r += step)
          quant_tile<Q4>(min64(4, M - m), min64(step, rows - r))(
              x.q + m * K + k0, x.scale + m * (K / 4) + k0 / 4, x.start + m * (K / 4) + k0 / 4, K,
              wq + (nb + r) * ldw + (Q4 ? k0 / 2 : k0), ldw, w.scales + (nb + r) * ldws + k0 / 32, ldws, kl,
              y + m * N + nb + r, N, 1, k0 > 0);
    }
  }
}

}  // namespace

void avx512_quant_dot(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  if (w.quant == Quant::Q4_0) return quant_dot<true>(x, M, w, n0, n1, y);
  quant_dot<false>(x, M, w, n0, n1, y);
}

void avx512_f32(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, float* panel) {
  const int64_t K = w.cols, N = w.rows;
  switch (w.dtype) {
    case DType::BF16:
      return gemm_f32<LoadBF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y, panel);
    case DType::F16:
      return gemm_f32<LoadF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y, panel);
    default: {
      // f32 weights need no widening: tiles read them in place.
      const float* wf = static_cast<const float*>(w.data);
      if (M <= kGemvMaxRows) return gemv_direct<LoadF32>(x, M, wf, K, N, n0, n1, y);
      const int64_t kc = k_block(K, kMaxKc);
      for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
        const int64_t rows = min64(kPanelRows, n1 - nb);
        for (int64_t k0 = 0; k0 < K; k0 += kc) {
          const int64_t kl = min64(kc, K - k0);
          for (int64_t m = 0; m < M; m += 4)
            for (int64_t r = 0; r < rows; r += 6)
              f32_tile<LoadF32>(min64(4, M - m), min64(6, rows - r))(x + m * K + k0, K, wf + (nb + r) * K + k0, K, kl,
                                                                     y + m * N + nb + r, N, k0 > 0);
        }
      }
    }
  }
}

void avx512_bf16_dot(const uint16_t* xb, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  const int64_t K = w.cols, N = w.rows;
  const auto* wb = static_cast<const uint16_t*>(w.data);
  if (M <= kGemvMaxRows) {
    const int64_t step = tile_rows(M);
    for (int64_t n = n0; n < n1; n += step) bf16_tile(M, min64(step, n1 - n))(xb, K, wb + n * K, K, K, y + n, N, false);
    return;
  }
  // bf16 is half the bytes, so twice the K run fits the same cache budget.
  const int64_t kc = k_block(K, 2 * kMaxKc);
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      for (int64_t m = 0; m < M; m += 4)
        for (int64_t r = 0; r < rows; r += 6)
          bf16_tile(min64(4, M - m), min64(6, rows - r))(xb + m * K + k0, K, wb + (nb + r) * K + k0, K, kl,
                                                         y + m * N + nb + r, N, k0 > 0);
    }
  }
}

namespace {

// One block of 32: its scale (f16) and the codes as 32 bytes, unpacked.
template <bool Q4>
__m256i quantize_block(const uint16_t* src, uint16_t* scale) {
  const __m512 a = LoadBF16::load(src), b = LoadBF16::load(src + 16);
  float d;
  if constexpr (Q4) {
    // The value of largest magnitude keeps its sign: d = value / -8.
    const float hi = _mm512_reduce_max_ps(_mm512_max_ps(a, b)), lo = _mm512_reduce_min_ps(_mm512_min_ps(a, b));
    d = (-lo > hi ? lo : hi) / -8.0f;
  } else {
    d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b))) / 127.0f;
  }
  *scale = f32_to_f16(d);
  const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
  const int offset = Q4 ? 8 : 128, top = Q4 ? 15 : 255, bottom = Q4 ? 0 : 1;
  auto codes = [&](__m512 v) {
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, id)), _mm512_set1_epi32(offset));
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(bottom)), _mm512_set1_epi32(top));
    return _mm512_cvtepi32_epi8(q);
  };
  return _mm256_inserti128_si256(_mm256_castsi128_si256(codes(a)), codes(b), 1);
}

}  // namespace

void avx512_quantize_bf16_rows(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                               uint16_t* scales) {
  quantize_bf16_rows_with<quantize_block<false>, quantize_block<true>>(q, src, rows, cols, quants, scales);
}

namespace {

// Rows [rows, kl] of Q8_0 weights from column k0 (a multiple of 64) as bf16
// values d * (q - 128).
void dequantize_q8_panel_bf16(const uint8_t* w, int64_t ldw, const uint16_t* ws, int64_t ldws, int64_t rows,
                              int64_t k0, int64_t kl, uint16_t* out) {
  const __m512i offset = _mm512_set1_epi32(128);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < kl / 32; ++b) {
      const int64_t col = k0 + b * 32;
      const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * ldw + col));
      const __m512 d = _mm512_set1_ps(f16_to_f32(ws[r * ldws + col / 32]));
      auto values = [&](__m128i c) {
        return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(c), offset)));
      };
      const __m512 lo = values(_mm256_castsi256_si128(codes)), hi = values(_mm256_extracti128_si256(codes, 1));
      _mm512_storeu_si512(out + r * kl + b * 32, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

// Integer prefill in outer-product form, over x's quantised strips
// (avx512_quant_strips). A tile broadcasts four codes of one weight row
// against MV strips of 16 activation rows, so one vpdpbusd advances 16 rows'
// dots by 4 columns with no horizontal sum, and after a block's 8 each lane
// holds one row's integer dot for the block, scaled once by dx * dw. Per
// 16 rows, weight row and block of 32 that is 8 vpdpbusd and 3 float ops;
// the bf16 dot tiles take 32 vdpbf16ps and their horizontal sums. On Zen 4
// (2 threads) it ran 1.6-2x their GOP/s at 32 and 128 rows.
constexpr int kQuantOuterRows = 6;  // MV x 6 int32 and MV x 6 f32 accumulators

// An outer-product tile's results: lane l of acc[v][n] is row 16 v + l's
// sum for column n. y[row][0 .. ncols) (+)= them for the first `valid` rows.
template <int MV, int Rows>
inline void store_outer(const __m512 (&acc)[MV][Rows], int64_t valid, int64_t ncols, float* y, int64_t ldy, bool add) {
  alignas(64) float lanes[MV * Rows * kStrip];
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 12
    for (int n = 0; n < Rows; ++n) _mm512_store_ps(lanes + (v * Rows + n) * kStrip, acc[v][n]);
  for (int64_t l = 0; l < valid; ++l) {
    const float* src = lanes + l / kStrip * Rows * kStrip + l % kStrip;
    float* out = y + l * ldy;
    for (int64_t n = 0; n < ncols; ++n) out[n] = add ? out[n] + src[n * kStrip] : src[n * kStrip];
  }
}

// One block's integer dots: acc[v][n] starts at strip v's -offset * sum(x)
// and gains the codes of weight row n, columns [4j, 4j + 4) of the block, for
// j < 8.
template <int MV>
inline void block_dots(const uint8_t* xq, int64_t sq, const int32_t* x0, int64_t s0, const uint8_t* const* w,
                       __m512i (&acc)[MV][kQuantOuterRows]) {
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v) {
    const __m512i start = _mm512_loadu_si512(x0 + v * s0);
#pragma GCC unroll 6
    for (int n = 0; n < kQuantOuterRows; ++n) acc[v][n] = start;
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    __m512i xv[MV];
#pragma GCC unroll 2
    for (int v = 0; v < MV; ++v) xv[v] = _mm512_loadu_si512(xq + v * sq + j * 64);
#pragma GCC unroll 6
    for (int n = 0; n < kQuantOuterRows; ++n) {
      int32_t word;
      std::memcpy(&word, w[n] + 4 * j, sizeof word);
      const __m512i codes = _mm512_set1_epi32(word);
#pragma GCC unroll 2
      for (int v = 0; v < MV; ++v) acc[v][n] = _mm512_dpbusd_epi32(acc[v][n], codes, xv[v]);
    }
  }
}

// kQuantOuterRows rows of one code per byte (the first ncols real; the
// others repeat row 0 and are not stored) times MV strips, over all K. xq,
// xd and x0 point at the first strip; sb is a strip's length in blocks. ws
// holds the rows' f32 scales, ldws apart.
template <int MV>
void outer_quant(const uint8_t* xq, const float* xd, const int32_t* x0, int64_t sb, const uint8_t* w, int64_t ldw,
                 const float* ws, int64_t ldws, float* y, int64_t ldy, int64_t valid, int64_t ncols) {
  const uint8_t* rows[kQuantOuterRows];
  const float* scales[kQuantOuterRows];
  for (int n = 0; n < kQuantOuterRows; ++n) {
    rows[n] = w + (n < ncols ? n : 0) * ldw;
    scales[n] = ws + (n < ncols ? n : 0) * ldws;
  }
  __m512 acc[MV][kQuantOuterRows];
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 6
    for (int n = 0; n < kQuantOuterRows; ++n) acc[v][n] = _mm512_setzero_ps();
  auto scale_into = [&](const __m512i (&dots)[MV][kQuantOuterRows], int64_t b) {
#pragma GCC unroll 2
    for (int v = 0; v < MV; ++v) {
      const __m512 dx = _mm512_loadu_ps(xd + (v * sb + b) * kStrip);
#pragma GCC unroll 6
      for (int n = 0; n < kQuantOuterRows; ++n)
        acc[v][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[v][n]), _mm512_mul_ps(dx, _mm512_set1_ps(scales[n][b])),
                                    acc[v][n]);
    }
  };
  const int64_t sq = sb * 32 * kStrip, s0 = sb * kStrip;
  __m512i dots[MV][kQuantOuterRows];
  for (int64_t b = 0; b < sb; ++b) {
    const uint8_t* block[kQuantOuterRows];
    for (int n = 0; n < kQuantOuterRows; ++n) block[n] = rows[n] + b * 32;
    block_dots<MV>(xq + b * 32 * kStrip, sq, x0 + b * kStrip, s0, block, dots);
    scale_into(dots, b);
  }
  store_outer(acc, valid, ncols, y, ldy, false);
}

}  // namespace

namespace {

// Exact-mode prefill in outer-product form. Activations are transposed once
// per matmul into strips of 16 rows; a tile broadcasts one weight at a time
// against MV strips, so every FMA's operands are a register and a broadcast
// load, with no horizontal sums. Each output is one chain in k order per K
// block, whatever the tile or thread.
// Weight rows per tile: 2 x 12 accumulators, 2 activation vectors and the
// broadcast weight in 32 registers. Panels are padded to whole tiles.
constexpr int kOuterRows = 12;
inline int64_t outer_padded(int64_t rows) { return (rows + kOuterRows - 1) / kOuterRows * kOuterRows; }
// A last group of 4 rows or fewer goes through the dot tiles instead of a
// mostly empty strip.
inline int64_t outer_tail(int64_t M) { return M % kStrip != 0 && M % kStrip <= kGemvMaxRows ? M % kStrip : 0; }

// kOuterRows f32 weight rows (ldw apart) times MV strips (sstride floats
// apart, [kl][16] each) over kl columns.
template <int MV>
void outer_f32(const float* xt, int64_t sstride, const float* w, int64_t ldw, int64_t kl, float* y, int64_t ldy,
               int64_t valid, int64_t ncols, bool add) {
  __m512 acc[MV][kOuterRows];
#pragma GCC unroll 2
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 12
    for (int n = 0; n < kOuterRows; ++n) acc[v][n] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kl; ++k) {
    __m512 xv[MV];
#pragma GCC unroll 2
    for (int v = 0; v < MV; ++v) xv[v] = _mm512_loadu_ps(xt + v * sstride + k * kStrip);
#pragma GCC unroll 12
    for (int n = 0; n < kOuterRows; ++n) {
      const __m512 wv = _mm512_set1_ps(w[n * ldw + k]);
#pragma GCC unroll 2
      for (int v = 0; v < MV; ++v) acc[v][n] = _mm512_fmadd_ps(xv[v], wv, acc[v][n]);
    }
  }
  store_outer(acc, valid, ncols, y, ldy, add);
}

// Rows [rows, padded) of a panel of row length kl set to zero.
void zero_rows(float* panel, int64_t rows, int64_t padded, int64_t kl) {
  std::memset(panel + rows * kl, 0, static_cast<size_t>((padded - rows) * kl) * sizeof(float));
}

}  // namespace

int64_t avx512_strip_rows(int64_t M) { return M - outer_tail(M); }

void avx512_gemm_f32(const float* x, const float* xt, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1,
                     float* y, float* panel) {
  const int64_t K = w.cols, N = w.rows, kc = k_block(K, kMaxKc);
  const int64_t tail = outer_tail(M), strips_end = M - tail, strips = (strips_end + kStrip - 1) / kStrip;
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb), padded = outer_padded(rows);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      const auto* w16 = static_cast<const uint16_t*>(w.data) + nb * K + k0;
      if (w.dtype == DType::BF16)
        widen_panel<LoadBF16>(w16, K, rows, kl, panel);
      else if (w.dtype == DType::F16)
        widen_panel<LoadF16>(w16, K, rows, kl, panel);
      else
        widen_panel<LoadF32>(static_cast<const float*>(w.data) + nb * K + k0, K, rows, kl, panel);
      zero_rows(panel, rows, padded, kl);
      for (int64_t s = 0; s < strips; s += 2) {
        const int64_t m0 = s * kStrip, valid = min64(2 * kStrip, strips_end - m0);
        const float* xs = xt + m0 * K + k0 * kStrip;
        for (int64_t r = 0; r < padded; r += kOuterRows) {
          float* yt = y + m0 * N + nb + r;
          const int64_t ncols = min64(kOuterRows, rows - r);
          if (strips - s >= 2)
            outer_f32<2>(xs, kStrip * K, panel + r * kl, kl, kl, yt, N, valid, ncols, k0 > 0);
          else
            outer_f32<1>(xs, kStrip * K, panel + r * kl, kl, kl, yt, N, valid, ncols, k0 > 0);
        }
      }
      for (int64_t r = 0; tail > 0 && r < rows; r += 6)
        f32_tile<LoadF32>(tail, min64(6, rows - r))(x + strips_end * K + k0, K, panel + r * kl, kl, kl,
                                                    y + strips_end * N + nb + r, N, k0 > 0);
    }
  }
}

void avx512_quant_strips(const QuantizedActivations& x, int64_t M, int64_t K, uint8_t* q, float* scale,
                         int32_t* start) {
  const int64_t sb = K / 32, strips = (M + kStrip - 1) / kStrip;
  for (int64_t s = 0; s < strips; ++s)
    for (int64_t b = 0; b < sb; ++b) {
      auto* codes = reinterpret_cast<uint32_t*>(q + (s * sb + b) * 32 * kStrip);
      float* dx = scale + (s * sb + b) * kStrip;
      int32_t* x0 = start + (s * sb + b) * kStrip;
      for (int64_t l = 0; l < kStrip; ++l) {
        const int64_t m = s * kStrip + l;
        for (int j = 0; j < 8; ++j) {
          uint32_t word = 0;
          if (m < M) std::memcpy(&word, x.q + m * K + b * 32 + 4 * j, sizeof word);
          codes[j * kStrip + l] = word;
        }
        // The lane scales and starts repeat per block (lane 0 holds the start).
        dx[l] = m < M ? x.scale[m * (K / 4) + b * 8] : 0.0f;
        x0[l] = m < M ? x.start[m * (K / 4) + b * 8] : 0;
      }
    }
}

namespace {

// Q4_0 rows hold each 64-column group in 32 bytes, the second 32 columns in
// the high nibbles; `codes` gets one code per byte, rows of K.
void unpack_q4_panel(const uint8_t* w, int64_t ldw, int64_t rows, int64_t K, uint8_t* codes) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < K / 64; ++g) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * ldw + g * 32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + r * K + g * 64), _mm256_and_si256(b, low4));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + r * K + g * 64 + 32),
                          _mm256_and_si256(_mm256_srli_epi16(b, 4), low4));
    }
}

}  // namespace

void avx512_q4_gemm(const QuantizedActivations& x, const QuantizedStrips& xs, int64_t M, const WeightMatrix& w,
                    int64_t n0, int64_t n1, float* y, uint8_t* codes, float* scales) {
  const int64_t K = w.cols, N = w.rows, sb = K / 32;
  const auto* wq = static_cast<const uint8_t*>(w.data);
  const int64_t tail = outer_tail(M), strips_end = M - tail, strips = (strips_end + kStrip - 1) / kStrip;
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    unpack_q4_panel(wq + nb * (K / 2), K / 2, rows, K, codes);
    // The panel's scales are contiguous: rows * sb halves.
    const uint16_t* ws = w.scales + nb * sb;
    for (int64_t i = 0; i < rows * sb; i += 16) {
      const __mmask16 m = tail16(min64(16, rows * sb - i));
      _mm512_mask_storeu_ps(scales + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, ws + i)));
    }
    for (int64_t s = 0; s < strips; s += 2) {
      const int64_t valid = min64(2 * kStrip, strips_end - s * kStrip);
      const uint8_t* q = xs.q + s * sb * 32 * kStrip;
      const float* d = xs.scale + s * sb * kStrip;
      const int32_t* x0 = xs.start + s * sb * kStrip;
      for (int64_t r = 0; r < rows; r += kQuantOuterRows) {
        float* yt = y + s * kStrip * N + nb + r;
        const int64_t ncols = min64(kQuantOuterRows, rows - r);
        if (strips - s >= 2)
          outer_quant<2>(q, d, x0, sb, codes + r * K, K, scales + r * sb, sb, yt, N, valid, ncols);
        else
          outer_quant<1>(q, d, x0, sb, codes + r * K, K, scales + r * sb, sb, yt, N, valid, ncols);
      }
    }
    if (tail > 0) {
      const QuantizedActivations rest{x.q + strips_end * K, x.scale + strips_end * (K / 4), x.start + strips_end * (K / 4)};
      quant_dot<true>(rest, tail, w, nb, nb + rows, y + strips_end * N);
    }
  }
}

void avx512_q8_gemm_bf16(const uint16_t* xb, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                         uint16_t* panel) {
  const int64_t K = w.cols, N = w.rows, ldws = K / 32;
  const auto* wq = static_cast<const uint8_t*>(w.data);
  const int64_t blocks = (K + kQuantPanelKc - 1) / kQuantPanelKc;
  const int64_t kc = ((K + blocks - 1) / blocks + 63) / 64 * 64;
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      dequantize_q8_panel_bf16(wq + nb * K, K, w.scales + nb * ldws, ldws, rows, k0, kl, panel);
      for (int64_t m = 0; m < M; m += 4)
        for (int64_t r = 0; r < rows; r += 6)
          bf16_tile(min64(4, M - m), min64(6, rows - r))(xb + m * K + k0, K, panel + r * kl, kl, kl, y + m * N + nb + r,
                                                         N, k0 > 0);
    }
  }
}

void avx512_bf16x3_gemv(const uint16_t* xs, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  const int64_t K = w.cols, N = w.rows;
  const auto* wb = static_cast<const uint16_t*>(w.data);
  // Three activation parts per row: fewer weight rows per tile keep
  // MR*NR accumulators + NR weights + 3 parts in registers.
  const int64_t step = M == 1 ? 8 : M == 2 ? 6 : 4;
  for (int64_t n = n0; n < n1; n += step)
    bf16x3_tile(M, min64(step, n1 - n))(xs, K, M * K, wb + n * K, K, K, y + n, N);
}

void avx512_split_bf16x3(const float* x, int64_t n, uint16_t* hi, uint16_t* mid, uint16_t* lo) {
  // Truncation, not rounding, keeps every part's sign that of the rest it
  // stands for; each remainder is exact in f32, so hi + mid + lo == x.
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  auto part = [&](__m512 v, uint16_t* out, int64_t i, __mmask16 m) {
    const __m512 p = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), top));
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(p), 16)));
    return _mm512_sub_ps(v, p);
  };
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : tail16(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    v = part(v, hi, i, m);
    v = part(v, mid, i, m);
    part(v, lo, i, m);
  }
}

void avx512_round_bf16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

}  // namespace jetmoe::ops::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
