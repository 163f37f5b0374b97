#include "ops/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "ops/page_buffer.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {

namespace {

// Eight independent sums so the loads, not an add chain, set the pace.
uint64_t sum_words(const uint64_t* p, int64_t n) {
  uint64_t acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, int64_t bytes, int passes) {
  const int64_t words = bytes / 8;
  // The same kind of memory as the weights quantised at load, so a roofline
  // fraction is not flattered by a probe on slower 4 KB pages.
  PageBuffer pages(static_cast<size_t>(words) * 8);
  uint64_t* buffer = reinterpret_cast<uint64_t*>(pages.data());
  // Written first so every page is resident before timing.
  pool.parallel_for(words, 1 << 16, [&](int64_t a, int64_t b) { std::fill(buffer + a, buffer + b, a); });
  const int64_t chunk = words / (8 * pool.size()) + 1;
  std::atomic<uint64_t> sink{0};
  double best = 0.0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(words, chunk, [&](int64_t a, int64_t b) { sink += sum_words(buffer + a, b - a); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(words * 8) / s / 1e9);
  }
  return best;
}

}  // namespace jetmoe::ops
