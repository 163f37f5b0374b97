// Micro-benchmarks of the kernels on jetmoe-8b's shapes, both threads: the
// matmuls on its expert shapes (GEMV, decode: weight GB/s against the read
// bandwidth measured at start-up; GEMM, prefill: GFLOP/s against the f32 FMA
// peak measured at start-up), the output head at 1 and 8 sequences, and
// decode attention (KV GB/s).
//   build/bench_kernels [--benchmark_filter=Gemv]
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <vector>

#include "jetmoe/kv_cache.h"
#include "ops/attention.h"
#include "ops/bandwidth.h"
#include "ops/convert.h"
#include "ops/cpu_features.h"
#include "ops/matmul.h"
#include "ops/quantize.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {
namespace {

ThreadPool& pool() {
  static ThreadPool p(0);
  return p;
}

double bandwidth_gb_s() {
  static const double bw = measure_read_bandwidth(pool(), int64_t{1} << 29, 5);
  return bw;
}

// 4096 rounds of twelve independent FMA chains (more than latency times
// throughput) of the widest vectors the CPU has; the chains live in `state`
// between calls.
constexpr int kChains = 12, kRounds = 4096;
__attribute__((target("avx2,fma"))) void fma_rounds_avx2(float* state) {
  __m256 acc[kChains];
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_loadu_ps(state + 8 * i);
  for (int r = 0; r < kRounds; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) _mm256_storeu_ps(state + 8 * i, acc[i]);
}
__attribute__((target("avx512f"))) void fma_rounds_avx512(float* state) {
  __m512 acc[kChains];
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_loadu_ps(state + 16 * i);
  for (int r = 0; r < kRounds; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
#pragma GCC unroll 12
  for (int i = 0; i < kChains; ++i) _mm512_storeu_ps(state + 16 * i, acc[i]);
}

// One thread's f32 FMA GFLOP/s over `seconds`.
double fma_gflop_s(bool avx512, double seconds) {
  float state[kChains * 16];
  for (int i = 0; i < kChains * 16; ++i) state[i] = static_cast<float>(i);
  int64_t calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    (avx512 ? fma_rounds_avx512 : fma_rounds_avx2)(state);
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  benchmark::DoNotOptimize(state);
  const double flops_per_call = 2.0 * kRounds * kChains * (avx512 ? 16 : 8);
  return static_cast<double>(calls) * flops_per_call / elapsed * 1e-9;
}

// f32 FMA GFLOP/s of all the pool's threads at once: the prefill kernels' ceiling.
double fma_peak_gflop_s() {
  static const double peak = [] {
    const CpuFeatures& cpu = cpu_features();
    if (!cpu.avx2_fma) return 0.0;
    std::atomic<double> sum{0.0};
    const int64_t threads = static_cast<int64_t>(pool().size());
    pool().parallel_for(threads, 1, [&](int64_t, int64_t) {
      const double g = fma_gflop_s(cpu.avx512, 0.2);
      for (double cur = sum.load(); !sum.compare_exchange_weak(cur, cur + g);) {
      }
    });
    return sum.load();
  }();
  return peak;
}

// GFLOP/s of a benchmark doing `flops` per iteration, and with the FMA peak
// known (`peak` > 0) its fraction of it.
void report_flops(benchmark::State& state, double flops, double seconds, double peak) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (peak <= 0.0) return;
  state.counters["fma_peak_GFLOP/s"] = peak;
  state.counters["of_peak"] = flops * static_cast<double>(state.iterations()) * 1e-9 / seconds / peak;
}

// Several experts' worth of weights, more than the last-level cache, so each
// call streams from memory as decode does.
struct Weights {
  int64_t copies, N, K;
  std::vector<uint16_t> bf16;
  std::vector<uint8_t> quants;
  std::vector<uint16_t> scales;

  Weights(int64_t copies_, int64_t N_, int64_t K_) : copies(copies_), N(N_), K(K_) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uni(-0.05f, 0.05f);
    bf16.resize(static_cast<size_t>(copies * N * K));
    for (auto& h : bf16) h = f32_to_bf16(uni(rng));
  }
  void quantize(Quant q) {
    quants.resize(static_cast<size_t>(copies * N * quant_row_bytes(q, K)));
    scales.resize(static_cast<size_t>(copies * N * K / kQuantBlock));
    quantize_rows(pool(), q, DType::BF16, bf16.data(), copies * N, K, quants.data(), scales.data());
  }
  WeightMatrix matrix(int64_t i, Quant q, Compute c) const {
    if (q == Quant::None) return {DType::BF16, bf16.data() + i * N * K, N, K, c};
    return {DType::BF16, quants.data() + i * N * quant_row_bytes(q, K), N, K, c, q, scales.data() + i * N * K / kQuantBlock};
  }
};

