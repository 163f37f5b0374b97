// AVX2 + FMA attention; AVX-512 machines run it for the head sizes that
// attention_avx512.cpp does not take. Decode attention is a stream of the
// KV cache; what decided its speed on Zen 4 was reading it in address order
// and ahead (about 30 GB/s on 2 threads at 4096 positions).
// Compiled for AVX2 through the pragma below and run only after
// cpu_features() said so; headers come first so no inline library code is
// compiled for AVX2 by accident.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "jetmoe/tensor.h"
#include "ops/attention_kernels.h"
#include "ops/exp_avx2.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace jetmoe::ops::kernels {

namespace {

// Keys per vector of scores, and vectors per online-softmax step: the
// running max, its rescaling exp and the sums' reductions are paid once per
// kTile keys.
constexpr int kBlock = 8;
constexpr int kTileBlocks = 4;
constexpr int kTile = kBlock * kTileBlocks;
constexpr int kPieceChunks = 8;  // 8-float chunks of a head kept in registers at once (64 floats)
// How far ahead the first query to read a tile fetches keys and values into
// L2, line by line as it reads its own. Without it one thread's compute and its
// cache misses took turns (Zen 4, 4096 positions: 20-25% slower at 2
// threads); a whole tile's lines at once, or into L1, cost instead.
constexpr int64_t kPrefetchBytes = 64 * 1024;

template <class T>
inline void prefetch_l2(const T* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1);
}

// Eight cached elements as f32.
struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
};

inline float reduce_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Lane i of the result = the sum of a[i]'s lanes (a horizontal-add tree).
inline __m256 sum_each8(const __m256 a[kBlock]) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  // u0 = [a0..a3 low halves | a0..a3 high halves], u1 the same for a4..a7.
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Dot products of q with keys k0 + i * stride, i < 8 (head_dim a multiple
// of 8). Rows past `count` repeat the last one (their scores are masked off
// later), so the loop has a fixed shape and the accumulators stay in
// registers. With `ahead` > 0 the rows `ahead` elements on are prefetched.
template <class L>
inline __m256 dot8(const float* q, const typename L::T* k0, int64_t stride, int64_t count, int64_t head_dim,
                   int64_t ahead) {
  const typename L::T* rows[kBlock];
#pragma GCC unroll 8
  for (int i = 0; i < kBlock; ++i) rows[i] = k0 + (i < count ? i : count - 1) * stride;
  // Row by row, so the keys are read in address order: reading the eight
  // rows a chunk at a time halved one thread's read bandwidth on Zen 4
  // (hardware prefetchers follow sequential lines, not a 512-byte stride).
  // Two partial sums per row halve its FMA chain.
  __m256 acc[kBlock];
#pragma GCC unroll 8
  for (int i = 0; i < kBlock; ++i) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= head_dim; c += 16) {
      if (ahead) prefetch_l2(rows[i] + ahead + c);
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), L::load(rows[i] + c), a);
      b = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), L::load(rows[i] + c + 8), b);
    }
    if (c < head_dim) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), L::load(rows[i] + c), a);
    acc[i] = _mm256_add_ps(a, b);
  }
  return sum_each8(acc);
}

// o[0, CH*8) = o * alpha + sum over valid i of p[i] * v(i). The CH output
// chunks stay in registers while the value rows stream past; with `ahead` >
// 0 the values `ahead` elements on are prefetched.
template <class L, int CH>
void accumulate_values(float* o, const typename L::T* v0, int64_t stride, const float* p, unsigned valid, float alpha,
                       int64_t ahead) {
  __m256 acc[CH];
  const __m256 a = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
  for (int c = 0; c < CH; ++c) acc[c] = _mm256_mul_ps(a, _mm256_loadu_ps(o + 8 * c));
  auto add_row = [&](int i) {
    const __m256 pi = _mm256_broadcast_ss(p + i);
    const typename L::T* v = v0 + i * stride;
    if (ahead)
#pragma GCC unroll 4
      for (int c = 0; c < CH; c += 2) prefetch_l2(v + ahead + 8 * c);
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[c] = _mm256_fmadd_ps(pi, L::load(v + 8 * c), acc[c]);
  };
  if (valid == 0xffu) {
#pragma GCC unroll 8
    for (int i = 0; i < kBlock; ++i) add_row(i);
  } else {
    // Masked rows are skipped, not multiplied by zero: garbage there may be NaN.
    for (unsigned bits = valid; bits != 0; bits &= bits - 1) add_row(__builtin_ctz(bits));
  }
#pragma GCC unroll 8
  for (int c = 0; c < CH; ++c) _mm256_storeu_ps(o + 8 * c, acc[c]);
}

