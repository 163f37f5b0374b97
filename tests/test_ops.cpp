// Kernels against naive double-precision references.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <numbers>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/convert.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/softmax.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {
namespace {

uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

float bits_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// IEEE half precision decoded from its definition, in double.
double f16_reference(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * std::numeric_limits<double>::infinity();
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  return sign * std::ldexp(1.0 + mant / 1024.0, exp - 15);
}

// ---------------------------------------------------------------- matmul

struct MatmulCase {
  DType dtype;
  int64_t M, rows, cols;
};

// Random weights in the given dtype, and the exact values they hold as doubles.
void random_weights(DType dtype, int64_t n, std::mt19937& rng, std::vector<uint8_t>* bytes, std::vector<double>* values) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  values->resize(static_cast<size_t>(n));
  bytes->resize(static_cast<size_t>(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DType::F32) {
      const float v = uni(rng);
      std::memcpy(bytes->data() + i * 4, &v, 4);
      (*values)[static_cast<size_t>(i)] = v;
    } else if (dtype == DType::BF16) {
      // The top 16 bits of a float are an exact bf16 value.
      const uint16_t h = static_cast<uint16_t>(f32_bits(uni(rng)) >> 16);
      std::memcpy(bytes->data() + i * 2, &h, 2);
      (*values)[static_cast<size_t>(i)] = bits_f32(static_cast<uint32_t>(h) << 16);
    } else {
      // Random half bit patterns with exponents 0..16 (subnormals up to ~3).
      const uint16_t sign = static_cast<uint16_t>((rng() & 1u) << 15);
      const uint16_t exp = static_cast<uint16_t>(rng() % 17u);
      const uint16_t mant = static_cast<uint16_t>(rng() & 0x3ffu);
      const uint16_t h = static_cast<uint16_t>(sign | (exp << 10) | mant);
      std::memcpy(bytes->data() + i * 2, &h, 2);
      (*values)[static_cast<size_t>(i)] = f16_reference(h);
    }
  }
}

void check_matmul(ThreadPool& pool, const MatmulCase& c, std::mt19937& rng) {
  SCOPED_TRACE(::testing::Message() << dtype_name(c.dtype) << " M=" << c.M << " rows=" << c.rows << " cols=" << c.cols
                                    << " threads=" << pool.size());
  std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
  std::vector<float> x(static_cast<size_t>(c.M * c.cols));
  for (auto& v : x) v = uni(rng);
  std::vector<uint8_t> bytes;
  std::vector<double> w;
  random_weights(c.dtype, c.rows * c.cols, rng, &bytes, &w);
  std::vector<float> y(static_cast<size_t>(c.M * c.rows), std::numeric_limits<float>::quiet_NaN());
  matmul(pool, x.data(), c.M, WeightMatrix{c.dtype, bytes.data(), c.rows, c.cols}, y.data());
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.rows; ++n) {
      double ref = 0.0, mag = 0.0;
      for (int64_t k = 0; k < c.cols; ++k) {
        const double p = static_cast<double>(x[static_cast<size_t>(m * c.cols + k)]) * w[static_cast<size_t>(n * c.cols + k)];
        ref += p;
        mag += std::abs(p);
      }
      // Worst-case float32 summation error bound, with headroom.
      const double tol = static_cast<double>(c.cols + 2) * FLT_EPSILON * mag + 1e-30;
      const float got = y[static_cast<size_t>(m * c.rows + n)];
      ASSERT_TRUE(std::isfinite(got)) << "y[" << m << ", " << n << "] not written";
      ASSERT_NEAR(got, ref, tol) << "y[" << m << ", " << n << "]";
    }
  }
}

TEST(Ops, MatmulMatchesDoubleReference) {
  std::mt19937 rng(1234);
  ThreadPool one(1), three(3);
  for (ThreadPool* pool : {&one, &three}) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      // Decode tiles (up to 8 rows on AVX2); above, outer-product tiles over
      // strips of 16 activation rows, and a last 8 or fewer through the dot
      // tiles (17 = 16 + 1, 40 = 16 + 16 + 8).
      for (int64_t M : {1, 2, 3, 4, 8, 16, 17, 40}) {
        for (int64_t rows : {1, 5, 33, 100}) {
          for (int64_t cols : {1, 7, 64, 130}) check_matmul(*pool, {dtype, M, rows, cols}, rng);
        }
      }
      // Rows longer than one cache block: the GEMM path adds block sums, in
      // the strips and in the tail (20 = 16 + 4). AVX-512 takes strips from
      // 32 rows, with a last 4 or fewer through the dot tiles (36 = 2 x 16 +
      // 4) or padded into a strip (40, 45).
      for (int64_t M : {9, 20, 36, 45}) check_matmul(*pool, {dtype, M, 50, 2100}, rng);
    }
  }
}

