#pragma once
// The normalizer steps Llama-family tokenizer.json files use. Only what
// `tokenizers` does is done: no Unicode normalization unless a step asks for it
// (and NFC/NFKC steps are refused at load time).
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::tokenizer_detail {

struct NormalizerStep {
  enum class Kind { Prepend, Replace };
  Kind kind = Kind::Prepend;
  std::string text;     // Prepend: what to prepend; Replace: the literal pattern
  std::string content;  // Replace: the replacement
};

// Applies the steps in order. Prepend leaves an empty string empty.
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text);

void replace_all(std::string& s, std::string_view pattern, std::string_view content);

}  // namespace jetmoe::tokenizer_detail
