#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/normalizer.h"

namespace jetmoe::tokenizer_detail {

void pre_tokenize(const PreTokenizer& p, std::string_view text, bool at_input_start, std::string& buffer,
                  std::vector<std::string_view>& words) {
  words.clear();
  if (p.kind == PreTokenizer::Kind::None) {
    buffer.assign(text);
    if (!buffer.empty()) words.push_back(buffer);
    return;
  }
  // `tokenizers` Metaspace: spaces become the replacement, then the prefix is
  // added unless the text already starts with one, then (split) every
  // replacement starts a new word (MergedWithNext).
  buffer.assign(text);
  // NormalizedString::prepend leaves an empty string empty.
  if (buffer.empty()) return;
  replace_all(buffer, " ", p.replacement);
  const bool starts = buffer.compare(0, p.replacement.size(), p.replacement) == 0;
  if (!starts && (p.prepend_scheme == PreTokenizer::Prepend::Always || (p.prepend_scheme == PreTokenizer::Prepend::First && at_input_start)))
    buffer.insert(0, p.replacement);
  const std::string_view b(buffer);
  if (!p.split || p.replacement.empty()) {
    words.push_back(b);
    return;
  }
  size_t start = 0;
  for (size_t hit = b.find(p.replacement, 1); hit != std::string_view::npos; hit = b.find(p.replacement, hit + p.replacement.size())) {
    if (hit > start) words.push_back(b.substr(start, hit - start));
    start = hit;
  }
  words.push_back(b.substr(start));
}

}  // namespace jetmoe::tokenizer_detail