TEST(Ops, MatmulSameResultWhateverThreads) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int64_t M = 5, N = 77, K = 45;
  std::vector<float> x(M * K), w(N * K);
  for (auto& v : x) v = uni(rng);
  for (auto& v : w) v = uni(rng);
  std::vector<float> y1(M * N), y4(M * N);
  ThreadPool p1(1), p4(4);
  matmul(p1, x.data(), M, {DType::F32, w.data(), N, K}, y1.data());
  matmul(p4, x.data(), M, {DType::F32, w.data(), N, K}, y4.data());
  EXPECT_EQ(y1, y4);
}

TEST(Ops, WeightRowAndToF32) {
  const std::vector<uint16_t> bf = {0x3f80, 0xc040, 0x0000, 0x4120, 0xbf00, 0x7f80};  // 1, -3, 0, 10, -0.5, inf
  float row[3];
  weight_row_to_f32({DType::BF16, bf.data(), 2, 3}, 1, row);
  EXPECT_EQ(row[0], 10.0f);
  EXPECT_EQ(row[1], -0.5f);
  EXPECT_EQ(row[2], std::numeric_limits<float>::infinity());
  const std::vector<uint16_t> h = {0x3c00, 0x4248, 0x8400};  // 1, 3.140625, -2^-14
  float out[3];
  to_f32(DType::F16, h.data(), 3, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.140625f);
  EXPECT_EQ(out[2], -std::ldexp(1.0f, -14));
  const std::vector<float> f = {1.5f, -2.0f, 7.0f, 8.0f};
  weight_row_to_f32({DType::F32, f.data(), 2, 2}, 1, row);
  EXPECT_EQ(row[0], 7.0f);
  EXPECT_EQ(row[1], 8.0f);
}

// ---------------------------------------------------------------- conversions

TEST(Ops, Bf16ToF32EdgeCases) {
  EXPECT_EQ(f32_bits(bf16_to_f32(0x0000)), 0x00000000u);
  EXPECT_EQ(f32_bits(bf16_to_f32(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::signbit(bf16_to_f32(0x8000)));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bf16_to_f32(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7f81)));
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
}

TEST(Ops, F32ToBf16EdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(inf), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-inf), 0xff80);
  // NaN stays NaN, even a signalling NaN whose payload lives in the low bits
  // (truncating it would give infinity).
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bits_f32(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bits_f32(0xff800001u)))));
  // Round to nearest, ties to even.
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808000u)), 0x3f80);  // halfway, even below
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f818000u)), 0x3f82);  // halfway, even above
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808001u)), 0x3f81);  // just above halfway
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f807fffu)), 0x3f80);  // just below halfway
  EXPECT_EQ(f32_to_bf16(bits_f32(0xbf818000u)), 0xbf82);  // negative tie
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00008000u)), 0x0000);  // subnormal tie to even (0)
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00018000u)), 0x0002);  // subnormal tie to even (2)

  // Random finite floats: the result is the nearest bf16, ties to even.
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = rng();
    const float f = bits_f32(bits);
    if (!std::isfinite(f)) continue;
    const uint16_t got = f32_to_bf16(f);
    const uint16_t lo = static_cast<uint16_t>(bits >> 16);  // truncation
    const uint16_t hi = static_cast<uint16_t>(lo + 1);     // next magnitude up
    // Decoded from the bit layout; the step past the largest finite value is
    // 2^128 (where IEEE rounding overflows to infinity).
    auto value = [](uint16_t h) {
      if ((h & 0x7fffu) == 0x7f80u) return std::ldexp((h & 0x8000u) ? -1.0 : 1.0, 128);
      return static_cast<double>(bits_f32(static_cast<uint32_t>(h) << 16));
    };
    const double dlo = std::abs(static_cast<double>(f) - value(lo));
    const double dhi = std::abs(static_cast<double>(f) - value(hi));
    uint16_t want;
    if (dlo < dhi) want = lo;
    else if (dhi < dlo) want = hi;
    else want = (lo & 1) ? hi : lo;
    ASSERT_EQ(got, want) << std::hex << "bits 0x" << bits;
  }
}

