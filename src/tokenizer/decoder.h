#pragma once
// The decoder chain of tokenizer.json (`tokenizers` decoders): each step maps
// the list of token strings to a new list; the result is their concatenation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::tokenizer_detail {

struct DecoderStep {
  enum class Kind { Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind = Kind::Fuse;
  std::string pattern, content;  // Replace; Metaspace: pattern = replacement
  uint32_t strip_char = ' ';     // Strip
  size_t start = 0, stop = 0;    // Strip
  bool prepend = true;           // Metaspace: prepend_scheme != never (drop the first token's replacements)
};

struct Decoder {
  bool present = false;  // without a decoder, tokens are joined with " "
  std::vector<DecoderStep> steps;
  bool byte_fallback() const;
};

// "<0xNN>" -> the byte, as the ByteFallback decoder recognises it.
bool parse_byte_piece(std::string_view token, unsigned char& byte);

std::string run_decoder(const Decoder& d, std::vector<std::string> tokens);

}  // namespace jetmoe::tokenizer_detail
