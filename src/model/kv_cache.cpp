#include "jetmoe/kv_cache.h"

#include <algorithm>

#include "jetmoe/error.h"

namespace jetmoe {

KVCache::KVCache(const JetMoeConfig& config, int64_t batch, int64_t cap, DType type)
    : num_layers(config.num_hidden_layers),
      batch_size(batch),
      capacity(cap),
      num_kv_heads(config.num_key_value_heads),
      head_dim(config.kv_channels),
      dtype(type) {
  if (batch <= 0 || cap <= 0)
    throw Error("KVCache: batch size " + std::to_string(batch) + " and capacity " + std::to_string(cap) + " must be positive");
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    throw Error(std::string("KVCache: dtype ") + dtype_name(type) + ", expected F32, F16 or BF16");
  const size_t n = static_cast<size_t>(num_layers * batch_size * row_stride()) * element_size();
  keys.assign(n, 0);
  values.assign(n, 0);
  mask.assign(static_cast<size_t>(batch_size * capacity), 0);
}

void KVCache::select_rows(const std::vector<int64_t>& rows) {
  const auto new_batch = static_cast<int64_t>(rows.size());
  if (new_batch == 0) throw Error("KVCache::select_rows: at least one row must remain");
  bool identity = new_batch == batch_size;
  for (int64_t i = 0; i < new_batch; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    if (r < 0 || r >= batch_size)
      throw Error("KVCache::select_rows: row " + std::to_string(r) + " outside [0, " + std::to_string(batch_size) + ")");
    identity = identity && r == i;
  }
  if (identity) return;
  const size_t row_bytes = static_cast<size_t>(row_stride()) * element_size();
  const size_t head_bytes = static_cast<size_t>(head_stride()) * element_size();
  const size_t used_bytes = static_cast<size_t>(length * head_dim) * element_size();
  const size_t n = static_cast<size_t>(num_layers * new_batch) * row_bytes;
  // Only grow the spare buffers: shrinking and growing back each step would
  // allocate.
  if (spare_keys_.size() < n) {
    spare_keys_.resize(n);
    spare_values_.resize(n);
  }
  spare_mask_.resize(static_cast<size_t>(new_batch * capacity));
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int64_t i = 0; i < new_batch; ++i) {
      const size_t from = static_cast<size_t>(l * batch_size + rows[static_cast<size_t>(i)]) * row_bytes;
      const size_t to = static_cast<size_t>(l * new_batch + i) * row_bytes;
      // Each head's first `length` positions; the rest is written before it is read.
      for (size_t h = 0; h < static_cast<size_t>(num_kv_heads); ++h) {
        const auto src = static_cast<std::ptrdiff_t>(from + h * head_bytes);
        const auto dst = static_cast<std::ptrdiff_t>(to + h * head_bytes);
        std::copy_n(keys.begin() + src, used_bytes, spare_keys_.begin() + dst);
        std::copy_n(values.begin() + src, used_bytes, spare_values_.begin() + dst);
      }
    }
  }
  for (int64_t i = 0; i < new_batch; ++i)
    std::copy_n(mask.begin() + rows[static_cast<size_t>(i)] * capacity, capacity, spare_mask_.begin() + i * capacity);
  keys.swap(spare_keys_);
  values.swap(spare_values_);
  mask.swap(spare_mask_);
  batch_size = new_batch;
}

}  // namespace jetmoe
