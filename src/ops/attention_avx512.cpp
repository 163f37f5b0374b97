// AVX-512 attention for head sizes of 16 to 128 in steps of 16 (jetmoe-8b:
// 128). The algorithm and its order of reads are those of the AVX2 kernel
// (attention_avx2.cpp); the 32 registers are what it is for: a query stays
// in registers while its 32 keys of a tile go by, where the AVX2 kernel
// reloads the query for every key row. On Zen 4, whose 512-bit loads and
// FMAs issue at half the rate of 256-bit ones, that halves the loads per
// FMA of the dot products. Every function here carries the AVX-512 target
// through the pragma below and runs only after cpu_features() said so.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "jetmoe/tensor.h"
#include "ops/attention_kernels.h"

#pragma GCC push_options
// GCC 12's intrinsics headers build some results from _mm512_undefined_*(),
// which -Wuninitialized reports at every use; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace jetmoe::ops::kernels {

namespace {

constexpr int kLanes = 16;
constexpr int kTileBlocks = 2;  // vectors of 16 scores per online-softmax step
constexpr int kTile = kLanes * kTileBlocks;
constexpr int kMaxChunks = 8;  // 16-float chunks of a query held in registers (head_dim <= 128)
// As in the AVX2 kernel: the first query to read a tile fetches the rows
// this far ahead into L2, line by line as it reads its own.
constexpr int64_t kPrefetchBytes = 64 * 1024;

// Sixteen cached elements as f32.
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
};

// exp(x) for x <= 0: the AVX2 kernel's exp_nonpositive (exp_avx2.h), 16 wide.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i two_n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(two_n));
}

// Lane r of the result = the sum of a[r]'s lanes. Each level halves the
// vectors: pairs within 128-bit lanes, then 128-bit lanes across vectors.
inline __m512 sum_each16(const __m512 (&a)[kLanes]) {
  __m512 u[8], v[4], s[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
    u[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: rows 4i .. 4i + 3, one partial sum each
    v[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0x44), _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0xee));
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // 128-bit lanes: v[2i] lanes 0+1, 2+3, then v[2i+1]'s
    s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(s[0], s[1], 0x88), _mm512_shuffle_f32x4(s[0], s[1], 0xdd));
}

// Dot products of q (in registers, CH chunks) with keys k0 + i * stride,
// i < 16. Rows past `count` repeat the last one (their scores are masked off
// later). Each row is read whole before the next, in address order; with
// `ahead` > 0 the rows `ahead` elements on are prefetched into L2.
template <class L, int CH>
inline __m512 dot16(const __m512 (&q)[CH], const typename L::T* k0, int64_t stride, int64_t count, int64_t ahead) {
  __m512 acc[kLanes];
#pragma GCC unroll 16
  for (int i = 0; i < kLanes; ++i) {
    const typename L::T* row = k0 + (i < count ? i : count - 1) * stride;
    __m512 a = _mm512_mul_ps(q[0], L::load(row));
#pragma GCC unroll 8
    for (int c = 1; c < CH; ++c) a = _mm512_fmadd_ps(q[c], L::load(row + kLanes * c), a);
    if (ahead)
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) _mm_prefetch(reinterpret_cast<const char*>(row + ahead + kLanes * c), _MM_HINT_T1);
    acc[i] = a;
  }
  return sum_each16(acc);
}