TEST(Ops, F16ToF32EdgeCasesAndExhaustive) {
  EXPECT_EQ(f32_bits(f16_to_f32(0x0000)), 0x00000000u);
  EXPECT_EQ(f32_bits(f16_to_f32(0x8000)), 0x80000000u);
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7c01)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfe00)));
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0200), std::ldexp(1.0f, -15));
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const double want = f16_reference(static_cast<uint16_t>(h));
    const float got = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << std::hex << "0x" << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000u) != 0) << std::hex << h;
    }
  }
}

// ---------------------------------------------------------------- softmax / top-k

TEST(Ops, SoftmaxMatchesReference) {
  const std::vector<std::vector<float>> cases = {
      {0.0f},
      {1.0f, 2.0f, 3.0f},
      {-1.0f, -1.0f, -1.0f, -1.0f},
      {1000.0f, 1001.0f, 999.0f},       // needs max subtraction
      {-1000.0f, -1001.0f, -2000.0f},
      {0.5f, -0.25f, 3.0f, 2.0f, -7.0f, 0.0f, 1.0f},
  };
  for (const auto& c : cases) {
    std::vector<float> x = c;
    softmax(x.data(), static_cast<int64_t>(x.size()));
    const double mx = *std::max_element(c.begin(), c.end());
    double sum = 0.0;
    for (float v : c) sum += std::exp(static_cast<double>(v) - mx);
    double total = 0.0;
    for (size_t i = 0; i < c.size(); ++i) {
      const double ref = std::exp(static_cast<double>(c[i]) - mx) / sum;
      EXPECT_NEAR(x[i], ref, 1e-6 + 1e-6 * ref) << "case size " << c.size() << " index " << i;
      total += x[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-6);
  }
  float one = 42.0f;
  softmax(&one, 1);
  EXPECT_EQ(one, 1.0f);
}

TEST(Ops, TopKDescendingTiesLowerIndexFirst) {
  const std::vector<float> x = {0.1f, 0.5f, 0.3f, 0.5f, -1.0f, 0.9f};
  int32_t idx[6];
  float val[6];
  top_k(x.data(), 6, 3, idx, val);
  EXPECT_EQ((std::vector<int32_t>(idx, idx + 3)), (std::vector<int32_t>{5, 1, 3}));
  EXPECT_EQ((std::vector<float>(val, val + 3)), (std::vector<float>{0.9f, 0.5f, 0.5f}));
  top_k(x.data(), 6, 6, idx, val);
  EXPECT_EQ((std::vector<int32_t>(idx, idx + 6)), (std::vector<int32_t>{5, 1, 3, 2, 0, 4}));
  top_k(x.data(), 6, 1, idx, val);
  EXPECT_EQ(idx[0], 5);
  EXPECT_EQ(val[0], 0.9f);

  const std::vector<float> same = {2.0f, 2.0f, 2.0f, 2.0f};
  top_k(same.data(), 4, 4, idx, val);
  EXPECT_EQ((std::vector<int32_t>(idx, idx + 4)), (std::vector<int32_t>{0, 1, 2, 3}));

  // Random values with many ties against a stable sort.
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 12);
    const int64_t k = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(n));
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& e : v) e = static_cast<float>(static_cast<int>(rng() % 5) - 2);
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return v[static_cast<size_t>(a)] > v[static_cast<size_t>(b)]; });
    std::vector<int32_t> gi(static_cast<size_t>(k));
    std::vector<float> gv(static_cast<size_t>(k));
    top_k(v.data(), n, k, gi.data(), gv.data());
    for (int64_t j = 0; j < k; ++j) {
      ASSERT_EQ(gi[static_cast<size_t>(j)], order[static_cast<size_t>(j)]) << "trial " << trial << " j " << j;
      ASSERT_EQ(gv[static_cast<size_t>(j)], v[static_cast<size_t>(order[static_cast<size_t>(j)])]);
    }
  }
}

// ---------------------------------------------------------------- rms_norm

TEST(Ops, RmsNormMatchesReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-3.0f, 3.0f);
  for (int64_t dim : {1, 5, 64, 257}) {
    for (float eps : {1e-6f, 0.5f}) {
      const int64_t rows = 3;
      std::vector<float> x(static_cast<size_t>(rows * dim)), w(static_cast<size_t>(dim)), out(x.size());
      for (auto& v : x) v = uni(rng);
      for (auto& v : w) v = uni(rng);
      // One row tiny, so eps matters there.
      for (int64_t i = 0; i < dim; ++i) x[static_cast<size_t>(dim + i)] *= 1e-3f;
      rms_norm(x.data(), rows, dim, w.data(), eps, out.data());
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0.0;
        for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[static_cast<size_t>(r * dim + i)]) * x[static_cast<size_t>(r * dim + i)];
        const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + static_cast<double>(eps));
        for (int64_t i = 0; i < dim; ++i) {
          const double ref = static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(r * dim + i)] * inv;
          EXPECT_NEAR(out[static_cast<size_t>(r * dim + i)], ref, 1e-5 * std::abs(ref) + 1e-6)
              << "dim " << dim << " eps " << eps << " row " << r << " i " << i;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- rope

TEST(Ops, RopeMatchesDoubleReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (double theta : {10000.0, 500000.0}) {
    for (int64_t d : {2, 8, 64}) {
      const std::vector<float> inv = rope_inv_freq(d, theta);
      ASSERT_EQ(static_cast<int64_t>(inv.size()), d / 2);
      for (int64_t i = 0; i < d / 2; ++i) {
        const double ref = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
        EXPECT_NEAR(inv[static_cast<size_t>(i)], ref, 1e-6 * ref) << "theta " << theta << " d " << d << " i " << i;
      }
      for (int64_t pos : {0, 1, 100}) {
        SCOPED_TRACE(::testing::Message() << "theta " << theta << " d " << d << " pos " << pos);
        std::vector<float> c(static_cast<size_t>(d / 2)), s(static_cast<size_t>(d / 2));
        rope_cos_sin(inv, pos, c.data(), s.data());
        const int64_t heads = 3;
        std::vector<float> x(static_cast<size_t>(heads * d));
        for (auto& v : x) v = uni(rng);
        const std::vector<float> orig = x;
        apply_rope(x.data(), heads, d, c.data(), s.data());
        for (int64_t h = 0; h < heads; ++h) {
          for (int64_t i = 0; i < d / 2; ++i) {
            const double angle = static_cast<double>(pos) * std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
            const double a = orig[static_cast<size_t>(h * d + i)], b = orig[static_cast<size_t>(h * d + i + d / 2)];
            const double r0 = a * std::cos(angle) - b * std::sin(angle);
            const double r1 = b * std::cos(angle) + a * std::sin(angle);
            EXPECT_NEAR(c[static_cast<size_t>(i)], std::cos(angle), 5e-5);
            EXPECT_NEAR(s[static_cast<size_t>(i)], std::sin(angle), 5e-5);
            EXPECT_NEAR(x[static_cast<size_t>(h * d + i)], r0, 1e-4) << "head " << h << " i " << i;
            EXPECT_NEAR(x[static_cast<size_t>(h * d + i + d / 2)], r1, 1e-4) << "head " << h << " i " << i;
            if (pos == 0) {
              EXPECT_EQ(x[static_cast<size_t>(h * d + i)], orig[static_cast<size_t>(h * d + i)]);
              EXPECT_EQ(x[static_cast<size_t>(h * d + i + d / 2)], orig[static_cast<size_t>(h * d + i + d / 2)]);
            }
          }
        }
        // A rotation keeps each pair's length.
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t i = 0; i < d / 2; ++i) {
            const size_t p = static_cast<size_t>(h * d + i), q = static_cast<size_t>(h * d + i + d / 2);
            EXPECT_NEAR(std::hypot(x[p], x[q]), std::hypot(orig[p], orig[q]), 1e-5);
          }
      }
    }
  }
}

// ---------------------------------------------------------------- activations

double act_reference(Activation a, double x) {
  switch (a) {
    case Activation::SiLU: return x / (1.0 + std::exp(-x));
    case Activation::GELU: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::GELUTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
    case Activation::ReLU: return x > 0 ? x : 0.0;
  }
  return NAN;
}

TEST(Ops, GatedActivationMatchesReference) {
  Activation a{};
  ASSERT_TRUE(parse_activation("silu", &a));
  EXPECT_EQ(a, Activation::SiLU);
  ASSERT_TRUE(parse_activation("gelu", &a));
  EXPECT_EQ(a, Activation::GELU);
  ASSERT_TRUE(parse_activation("relu", &a));
  EXPECT_EQ(a, Activation::ReLU);
  ASSERT_TRUE(parse_activation("gelu_pytorch_tanh", &a));
  EXPECT_EQ(a, Activation::GELUTanh);
  EXPECT_FALSE(parse_activation("not_an_activation", &a));
  EXPECT_TRUE(parse_activation("swish", nullptr));

  const int64_t rows = 3, dim = 41;
  std::vector<float> u(static_cast<size_t>(rows * 2 * dim));
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uni(-6.0f, 6.0f);
  for (auto& v : u) v = uni(rng);
  u[0] = 0.0f;
  u[1] = -30.0f;
  u[2] = 30.0f;
  for (Activation act : {Activation::SiLU, Activation::GELU, Activation::GELUTanh, Activation::ReLU}) {
    std::vector<float> out(static_cast<size_t>(rows * dim), NAN);
    gated_activation(u.data(), rows, dim, act, out.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) {
        const double g = u[static_cast<size_t>(r * 2 * dim + i)], up = u[static_cast<size_t>(r * 2 * dim + dim + i)];
        const double ref = act_reference(act, g) * up;
        EXPECT_NEAR(out[static_cast<size_t>(r * dim + i)], ref, 4e-6 * std::abs(ref) + 4e-6)
            << "act " << static_cast<int>(act) << " row " << r << " i " << i;
      }
  }
}

