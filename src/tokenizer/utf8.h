#pragma once
// UTF-8 helpers shared by the tokenizer steps. Text reaching them has been
// validated once at the encode entry point, so next_char trusts its input.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jetmoe::tokenizer_detail {

// Byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF are invalid), or nullopt when valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);

inline bool is_valid_utf8(std::string_view s) { return !find_invalid_utf8(s).has_value(); }

// Length in bytes of the UTF-8 character starting with lead byte c (1 for a
// stray continuation byte, so loops over untrusted text still advance).
inline size_t utf8_char_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// U+2581, the "▁" SentencePiece writes for a space.
inline constexpr std::string_view kMetaspace = "\xE2\x96\x81";

// Decodes the character at s[pos] (valid UTF-8 assumed) and advances pos.
uint32_t next_char(std::string_view s, size_t& pos);
void append_utf8(std::string& out, uint32_t cp);

// Rust's char::is_whitespace (Unicode White_Space), which Hugging Face uses for
// the lstrip/rstrip of added tokens.
bool is_unicode_whitespace(uint32_t cp);

}  // namespace jetmoe::tokenizer_detail
