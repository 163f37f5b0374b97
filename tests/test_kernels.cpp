// The fast matmul modes against double-precision references built from what
// each mode is defined to compute: bf16-rounded activations, quantised
// weights (and activations quantised per block of 32).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "ops/convert.h"
#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/matmul_kernels.h"
#include "ops/quantize.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {
namespace {

std::vector<uint16_t> random_bf16(int64_t n, std::mt19937& rng, float range = 1.0f) {
  std::uniform_real_distribution<float> uni(-range, range);
  std::vector<uint16_t> w(static_cast<size_t>(n));
  for (auto& h : w) h = f32_to_bf16(uni(rng));
  return w;
}

std::vector<float> random_f32(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = uni(rng);
  return x;
}

struct Quantized {
  std::vector<uint8_t> quants;
  std::vector<uint16_t> scales;
  WeightMatrix w;
};

Quantized quantize(ThreadPool& pool, Quant q, const std::vector<uint16_t>& bf16, int64_t rows, int64_t cols) {
  Quantized out;
  out.quants.resize(static_cast<size_t>(rows * quant_row_bytes(q, cols)));
  out.scales.resize(static_cast<size_t>(rows * cols / kQuantBlock));
  quantize_rows(pool, q, DType::BF16, bf16.data(), rows, cols, out.quants.data(), out.scales.data());
  out.w = {DType::BF16, out.quants.data(), rows, cols, Compute::F32, q, out.scales.data()};
  return out;
}

TEST(Kernels, F16RoundingMatchesF16ToF32) {
  // Every finite half survives f32 -> f16 unchanged; halfway cases round to even.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00u) == 0x7c00u) continue;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3c02);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1e-9f), 0x0000);
}

// BF16 rows quantise through the SIMD code where the CPU has it, F32 rows
// through the portable code: the same values must give the same bytes, so a
// GGUF file does not depend on the machine that wrote it.
TEST(Kernels, SimdQuantisationMatchesThePortableCode) {
  std::mt19937 rng(9);
  ThreadPool pool(2);
  const int64_t rows = 70, cols = 192;
  auto w = random_bf16(rows * cols, rng);
  // Ties between the largest positive and negative values, a zero block and tiny values.
  w[0] = f32_to_bf16(0.5f);
  w[1] = f32_to_bf16(-0.5f);
  for (int64_t i = cols; i < cols + 32; ++i) w[static_cast<size_t>(i)] = 0;
  for (int64_t i = 2 * cols; i < 2 * cols + 32; ++i)
    w[static_cast<size_t>(i)] = f32_to_bf16(1e-30f * static_cast<float>(i % 7));
  std::vector<float> wf(w.size());
  for (size_t i = 0; i < w.size(); ++i) wf[i] = bf16_to_f32(w[i]);
  for (Quant q : {Quant::Q8_0, Quant::Q4_0}) {
    const Quantized simd = quantize(pool, q, w, rows, cols);
    std::vector<uint8_t> quants(simd.quants.size());
    std::vector<uint16_t> scales(simd.scales.size());
    quantize_rows(pool, q, DType::F32, wf.data(), rows, cols, quants.data(), scales.data());
    EXPECT_EQ(simd.quants, quants) << "q" << (q == Quant::Q8_0 ? 8 : 4);
    EXPECT_EQ(simd.scales, scales) << "q" << (q == Quant::Q8_0 ? 8 : 4);
  }
}

// The integer kernels' activations, quantised per matmul: the SIMD code
// gives the portable code's bytes, including halfway cases (rounded to even),
// a zero block and a block whose largest magnitude is negative.
TEST(Kernels, SimdActivationQuantisationMatchesThePortableCode) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uni(-3.0f, 3.0f);
  const int64_t M = 3, K = 256;
  std::vector<float> x(static_cast<size_t>(M * K));
  for (auto& v : x) v = uni(rng);
  // Block 0: max 127 so x * 127 / 127 lands on halves: 0.5, 1.5, -2.5 must round to even.
  x[0] = 127.0f;
  x[1] = 0.5f;
  x[2] = 1.5f;
  x[3] = -2.5f;
  for (int64_t i = 32; i < 64; ++i) x[static_cast<size_t>(i)] = 0.0f;  // a zero block
  x[64] = -1e-3f;  // the block's largest magnitude is negative
  for (int64_t i = 65; i < 96; ++i) x[static_cast<size_t>(i)] = 1e-4f * static_cast<float>(i % 5);
  for (Quant w : {Quant::Q8_0, Quant::Q4_0}) {
    std::vector<int8_t> q1(x.size()), q2(x.size());
    std::vector<float> s1(x.size() / 4), s2(x.size() / 4);
    std::vector<int32_t> t1(x.size() / 4), t2(x.size() / 4);
    quantize_activations(x.data(), M, K, w, q1.data(), s1.data(), t1.data());
    kernels::avx2_quantize_activations(x.data(), M, K, w, q2.data(), s2.data(), t2.data());
    EXPECT_EQ(q1, q2);
    EXPECT_EQ(s1, s2);
    EXPECT_EQ(t1, t2);
  }
  std::vector<int8_t> q(x.size());
  std::vector<float> s(x.size() / 4);
  std::vector<int32_t> t(x.size() / 4);
  kernels::avx2_quantize_activations(x.data(), M, K, Quant::Q8_0, q.data(), s.data(), t.data());
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], 0);   // 0.5 -> 0
  EXPECT_EQ(q[2], 2);   // 1.5 -> 2
  EXPECT_EQ(q[3], -2);  // -2.5 -> -2
  EXPECT_EQ(q[64], -127);
}