// ---------------------------------------------------------------- thread pool

TEST(Ops, ParallelForVisitsEachIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 64, 100, 1001}) {
      for (int64_t grain : {0, 1, 3, 16, 1000, 5000}) {
        std::vector<std::atomic<int>> count(static_cast<size_t>(n));
        for (auto& c : count) c = 0;
        std::atomic<bool> bad_range{false};
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          if (b < 0 || e > n || b >= e) bad_range = true;
          for (int64_t i = b; i < e && i < n && i >= 0; ++i) count[static_cast<size_t>(i)]++;
        });
        EXPECT_FALSE(bad_range) << threads << " " << n << " " << grain;
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(count[static_cast<size_t>(i)].load(), 1) << "threads " << threads << " n " << n << " grain " << grain << " i " << i;
      }
    }
  }
}

TEST(Ops, ParallelForManyCallsInARow) {
  ThreadPool pool(3);
  std::vector<int64_t> sums;
  for (int iter = 0; iter < 500; ++iter) {
    std::atomic<int64_t> sum{0};
    pool.parallel_for(97, 2, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    });
    ASSERT_EQ(sum.load(), 97 * 96 / 2) << "iteration " << iter;
  }
}

TEST(Ops, ParallelForNestedRunsInline) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    const int64_t outer = 12, inner = 50;
    std::vector<std::atomic<int>> count(static_cast<size_t>(outer * inner));
    for (auto& c : count) c = 0;
    std::atomic<bool> moved_thread{false};
    pool.parallel_for(outer, 1, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const std::thread::id me = std::this_thread::get_id();
        pool.parallel_for(inner, 4, [&](int64_t ib, int64_t ie) {
          if (std::this_thread::get_id() != me) moved_thread = true;
          for (int64_t i = ib; i < ie; ++i) count[static_cast<size_t>(o * inner + i)]++;
        });
      }
    });
    EXPECT_FALSE(moved_thread) << "a nested call must run on the calling thread";
    for (size_t i = 0; i < count.size(); ++i) ASSERT_EQ(count[i].load(), 1) << "threads " << threads << " i " << i;
    // The pool still works normally afterwards.
    std::atomic<int64_t> total{0};
    pool.parallel_for(1000, 7, [&](int64_t b, int64_t e) { total += e - b; });
    EXPECT_EQ(total.load(), 1000);
  }
}

// ---------------------------------------------------------------- attention

// Naive causal attention in double, following the documented layout, for a
// ragged batch: query token n sits at positions[n] of cache row rows[n].
std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<int64_t>& rows,
                                        const std::vector<int64_t>& positions, int64_t Hq, int64_t d,
                                        const std::vector<float>& keys, const std::vector<float>& values,
                                        const std::vector<int32_t>& mask, int64_t capacity, int64_t Hkv) {
  std::vector<double> out(q.size(), 0.0);
  for (size_t n = 0; n < rows.size(); ++n)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t b = rows[n], kvh = h % Hkv;
      const float* qv = &q[(n * static_cast<size_t>(Hq) + static_cast<size_t>(h)) * static_cast<size_t>(d)];
      std::vector<double> score;
      std::vector<int64_t> pos;
      for (int64_t s = 0; s <= positions[n]; ++s) {
        if (!mask[static_cast<size_t>(b * capacity + s)]) continue;
        const float* k = &keys[static_cast<size_t>(((b * capacity + s) * Hkv + kvh) * d)];
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(qv[i]) * k[i];
        score.push_back(dot / std::sqrt(static_cast<double>(d)));
        pos.push_back(s);
      }
      if (score.empty()) continue;
      const double mx = *std::max_element(score.begin(), score.end());
      double sum = 0.0;
      for (double& sc : score) sum += (sc = std::exp(sc - mx));
      double* o = &out[(n * static_cast<size_t>(Hq) + static_cast<size_t>(h)) * static_cast<size_t>(d)];
      for (size_t j = 0; j < pos.size(); ++j) {
        const float* v = &values[static_cast<size_t>(((b * capacity + pos[j]) * Hkv + kvh) * d)];
        for (int64_t i = 0; i < d; ++i) o[i] += score[j] / sum * v[i];
      }
    }
  return out;
}