// o = o * alpha + sum over the set bits i of `valid` of p[i] * v(i), i < 16.
template <class L, int CH>
void accumulate_values(float* o, const typename L::T* v0, int64_t stride, const float* p, unsigned valid, float alpha,
                       int64_t ahead) {
  __m512 acc[CH];
  const __m512 a = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int c = 0; c < CH; ++c) acc[c] = _mm512_mul_ps(a, _mm512_loadu_ps(o + kLanes * c));
  auto add_row = [&](int i) {
    const __m512 pi = _mm512_set1_ps(p[i]);
    const typename L::T* v = v0 + i * stride;
#pragma GCC unroll 8
    for (int c = 0; c < CH; ++c) acc[c] = _mm512_fmadd_ps(pi, L::load(v + kLanes * c), acc[c]);
    if (ahead)
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) _mm_prefetch(reinterpret_cast<const char*>(v + ahead + kLanes * c), _MM_HINT_T1);
  };
  if (valid == 0xffffu) {
#pragma GCC unroll 4
    for (int i = 0; i < kLanes; ++i) add_row(i);
  } else {
    // Masked rows are skipped, not multiplied by zero: garbage there may be NaN.
    for (unsigned bits = valid; bits != 0; bits &= bits - 1) add_row(__builtin_ctz(bits));
  }
#pragma GCC unroll 8
  for (int c = 0; c < CH; ++c) _mm512_storeu_ps(o + kLanes * c, acc[c]);
}

// Lanes of block j whose key index within the tile is below `rows`.
inline __mmask16 in_range(int64_t rows, int j) {
  const int64_t n = rows - j * kLanes;
  return n >= kLanes ? static_cast<__mmask16>(0xffff) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}