TEST(Kernels, QuantizedRowsStayWithinHalfAStep) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const int64_t rows = 9, cols = 192;
  const auto w = random_bf16(rows * cols, rng);
  for (Quant q : {Quant::Q8_0, Quant::Q4_0}) {
    const Quantized qw = quantize(pool, q, w, rows, cols);
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(q, qw.quants.data() + r * quant_row_bytes(q, cols), qw.scales.data() + r * cols / kQuantBlock, cols,
                     row.data());
      for (int64_t i = 0; i < cols; ++i) {
        const float d = std::fabs(f16_to_f32(qw.scales[static_cast<size_t>(r * cols / kQuantBlock + i / kQuantBlock)]));
        // Half a step, plus the f16 rounding of the scale; q4_0's top level
        // is one step short of +max, so it may miss by a whole step.
        const float tol = (q == Quant::Q8_0 ? 0.5f : 1.0f) * d * 1.01f + 127.0f * d / 1024.0f;
        ASSERT_NEAR(row[static_cast<size_t>(i)], bf16_to_f32(w[static_cast<size_t>(r * cols + i)]), tol)
            << "q" << (q == Quant::Q8_0 ? 8 : 4) << " row " << r << " col " << i;
      }
    }
  }
}

// y = x . deq(w)^T up to the error of quantising x per block of 32:
// |x - dx*q| <= dx/2 for each element.
void check_quant_matmul(ThreadPool& pool, Quant q, int64_t M, int64_t N, int64_t K, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << "q" << (q == Quant::Q8_0 ? 8 : 4) << " M=" << M << " N=" << N << " K=" << K
                                    << " threads=" << pool.size());
  const auto w = random_bf16(N * K, rng);
  const auto x = random_f32(M * K, rng);
  const Quantized qw = quantize(pool, q, w, N, K);
  std::vector<float> y(static_cast<size_t>(M * N), NAN), wrow(static_cast<size_t>(K));
  matmul(pool, x.data(), M, qw.w, y.data());
  for (int64_t n = 0; n < N; ++n) {
    dequantize_row(q, qw.quants.data() + n * quant_row_bytes(q, K), qw.scales.data() + n * K / kQuantBlock, K, wrow.data());
    for (int64_t m = 0; m < M; ++m) {
      double ref = 0, tol = 1e-5;
      for (int64_t b = 0; b < K / kQuantBlock; ++b) {
        double amax = 0, wsum = 0;
        for (int64_t i = b * kQuantBlock; i < (b + 1) * kQuantBlock; ++i) {
          const double xv = x[static_cast<size_t>(m * K + i)], wv = wrow[static_cast<size_t>(i)];
          ref += xv * wv;
          amax = std::max(amax, std::fabs(xv));
          wsum += std::fabs(wv);
        }
        tol += (amax / 127.0 / 2.0) * wsum * 1.001 + 1e-6 * wsum * amax;
      }
      ASSERT_NEAR(y[static_cast<size_t>(m * N + n)], ref, tol) << "y[" << m << ", " << n << "]";
    }
  }
}