// The rectangular case: T new queries per row at positions past .. past+T-1.
std::vector<double> attention_reference(const std::vector<float>& q, int64_t B, int64_t T, int64_t Hq, int64_t d,
                                        const std::vector<float>& keys, const std::vector<float>& values,
                                        const std::vector<int32_t>& mask, int64_t capacity, int64_t Hkv, int64_t past) {
  std::vector<int64_t> rows, positions;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      rows.push_back(b);
      positions.push_back(past + t);
    }
  return attention_reference(q, rows, positions, Hq, d, keys, values, mask, capacity, Hkv);
}

// The tests' caches are position-major: [row][position][kv head][head_dim].
KVView packed_view(const void* keys, const void* values, const int32_t* mask, int64_t capacity, int64_t Hkv, int64_t d,
                   DType dtype = DType::F32) {
  return {keys, values, mask, capacity, Hkv, dtype, capacity * Hkv * d, d, Hkv * d};
}

// The same cache head-major, as KVCache lays it out: [row][kv head][position][head_dim].
std::vector<float> to_head_major(const std::vector<float>& packed, int64_t B, int64_t capacity, int64_t Hkv, int64_t d) {
  std::vector<float> out(packed.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < capacity; ++s)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t i = 0; i < d; ++i)
          out[static_cast<size_t>(((b * Hkv + h) * capacity + s) * d + i)] =
              packed[static_cast<size_t>(((b * capacity + s) * Hkv + h) * d + i)];
  return out;
}

// Uniform random values in [-range, range].
std::vector<float> uniform_values(size_t n, float range, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-range, range);
  std::vector<float> v(n);
  for (float& x : v) x = uni(rng);
  return v;
}

TEST(Ops, AttentionMatchesNaiveReference) {
  const int64_t B = 3, T = 3, Hq = 4, Hkv = 2, d = 8, past = 2, capacity = 7;
  std::mt19937 rng(21);
  const std::vector<float> q = uniform_values(static_cast<size_t>(B * T * Hq * d), 1.5f, rng);
  std::vector<float> keys = uniform_values(static_cast<size_t>(B * capacity * Hkv * d), 1.5f, rng);
  std::vector<float> values = uniform_values(keys.size(), 1.5f, rng);
  const std::vector<int32_t> mask = {
      1, 1, 1, 1, 1, 0, 0,  // all real
      0, 1, 0, 1, 1, 0, 0,  // holes
      0, 0, 0, 1, 0, 1, 0,  // nothing visible before position 3
  };
  // Masked slots hold garbage that must not leak into the output: NaN keys,
  // and keys so large (of either sign) that counting them in the softmax
  // maximum would underflow every real score.
  for (float garbage : {NAN, 1e18f, -1e18f}) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < capacity; ++s)
        if (!mask[static_cast<size_t>(b * capacity + s)])
          for (int64_t i = 0; i < Hkv * d; ++i) {
            keys[static_cast<size_t>((b * capacity + s) * Hkv * d + i)] = garbage;
            values[static_cast<size_t>((b * capacity + s) * Hkv * d + i)] = 1e30f;
          }
    const std::vector<double> ref = attention_reference(q, B, T, Hq, d, keys, values, mask, capacity, Hkv, past);
    for (int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "garbage " << garbage << " threads " << threads);
      ThreadPool pool(threads);
      std::vector<float> out(q.size(), 12345.0f);
      attention(pool, q.data(), B, T, Hq, d, packed_view(keys.data(), values.data(), mask.data(), capacity, Hkv, d), past,
                out.data());
      for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-5) << "element " << i;

      // Row 2, query t = 0 sits at position 2 and sees positions 0..2, all masked.
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < d; ++i) EXPECT_EQ(out[static_cast<size_t>(((2 * T + 0) * Hq + h) * d + i)], 0.0f);
      // Row 2, t = 1 sees only position 3: the output is exactly that value row.
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < d; ++i)
          EXPECT_NEAR(out[static_cast<size_t>(((2 * T + 1) * Hq + h) * d + i)],
                      values[static_cast<size_t>(((2 * capacity + 3) * Hkv + h % Hkv) * d + i)], 1e-6);
    }
  }
}

