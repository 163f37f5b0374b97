#pragma once
// Added tokens (`<s>`, `</s>`, `<unk>` for Llama) are found in the text before
// anything else touches it, leftmost-longest, as `tokenizers`'
// AddedVocabulary does; the text between them is what the normalizer and BPE see.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::tokenizer_detail {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Tokens indexed by first byte, longest first, so the scan tries only the
// candidates that can start at a position.
struct AddedTokenMatcher {
  std::vector<AddedToken> tokens;
  std::array<std::vector<uint32_t>, 256> by_first_byte;
  bool empty() const { return tokens.empty(); }
};

AddedTokenMatcher make_added_token_matcher(std::vector<AddedToken> tokens);

// A piece of the text: plain text [begin, end) when id < 0, else the added
// token with that id (its span includes whitespace taken by lstrip/rstrip).
struct Segment {
  size_t begin = 0, end = 0;
  int32_t id = -1;
};

// Splits valid UTF-8 `text` into plain and added-token segments.
void split_added_tokens(const AddedTokenMatcher& matcher, std::string_view text, std::vector<Segment>& out);

}  // namespace jetmoe::tokenizer_detail
