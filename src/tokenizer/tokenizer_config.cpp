// tokenizer_config.json (transformers' tokenizer settings) and the step that
// applies it to a loaded tokenizer.
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "tokenizer/tokenizer_data.h"
#include "tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {

namespace {

using nlohmann::json;

// "<s>", null, or a serialized AddedToken {"content": "<s>", ...}.
std::optional<std::string> token_name(const JsonContext& c, const json& root, const char* key) {
  const auto it = root.find(key);
  if (it == root.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return get_string(c, field(c, *it, "content", key), std::string(key) + ".content");
  c.fail(key, "expected a string, null or {\"content\": ...}, got " + describe(*it));
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view text, const std::string& source) {
  const JsonContext c{source};
  const json root = parse_json(text, source);
  if (!root.is_object()) c.fail("(top level)", "expected an object, got " + describe(root));
  TokenizerConfig cfg;
  for (auto [key, slot] : {std::pair{"add_bos_token", &cfg.add_bos_token}, {"add_eos_token", &cfg.add_eos_token}, {"legacy", &cfg.legacy}}) {
    const auto it = root.find(key);
    if (it != root.end() && !it->is_null()) *slot = get_bool(c, *it, key);
  }
  cfg.bos_token = token_name(c, root, "bos_token");
  cfg.eos_token = token_name(c, root, "eos_token");
  cfg.pad_token = token_name(c, root, "pad_token");
  cfg.unk_token = token_name(c, root, "unk_token");

  if (const auto it = root.find("chat_template"); it != root.end() && !it->is_null()) {
    if (it->is_string()) {
      cfg.chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
      for (size_t i = 0; i < it->size(); ++i) {
        const std::string at = "chat_template[" + std::to_string(i) + "]";
        const json& t = (*it)[i];
        if (get_string(c, field(c, t, "name", at), at + ".name") == "default")
          cfg.chat_template = get_string(c, field(c, t, "template", at), at + ".template");
      }
    } else {
      c.fail("chat_template", "expected a string or a list of {\"name\", \"template\"}, got " + describe(*it));
    }
  }

  if (const auto it = root.find("added_tokens_decoder"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) c.fail("added_tokens_decoder", "expected an object {\"id\": {...}}");
    for (const auto& [key, t] : it->items()) {
      const std::string at = "added_tokens_decoder[\"" + key + "\"]";
      AddedToken a;
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != key.size() || id < 0 || id >= (1 << 22)) c.fail(at, "the key must be a token id (a non-negative integer)");
      a.id = static_cast<int32_t>(id);
      a.content = get_string(c, field(c, t, "content", at), at + ".content");
      if (a.content.empty() || !is_valid_utf8(a.content)) c.fail(at + ".content", "expected a non-empty UTF-8 string");
      a.special = opt_bool(c, t, "special", at, false);
      a.single_word = opt_bool(c, t, "single_word", at, false);
      a.lstrip = opt_bool(c, t, "lstrip", at, false);
      a.rstrip = opt_bool(c, t, "rstrip", at, false);
      a.normalized = opt_bool(c, t, "normalized", at, !a.special);
      cfg.added_tokens.push_back(std::move(a));
    }
  }
  return cfg;
}

namespace {

void build_bpe_tables(TokenizerData& d) {
  BpeModel& bpe = d.bpe;
  bpe.vocab = &d.vocab;
  bool crosses = false;
  for (const auto& [piece, id] : d.vocab) {
    size_t pos = 0;
    if (!piece.empty() && (next_char(piece, pos), pos == piece.size())) {
      size_t p = 0;
      bpe.char_ids.insert(next_char(piece, p), static_cast<uint64_t>(id));
    }
    // A character other than U+2581 followed by U+2581?
    for (size_t hit = piece.find(kMetaspace, 1); hit != std::string::npos && !crosses; hit = piece.find(kMetaspace, hit + 3))
      crosses = !(hit >= 3 && piece.compare(hit - 3, 3, kMetaspace) == 0);
  }
  bpe.split_before_metaspace = !crosses && !bpe.ignore_merges;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string name = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    const auto it = d.vocab.find(name);
    bpe.byte_ids[b] = it == d.vocab.end() ? -1 : it->second;
  }
}

}  // namespace

void finish_tokenizer(TokenizerData& d, const TokenizerConfig& cfg) {
  // added_tokens_decoder entries that tokenizer.json / tokenizer.model lack.
  std::vector<AddedToken> raw = d.raw_added.tokens, normalized = d.normalized_added.tokens;
  bool changed = false;
  for (const AddedToken& a : cfg.added_tokens) {
    if (d.valid(a.id) && (d.flags[static_cast<size_t>(a.id)] & kAdded)) continue;
    d.set_piece(a.id, a.content, static_cast<uint8_t>(kPresent | kAdded | (a.special ? kSpecial : 0)));
    d.added_ids[a.content] = a.id;
    (a.normalized ? normalized : raw).push_back(a);
    changed = true;
  }
  if (changed) {
    d.raw_added = make_added_token_matcher(std::move(raw));
    d.normalized_added = make_added_token_matcher(std::move(normalized));
  }
  if (cfg.bos_token) d.bos_token = *cfg.bos_token;
  if (cfg.eos_token) d.eos_token = *cfg.eos_token;
  if (cfg.pad_token) d.pad_token = *cfg.pad_token;
  if (cfg.unk_token) d.unk_token = *cfg.unk_token;
  d.chat_template = cfg.chat_template;

  // LlamaTokenizerFast rebuilds its post-processor from add_bos_token /
  // add_eos_token; so do we whenever the config states either.
  if (cfg.add_bos_token || cfg.add_eos_token) {
    d.add_bos = cfg.add_bos_token.value_or(d.add_bos);
    d.add_eos = cfg.add_eos_token.value_or(d.add_eos);
    auto id_of = [&](const std::string& name, const char* key) {
      const auto id = d.find(name);
      if (name.empty() || !id) throw Error(d.source + ": tokenizer_config.json asks for " + key + " but that token (\"" + name + "\") is not in the vocabulary");
      return *id;
    };
    d.prefix_ids.clear();
    d.suffix_ids.clear();
    if (d.add_bos) d.prefix_ids.push_back(id_of(d.bos_token, "add_bos_token"));
    if (d.add_eos) d.suffix_ids.push_back(id_of(d.eos_token, "add_eos_token"));
  }

  // tokenizer.json alone names no BOS; the template's leading token is it.
  if (d.bos_token.empty() && !cfg.bos_token && d.prefix_ids.size() == 1) d.bos_token = d.pieces[static_cast<size_t>(d.prefix_ids[0])];

  if (!d.segment_encoder) build_bpe_tables(d);
  if (d.decoder.byte_fallback()) {
    for (size_t id = 0; id < d.pieces.size(); ++id) {
      unsigned char b;
      if ((d.flags[id] & kPresent) && parse_byte_piece(d.pieces[id], b)) d.flags[id] |= kBytePiece;
    }
  }
}

std::optional<int32_t> TokenizerData::find(std::string_view piece) const {
  const std::string key(piece);
  if (const auto it = added_ids.find(key); it != added_ids.end()) return it->second;
  if (const auto it = vocab.find(key); it != vocab.end()) return it->second;
  return std::nullopt;
}

void TokenizerData::set_piece(int32_t id, std::string piece, uint8_t f) {
  const auto i = static_cast<size_t>(id);
  if (i >= pieces.size()) {
    pieces.resize(i + 1);
    flags.resize(i + 1, 0);
  }
  pieces[i] = std::move(piece);
  flags[i] = f;
}

}  // namespace jetmoe::tokenizer_detail