// Sequences longer than one key block, head sizes that the SIMD kernel takes
// (multiples of 8, some above its 64-float register piece) and one it leaves
// to the portable code, three query heads per KV head, holes in the mask
// straddling block and tile edges, whole masked blocks and tiles, NaN
// garbage in the masked slots.
TEST(Ops, AttentionAcrossKeyBlocksAndHeadSizes) {
  const int64_t B = 2, T = 37, Hq = 6, Hkv = 2, past = 29, capacity = 70;
  for (int64_t d : {8, 20, 24, 128, 160}) {
    SCOPED_TRACE(::testing::Message() << "head_dim " << d);
    std::mt19937 rng(static_cast<unsigned>(d));
    const std::vector<float> q = uniform_values(static_cast<size_t>(B * T * Hq * d), 2.0f, rng);
    std::vector<float> keys = uniform_values(static_cast<size_t>(B * capacity * Hkv * d), 2.0f, rng);
    std::vector<float> values = uniform_values(keys.size(), 2.0f, rng);
    std::vector<int32_t> mask(static_cast<size_t>(B * capacity), 1);
    for (int64_t s : {0, 1, 15, 16, 17, 31, 32, 33, 40}) mask[static_cast<size_t>(capacity + s)] = 0;  // row 1: holes
    // Row 0: whole blocks of 8 keys masked (the first of the first and of
    // the second tile of 32, whose rescaling then falls to the next block,
    // and the whole last tile that any query sees).
    for (int64_t s = 0; s < capacity; ++s)
      if (s < 8 || (s >= 32 && s < 40) || s >= 64) mask[static_cast<size_t>(s)] = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < capacity; ++s)
        if (!mask[static_cast<size_t>(b * capacity + s)])
          for (int64_t i = 0; i < Hkv * d; ++i) {
            keys[static_cast<size_t>((b * capacity + s) * Hkv * d + i)] = NAN;
            values[static_cast<size_t>((b * capacity + s) * Hkv * d + i)] = NAN;
          }
    const std::vector<double> ref = attention_reference(q, B, T, Hq, d, keys, values, mask, capacity, Hkv, past);
    ThreadPool pool(2);
    std::vector<float> out(q.size(), 12345.0f);
    attention(pool, q.data(), B, T, Hq, d, packed_view(keys.data(), values.data(), mask.data(), capacity, Hkv, d), past,
              out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-6) << "element " << i;
    // Head-major, as the KV cache stores it: the same outputs, bit for bit.
    const std::vector<float> hk = to_head_major(keys, B, capacity, Hkv, d), hv = to_head_major(values, B, capacity, Hkv, d);
    std::vector<float> out_hm(q.size(), 12345.0f);
    attention(pool, q.data(), B, T, Hq, d,
              KVView{hk.data(), hv.data(), mask.data(), capacity, Hkv, DType::F32, Hkv * capacity * d, capacity * d, d}, past,
              out_hm.data());
    EXPECT_EQ(out_hm, out);
  }
}

// A 16-bit cache: the kernels widen what is stored, so they must match the
// reference computed on the rounded keys and values as tightly as f32 does.
TEST(Ops, AttentionReadsSixteenBitCaches) {
  const int64_t B = 2, T = 19, Hq = 4, Hkv = 2, past = 14, capacity = 40;
  for (DType dtype : {DType::F16, DType::BF16})
    for (int64_t d : {8, 20, 128}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " head_dim " << d);
      std::mt19937 rng(static_cast<unsigned>(d) + 7);
      std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
      std::vector<float> q(static_cast<size_t>(B * T * Hq * d)), keys(static_cast<size_t>(B * capacity * Hkv * d)),
          values(keys.size());
      for (auto& v : q) v = uni(rng);
      std::vector<uint16_t> k16(keys.size()), v16(keys.size());
      for (size_t i = 0; i < keys.size(); ++i) {
        k16[i] = dtype == DType::F16 ? f32_to_f16(uni(rng)) : f32_to_bf16(uni(rng));
        v16[i] = dtype == DType::F16 ? f32_to_f16(uni(rng)) : f32_to_bf16(uni(rng));
        keys[i] = dtype == DType::F16 ? f16_to_f32(k16[i]) : bf16_to_f32(k16[i]);
        values[i] = dtype == DType::F16 ? f16_to_f32(v16[i]) : bf16_to_f32(v16[i]);
      }
      std::vector<int32_t> mask(static_cast<size_t>(B * capacity), 1);
      for (int64_t s : {2, 9, 10}) mask[static_cast<size_t>(s)] = 0;
      const std::vector<double> ref = attention_reference(q, B, T, Hq, d, keys, values, mask, capacity, Hkv, past);
      ThreadPool pool(2);
      std::vector<float> out(q.size(), 12345.0f);
      attention(pool, q.data(), B, T, Hq, d, packed_view(k16.data(), v16.data(), mask.data(), capacity, Hkv, d, dtype), past,
                out.data());
      for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-6) << "element " << i;
    }
}

