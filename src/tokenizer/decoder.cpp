#include "tokenizer/decoder.h"

#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {

bool Decoder::byte_fallback() const {
  for (const DecoderStep& s : steps)
    if (s.kind == DecoderStep::Kind::ByteFallback) return true;
  return false;
}

bool parse_byte_piece(std::string_view t, unsigned char& byte) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return false;
  byte = static_cast<unsigned char>(hi * 16 + lo);
  return true;
}

namespace {

// A run of byte tokens becomes its text when the whole run is valid UTF-8,
// else one U+FFFD per byte (the Rust core's rule, stricter than WHATWG's).
void flush_bytes(std::string& bytes, std::vector<std::string>& out) {
  if (bytes.empty()) return;
  if (is_valid_utf8(bytes)) {
    out.push_back(bytes);
  } else {
    for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
  }
  bytes.clear();
}

void byte_fallback(std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string bytes;
  for (std::string& t : tokens) {
    unsigned char b;
    if (parse_byte_piece(t, b)) {
      bytes.push_back(static_cast<char>(b));
    } else {
      flush_bytes(bytes, out);
      out.push_back(std::move(t));
    }
  }
  flush_bytes(bytes, out);
  tokens = std::move(out);
}

void strip(const DecoderStep& s, std::string& t) {
  // Works on characters, as the Rust decoder does.
  std::vector<size_t> starts;
  for (size_t pos = 0; pos < t.size(); pos += utf8_char_len(static_cast<unsigned char>(t[pos]))) starts.push_back(pos);
  starts.push_back(t.size());
  const size_t n = starts.size() - 1;
  auto char_is = [&](size_t i) {
    size_t p = starts[i];
    return next_char(t, p) == s.strip_char;
  };
  size_t begin = 0, end = n;
  for (size_t i = 0; i < s.start && i < n && char_is(i); ++i) begin = i + 1;
  for (size_t i = 0; i < s.stop && i < n; ++i) {
    const size_t index = n - i - 1;
    if (index < begin || !char_is(index)) break;
    end = index;
  }
  t = t.substr(starts[begin], starts[end] - starts[begin]);
}

}  // namespace

std::string run_decoder(const Decoder& d, std::vector<std::string> tokens) {
  if (!d.present) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  for (const DecoderStep& s : d.steps) {
    switch (s.kind) {
      case DecoderStep::Kind::Replace:
        for (std::string& t : tokens) replace_all(t, s.pattern, s.content);
        break;
      case DecoderStep::Kind::ByteFallback:
        byte_fallback(tokens);
        break;
      case DecoderStep::Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (std::string& t : tokens) strip(s, t);
        break;
      case DecoderStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) replace_all(tokens[i], s.pattern, i == 0 && s.prepend ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace jetmoe::tokenizer_detail
