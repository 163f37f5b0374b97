#include "jetmoe/kv_cache.h"

#include "jetmoe/error.h"

namespace jetmoe {

KVCache::KVCache(const JetMoeConfig& config, int64_t batch, int64_t cap)
    : num_layers(config.num_hidden_layers),
      batch_size(batch),
      capacity(cap),
      kv_dim(config.num_key_value_heads * config.kv_channels) {
  if (batch <= 0 || cap <= 0)
    throw Error("KVCache: batch size " + std::to_string(batch) + " and capacity " + std::to_string(cap) + " must be positive");
  const size_t n = static_cast<size_t>(num_layers * batch_size * capacity * kv_dim);
  keys.assign(n, 0.0f);
  values.assign(n, 0.0f);
  mask.assign(static_cast<size_t>(batch_size * capacity), 0);
}

}  // namespace jetmoe