// Queries of several tokens share one pass over the keys (a prefill's run of
// tokens per task); each query's output must still be the bits it gets alone,
// as a decode step computes it, whatever tokens, rows and positions its
// neighbours in the batch have. A ragged batch whose token runs cross rows,
// with positions out of order and far apart (tiles one query sees and its
// neighbours do not), and two and three query heads per KV head.
TEST(Ops, AttentionOfATokenDoesNotDependOnItsBatch) {
  const int64_t capacity = 100, Hkv = 2;
  for (int64_t d : {24, 32})  // 24: the AVX2 kernel only; 32: the AVX-512 one where the CPU has it
    for (int64_t Hq : {4, 6}) {
      SCOPED_TRACE(::testing::Message() << "head_dim " << d << " query heads " << Hq);
      std::mt19937 rng(static_cast<unsigned>(Hq + d));
      const std::vector<int64_t> rows = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1};
      const std::vector<int64_t> positions = {3, 70, 71, 40, 99, 0, 33, 31, 32, 64, 5};
      const auto N = static_cast<int64_t>(rows.size());
      const std::vector<float> q = uniform_values(static_cast<size_t>(N * Hq * d), 2.0f, rng);
      const std::vector<float> keys = uniform_values(static_cast<size_t>(2 * capacity * Hkv * d), 2.0f, rng);
      const std::vector<float> values = uniform_values(keys.size(), 2.0f, rng);
      std::vector<int32_t> mask(static_cast<size_t>(2 * capacity), 1);
      for (int64_t s : {2, 35, 36, 68}) mask[static_cast<size_t>(s)] = 0;
      const KVView kv = packed_view(keys.data(), values.data(), mask.data(), capacity, Hkv, d);
      ThreadPool pool(2);
      std::vector<float> together(q.size(), 12345.0f), alone(q.size(), 12345.0f);
      attention(pool, q.data(), N, rows.data(), positions.data(), Hq, d, kv, together.data());
      for (int64_t n = 0; n < N; ++n)
        attention(pool, q.data() + n * Hq * d, 1, &rows[static_cast<size_t>(n)], &positions[static_cast<size_t>(n)], Hq, d,
                  kv, alone.data() + n * Hq * d);
      EXPECT_EQ(together, alone);
      // And both are right.
      const std::vector<double> ref = attention_reference(q, rows, positions, Hq, d, keys, values, mask, capacity, Hkv);
      for (size_t i = 0; i < together.size(); ++i) ASSERT_NEAR(together[i], ref[i], 2e-6) << "element " << i;
    }
}

TEST(Ops, AttentionSingleKeyAndUniform) {
  // One query, past = 0: it attends only to itself, whatever the scores.
  ThreadPool pool(1);
  const int64_t d = 4;
  const std::vector<float> q = {100.0f, -100.0f, 3.0f, 0.5f};
  const std::vector<float> k = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<float> v = {-1.0f, 0.25f, 7.0f, 2.0f};
  const std::vector<int32_t> m = {1};
  std::vector<float> out(4);
  attention(pool, q.data(), 1, 1, 1, d, packed_view(k.data(), v.data(), m.data(), 1, 1, d), 0, out.data());
  for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(out[static_cast<size_t>(i)], v[static_cast<size_t>(i)], 1e-6);

  // A zero query weighs every visible key equally: the mean of the values.
  const std::vector<float> q0(4, 0.0f);
  const std::vector<float> k3 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<float> v3 = {1, 0, 0, 3, 0, 1, 0, 6, 0, 0, 1, 9};
  const std::vector<int32_t> m3 = {1, 1, 1};
  attention(pool, q0.data(), 1, 1, 1, d, packed_view(k3.data(), v3.data(), m3.data(), 3, 1, d), 2, out.data());
  EXPECT_NEAR(out[0], 1.0 / 3, 1e-6);
  EXPECT_NEAR(out[1], 1.0 / 3, 1e-6);
  EXPECT_NEAR(out[2], 1.0 / 3, 1e-6);
  EXPECT_NEAR(out[3], 6.0, 1e-5);
}

}  // namespace
}  // namespace jetmoe::ops