TEST(Kernels, QuantizedMatmulMatchesDequantizedReference) {
  std::mt19937 rng(7);
  ThreadPool one(1), two(2);
  for (ThreadPool* pool : {&one, &two})
    for (Quant q : {Quant::Q8_0, Quant::Q4_0})
      for (int64_t M : {1, 2, 3, 4, 5, 12, 17, 20, 37})
        for (int64_t N : {1, 7, 61})
          for (int64_t K : {64, 192}) check_quant_matmul(*pool, q, M, N, K, rng);
  // Long rows run in several K blocks, in a strip and in the tail (8 and 21 = 16 + 5).
  for (Quant q : {Quant::Q8_0, Quant::Q4_0})
    for (int64_t M : {8, 9, 21}) check_quant_matmul(two, q, M, 50, 4224, rng);
  // Decode tiles over whole groups of 8 blocks and a ragged last one.
  for (Quant q : {Quant::Q8_0, Quant::Q4_0})
    for (int64_t M : {1, 2, 3, 4}) check_quant_matmul(two, q, M, 50, 4224, rng);
}

TEST(Kernels, Bf16ComputeMatchesBf16RoundedReference) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (int64_t M : {1, 4, 5, 33})
    for (int64_t N : {3, 50})
      for (int64_t K : {1, 31, 64, 130, 2100}) {
        SCOPED_TRACE(::testing::Message() << "M=" << M << " N=" << N << " K=" << K);
        const auto w = random_bf16(N * K, rng);
        const auto x = random_f32(M * K, rng);
        std::vector<float> y(static_cast<size_t>(M * N), NAN);
        matmul(pool, x.data(), M, {DType::BF16, w.data(), N, K, Compute::BF16}, y.data());
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double ref = 0, mag = 0, exact = 0;
            for (int64_t k = 0; k < K; ++k) {
              const double wv = bf16_to_f32(w[static_cast<size_t>(n * K + k)]);
              const double xv = x[static_cast<size_t>(m * K + k)];
              ref += bf16_to_f32(f32_to_bf16(static_cast<float>(xv))) * wv;
              exact += xv * wv;
              mag += std::fabs(xv * wv);
            }
            const float got = y[static_cast<size_t>(m * N + n)];
            // Where the CPU lacks AVX512_BF16 the exact kernel runs instead.
            const double tol = static_cast<double>(K + 2) * FLT_EPSILON * mag + 1e-30;
            const bool fast = cpu_features().avx512_bf16;
            ASSERT_TRUE(std::fabs(got - ref) <= tol || (!fast && std::fabs(got - exact) <= tol))
                << "y[" << m << ", " << n << "] = " << got << ", bf16 reference " << ref;
          }
      }
}

// y = sum over blocks of dx * dw * (the integer dot of the block's codes),
// checked to f32 rounding: far tighter than the bound on quantising x above
// allows, so a kernel that scaled a block by another's dx or dw, or dropped
// or repeated codes, fails.
void expect_scaled_integer_dots(ThreadPool& pool, Quant q, int64_t M, int64_t N, int64_t K, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << "q" << (q == Quant::Q8_0 ? 8 : 4) << " M=" << M << " N=" << N << " K=" << K);
  const Quantized qw = quantize(pool, q, random_bf16(N * K, rng), N, K);
  const auto x = random_f32(M * K, rng);
  std::vector<int8_t> xq(static_cast<size_t>(M * K));
  std::vector<float> xs(static_cast<size_t>(M * K / 4)), y(static_cast<size_t>(M * N)), wrow(static_cast<size_t>(K));
  std::vector<int32_t> start(static_cast<size_t>(M * K / 4));
  quantize_activations(x.data(), M, K, q, xq.data(), xs.data(), start.data());
  matmul(pool, x.data(), M, qw.w, y.data());
  for (int64_t n = 0; n < N; ++n) {
    const uint16_t* ws = qw.scales.data() + n * K / kQuantBlock;
    dequantize_row(q, qw.quants.data() + n * quant_row_bytes(q, K), ws, K, wrow.data());
    for (int64_t m = 0; m < M; ++m) {
      double ref = 0, magnitude = 0;
      for (int64_t b = 0; b < K / kQuantBlock; ++b) {
        const double dw = f16_to_f32(ws[b]), dx = xs[static_cast<size_t>(m * K / 4 + b * 8)];
        int64_t dot = 0;
        for (int64_t i = b * kQuantBlock; i < (b + 1) * kQuantBlock; ++i)
          dot += xq[static_cast<size_t>(m * K + i)] * (dw != 0 ? std::lround(wrow[static_cast<size_t>(i)] / dw) : 0);
        ref += dx * dw * static_cast<double>(dot);
        magnitude += std::fabs(dx * dw * static_cast<double>(dot));
      }
      ASSERT_NEAR(y[static_cast<size_t>(m * N + n)], ref, 4e-6 * magnitude + 1e-9) << "y[" << m << ", " << n << "]";
    }
  }
}

