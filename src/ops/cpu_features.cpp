#include "ops/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace jetmoe::ops {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // Every AVX2 CPU made has F16C; GCC 12 answers __builtin_cpu_supports("f16c")
  // with 0 even where it is there, so it is not asked.
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  // JETMOE_CPU=portable|avx2 caps the kernels, so every path can be tested
  // and benchmarked on one machine.
  if (const char* cap = std::getenv("JETMOE_CPU")) {
    if (std::strcmp(cap, "portable") == 0) f = CpuFeatures{};
    if (std::strcmp(cap, "avx2") == 0) f = CpuFeatures{f.avx2_fma, false, false, false};
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace jetmoe::ops
