// tokenizer.json (Hugging Face `tokenizers` serialization) -> TokenizerData.
// Supports what Llama-family files use; any other component type is refused
// by name, because silently ignoring one would give wrong ids.
#include <nlohmann/json.hpp>

#include "jetmoe/error.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/tokenizer_data.h"
#include "tokenizer/utf8.h"

namespace jetmoe::tokenizer_detail {

namespace {

using nlohmann::json;
constexpr int64_t kMaxId = (int64_t{1} << 22) - 1;

std::string type_of(const JsonContext& c, const json& obj, const std::string& path) {
  return get_string(c, field(c, obj, "type", path), path + ".type");
}

[[noreturn]] void unsupported(const JsonContext& c, const std::string& path, const std::string& type, const char* supported) {
  c.fail(path + ".type", "\"" + type + "\" is not supported (supported: " + supported + ")");
}

// Replace patterns: {"String": "..."}; regex patterns are refused.
std::string string_pattern(const JsonContext& c, const json& step, const std::string& path) {
  const json& p = field(c, step, "pattern", path);
  if (p.is_object() && p.contains("String")) return get_string(c, p["String"], path + ".pattern.String");
  if (p.is_object() && p.contains("Regex")) c.fail(path + ".pattern", "Regex patterns are not supported (only {\"String\": ...})");
  c.fail(path + ".pattern", "expected {\"String\": ...}, got " + describe(p));
}

void parse_normalizer(const JsonContext& c, const json& n, const std::string& path, std::vector<NormalizerStep>& out) {
  if (n.is_null()) return;
  const std::string type = type_of(c, n, path);
  if (type == "Sequence") {
    const json& list = field(c, n, "normalizers", path);
    if (!list.is_array()) c.fail(path + ".normalizers", "expected a list");
    for (size_t i = 0; i < list.size(); ++i) parse_normalizer(c, list[i], path + ".normalizers[" + std::to_string(i) + "]", out);
  } else if (type == "Prepend") {
    out.push_back({NormalizerStep::Kind::Prepend, get_string(c, field(c, n, "prepend", path), path + ".prepend"), ""});
  } else if (type == "Replace") {
    out.push_back({NormalizerStep::Kind::Replace, string_pattern(c, n, path), get_string(c, field(c, n, "content", path), path + ".content")});
  } else {
    unsupported(c, path, type, "Sequence, Prepend, Replace");
  }
}

PreTokenizer::Prepend prepend_scheme(const JsonContext& c, const json& obj, const std::string& path) {
  if (obj.contains("prepend_scheme") && !obj["prepend_scheme"].is_null()) {
    const std::string s = get_string(c, obj["prepend_scheme"], path + ".prepend_scheme");
    if (s == "always") return PreTokenizer::Prepend::Always;
    if (s == "first") return PreTokenizer::Prepend::First;
    if (s == "never") return PreTokenizer::Prepend::Never;
    c.fail(path + ".prepend_scheme", "expected \"always\", \"first\" or \"never\", got \"" + s + "\"");
  }
  // Files written before prepend_scheme existed.
  return opt_bool(c, obj, "add_prefix_space", path, true) ? PreTokenizer::Prepend::Always : PreTokenizer::Prepend::Never;
}

std::string replacement(const JsonContext& c, const json& obj, const std::string& path) {
  const std::string r = get_string(c, field(c, obj, "replacement", path), path + ".replacement");
  size_t pos = 0;
  if (r.empty() || !is_valid_utf8(r) || (next_char(r, pos), pos != r.size()))
    c.fail(path + ".replacement", "expected a single character, got \"" + r + "\"");
  return r;
}

void parse_pre_tokenizer(const JsonContext& c, const json& p, const std::string& path, PreTokenizer& out) {
  if (p.is_null()) return;
  const std::string type = type_of(c, p, path);
  if (type != "Metaspace") unsupported(c, path, type, "null, Metaspace");
  out.kind = PreTokenizer::Kind::Metaspace;
  out.replacement = replacement(c, p, path);
  out.prepend_scheme = prepend_scheme(c, p, path);
  out.split = opt_bool(c, p, "split", path, true);
}

void parse_decoder(const JsonContext& c, const json& d, const std::string& path, std::vector<DecoderStep>& out) {
  const std::string type = type_of(c, d, path);
  DecoderStep s;
  if (type == "Sequence") {
    const json& list = field(c, d, "decoders", path);
    if (!list.is_array()) c.fail(path + ".decoders", "expected a list");
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(c, list[i], path + ".decoders[" + std::to_string(i) + "]", out);
    return;
  } else if (type == "Replace") {
    s.kind = DecoderStep::Kind::Replace;
    s.pattern = string_pattern(c, d, path);
    s.content = get_string(c, field(c, d, "content", path), path + ".content");
  } else if (type == "ByteFallback") {
    s.kind = DecoderStep::Kind::ByteFallback;
  } else if (type == "Fuse") {
    s.kind = DecoderStep::Kind::Fuse;
  } else if (type == "Strip") {
    s.kind = DecoderStep::Kind::Strip;
    const std::string content = get_string(c, field(c, d, "content", path), path + ".content");
    size_t pos = 0;
    if (content.empty() || !is_valid_utf8(content) || (s.strip_char = next_char(content, pos), pos != content.size()))
      c.fail(path + ".content", "expected a single character, got \"" + content + "\"");
    s.start = static_cast<size_t>(get_int(c, field(c, d, "start", path), path + ".start", 0, 1 << 20));
    s.stop = static_cast<size_t>(get_int(c, field(c, d, "stop", path), path + ".stop", 0, 1 << 20));
  } else if (type == "Metaspace") {
    s.kind = DecoderStep::Kind::Metaspace;
    s.pattern = replacement(c, d, path);
    s.prepend = prepend_scheme(c, d, path) != PreTokenizer::Prepend::Never;
  } else {
    unsupported(c, path, type, "Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace");
  }
  out.push_back(std::move(s));
}

void parse_template(const JsonContext& c, const json& p, const std::string& path, TokenizerData& data) {
  const json& single = field(c, p, "single", path);
  if (!single.is_array()) c.fail(path + ".single", "expected a list");
  const json& specials = field(c, p, "special_tokens", path);
  if (!specials.is_object()) c.fail(path + ".special_tokens", "expected an object");
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string at = path + ".single[" + std::to_string(i) + "]";
    const json& item = single[i];
    if (item.is_object() && item.contains("Sequence")) {
      const std::string id = get_string(c, field(c, item["Sequence"], "id", at + ".Sequence"), at + ".Sequence.id");
      if (id != "A" || seen_sequence) c.fail(at, "the single-sequence template must hold sequence A exactly once");
      seen_sequence = true;
    } else if (item.is_object() && item.contains("SpecialToken")) {
      const std::string name = get_string(c, field(c, item["SpecialToken"], "id", at + ".SpecialToken"), at + ".SpecialToken.id");
      const auto it = specials.find(name);
      if (it == specials.end()) c.fail(at, "special token \"" + name + "\" is not in " + path + ".special_tokens");
      const std::string sp = path + ".special_tokens." + name;
      const json& ids = field(c, *it, "ids", sp);
      if (!ids.is_array()) c.fail(sp + ".ids", "expected a list of ids");
      for (size_t k = 0; k < ids.size(); ++k) {
        const auto id = static_cast<int32_t>(get_int(c, ids[k], sp + ".ids[" + std::to_string(k) + "]", 0, kMaxId));
        (seen_sequence ? data.suffix_ids : data.prefix_ids).push_back(id);
      }
    } else {
      c.fail(at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + describe(item));
    }
  }
  if (!seen_sequence) c.fail(path + ".single", "has no {\"Sequence\": {\"id\": \"A\"}}");
}

void parse_post_processor(const JsonContext& c, const json& p, const std::string& path, TokenizerData& data) {
  if (p.is_null()) return;
  const std::string type = type_of(c, p, path);
  if (type == "TemplateProcessing") {
    parse_template(c, p, path, data);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets; ids are unchanged.
  } else if (type == "Sequence") {
    const json& list = field(c, p, "processors", path);
    if (!list.is_array()) c.fail(path + ".processors", "expected a list");
    for (size_t i = 0; i < list.size(); ++i) parse_post_processor(c, list[i], path + ".processors[" + std::to_string(i) + "]", data);
  } else {
    unsupported(c, path, type, "null, TemplateProcessing, Sequence");
  }
}

std::pair<std::string, std::string> merge_pair(const JsonContext& c, const json& m, const std::string& path) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
      c.fail(path, "expected \"left right\" (one space), got " + describe(m));
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  c.fail(path, "expected \"left right\" or [\"left\", \"right\"], got " + describe(m));
}

