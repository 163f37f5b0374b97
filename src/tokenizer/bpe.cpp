#include "tokenizer/bpe.h"

#include <algorithm>
#include <mutex>

#include "jetmoe/error.h"
#include "tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {

void FlatMap64::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= keys_.size()) return;
  std::vector<uint64_t> old_keys = std::move(keys_), old_values = std::move(values_);
  std::vector<uint8_t> old_used = std::move(used_);
  keys_.assign(cap, 0);
  values_.assign(cap, 0);
  used_.assign(cap, 0);
  mask_ = cap - 1;
  size_ = 0;
  for (size_t i = 0; i < old_keys.size(); ++i)
    if (old_used[i]) insert(old_keys[i], old_values[i]);
}

void FlatMap64::grow() { reserve(keys_.empty() ? 8 : keys_.size()); }

void FlatMap64::insert(uint64_t key, uint64_t value) {
  if ((size_ + 1) * 2 > keys_.size()) grow();
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    if (!used_[i]) {
      used_[i] = 1;
      keys_[i] = key;
      values_[i] = value;
      ++size_;
      return;
    }
    if (keys_[i] == key) return;
  }
}

bool BpeCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  std::shared_lock lock(mutex_);
  const auto it = map_.find(word);
  if (it == map_.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void BpeCache::store(std::string_view word, const int32_t* ids, size_t n) const {
  std::unique_lock lock(mutex_);
  if (map_.size() >= kCapacity) return;  // like Hugging Face: a full cache stops growing
  map_.emplace(std::string(word), std::vector<int32_t>(ids, ids + n));
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;  // -1 at the ends
  bool alive;
};

struct Candidate {
  uint32_t rank;
  int32_t pos;
  int32_t new_id;
};

// Min-heap order: lowest rank, then leftmost position (the tie rule of
// `tokenizers`' BinaryHeap<Merge>).
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; }
};

struct Workspace {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

void push_pair(const BpeModel& m, Workspace& w, int32_t left) {
  const Symbol& a = w.symbols[static_cast<size_t>(left)];
  if (a.next < 0) return;
  const Symbol& b = w.symbols[static_cast<size_t>(a.next)];
  const uint64_t* v = m.merges.find((static_cast<uint64_t>(static_cast<uint32_t>(a.id)) << 32) | static_cast<uint32_t>(b.id));
  if (!v) return;
  w.heap.push_back({static_cast<uint32_t>(*v >> 32), left, static_cast<int32_t>(*v & 0xffffffffu)});
  std::push_heap(w.heap.begin(), w.heap.end(), CandidateAfter{});
}

}  // namespace

void bpe_encode_word(const BpeModel& m, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (m.ignore_merges && m.vocab) {
    const auto it = m.vocab->find(std::string(word));
    if (it != m.vocab->end()) {
      out.push_back(it->second);
      return;
    }
  }
  thread_local Workspace w;
  w.symbols.clear();
  w.heap.clear();
  bool last_was_unk = false;
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(w.symbols.size());
    w.symbols.push_back({id, n - 1, -1, true});
    if (n > 0) w.symbols[static_cast<size_t>(n - 1)].next = n;
  };
  for (size_t pos = 0; pos < word.size();) {
    const size_t start = pos;
    const uint32_t cp = next_char(word, pos);
    if (const uint64_t* id = m.char_ids.find(cp)) {
      add(static_cast<int32_t>(*id));
      last_was_unk = false;
      continue;
    }
    if (m.byte_fallback) {
      bool all = true;
      for (size_t k = start; k < pos; ++k) all = all && m.byte_ids[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        for (size_t k = start; k < pos; ++k) add(m.byte_ids[static_cast<unsigned char>(word[k])]);
        last_was_unk = false;
        continue;
      }
    }
    if (!m.unk_id) throw Error("tokenizer: the character at byte " + std::to_string(start) + " of \"" + std::string(word) +
                               "\" has no piece and the BPE model has no unk_token");
    if (!(m.fuse_unk && last_was_unk)) add(*m.unk_id);
    last_was_unk = true;
  }
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(w.symbols.size()); ++i) push_pair(m, w, i);
  while (!w.heap.empty()) {
    std::pop_heap(w.heap.begin(), w.heap.end(), CandidateAfter{});
    const Candidate c = w.heap.back();
    w.heap.pop_back();
    Symbol& a = w.symbols[static_cast<size_t>(c.pos)];
    if (!a.alive || a.next < 0) continue;
    Symbol& b = w.symbols[static_cast<size_t>(a.next)];
    // The pair may have changed since it was queued; take it only if it still
    // merges into the same piece.
    const uint64_t* v = m.merges.find((static_cast<uint64_t>(static_cast<uint32_t>(a.id)) << 32) | static_cast<uint32_t>(b.id));
    if (!v || static_cast<int32_t>(*v & 0xffffffffu) != c.new_id) continue;
    a.id = c.new_id;
    b.alive = false;
    a.next = b.next;
    if (a.next >= 0) w.symbols[static_cast<size_t>(a.next)].prev = c.pos;
    if (a.prev >= 0) push_pair(m, w, a.prev);
    push_pair(m, w, c.pos);
  }
  for (int32_t i = 0; i >= 0; i = w.symbols[static_cast<size_t>(i)].next) out.push_back(w.symbols[static_cast<size_t>(i)].id);
}

namespace {

void encode_cached(const BpeModel& m, const BpeCache& cache, std::string_view word, std::vector<int32_t>& out) {
  if (word.size() > BpeCache::kMaxWordBytes) {
    bpe_encode_word(m, word, out);
    return;
  }
  if (cache.lookup(word, out)) return;
  const size_t before = out.size();
  bpe_encode_word(m, word, out);
  cache.store(word, out.data() + before, out.size() - before);
}

}  // namespace

void bpe_encode(const BpeModel& m, const BpeCache& cache, std::string_view text, std::vector<int32_t>& out) {
  if (!m.split_before_metaspace) {
    encode_cached(m, cache, text, out);
    return;
  }
  // U+2581 is E2 96 81 in UTF-8. A word starts at a U+2581 whose previous
  // character is not U+2581.
  size_t start = 0;
  for (size_t i = 1; i + 2 < text.size(); ++i) {
    if (text[i] != '\xE2' || text[i + 1] != '\x96' || text[i + 2] != '\x81') continue;
    const bool prev_is_meta = i >= 3 && text.compare(i - 3, 3, "\xE2\x96\x81") == 0;
    if (!prev_is_meta) {
      encode_cached(m, cache, text.substr(start, i - start), out);
      start = i;
    }
    i += 2;
  }
  encode_cached(m, cache, text.substr(start), out);
}

}  // namespace jetmoe::tokenizer_detail
