#pragma once

namespace jetmoe::ops {

// What the running CPU can execute, detected once. Kernels are chosen from
// this at run time so one binary runs everywhere x86-64 does.
struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA + F16C: the baseline of our AVX2 kernels
  bool avx512 = false;       // F + BW + VL: the baseline of our AVX-512 kernels
  bool avx512_bf16 = false;  // vdpbf16ps
  bool avx512_vnni = false;  // vpdpbusd
};

const CpuFeatures& cpu_features();

}  // namespace jetmoe::ops