void parse_model(const JsonContext& c, const json& m, TokenizerData& data) {
  const std::string path = "model";
  if (!m.is_object()) c.fail(path, "expected an object, got " + describe(m));
  const std::string type = m.contains("type") ? get_string(c, m["type"], "model.type") : "BPE";
  if (type != "BPE") unsupported(c, path, type, "BPE");
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    if (!m["dropout"].is_number()) c.fail("model.dropout", "expected null or a number");
    if (m["dropout"].get<double>() != 0.0) c.fail("model.dropout", "BPE dropout is random and not supported; expected null");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
      c.fail(std::string("model.") + key, "is not supported; expected null");
  }
  BpeModel& bpe = data.bpe;
  bpe.byte_fallback = opt_bool(c, m, "byte_fallback", path, false);
  bpe.fuse_unk = opt_bool(c, m, "fuse_unk", path, false);
  bpe.ignore_merges = opt_bool(c, m, "ignore_merges", path, false);

  const json& vocab = field(c, m, "vocab", path);
  if (!vocab.is_object()) c.fail("model.vocab", "expected an object {piece: id}");
  data.vocab.reserve(vocab.size());
  for (const auto& [piece, id_json] : vocab.items()) {
    const auto id = static_cast<int32_t>(get_int(c, id_json, "model.vocab[\"" + piece + "\"]", 0, kMaxId));
    if (!is_valid_utf8(piece)) c.fail("model.vocab", "a piece is not valid UTF-8 (id " + std::to_string(id) + ")");
    if (data.valid(id)) c.fail("model.vocab[\"" + piece + "\"]", "id " + std::to_string(id) + " is also used by \"" + data.pieces[static_cast<size_t>(id)] + "\"");
    data.vocab.emplace(piece, id);
    data.set_piece(id, piece, kPresent);
  }
  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    const std::string unk = get_string(c, m["unk_token"], "model.unk_token");
    const auto it = data.vocab.find(unk);
    if (it == data.vocab.end()) c.fail("model.unk_token", "\"" + unk + "\" is not in model.vocab");
    bpe.unk_id = it->second;
  }

  const json& merges = field(c, m, "merges", path);
  if (!merges.is_array()) c.fail("model.merges", "expected a list");
  bpe.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string at = "model.merges[" + std::to_string(i) + "]";
    const auto [left, right] = merge_pair(c, merges[i], at);
    const auto l = data.vocab.find(left), r = data.vocab.find(right), joined = data.vocab.find(left + right);
    if (l == data.vocab.end() || r == data.vocab.end() || joined == data.vocab.end())
      c.fail(at, "\"" + left + "\", \"" + right + "\" or their concatenation is not in model.vocab");
    const uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
    bpe.merges.insert(key, (static_cast<uint64_t>(i) << 32) | static_cast<uint32_t>(joined->second));
  }
}

