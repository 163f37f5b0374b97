#pragma once
// Everything a loaded tokenizer holds, as plain data the encode/decode free
// functions read. Built once by a loader (tokenizer.json or tokenizer.model,
// then tokenizer_config.json), then shared immutably by Tokenizer copies.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace jetmoe::tokenizer_detail {

enum TokenFlags : uint8_t {
  kPresent = 1,  // the id has a piece (ids in between may be holes)
  kSpecial = 2,  // dropped by skip_special_tokens
  kAdded = 4,    // an added token (printed as its content)
  kBytePiece = 8,  // "<0xNN>" that the decoder's ByteFallback turns into a byte
};

struct TokenizerData {
  std::string source;  // file name used in error messages

  std::vector<std::string> pieces;  // id -> piece or added-token content
  std::vector<uint8_t> flags;       // id -> TokenFlags
  std::unordered_map<std::string, int32_t> vocab;  // model pieces
  std::unordered_map<std::string, int32_t> added_ids;  // added-token content -> id

  AddedTokenMatcher raw_added;         // matched on the input text (normalized=false)
  AddedTokenMatcher normalized_added;  // matched on normalized text (normalized=true)
  std::vector<NormalizerStep> normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel bpe;
  BpeCache cache;
  // tokenizer.model: libsentencepiece encodes each plain-text segment
  // (dummy prefix included); empty for tokenizer.json.
  std::function<void(std::string_view, std::vector<int32_t>&)> segment_encoder;
  Decoder decoder;

  // Added around the ids by add_special_tokens (single-sequence template).
  std::vector<int32_t> prefix_ids, suffix_ids;

  std::string bos_token, eos_token, pad_token, unk_token, chat_template;
  bool add_bos = false, add_eos = false;

  int32_t size() const { return static_cast<int32_t>(pieces.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < size() && (flags[static_cast<size_t>(id)] & kPresent); }
  std::optional<int32_t> find(std::string_view piece) const;
  // Registers id -> piece with flags, growing the tables.
  void set_piece(int32_t id, std::string piece, uint8_t flags);
};

// Settings from tokenizer_config.json that change the loaded tokenizer.
struct TokenizerConfig {
  std::optional<bool> add_bos_token, add_eos_token, legacy;
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  std::string chat_template;
  std::vector<AddedToken> added_tokens;  // added_tokens_decoder
};

// Parsers; `source` names the file in error messages.
TokenizerConfig parse_tokenizer_config(std::string_view json, const std::string& source);
void load_tokenizer_json(TokenizerData& data, std::string_view json, const std::string& source);
void load_sentencepiece_model(TokenizerData& data, std::string_view bytes, const std::string& source, const TokenizerConfig& config);
// Applies the config and builds the matchers and lookup tables; call last.
void finish_tokenizer(TokenizerData& data, const TokenizerConfig& config);

}  // namespace jetmoe::tokenizer_detail
