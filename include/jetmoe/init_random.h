#pragma once
#include <cstdint>
#include <string>

#include "jetmoe/config.h"
#include "jetmoe/tensor.h"

namespace jetmoe {

struct InitRandomOptions {
  DType dtype = DType::BF16;  // F32 or BF16
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000ULL;  // transformers' default "5GB"
  int num_threads = 0;
};

// Writes a checkpoint folder in Hugging Face layout (config.json and
// model.safetensors, or shards plus model.safetensors.index.json) with
// weights drawn as transformers' _init_weights does: normal(0,
// initializer_range) for matrices, ones for norms, zeros for biases. Tensors
// are generated and written in pieces, so memory stays small whatever the
// model size. The values depend only on (seed, tensor name), not on sharding.
void init_random_checkpoint(const JetMoeConfig& config, const std::string& output_dir, const InitRandomOptions& options);

}  // namespace jetmoe
