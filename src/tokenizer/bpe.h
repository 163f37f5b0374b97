#pragma once
// Byte-pair encoding of one word, as the `tokenizers` BPE model does it:
// characters (or their UTF-8 bytes as <0xNN> pieces when byte_fallback is on)
// are merged pair by pair, lowest merge rank first, leftmost first among equal
// ranks, with a heap (n log n; the naive rescan is quadratic and a 20 kB
// paragraph without spaces is one word). Results for short words are cached.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace jetmoe::tokenizer_detail {

// Open-addressing map from a 64-bit key to a 64-bit value: the merge table is
// probed several times per character, where std::unordered_map's node
// chasing shows in the encode throughput.
class FlatMap64 {
 public:
  void reserve(size_t n);
  void insert(uint64_t key, uint64_t value);  // keeps the first value for a key
  const uint64_t* find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (!used_[i]) return nullptr;
      if (keys_[i] == key) return &values_[i];
    }
  }
  size_t size() const { return size_; }

 private:
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void grow();
  std::vector<uint64_t> keys_, values_;
  std::vector<uint8_t> used_;
  size_t mask_ = 0, size_ = 0;
};

struct BpeModel {
  // Code point -> id of the single-character piece.
  FlatMap64 char_ids;
  // (left id << 32 | right id) -> (rank << 32 | merged id).
  FlatMap64 merges;
  bool byte_fallback = false;
  int32_t byte_ids[256];  // id of <0xNN>, -1 when absent
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
  // `ignore_merges`: a word that is itself a piece becomes that piece.
  bool ignore_merges = false;
  const std::unordered_map<std::string, int32_t>* vocab = nullptr;
  // True when no piece has a character other than U+2581 followed by U+2581,
  // so no merge can cross the boundary before a U+2581 that follows another
  // character: words are split there first, exactly, which makes the cache hit.
  bool split_before_metaspace = false;

  BpeModel() { std::fill(std::begin(byte_ids), std::end(byte_ids), -1); }
};

// Thread-safe cache of word -> ids shared by every copy of a tokenizer.
class BpeCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kCapacity = 1 << 17;
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;
  void store(std::string_view word, const int32_t* ids, size_t n) const;

 private:
  mutable std::shared_mutex mutex_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map_;
};

// Appends the ids of `word` (already normalized and pre-tokenized). Throws
// Error when a character has no piece, no byte piece and there is no unk.
void bpe_encode_word(const BpeModel& model, std::string_view word, std::vector<int32_t>& out);

// Splits `text` into words when model.split_before_metaspace allows it, looks
// each up in the cache, and BPE-encodes the misses.
void bpe_encode(const BpeModel& model, const BpeCache& cache, std::string_view text, std::vector<int32_t>& out);

}  // namespace jetmoe::tokenizer_detail