struct Shape {
  int64_t N, K;
};

// Decode (M <= 4) on the SIMD paths is defined as integer dot products of the
// quantised activations and codes per block, scaled by dx * dw. 1031 rows
// split into many thread chunks with ragged ends, so every output must come
// from its own weight row whatever order the tiles take them in.
TEST(Kernels, QuantizedDecodeIsTheScaledIntegerDotPerBlock) {
  const CpuFeatures& cpu = cpu_features();
  if (!(cpu.avx512 ? cpu.avx512_vnni : cpu.avx2_fma)) GTEST_SKIP() << "no integer dot product kernels on this CPU";
  std::mt19937 rng(11);
  ThreadPool pool(2);
  for (Quant q : {Quant::Q8_0, Quant::Q4_0})
    for (int64_t M : {1, 2, 3, 4})
      for (const Shape shape : {Shape{37, 192}, Shape{37, 4224}, Shape{1031, 256}})
        expect_scaled_integer_dots(pool, q, M, shape.N, shape.K, rng);
}

// Q4_0 prefill on AVX512_VNNI is the same integer dot per block, through the
// outer-product tiles over strips of 16 rows: whole strips, a strip pair and
// a lone strip, partly filled strips (12, 37 = 2 x 16 + 5) and the short
// tails that go through the dot tiles (20 = 16 + 4, 52 = 3 x 16 + 4). 101 and
// 1031 rows leave ragged 6-row tiles at the end of a thread's chunk.
TEST(Kernels, Q4PrefillIsTheScaledIntegerDotPerBlock) {
  if (!cpu_features().avx512_vnni) GTEST_SKIP() << "the integer prefill tiles need AVX512_VNNI";
  std::mt19937 rng(13);
  ThreadPool pool(2);
  for (int64_t M : {12, 16, 20, 32, 37, 52})
    for (const Shape shape : {Shape{37, 192}, Shape{101, 4224}, Shape{1031, 256}})
      expect_scaled_integer_dots(pool, Quant::Q4_0, M, shape.N, shape.K, rng);
}

TEST(Kernels, QuantizedMatmulSameResultWhateverThreads) {
  std::mt19937 rng(3);
  ThreadPool p1(1), p3(3);
  const int64_t N = 77, K = 256;
  for (int64_t M : {6, 37})
    for (Quant q : {Quant::Q8_0, Quant::Q4_0}) {
      const auto w = random_bf16(N * K, rng);
      const auto x = random_f32(M * K, rng);
      const Quantized qw = quantize(p1, q, w, N, K);
      std::vector<float> y1(static_cast<size_t>(M * N)), y3(static_cast<size_t>(M * N));
      matmul(p1, x.data(), M, qw.w, y1.data());
      matmul(p3, x.data(), M, qw.w, y3.data());
      EXPECT_EQ(y1, y3) << "M=" << M;
    }
}

// Which tile shape computes an output depends on where the thread split
// falls; its bits must not.
TEST(Kernels, Bf16MatmulSameResultWhateverThreads) {
  std::mt19937 rng(5);
  ThreadPool p1(1), p3(3);
  for (int64_t M : {1, 3, 4, 8, 17, 36})
    for (int64_t K : {128, 136}) {
      const int64_t N = 157;
      const auto w = random_bf16(N * K, rng);
      const auto x = random_f32(M * K, rng);
      const WeightMatrix wm{DType::BF16, w.data(), N, K};
      std::vector<float> y1(static_cast<size_t>(M * N)), y3(static_cast<size_t>(M * N));
      matmul(p1, x.data(), M, wm, y1.data());
      matmul(p3, x.data(), M, wm, y3.data());
      EXPECT_EQ(y1, y3) << "M=" << M << " K=" << K;
    }
}

