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

// The horizontal sums of eight vectors, in order, in one vector: a quarter
// of the shuffles of eight hsum calls, which short rows (K = 128) feel.
inline __m256 hsum8(const __m256* v) {
  const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
  const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
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

// MR x NR dot products of length k: y[m, n] (+)= x[m, :k] . w[n, :k]. The
// MR*NR accumulators stay in the 16 registers and are reduced once per call.
// kDecode (weights streamed from memory): the activations are loaded once per
// step, where as FMA memory operands they were reloaded for every weight row
// and two loads a cycle bound the tile; and with `ahead` rows > 0 the tile
// prefetches the weight rows that far on, a cache line per row as its reads
// cross one. Prefill panels (in L2) keep the memory operands: 5-10% faster.
// The sums are the same either way.
template <int MR, int NR, class L, bool kDecode>
void tile(const float* x, int64_t ldx, const typename L::T* w, int64_t ldw, int64_t k, float* y, int64_t ldy, bool add,
          int64_t ahead) {
  constexpr int64_t kLine = 64 / sizeof(typename L::T);
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm256_setzero_ps();
  const int64_t k8 = k / 8 * 8;
  for (int64_t i = 0; i < k8; i += 8) {
    if (kDecode && ahead && i % kLine == 0)
#pragma GCC unroll 8
      for (int n = 0; n < NR; ++n) _mm_prefetch(reinterpret_cast<const char*>(w + (n + ahead) * ldw + i), _MM_HINT_T0);
    __m256 xv[MR];
    if constexpr (kDecode)
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) xv[m] = _mm256_loadu_ps(x + m * ldx + i);
#pragma GCC unroll 8
    for (int n = 0; n < NR; ++n) {
      const __m256 wv = L::load(w + n * ldw + i);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        if constexpr (kDecode) {
          acc[m][n] = _mm256_fmadd_ps(xv[m], wv, acc[m][n]);
        } else {
          acc[m][n] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + i), wv, acc[m][n]);
        }
      }
    }
  }
  alignas(32) float sums[MR][NR];
  if constexpr (MR * NR == 8) {
    _mm256_store_ps(&sums[0][0], hsum8(&acc[0][0]));
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
      y[m * ldy + n] = add ? y[m * ldy + n] + s : s;
    }
}

// Weight rows per tile for MR activation rows: MR*NR accumulators plus a
// weight vector in 16 registers (activations are FMA memory operands).
constexpr int tile_rows(int mr) { return mr == 1 ? 8 : mr == 2 ? 6 : mr == 3 ? 4 : 3; }

template <class L>
using Tile = void (*)(const float*, int64_t, const typename L::T*, int64_t, int64_t, float*, int64_t, bool, int64_t);
template <class L, int MR, bool kDecode>
constexpr Tile<L> tile_row[8] = {tile<MR, 1, L, kDecode>, tile<MR, 2, L, kDecode>, tile<MR, 3, L, kDecode>,
                                 tile<MR, 4, L, kDecode>, tile<MR, 5, L, kDecode>, tile<MR, 6, L, kDecode>,
                                 tile<MR, 7, L, kDecode>, tile<MR, 8, L, kDecode>};
