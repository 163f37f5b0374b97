#pragma once
// The AVX2 exp shared by attention's online softmax and ops::exp_shifted.
#include <immintrin.h>

#include <cstdint>

namespace jetmoe::ops::kernels {

// exp(x) for x <= 0 (a score minus the running maximum): Cody-Waite
// reduction, degree-7 Taylor polynomial (error < 1e-8 relative), times 2^n
// built in the exponent bits. Inputs below -87 give exp(-87) ~ 1.6e-38
// instead of a denormal; next to the maximum's exp(0) = 1 in every sum that
// is nothing. The target attribute lets it inline into the AVX2 kernels
// from any translation unit; only they call it.
__attribute__((target("avx2,fma"))) inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // n is in [-126, 0]: 2^n is a normal float with exponent field n + 127.
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_n));
}

// ops::exp_shifted on AVX2 + FMA.
double avx2_exp_shifted(const float* x, int64_t n, float shift, float* out);

}  // namespace jetmoe::ops::kernels
