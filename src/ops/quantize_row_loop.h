#pragma once
// The row loop of the SIMD quantisers (avx2_ and avx512_quantize_bf16_rows),
// around each file's own block quantiser. Include it after the file's
// `#pragma GCC target`: it then compiles, and the block quantiser inlines,
// with that file's instruction set. It includes nothing of its own for that
// reason; the file's headers come first.

namespace jetmoe::ops::kernels {

// Block quantisers take 32 bf16 weights, write their f16 scale and return the
// 32 codes as bytes in order. Q8_0 rows store the codes as they are; Q4_0
// rows pack two blocks into 32 bytes, the even block in the low nibbles (see
// ops/quantize.h).
using QuantizeBlock = __m256i (*)(const uint16_t* src, uint16_t* scale);

template <QuantizeBlock kQ8Block, QuantizeBlock kQ4Block>
void quantize_bf16_rows_with(Quant q, const uint16_t* src, int64_t rows, int64_t cols, uint8_t* quants,
                             uint16_t* scales) {
  const int64_t blocks = cols / 32;
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* w = src + r * cols;
    uint16_t* s = scales + r * blocks;
    if (q == Quant::Q8_0) {
      uint8_t* out = quants + r * cols;
      for (int64_t b = 0; b < blocks; ++b)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32), kQ8Block(w + b * 32, s + b));
    } else {
      uint8_t* out = quants + r * (cols / 2);
      for (int64_t b = 0; b + 1 < blocks; b += 2) {
        const __m256i lo = kQ4Block(w + b * 32, s + b), hi = kQ4Block(w + b * 32 + 32, s + b + 1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 16), _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)));
      }
    }
  }
}

}  // namespace jetmoe::ops::kernels