void parse_added_tokens(const JsonContext& c, const json& list, TokenizerData& data, std::vector<AddedToken>& out) {
  if (list.is_null()) return;
  if (!list.is_array()) c.fail("added_tokens", "expected a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = "added_tokens[" + std::to_string(i) + "]";
    const json& t = list[i];
    AddedToken a;
    a.id = static_cast<int32_t>(get_int(c, field(c, t, "id", at), at + ".id", 0, kMaxId));
    a.content = get_string(c, field(c, t, "content", at), at + ".content");
    if (a.content.empty() || !is_valid_utf8(a.content)) c.fail(at + ".content", "expected a non-empty UTF-8 string");
    a.single_word = opt_bool(c, t, "single_word", at, false);
    a.lstrip = opt_bool(c, t, "lstrip", at, false);
    a.rstrip = opt_bool(c, t, "rstrip", at, false);
    a.normalized = opt_bool(c, t, "normalized", at, !opt_bool(c, t, "special", at, false));
    a.special = opt_bool(c, t, "special", at, false);
    out.push_back(std::move(a));
  }
  (void)data;
}

}  // namespace

void load_tokenizer_json(TokenizerData& data, std::string_view text, const std::string& source) {
  const JsonContext c{source};
  const json root = parse_json(text, source);
  if (!root.is_object()) c.fail("(top level)", "expected an object, got " + describe(root));
  data.source = source;
  parse_model(c, field(c, root, "model", "(top level)"), data);
  std::vector<AddedToken> added;
  if (root.contains("added_tokens")) parse_added_tokens(c, root["added_tokens"], data, added);
  for (const AddedToken& a : added) {
    data.set_piece(a.id, a.content, static_cast<uint8_t>(kPresent | kAdded | (a.special ? kSpecial : 0)));
    data.added_ids[a.content] = a.id;
  }
  std::vector<AddedToken> raw, normalized;
  for (AddedToken& a : added) (a.normalized ? normalized : raw).push_back(std::move(a));
  data.raw_added = make_added_token_matcher(std::move(raw));
  data.normalized_added = make_added_token_matcher(std::move(normalized));

  if (root.contains("normalizer")) parse_normalizer(c, root["normalizer"], "normalizer", data.normalizer);
  if (root.contains("pre_tokenizer")) parse_pre_tokenizer(c, root["pre_tokenizer"], "pre_tokenizer", data.pre_tokenizer);
  if (root.contains("decoder") && !root["decoder"].is_null()) {
    data.decoder.present = true;
    parse_decoder(c, root["decoder"], "decoder", data.decoder.steps);
  }
  if (root.contains("post_processor")) parse_post_processor(c, root["post_processor"], "post_processor", data);
  for (const int32_t id : data.prefix_ids)
    if (!data.valid(id)) c.fail("post_processor", "special token id " + std::to_string(id) + " is not in the vocabulary");
  for (const int32_t id : data.suffix_ids)
    if (!data.valid(id)) c.fail("post_processor", "special token id " + std::to_string(id) + " is not in the vocabulary");
  // "truncation" and "padding" are batch-shaping settings of the Python
  // wrapper; callers truncate and pad, so they are ignored here.

  // Without tokenizer_config.json, these are what the template adds.
  data.add_bos = !data.prefix_ids.empty();
  data.add_eos = !data.suffix_ids.empty();
}

}  // namespace jetmoe::tokenizer_detail
