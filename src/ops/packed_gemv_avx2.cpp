// The AVX2 kernel for BF16 matrices packed at load (see kernels::kPackRows):
// the output head, which every decode step multiplies by every sequence's
// row. Every function here carries the AVX2 target through the pragma below
// and runs only after cpu_features() said so.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/matmul_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace jetmoe::ops::kernels {

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Panels of 2 KB or less (128 columns) end before the hardware prefetcher
// gets far enough ahead: fetching 2 KB ahead in each ran the demo model's
// 32000 x 128 head at 8 rows 1.3-1.8x faster on Zen 3. Panels of 512 and
// 2048 columns streamed from memory slower with it, so they do without.
constexpr int64_t kPackAhead = 2048;

// MR activation rows times NV panels (8 weight rows each) over all K:
// y[m][8 v + j] = x[m] . w[8 v + j], one FMA chain per output in k order.
// `ncols` outputs of the tile are stored (a last panel may be partial).
template <int MR, int NV>
void packed_tile(const float* x, int64_t ldx, const uint32_t* p, int64_t K, float* y, int64_t ldy, int64_t ncols) {
  const int64_t ps = (K + 1) / 2 * kPackRows;  // words per panel
  const bool ahead = ps * static_cast<int64_t>(sizeof(uint32_t)) <= kPackAhead;
  const __m256 high = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  __m256 acc[MR][NV];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_setzero_ps();
  const int64_t pairs = K / 2;
  for (int64_t q = 0; q < pairs; ++q) {
    const uint32_t* at = p + q * kPackRows;
    if (ahead && (q & 1) == 0) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        _mm_prefetch(reinterpret_cast<const char*>(at + v * ps) + kPackAhead, _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256 even =
          _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + v * ps)), 16));
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[m][v] = _mm256_fmadd_ps(_mm256_set1_ps(x[m * ldx + 2 * q]), even, acc[m][v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256 odd = _mm256_and_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(at + v * ps)), high);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[m][v] = _mm256_fmadd_ps(_mm256_set1_ps(x[m * ldx + 2 * q + 1]), odd, acc[m][v]);
    }
  }
  if (K % 2 != 0) {  // the last column: low halves only
    const uint32_t* at = p + pairs * kPackRows;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256 even =
          _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + v * ps)), 16));
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[m][v] = _mm256_fmadd_ps(_mm256_set1_ps(x[m * ldx + K - 1]), even, acc[m][v]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* out = y + m * ldy + v * kPackRows;
      if (ncols >= (v + 1) * kPackRows) {
        _mm256_storeu_ps(out, acc[m][v]);
      } else if (ncols > v * kPackRows) {
        alignas(32) float lanes[kPackRows];
        _mm256_store_ps(lanes, acc[m][v]);
        std::memcpy(out, lanes, static_cast<size_t>(ncols - v * kPackRows) * sizeof(float));
      }
    }
}

// Panels per tile for MR rows: MR * NV accumulators, the MR broadcast
// activations (the compiler keeps them for all NV panels), a widened weight
// and the mask in 16 registers; 4 x 3 spilled.
constexpr int panels_per_tile(int64_t mr) { return mr == 1 ? 8 : mr == 2 ? 6 : mr == 3 ? 3 : 2; }

using PackedTile = void (*)(const float*, int64_t, const uint32_t*, int64_t, float*, int64_t, int64_t);
template <int NV>
constexpr PackedTile packed_tiles[4] = {packed_tile<1, NV>, packed_tile<2, NV>, packed_tile<3, NV>, packed_tile<4, NV>};
// The tile for mr rows (the pass) and nv panels: 1, or panels_per_tile of
// the first pass's rows, which every later pass of the tile shares.
PackedTile packed_tile_of(int64_t mr, int64_t nv) {
  switch (nv) {
    case 1: return packed_tiles<1>[mr - 1];
    case 2: return packed_tiles<2>[mr - 1];
    case 3: return packed_tile<3, 3>;
    case 6: return packed_tile<2, 6>;
    default: return packed_tile<1, 8>;
  }
}

}  // namespace

int64_t avx2_packed_words(int64_t N, int64_t K) { return (N + kPackRows - 1) / kPackRows * ((K + 1) / 2) * kPackRows; }

void avx2_pack_bf16(const uint16_t* w, int64_t N, int64_t K, uint32_t* out) {
  const int64_t ps = (K + 1) / 2 * kPackRows;
  for (int64_t n = 0; n < (N + kPackRows - 1) / kPackRows * kPackRows; ++n) {
    uint32_t* panel = out + n / kPackRows * ps + n % kPackRows;
    for (int64_t q = 0; q < (K + 1) / 2; ++q) {
      const uint32_t lo = n < N ? w[n * K + 2 * q] : 0u;
      const uint32_t hi = n < N && 2 * q + 1 < K ? w[n * K + 2 * q + 1] : 0u;
      panel[q * kPackRows] = lo | hi << 16;
    }
  }
}

void avx2_packed_gemv(const float* x, int64_t M, const uint32_t* packed, int64_t N, int64_t K, int64_t n0, int64_t n1,
                      float* y) {
  const int64_t ps = (K + 1) / 2 * kPackRows;
  // Rows in passes of up to 4 over the same tile of panels: the later
  // passes find its weights in cache.
  const int64_t nv = panels_per_tile(min64(M, 4)), step = nv * kPackRows;
  for (int64_t n = n0; n < n1; n += step) {
    const bool whole = n + step <= n1;
    const int64_t width = whole ? step : kPackRows;
    for (int64_t nt = n; nt < min64(n + step, n1); nt += width)
      for (int64_t m = 0; m < M; m += 4)
        packed_tile_of(min64(4, M - m), whole ? nv : 1)(x + m * K, K, packed + nt / kPackRows * ps, K, y + m * N + nt,
                                                        N, min64(width, n1 - nt));
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
