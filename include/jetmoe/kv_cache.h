#pragma once
#include <cstdint>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/tensor.h"

namespace jetmoe {

// Keys and values of every layer for a batch of sequences, preallocated for
// `capacity` positions so that decoding never allocates. Each KV head's
// positions are contiguous, so attention streams them (a position-major
// layout put rows of 512 bytes 8 KB apart for jetmoe-8b, a new 4 KB page
// every two keys, and read them at a third of the bandwidth). Keys are stored
// after rotary embedding, as float32 (exact, the default) or rounded to a
// 16-bit float (F16 or BF16: half the memory and the bytes attention reads).
// The cache also remembers the attention mask of the tokens it holds, so a
// step may leave its mask out.
struct KVCache {
  KVCache(const JetMoeConfig& config, int64_t batch_size, int64_t capacity, DType dtype = DType::F32);

  int64_t num_layers = 0;
  int64_t batch_size = 0;
  int64_t capacity = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // kv_channels
  int64_t length = 0;   // positions filled so far (same for every row)
  DType dtype = DType::F32;   // of keys and values: F32, F16 or BF16
  std::vector<uint8_t> keys;    // [layer][batch][kv head][capacity][head_dim] elements of dtype
  std::vector<uint8_t> values;  // same layout
  std::vector<int32_t> mask;  // [batch][capacity], 1 = real token

  size_t element_size() const { return dtype_size(dtype); }
  // Element strides between positions, KV heads and sequences of a layer.
  int64_t head_stride() const { return capacity * head_dim; }
  int64_t row_stride() const { return num_kv_heads * head_stride(); }
  void* key_at(int64_t layer, int64_t b, int64_t head, int64_t pos) { return &keys[offset(layer, b, head, pos)]; }
  void* value_at(int64_t layer, int64_t b, int64_t head, int64_t pos) { return &values[offset(layer, b, head, pos)]; }
  void clear() { length = 0; }

  // Keeps the rows `rows`, in that order, repeats allowed: beam search
  // reorders and duplicates beams, batched generation drops finished rows.
  // The batch size becomes rows.size(). Reuses spare buffers, so a steady
  // decode loop does not allocate.
  void select_rows(const std::vector<int64_t>& rows);

 private:
  size_t offset(int64_t layer, int64_t b, int64_t head, int64_t pos) const {
    return static_cast<size_t>((layer * batch_size + b) * row_stride() + head * head_stride() + pos * head_dim) *
           element_size();
  }
  std::vector<uint8_t> spare_keys_, spare_values_;
  std::vector<int32_t> spare_mask_;
};

}  // namespace jetmoe
