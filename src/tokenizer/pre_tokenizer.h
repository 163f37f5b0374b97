#pragma once
// Pre-tokenizers: none (the whole normalized segment is one word, as Llama-2's
// tokenizer.json declares) or Metaspace (newer Llama/Mistral files).
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::tokenizer_detail {

struct PreTokenizer {
  enum class Kind { None, Metaspace };
  enum class Prepend { Always, First, Never };
  Kind kind = Kind::None;
  std::string replacement = "\xE2\x96\x81";  // U+2581
  Prepend prepend_scheme = Prepend::Always;
  bool split = true;
};

// Transforms `text` (a normalized segment; `at_input_start` when it begins at
// offset 0 of the original input) into `buffer` and returns the words as views
// into it.
void pre_tokenize(const PreTokenizer& p, std::string_view text, bool at_input_start, std::string& buffer,
                  std::vector<std::string_view>& words);

}  // namespace jetmoe::tokenizer_detail