template <class L, bool kDecode>
Tile<L> tile_of(int64_t mr, int64_t nr) {
  switch (mr) {
    case 1: return tile_row<L, 1, kDecode>[nr - 1];
    case 2: return tile_row<L, 2, kDecode>[nr - 1];
    case 3: return tile_row<L, 3, kDecode>[nr - 1];
    default: return tile_row<L, 4, kDecode>[nr - 1];
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

// Decode streams weights straight from memory, and rows of 2 KB or less end
// the hardware prefetcher's streams before they run far enough ahead: each
// tile of `step` rows also fetches the rows at least 8 KB on (whole tiles).
// 20-45% more GB/s for 1-2 KB rows on Zen 3; longer rows run far enough on
// their own (bf16 rows of 4 KB already stream at the read bandwidth).
inline int64_t prefetch_rows(int64_t step, int64_t row_bytes) {
  if (row_bytes > 2048) return 0;
  return step * ((8192 + step * row_bytes - 1) / (step * row_bytes));
}

// y[:, nb .. nb + rows) (+)= x[:, k0 .. k0 + kl) . panel^T, the panel's rows
// ldp apart, every 4-row group of activations over it.
void multiply_panel(const float* x, int64_t M, int64_t K, int64_t k0, int64_t kl, const float* panel, int64_t ldp,
                    int64_t rows, float* y, int64_t N, int64_t nb) {
  for (int64_t m = 0; m < M; m += 4) {
    const int64_t mr = min64(4, M - m);
    const int64_t step = tile_rows(static_cast<int>(mr));
    for (int64_t r = 0; r < rows; r += step)
      tile_of<LoadF32, false>(mr, min64(step, rows - r))(x + m * K + k0, K, panel + r * ldp, ldp, kl,
                                                         y + m * N + nb + r, N, k0 > 0, 0);
  }
}

// Decode: each weight byte read from memory once, widened in registers.
// Above four rows (a batch of sequences decoding together) each tile of
// weights serves the rows four at a time while it sits in L1: cheaper than
// widening panels that so few rows reuse.
template <class L>
void gemv(const float* x, int64_t M, const typename L::T* w, int64_t K, int64_t N, int64_t n0, int64_t n1, float* y) {
  const int64_t step = tile_rows(static_cast<int>(min64(M, 4)));
  const int64_t ahead = prefetch_rows(step, K * static_cast<int64_t>(sizeof(typename L::T)));
  for (int64_t n = n0; n < n1; n += step)
    for (int64_t m = 0; m < M; m += 4)
      tile_of<L, true>(min64(4, M - m), min64(step, n1 - n))(x + m * K, K, w + n * K, K, K, y + m * N + n, N, false,
                                                       m == 0 ? ahead : 0);
}

// Rows up to which gemv beats widened panels.
constexpr int64_t kAvx2GemvMaxRows = 16;

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

// Prefill: each 48-row panel widened to f32 once per K block and reused by
// every 4-row group of activations. f32 weights are read in place.
template <class L>
void gemm(const float* x, int64_t M, const typename L::T* w, int64_t K, int64_t N, int64_t n0, int64_t n1, float* y,
          float* panel) {
  if (M <= kAvx2GemvMaxRows) return gemv<L>(x, M, w, K, N, n0, n1, y);
  const int64_t kc = k_block(K, kMaxKc, 8);
  constexpr bool in_place = sizeof(typename L::T) == sizeof(float);
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      const float* p;
      int64_t ldp;
      if constexpr (in_place) {
        p = reinterpret_cast<const float*>(w) + nb * K + k0;
        ldp = K;
      } else {
        widen_panel<L>(w + nb * K + k0, K, rows, kl, panel);
        p = panel;
        ldp = kl;
      }
      multiply_panel(x, M, K, k0, kl, p, ldp, rows, y, N, nb);
    }
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
                float* y, int64_t ldy) {
  const __m256i ones16 = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0f),
                flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int64_t blocks = K / 32, ldx = K / 4;
  const int64_t ahead = prefetch_rows(NR, ldw);
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int n = 0; n < NR; ++n) acc[m][n] = _mm256_setzero_ps();
  for (int64_t g = 0; g < blocks; g += 8) {
    const int64_t count = min64(8, blocks - g);
    alignas(32) float d[MR][NR][8];
    __m256 dw[NR];
#pragma GCC unroll 4
    for (int n = 0; n < NR; ++n) {
      if (count == 8) {
        dw[n] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ws + n * ldws + g)));
      } else {
        alignas(32) float part[8] = {};
        for (int64_t j = 0; j < count; ++j) part[j] = _cvtsh_ss(ws[n * ldws + g + j]);
        dw[n] = _mm256_load_ps(part);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      alignas(32) float dx[8] = {};
      for (int64_t j = 0; j < count; ++j) dx[j] = x.scale[m * ldx + (g + j) * 8];
      const __m256 dxv = _mm256_load_ps(dx);
#pragma GCC unroll 4
      for (int n = 0; n < NR; ++n) _mm256_store_ps(d[m][n], _mm256_mul_ps(dxv, dw[n]));
    }
    for (int64_t j = 0; j < count; ++j) {
      const int64_t b = g + j;
#pragma GCC unroll 4
      for (int n = 0; n < NR; ++n) {
        __m256i wv, wabs;
        if (b % (Q4 ? 4 : 2) == 0)  // once per cache line
          _mm_prefetch(reinterpret_cast<const char*>(w + (n + ahead) * ldw + (Q4 ? b / 2 : b) * 32), _MM_HINT_T0);
        if constexpr (Q4) {
          // Bytes of a 64-weight group: low nibbles are its even block, high its odd one.
          const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + (b / 2) * 32));
          wv = b % 2 ? _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4) : _mm256_and_si256(bytes, low4);
          wabs = wv;
        } else {
          wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + n * ldw + b * 32)), flip);
          wabs = _mm256_abs_epi8(wv);
        }
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + m * K + b * 32));
          __m256i sums;
          if constexpr (Q4) {
            sums = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xv), ones16),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.start + m * ldx + b * 8)));
          } else {
            sums = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv, wv)), ones16);
          }
          acc[m][n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_broadcast_ss(&d[m][n][j]), acc[m][n]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int n = 0; n < NR; ++n) y[m * ldy + n] = hsum(acc[m][n]);
}