// Each row of batches of 2 .. max_rows rows, bit for bit against the row alone.
void expect_rows_equal_single_rows(ThreadPool& pool, const WeightMatrix& w, int64_t max_rows, std::mt19937& rng,
                                   const char* what) {
  const int64_t N = w.rows, K = w.cols;
  for (int64_t M = 2; M <= max_rows; ++M) {
    const auto x = random_f32(M * K, rng);
    std::vector<float> batched(static_cast<size_t>(M * N)), single(static_cast<size_t>(N));
    matmul(pool, x.data(), M, w, batched.data());
    for (int64_t m = 0; m < M; ++m) {
      matmul(pool, x.data() + m * K, 1, w, single.data());
      EXPECT_TRUE(std::equal(single.begin(), single.end(), batched.begin() + m * N))
          << what << " K=" << K << " M=" << M << " row " << m;
    }
  }
}

// Batched decode on AVX2 (up to kAvx2GemvMaxRows sequences) sums each row
// as it would alone, so a server's batched streams give the bits of a single
// request. A tile that mixed rows, or reduced them in another order, fails.
TEST(Kernels, Avx2BatchedDecodeRowsEqualSingleRows) {
  const CpuFeatures& cpu = cpu_features();
  if (!cpu.avx2_fma || cpu.avx512) GTEST_SKIP() << "the AVX2 dispatch is not the one this CPU uses";
  std::mt19937 rng(8);
  ThreadPool pool(2);
  // Quantised weights: up to 4 rows (integer dot products); above, prefill
  // keeps f32 activations for accuracy.
  for (Quant q : {Quant::Q8_0, Quant::Q4_0})
    for (int64_t K : {128, 4224}) {
      const int64_t N = 61;
      const Quantized w = quantize(pool, q, random_bf16(N * K, rng), N, K);
      expect_rows_equal_single_rows(pool, w.w, kernels::kGemvMaxRows, rng, q == Quant::Q8_0 ? "Q8_0" : "Q4_0");
    }
  for (const DType dtype : {DType::BF16, DType::F16, DType::F32})
    for (int64_t K : {128, 136}) {
      const int64_t N = 157;
      const auto bf16 = random_bf16(N * K, rng);
      std::vector<uint16_t> f16(bf16.size());
      std::vector<float> f32(bf16.size());
      for (size_t i = 0; i < bf16.size(); ++i) {
        f32[i] = bf16_to_f32(bf16[i]);
        f16[i] = f32_to_f16(f32[i]);
      }
      const void* data = dtype == DType::BF16 ? static_cast<const void*>(bf16.data())
                         : dtype == DType::F16 ? static_cast<const void*>(f16.data())
                                               : static_cast<const void*>(f32.data());
      expect_rows_equal_single_rows(pool, {dtype, data, N, K}, kernels::kAvx2GemvMaxRows, rng, dtype_name(dtype));
    }
}

