// ops::exp_shifted for AVX2 + FMA, compiled for that target through the
// pragma below and run only after cpu_features() said so.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "ops/exp_avx2.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace jetmoe::ops::kernels {

double avx2_exp_shifted(const float* x, int64_t n, float shift, float* out) {
  const __m256 s = _mm256_set1_ps(shift), lowest = _mm256_set1_ps(-87.0f);
  __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), s);
    // Below -87 (and -inf, NaN) is 0, where exp_nonpositive would clamp.
    const __m256 e = _mm256_and_ps(_mm256_cmp_ps(d, lowest, _CMP_GE_OQ), exp_nonpositive(d));
    _mm256_storeu_ps(out + i, e);
    low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(low, high));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) {
    const float d = x[i] - shift;
    out[i] = d >= -87.0f ? std::exp(d) : 0.0f;
    sum += out[i];
  }
  return sum;
}

}  // namespace jetmoe::ops::kernels

#pragma GCC pop_options
