#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {

AddedTokenMatcher make_added_token_matcher(std::vector<AddedToken> tokens) {
  AddedTokenMatcher m;
  m.tokens = std::move(tokens);
  for (uint32_t i = 0; i < m.tokens.size(); ++i)
    if (!m.tokens[i].content.empty()) m.by_first_byte[static_cast<unsigned char>(m.tokens[i].content[0])].push_back(i);
  for (auto& list : m.by_first_byte)
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) { return m.tokens[a].content.size() > m.tokens[b].content.size(); });
  return m;
}

namespace {

// Hugging Face's single_word test: is the neighbouring character part of a
// word. Approximation: ASCII letters, digits and '_', and any non-ASCII
// character that is not whitespace.
bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  return !is_unicode_whitespace(cp);
}

uint32_t char_before(std::string_view s, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_char(s, start);
}

}  // namespace

void split_added_tokens(const AddedTokenMatcher& m, std::string_view text, std::vector<Segment>& out) {
  size_t done = 0;  // end of the last emitted segment
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = m.by_first_byte[static_cast<unsigned char>(text[pos])];
    const AddedToken* hit = nullptr;
    for (const uint32_t i : candidates) {
      const std::string& c = m.tokens[i].content;
      if (text.compare(pos, c.size(), c) == 0) {
        hit = &m.tokens[i];
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    pos = stop;
    if (hit->single_word) {
      size_t after = stop;
      const bool start_ok = start == 0 || !is_word_char(char_before(text, start));
      const bool stop_ok = stop == text.size() || !is_word_char(next_char(text, after));
      if (!start_ok || !stop_ok) continue;
    }
    if (hit->lstrip) {
      while (start > done) {
        size_t prev = start - 1;
        while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        size_t tmp = prev;
        if (!is_unicode_whitespace(next_char(text, tmp))) break;
        start = prev;
      }
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        size_t next = stop;
        if (!is_unicode_whitespace(next_char(text, next))) break;
        stop = next;
      }
      pos = stop;
    }
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, hit->id});
    done = stop;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
}

}  // namespace jetmoe::tokenizer_detail
