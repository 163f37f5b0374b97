#pragma once
#include <cstdint>

namespace jetmoe::ops {

class ThreadPool;

// Memory read bandwidth in GB/s (1e9 bytes/s): the best of `passes` streaming
// reads over a fresh PageBuffer (huge pages where the kernel gives them) of
// `bytes`, far larger than the caches, split over the pool's threads. The
// buffer is freed on return.
double measure_read_bandwidth(ThreadPool& pool, int64_t bytes, int passes);

}  // namespace jetmoe::ops
