// AVX2 + FMA attention (also what AVX-512 machines run: at these sizes the
// kernel is bound by its reductions and the exp, not by vector width).
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

constexpr int kBlock = 8;        // keys per online-softmax step: one vector of scores
constexpr int kPieceChunks = 8;  // 8-float chunks of a head kept in registers at once (64 floats)
constexpr int kMaxGroups = 8;    // query heads whose running max and sum live on the stack
// Key blocks ahead whose keys and values are prefetched: the hardware
// prefetcher alone left decode attention at 4096 positions latency-bound
// (~15% fewer GB/s on Zen 3).
constexpr int64_t kPrefetchBlocks = 4;

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
// registers.
template <class L>
inline __m256 dot8(const float* q, const typename L::T* k0, int64_t stride, int64_t count, int64_t head_dim) {
  const typename L::T* rows[kBlock];
#pragma GCC unroll 8
  for (int i = 0; i < kBlock; ++i) rows[i] = k0 + (i < count ? i : count - 1) * stride;
  __m256 acc[kBlock];
#pragma GCC unroll 8
  for (int i = 0; i < kBlock; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < head_dim; c += 8) {
    const __m256 qv = _mm256_loadu_ps(q + c);
#pragma GCC unroll 8
    for (int i = 0; i < kBlock; ++i) acc[i] = _mm256_fmadd_ps(qv, L::load(rows[i] + c), acc[i]);
  }
  return sum_each8(acc);
}

// o[0, CH*8) = o * alpha + sum over valid i of p[i] * v(i). The CH output
// chunks stay in registers while the value rows stream past.
template <class L, int CH>
void accumulate_values(float* o, const typename L::T* v0, int64_t stride, const float* p, unsigned valid, float alpha) {
  __m256 acc[CH];
  const __m256 a = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
  for (int c = 0; c < CH; ++c) acc[c] = _mm256_mul_ps(a, _mm256_loadu_ps(o + 8 * c));
  auto add_row = [&](int i) {
    const __m256 pi = _mm256_broadcast_ss(p + i);
    const typename L::T* v = v0 + i * stride;
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
using AccumulateValues = void (*)(float*, const typename L::T*, int64_t, const float*, unsigned, float);
template <class L>
constexpr AccumulateValues<L> accumulate_values_of[kPieceChunks] = {
    accumulate_values<L, 1>, accumulate_values<L, 2>, accumulate_values<L, 3>, accumulate_values<L, 4>,
    accumulate_values<L, 5>, accumulate_values<L, 6>, accumulate_values<L, 7>, accumulate_values<L, 8>};

// Up to kMaxGroups query heads against every visible key block.
template <class L>
void attend_groups(const float* q, int64_t q_stride, int64_t groups, const typename L::T* keys, const typename L::T* values,
                   int64_t kv_stride, const int32_t* mask, int64_t visible, int64_t head_dim, float scale, float* out) {
  float running_max[kMaxGroups], running_sum[kMaxGroups];
  for (int64_t g = 0; g < groups; ++g) {
    running_max[g] = -INFINITY;
    running_sum[g] = 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) out[g * q_stride + i] = 0.0f;
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  alignas(32) float p[kBlock];
  const int64_t row_bytes = head_dim * static_cast<int64_t>(sizeof(typename L::T));
  for (int64_t s0 = 0; s0 < visible; s0 += kBlock) {
    const int64_t count = visible - s0 < kBlock ? visible - s0 : kBlock;
    const __m256i in_range = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lane);
    const __m256i real = _mm256_xor_si256(_mm256_cmpeq_epi32(_mm256_maskload_epi32(mask + s0, in_range), _mm256_setzero_si256()),
                                          _mm256_set1_epi32(-1));
    const __m256 valid = _mm256_castsi256_ps(_mm256_and_si256(in_range, real));
    const auto valid_bits = static_cast<unsigned>(_mm256_movemask_ps(valid));
    if (valid_bits == 0) continue;
    const typename L::T* k0 = keys + s0 * kv_stride;
    const typename L::T* v0 = values + s0 * kv_stride;
    if (s0 + (kPrefetchBlocks + 1) * kBlock <= visible)
#pragma GCC unroll 8
      for (int i = 0; i < kBlock; ++i) {
        const auto* kp = reinterpret_cast<const char*>(k0 + (kPrefetchBlocks * kBlock + i) * kv_stride);
        const auto* vp = reinterpret_cast<const char*>(v0 + (kPrefetchBlocks * kBlock + i) * kv_stride);
        for (int64_t line = 0; line < row_bytes; line += 64) {
          _mm_prefetch(kp + line, _MM_HINT_T0);
          _mm_prefetch(vp + line, _MM_HINT_T0);
        }
      }
    for (int64_t g = 0; g < groups; ++g) {
      __m256 scores = _mm256_mul_ps(dot8<L>(q + g * q_stride, k0, kv_stride, count, head_dim), vscale);
      scores = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), scores, valid);
      const float block_max = reduce_max(scores);
      const float new_max = running_max[g] > block_max ? running_max[g] : block_max;
      const float alpha = std::exp(running_max[g] - new_max);
      const __m256 e = _mm256_and_ps(valid, exp_nonpositive(_mm256_sub_ps(scores, _mm256_set1_ps(new_max))));
      running_sum[g] = running_sum[g] * alpha + reduce_add(e);
      running_max[g] = new_max;
      _mm256_store_ps(p, e);
      float* o = out + g * q_stride;
      for (int64_t c0 = 0; c0 < head_dim; c0 += 8 * kPieceChunks) {
        const int64_t left = (head_dim - c0) / 8;
        accumulate_values_of<L>[(left < kPieceChunks ? left : kPieceChunks) - 1](o + c0, v0 + c0, kv_stride, p, valid_bits, alpha);
      }
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    const float inv = running_sum[g] > 0.0f ? 1.0f / running_sum[g] : 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) out[g * q_stride + i] *= inv;
  }
}

template <class L>
void attend(const float* q, int64_t q_stride, int64_t groups, const void* keys, const void* values, int64_t kv_stride,
            const int32_t* mask, int64_t visible, int64_t head_dim, float scale, float* out) {
  const auto* k = static_cast<const typename L::T*>(keys);
  const auto* v = static_cast<const typename L::T*>(values);
  for (int64_t g0 = 0; g0 < groups; g0 += kMaxGroups)
    attend_groups<L>(q + g0 * q_stride, q_stride, groups - g0 < kMaxGroups ? groups - g0 : kMaxGroups, k, v, kv_stride, mask,
                     visible, head_dim, scale, out + g0 * q_stride);
}

}  // namespace

void avx2_attend_group(const float* q, int64_t q_stride, int64_t groups, const void* keys, const void* values, DType dtype,
                       int64_t kv_stride, const int32_t* mask, int64_t visible, int64_t head_dim, float scale, float* out) {
  switch (dtype) {
    case DType::F16: return attend<LoadF16>(q, q_stride, groups, keys, values, kv_stride, mask, visible, head_dim, scale, out);
    case DType::BF16: return attend<LoadBF16>(q, q_stride, groups, keys, values, kv_stride, mask, visible, head_dim, scale, out);
    default: return attend<LoadF32>(q, q_stride, groups, keys, values, kv_stride, mask, visible, head_dim, scale, out);
  }
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
