// libFuzzer entry point. The first byte picks what the rest of the input is:
//   'j' a tokenizer.json   'c' a tokenizer_config.json (applied to a tiny tokenizer)
//   'd' token ids (2 bytes each, some beyond the vocabulary)   else UTF-8-ish text
// Besides "no crash, no sanitizer report", it checks invariants that must hold
// for any input: errors only as jetmoe::Error, decode(encode(t)) == t for text
// without special-token markup or U+2581, and streaming == full decode.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "jetmoe/error.h"
#include "jetmoe/tokenizer.h"
#include "tokenizer/tokenizer_data.h"
#include "tokenizer/utf8.h"

using namespace jetmoe;
using namespace jetmoe::tokenizer_detail;

namespace {

const char* kTinyTokenizerJson = R"({"version": "1.0", "added_tokens": [
  {"id": 0, "content": "<unk>", "special": true, "normalized": false},
  {"id": 1, "content": "<s>", "special": true, "normalized": false},
  {"id": 2, "content": "</s>", "special": true, "normalized": false}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
 "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
   {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
   {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
   "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "<0xC3>": 4, "<0xA9>": 5, "\u2581": 6, "a": 7, "b": 8,
             "\u2581a": 9, "ab": 10, "\u2581ab": 11, "\u2581\u2581": 12},
   "merges": ["\u2581 a", "a b", "\u2581a b", "\u2581 ab", "\u2581 \u2581"]}})";

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "invariant violated: %s\n", what.c_str());
  std::abort();
}

const Tokenizer& llama() {
  static const Tokenizer t = Tokenizer::from_pretrained(JETMOE_TOKENIZER_DIR "/tokenizer.json");
  return t;
}

void check_streaming(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip) {
  const std::string full = t.decode(ids, skip);
  IncrementalDecoder d(t, skip);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string piece = d.push(id);
    if (!is_valid_utf8(piece)) fail("a streamed piece is not whole UTF-8");
    streamed += piece;
  }
  streamed += d.flush();
  if (streamed != full) fail("streamed text differs from the full decode");
}

void exercise(const Tokenizer& t) {
  for (const char* text : {"ab a\xC3\xA9 <s>b", "", "  A\n"}) {
    const auto ids = t.encode(text);
    (void)t.decode(ids, false);
    check_streaming(t, ids, true);
  }
}

void fuzz_text(std::string_view text) {
  const Tokenizer& t = llama();
  std::vector<int32_t> ids;
  try {
    ids = t.encode(text);
  } catch (const Error&) {
    if (is_valid_utf8(text)) fail("valid UTF-8 text was refused");
    return;
  }
  if (!is_valid_utf8(text)) fail("invalid UTF-8 text was accepted");
  const bool markup = text.find("<s>") != std::string_view::npos || text.find("</s>") != std::string_view::npos ||
                      text.find("<unk>") != std::string_view::npos || text.find("\xE2\x96\x81") != std::string_view::npos;
  if (!markup && t.decode(ids, true) != text) fail("decode(encode(text)) != text");
  check_streaming(t, ids, false);
}

void fuzz_ids(std::string_view bytes) {
  const Tokenizer& t = llama();
  std::vector<int32_t> ids;
  bool all_valid = true;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    // Mostly byte pieces and specials (the interesting decoder paths), some
    // ordinary pieces, a few outside the vocabulary.
    const auto v = static_cast<uint16_t>(static_cast<unsigned char>(bytes[i]) | static_cast<unsigned char>(bytes[i + 1]) << 8);
    const int32_t id = v < 0x8000 ? v % 259 : v < 0xF000 ? static_cast<int32_t>(v % 32000) : 32000 + (v & 0xFF) - 0x80;
    all_valid = all_valid && id >= 0 && id < 32000;
    ids.push_back(id);
  }
  for (const bool skip : {false, true}) {
    try {
      (void)t.decode(ids, skip);
      check_streaming(t, ids, skip);
      if (!all_valid) fail("an id outside the vocabulary was accepted");
    } catch (const Error&) {
      if (all_valid) fail("valid ids were refused");
    }
  }
}

void fuzz_tokenizer_json(std::string_view json) {
  auto data = std::make_shared<TokenizerData>();
  try {
    load_tokenizer_json(*data, json, "fuzz/tokenizer.json");
    finish_tokenizer(*data, TokenizerConfig{});
    exercise(Tokenizer(data));
  } catch (const Error&) {
  }
}

void fuzz_config(std::string_view json) {
  try {
    const TokenizerConfig cfg = parse_tokenizer_config(json, "fuzz/tokenizer_config.json");
    auto data = std::make_shared<TokenizerData>();
    load_tokenizer_json(*data, kTinyTokenizerJson, "tiny/tokenizer.json");
    finish_tokenizer(*data, cfg);
    exercise(Tokenizer(data));
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0]) {
    case 'j': fuzz_tokenizer_json(rest); break;
    case 'c': fuzz_config(rest); break;
    case 'd': fuzz_ids(rest); break;
    default: fuzz_text(rest); break;
  }
  return 0;
}