// Up to kAttendMaxQueries queries against the key tiles any of them sees,
// with the AVX2 kernel's rules: each query's sums take exactly the steps
// they would alone.
template <class L, int CH>
void attend_queries(const AttendQuery* queries, int64_t groups, const typename L::T* keys, const typename L::T* values,
                    int64_t kv_stride, const int32_t* mask, float scale) {
  constexpr int64_t head_dim = CH * kLanes;
  float running_max[kAttendMaxQueries], running_sum[kAttendMaxQueries];
  int64_t visible = 0;
  for (int64_t g = 0; g < groups; ++g) {
    running_max[g] = -INFINITY;
    running_sum[g] = 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) queries[g].out[i] = 0.0f;
    visible = queries[g].visible > visible ? queries[g].visible : visible;
  }
  const __m512 vscale = _mm512_set1_ps(scale), minus_inf = _mm512_set1_ps(-INFINITY);
  alignas(64) float p[kTile];
  constexpr int64_t row_bytes = head_dim * static_cast<int64_t>(sizeof(typename L::T));
  constexpr int64_t ahead_rows = kPrefetchBytes / row_bytes > kTile ? kPrefetchBytes / row_bytes : kTile;
  for (int64_t s0 = 0; s0 < visible; s0 += kTile) {
    const int64_t count = visible - s0 < kTile ? visible - s0 : kTile;
    __mmask16 real[kTileBlocks];
    uint32_t real_bits = 0;
#pragma GCC unroll 2
    for (int j = 0; j < kTileBlocks; ++j) {
      const __mmask16 inside = in_range(count, j);
      const __m512i m = _mm512_maskz_loadu_epi32(inside, mask + s0 + j * kLanes);
      real[j] = _mm512_mask_test_epi32_mask(inside, m, m);
      real_bits |= static_cast<uint32_t>(real[j]) << (j * kLanes);
    }
    if (real_bits == 0) continue;
    const typename L::T* k0 = keys + s0 * kv_stride;
    const typename L::T* v0 = values + s0 * kv_stride;
    int64_t ahead = s0 + kTile + ahead_rows <= visible ? ahead_rows * kv_stride : 0;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t rows = queries[g].visible - s0 < kTile ? queries[g].visible - s0 : kTile;
      if (rows <= 0) continue;
      __mmask16 valid[kTileBlocks];
      uint32_t valid_bits = 0;
#pragma GCC unroll 2
      for (int j = 0; j < kTileBlocks; ++j) {
        valid[j] = real[j] & in_range(rows, j);
        valid_bits |= static_cast<uint32_t>(valid[j]) << (j * kLanes);
      }
      if (valid_bits == 0) continue;
      __m512 q[CH];
#pragma GCC unroll 8
      for (int c = 0; c < CH; ++c) q[c] = _mm512_loadu_ps(queries[g].q + kLanes * c);
      __m512 scores[kTileBlocks];
#pragma GCC unroll 2
      for (int j = 0; j < kTileBlocks; ++j) {
        const int64_t block_rows = rows - j * kLanes;
        if (block_rows <= 0) {
          scores[j] = minus_inf;
          continue;
        }
        const __m512 dots =
            dot16<L, CH>(q, k0 + j * kLanes * kv_stride, kv_stride, block_rows < kLanes ? block_rows : kLanes, ahead);
        scores[j] = _mm512_mask_blend_ps(valid[j], minus_inf, _mm512_mul_ps(dots, vscale));
      }
      const float tile_max = _mm512_reduce_max_ps(_mm512_max_ps(scores[0], scores[1]));
      const float new_max = running_max[g] > tile_max ? running_max[g] : tile_max;
      const float alpha = std::exp(running_max[g] - new_max);
      const __m512 shift = _mm512_set1_ps(new_max);
      __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 2
      for (int j = 0; j < kTileBlocks; ++j) {
        const __m512 e = _mm512_maskz_mov_ps(valid[j], exp_nonpositive(_mm512_sub_ps(scores[j], shift)));
        sum = _mm512_add_ps(sum, e);
        _mm512_store_ps(p + j * kLanes, e);
      }
      running_sum[g] = running_sum[g] * alpha + _mm512_reduce_add_ps(sum);
      running_max[g] = new_max;
      float rescale = alpha;
      for (int j = 0; j < kTileBlocks; ++j) {
        if (valid[j] == 0) continue;
        accumulate_values<L, CH>(queries[g].out, v0 + j * kLanes * kv_stride, kv_stride, p + j * kLanes, valid[j], rescale,
                                 ahead);
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

template <class L, int CH>
void attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, int64_t kv_stride,
            const int32_t* mask, float scale) {
  const auto* k = static_cast<const typename L::T*>(keys);
  const auto* v = static_cast<const typename L::T*>(values);
  for (int64_t g0 = 0; g0 < count; g0 += kAttendMaxQueries)
    attend_queries<L, CH>(queries + g0, count - g0 < kAttendMaxQueries ? count - g0 : kAttendMaxQueries, k, v, kv_stride,
                          mask, scale);
}

template <class L>
void attend_chunks(const AttendQuery* queries, int64_t count, const void* keys, const void* values, int64_t kv_stride,
                   const int32_t* mask, int64_t head_dim, float scale) {
  switch (head_dim / kLanes) {
    case 1: return attend<L, 1>(queries, count, keys, values, kv_stride, mask, scale);
    case 2: return attend<L, 2>(queries, count, keys, values, kv_stride, mask, scale);
    case 3: return attend<L, 3>(queries, count, keys, values, kv_stride, mask, scale);
    case 4: return attend<L, 4>(queries, count, keys, values, kv_stride, mask, scale);
    case 5: return attend<L, 5>(queries, count, keys, values, kv_stride, mask, scale);
    case 6: return attend<L, 6>(queries, count, keys, values, kv_stride, mask, scale);
    case 7: return attend<L, 7>(queries, count, keys, values, kv_stride, mask, scale);
    default: return attend<L, 8>(queries, count, keys, values, kv_stride, mask, scale);
  }
}

}  // namespace

bool avx512_attends(int64_t head_dim) {
  return head_dim % kLanes == 0 && head_dim >= kLanes && head_dim <= kMaxChunks * kLanes;
}

void avx512_attend(const AttendQuery* queries, int64_t count, const void* keys, const void* values, DType dtype,
                   int64_t kv_stride, const int32_t* mask, int64_t head_dim, float scale) {
  switch (dtype) {
    case DType::F16: return attend_chunks<LoadF16>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
    case DType::BF16: return attend_chunks<LoadBF16>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
    default: return attend_chunks<LoadF32>(queries, count, keys, values, kv_stride, mask, head_dim, scale);
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC diagnostic pop
#pragma GCC pop_options