template <class L>
using AccumulateValues = void (*)(float*, const typename L::T*, int64_t, const float*, unsigned, float, int64_t);
template <class L>
constexpr AccumulateValues<L> accumulate_values_of[kPieceChunks] = {
    accumulate_values<L, 1>, accumulate_values<L, 2>, accumulate_values<L, 3>, accumulate_values<L, 4>,
    accumulate_values<L, 5>, accumulate_values<L, 6>, accumulate_values<L, 7>, accumulate_values<L, 8>};

// Up to kAttendMaxQueries queries against the key tiles any of them sees. Each
// query's sums take exactly the steps they would alone: a tile past its own
// visible positions is skipped, and within one its later rows are masked.
template <class L>
void attend_queries(const AttendQuery* queries, int64_t groups, const typename L::T* keys, const typename L::T* values,
                    int64_t kv_stride, const int32_t* mask, int64_t head_dim, float scale) {
  float running_max[kAttendMaxQueries], running_sum[kAttendMaxQueries];
  int64_t visible = 0;
  for (int64_t g = 0; g < groups; ++g) {
    running_max[g] = -INFINITY;
    running_sum[g] = 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) queries[g].out[i] = 0.0f;
    visible = queries[g].visible > visible ? queries[g].visible : visible;
  }
  const __m256 vscale = _mm256_set1_ps(scale), minus_inf = _mm256_set1_ps(-INFINITY);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  alignas(32) float p[kTile];
  const int64_t row_bytes = head_dim * static_cast<int64_t>(sizeof(typename L::T));
  const int64_t ahead_rows = kPrefetchBytes / row_bytes > kTile ? kPrefetchBytes / row_bytes : kTile;
  // Lanes of block j whose key index within the tile is below `rows`.
  auto in_range = [&](int64_t rows, int j) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rows - j * kBlock)), lane);
  };
  for (int64_t s0 = 0; s0 < visible; s0 += kTile) {
    const int64_t count = visible - s0 < kTile ? visible - s0 : kTile;
    __m256 real[kTileBlocks];
    uint32_t real_bits = 0;
#pragma GCC unroll 4
    for (int j = 0; j < kTileBlocks; ++j) {
      const __m256i inside = in_range(count, j);
      real[j] = _mm256_castsi256_ps(_mm256_andnot_si256(
          _mm256_cmpeq_epi32(_mm256_maskload_epi32(mask + s0 + j * kBlock, inside), _mm256_setzero_si256()), inside));
      real_bits |= static_cast<uint32_t>(_mm256_movemask_ps(real[j])) << (j * kBlock);
    }
    if (real_bits == 0) continue;
    const typename L::T* k0 = keys + s0 * kv_stride;
    const typename L::T* v0 = values + s0 * kv_stride;
    // Only while the rows ahead are still visible ones, and by the first
    // query that reads this tile.
    int64_t ahead = s0 + kTile + ahead_rows <= visible ? ahead_rows * kv_stride : 0;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t rows = queries[g].visible - s0 < kTile ? queries[g].visible - s0 : kTile;
      if (rows <= 0) continue;
      __m256 valid[kTileBlocks];
      uint32_t valid_bits = real_bits;
#pragma GCC unroll 4
      for (int j = 0; j < kTileBlocks; ++j) valid[j] = real[j];
      if (rows < count) {
        valid_bits = 0;
#pragma GCC unroll 4
        for (int j = 0; j < kTileBlocks; ++j) {
          valid[j] = _mm256_and_ps(real[j], _mm256_castsi256_ps(in_range(rows, j)));
          valid_bits |= static_cast<uint32_t>(_mm256_movemask_ps(valid[j])) << (j * kBlock);
        }
        if (valid_bits == 0) continue;
      }
      __m256 scores[kTileBlocks];
#pragma GCC unroll 4
      for (int j = 0; j < kTileBlocks; ++j) {
        const int64_t block_rows = rows - j * kBlock;
        if (block_rows <= 0) {
          scores[j] = minus_inf;
          continue;
        }
        const __m256 dots = dot8<L>(queries[g].q, k0 + j * kBlock * kv_stride, kv_stride,
                                    block_rows < kBlock ? block_rows : kBlock, head_dim, ahead);
        scores[j] = _mm256_blendv_ps(minus_inf, _mm256_mul_ps(dots, vscale), valid[j]);
      }
      const float tile_max =
          reduce_max(_mm256_max_ps(_mm256_max_ps(scores[0], scores[1]), _mm256_max_ps(scores[2], scores[3])));
      const float new_max = running_max[g] > tile_max ? running_max[g] : tile_max;
      const float alpha = std::exp(running_max[g] - new_max);
      const __m256 shift = _mm256_set1_ps(new_max);
      __m256 sum = _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int j = 0; j < kTileBlocks; ++j) {
        const __m256 e = _mm256_and_ps(valid[j], exp_nonpositive(_mm256_sub_ps(scores[j], shift)));
        sum = _mm256_add_ps(sum, e);
        _mm256_store_ps(p + j * kBlock, e);
      }
      running_sum[g] = running_sum[g] * alpha + reduce_add(sum);
      running_max[g] = new_max;
      // Values eight rows at a time, each row's pieces before the next
      // rows': a 64-float piece of all kTile rows, then the next piece,
      // read a 128-float head at a 512-byte stride and cost ~20% of one
      // thread's read bandwidth on Zen 4.
      float* o = queries[g].out;
      float rescale = alpha;
      for (int j = 0; j < kTileBlocks; ++j) {
        const unsigned bits = (valid_bits >> (j * kBlock)) & 0xffu;
        if (bits == 0) continue;
        const typename L::T* vj = v0 + j * kBlock * kv_stride;
        for (int64_t c0 = 0; c0 < head_dim; c0 += 8 * kPieceChunks) {
          const int64_t left = (head_dim - c0) / 8;
          accumulate_values_of<L>[(left < kPieceChunks ? left : kPieceChunks) - 1](o + c0, vj + c0, kv_stride,
                                                                                   p + j * kBlock, bits, rescale, ahead);
        }
        rescale = 1.0f;
      }
      ahead = 0;
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    const float inv = running_sum[g] > 0.0f ? 1.0f / running_sum[g] : 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) queries[g].out[i] *= inv;
  }
}

template <class L>
void attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, int64_t kv_stride,
            const int32_t* mask, int64_t head_dim, float scale) {
  const auto* k = static_cast<const typename L::T*>(keys);
  const auto* v = static_cast<const typename L::T*>(values);
  for (int64_t g0 = 0; g0 < count; g0 += kAttendMaxQueries)
    attend_queries<L>(queries + g0, count - g0 < kAttendMaxQueries ? count - g0 : kAttendMaxQueries, k, v, kv_stride,
                      mask, head_dim, scale);
}

}  // namespace

void avx2_attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, DType dtype,
                 int64_t kv_stride, const int32_t* mask, int64_t head_dim, float scale) {
  switch (dtype) {
    case DType::F16: return attend<LoadF16>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
    case DType::BF16: return attend<LoadBF16>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
    default: return attend<LoadF32>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