constexpr int quant_tile_rows(int mr) { return mr == 1 ? 4 : mr == 2 ? 3 : 2; }

using QuantTile = void (*)(const QuantizedActivations&, int64_t, const uint8_t*, int64_t, const uint16_t*, int64_t, float*,
                           int64_t);
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
  const int64_t step = quant_tile_rows(static_cast<int>(M));
  for (int64_t n = n0; n < n1; n += step)
    quant_tile_of<Q4>(M, min64(step, n1 - n))(x, K, wq + n * ldw, ldw, w.scales + n * ldws, ldws, y + n, N);
}

// Rows [rows, kl] of quantised weights from column k0 (a multiple of 32) as
// f32 values d * (q - offset), as dequantize_row gives them.
void dequantize_panel(Quant q, const uint8_t* w, int64_t ldw, const uint16_t* ws, int64_t ldws, int64_t rows, int64_t k0,
                      int64_t kl, float* out) {
  const __m128i low4 = _mm_set1_epi8(0x0f);
  const __m256i offset = _mm256_set1_epi32(q == Quant::Q4_0 ? 8 : 128);
  for (int64_t r = 0; r < rows; ++r) {
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

}  // namespace

void avx2_quant_gemv(const QuantizedActivations& x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y) {
  if (w.quant == Quant::Q4_0) return quant_gemv<true>(x, M, w, n0, n1, y);
  quant_gemv<false>(x, M, w, n0, n1, y);
}

// Prefill: each 48-row panel dequantised to f32 once per K block and reused
// by every 4-row group of f32 activations.
void avx2_quant_gemm(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, float* panel) {
  const int64_t K = w.cols, N = w.rows, ldw = quant_row_bytes(w.quant, K), ldws = K / 32;
  const auto* wq = static_cast<const uint8_t*>(w.data);
  const int64_t kc = k_block(K, kMaxKc, 32);  // whole quantisation blocks
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = min64(kPanelRows, n1 - nb);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kl = min64(kc, K - k0);
      dequantize_panel(w.quant, wq + nb * ldw, ldw, w.scales + nb * ldws, ldws, rows, k0, kl, panel);
      multiply_panel(x, M, K, k0, kl, panel, kl, rows, y, N, nb);
    }
  }
}

void avx2_quantize_bf16_rows(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                             uint16_t* scales) {
  const int64_t blocks = cols / 32;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* w = src + r * cols;
    uint16_t* s = scales + r * blocks;
    if (q == Quant::Q8_0) {
      uint8_t* out = quants + r * cols;
      for (int64_t b = 0; b < blocks; ++b)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32), quantize_block<false>(w + b * 32, s + b));
    } else {
      uint8_t* out = quants + r * (cols / 2);
      for (int64_t b = 0; b + 1 < blocks; b += 2) {
        const __m256i lo = quantize_block<true>(w + b * 32, s + b), hi = quantize_block<true>(w + b * 32 + 32, s + b + 1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 16), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
      }
    }
  }
}

void avx2_f32(const float* x, int64_t M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, float* panel) {
  const int64_t K = w.cols, N = w.rows;
  switch (w.dtype) {
    case DType::BF16: return gemm<LoadBF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y, panel);
    case DType::F16: return gemm<LoadF16>(x, M, static_cast<const uint16_t*>(w.data), K, N, n0, n1, y, panel);
    default: return gemm<LoadF32>(x, M, static_cast<const float*>(w.data), K, N, n0, n1, y, panel);
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