// BF16 heads packed at load (pack_weights): within float32 summation error
// of a double reference for ragged panels (N % 8) and odd K, each row of a
// batch bit for bit the row alone whatever the thread split, and `data` is
// never read once `packed` is set (a null data pointer would fault).
TEST(Kernels, PackedBf16MatmulMatchesReferenceAndRowsAlone) {
  std::mt19937 rng(21);
  ThreadPool one(1), three(3);
  if (packed_bytes({DType::BF16, nullptr, 8, 128}) == 0) GTEST_SKIP() << "no packed kernel for this CPU";
  EXPECT_EQ(packed_bytes({DType::BF16, nullptr, 8, 2048}), 0) << "long rows stay row-major";
  EXPECT_EQ(packed_bytes({DType::F32, nullptr, 8, 128}), 0) << "only bf16 is packed";
  for (int64_t N : {1, 7, 9, 61, 200})
    for (int64_t K : {1, 2, 7, 64, 130, 1024}) {
      const auto bf16 = random_bf16(N * K, rng);
      WeightMatrix w{DType::BF16, bf16.data(), N, K};
      std::vector<uint32_t> packed(static_cast<size_t>(packed_bytes(w)) / sizeof(uint32_t));
      pack_weights(w, packed.data());
      w.data = nullptr;
      w.packed = packed.data();
      const int64_t max_rows = 10;
      const auto x = random_f32(max_rows * K, rng);
      std::vector<float> single(static_cast<size_t>(max_rows * N)), batched(single.size()), split(single.size());
      for (int64_t m = 0; m < max_rows; ++m) matmul(one, x.data() + m * K, 1, w, single.data() + m * N);
      for (int64_t m = 0; m < max_rows; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0.0, mag = 0.0;
          for (int64_t k = 0; k < K; ++k) {
            const double p = static_cast<double>(x[static_cast<size_t>(m * K + k)]) *
                             bf16_to_f32(bf16[static_cast<size_t>(n * K + k)]);
            ref += p;
            mag += std::abs(p);
          }
          const double tol = static_cast<double>(K + 2) * FLT_EPSILON * mag + 1e-30;
          ASSERT_NEAR(single[static_cast<size_t>(m * N + n)], ref, tol)
              << "N=" << N << " K=" << K << " y[" << m << ", " << n << "]";
        }
      for (int64_t M = 2; M <= max_rows; ++M) {
        matmul(one, x.data(), M, w, batched.data());
        matmul(three, x.data(), M, w, split.data());
        EXPECT_TRUE(std::equal(batched.begin(), batched.begin() + M * N, single.begin()))
            << "N=" << N << " K=" << K << " M=" << M;
        EXPECT_TRUE(std::equal(split.begin(), split.begin() + M * N, single.begin()))
            << "3 threads, N=" << N << " K=" << K << " M=" << M;
      }
    }
}

// The prefill tiles read a bf16 weight as the 32-bit word that ends with it,
// so the matrix's first weight needs its own load. A matrix that fills a page
// between two unreadable pages faults on any read outside it (sanitizers do
// not see reads made by vector intrinsics).
TEST(Kernels, Bf16MatmulReadsOnlyTheMatrix) {
  const auto page = static_cast<int64_t>(sysconf(_SC_PAGESIZE));
  const int64_t K = 64, N = page / (2 * K);
  void* map = mmap(nullptr, static_cast<size_t>(3 * page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* bytes = static_cast<uint8_t*>(map);
  ASSERT_EQ(mprotect(bytes, static_cast<size_t>(page), PROT_NONE), 0);
  ASSERT_EQ(mprotect(bytes + 2 * page, static_cast<size_t>(page), PROT_NONE), 0);
  auto* w = reinterpret_cast<uint16_t*>(bytes + page);
  std::mt19937 rng(21);
  const std::vector<uint16_t> values = random_bf16(N * K, rng);
  std::copy(values.begin(), values.end(), w);
  ThreadPool pool(2);
  for (int64_t M : {1, 4, 5, 9, 17}) {
    const std::vector<float> x = random_f32(M * K, rng);
    std::vector<float> y(static_cast<size_t>(M * N));
    matmul(pool, x.data(), M, {DType::BF16, w, N, K}, y.data());
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0.0, mag = 0.0;
        for (int64_t k = 0; k < K; ++k) {
          const double p = static_cast<double>(x[static_cast<size_t>(m * K + k)]) * bf16_to_f32(w[n * K + k]);
          ref += p;
          mag += std::abs(p);
        }
        ASSERT_NEAR(y[static_cast<size_t>(m * N + n)], ref, 1e-5 * mag) << "M=" << M << " y[" << m << ", " << n << "]";
      }
  }
  munmap(map, static_cast<size_t>(3 * page));
}

TEST(Kernels, WeightBytesCountQuantsAndScales) {
  EXPECT_EQ(weight_bytes({DType::BF16, nullptr, 10, 64}), 10 * 64 * 2);
  EXPECT_EQ(weight_bytes({DType::BF16, nullptr, 10, 64, Compute::F32, Quant::Q8_0}), 10 * 68);  // 34 bytes per 32
  EXPECT_EQ(weight_bytes({DType::BF16, nullptr, 10, 64, Compute::F32, Quant::Q4_0}), 10 * 36);  // 18 bytes per 32
}

}  // namespace
}  // namespace jetmoe::ops