void run(benchmark::State& state, Quant q, Compute c) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const int64_t copies = M == 1 ? 8 : 1;
  Weights w(copies, N, K);
  if (q != Quant::None) w.quantize(q);
  std::vector<float> x(static_cast<size_t>(M * K), 0.01f), y(static_cast<size_t>(M * N));
  int64_t i = 0, bytes = 0;
  const double bw = bandwidth_gb_s(), peak = M > 1 ? fma_peak_gflop_s() : 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const WeightMatrix m = w.matrix(i++ % copies, q, c);
    matmul(pool(), x.data(), M, m, y.data());
    bytes += weight_bytes(m);
    benchmark::DoNotOptimize(y.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.SetBytesProcessed(bytes);
  report_flops(state, 2.0 * static_cast<double>(M * N * K), seconds, peak);
  if (M == 1) {
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9, benchmark::Counter::kIsRate);
    state.counters["read_bw_GB/s"] = bw;
  }
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({1, 11264, 2048})->Args({1, 2048, 5632})->Args({32, 11264, 2048})->Args({32, 2048, 5632})->Args({128, 4096, 2048});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void BM_Bf16Exact(benchmark::State& s) { run(s, Quant::None, Compute::F32); }
void BM_Bf16Dot(benchmark::State& s) { run(s, Quant::None, Compute::BF16); }
void BM_Q8_0(benchmark::State& s) { run(s, Quant::Q8_0, Compute::F32); }
void BM_Q4_0(benchmark::State& s) { run(s, Quant::Q4_0, Compute::F32); }
BENCHMARK(BM_Bf16Exact)->Apply(shapes);
BENCHMARK(BM_Bf16Dot)->Apply(shapes);
BENCHMARK(BM_Q8_0)->Apply(shapes);
BENCHMARK(BM_Q4_0)->Apply(shapes);

// The output head in (batched) decode: 32000 vocabulary rows times M
// sequences' hidden states of state.range(1) columns (128: the demo model,
// whose head is packed at load where the CPU has a packed kernel; 2048:
// jetmoe-8b). One matrix, as the engine re-reads the same head every step.
void BM_OutputHead(benchmark::State& state) {
  const int64_t M = state.range(0), N = 32000, K = state.range(1);
  Weights w(1, N, K);
  WeightMatrix m = w.matrix(0, Quant::None, Compute::F32);
  std::vector<uint8_t> packed(static_cast<size_t>(packed_bytes(m)));
  if (!packed.empty()) {
    pack_weights(m, packed.data());
    m.packed = packed.data();
  }
  std::vector<float> x(static_cast<size_t>(M * K), 0.01f), y(static_cast<size_t>(M * N));
  const double peak = fma_peak_gflop_s();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    matmul(pool(), x.data(), M, m, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report_flops(state, 2.0 * static_cast<double>(M * N * K), seconds, peak);
  // Weight bytes per call: at one sequence the head is a stream of weights.
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(weight_bytes(m)) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["packed"] = packed.empty() ? 0.0 : 1.0;
}
BENCHMARK(BM_OutputHead)->ArgsProduct({{1, 8}, {128, 2048}})->UseRealTime()->Unit(benchmark::kMicrosecond);

// Decode attention of jetmoe-8b (16 KV heads of 128, two query heads per KV
// head) over a context of state.range(0) positions, with an f32 or 16-bit
// cache: GB/s of keys and values read, against the read bandwidth.
void attention_decode(benchmark::State& state, DType dtype) {
  JetMoeConfig config;  // jetmoe-8b's KV shape; one layer is enough
  config.num_hidden_layers = 1;
  const int64_t context = state.range(0), H = config.num_key_value_heads, d = config.kv_channels, Hq = 2 * H;
  KVCache cache(config, 1, context, dtype);  // allocated as the engine allocates it
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(H * d));
  for (int64_t s = 0; s < context; ++s) {
    for (float& v : row) v = uni(rng);
    for (int64_t h = 0; h < H; ++h) {
      from_f32(row.data() + h * d, d, dtype, cache.key_at(0, 0, h, s));
      from_f32(row.data() + h * d, d, dtype, cache.value_at(0, 0, h, s));
    }
    cache.mask[static_cast<size_t>(s)] = 1;
  }
  std::vector<float> q(static_cast<size_t>(Hq * d), 0.1f), out(q.size());
  const int64_t row_index = 0, position = context - 1;
  const KVView kv{cache.key_at(0, 0, 0, 0), cache.value_at(0, 0, 0, 0), cache.mask.data(), context, H, dtype,
                  cache.row_stride(), cache.head_stride(), d};
  for (auto _ : state) {
    attention(pool(), q.data(), 1, &row_index, &position, Hq, d, kv, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double bytes = 2.0 * static_cast<double>(context * H * d) * static_cast<double>(cache.element_size());
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["read_bw_GB/s"] = bandwidth_gb_s();
}
void BM_AttentionDecodeF32(benchmark::State& s) { attention_decode(s, DType::F32); }
void BM_AttentionDecodeF16(benchmark::State& s) { attention_decode(s, DType::F16); }
BENCHMARK(BM_AttentionDecodeF32)->Arg(512)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionDecodeF16)->Arg(512)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_ReadBandwidth(benchmark::State& state) {
  double gb = 0;
  for (auto _ : state) gb = measure_read_bandwidth(pool(), int64_t{1} << 29, 3);
  state.counters["GB/s"] = gb;
}
BENCHMARK(BM_ReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace jetmoe::ops

BENCHMARK_MAIN();
