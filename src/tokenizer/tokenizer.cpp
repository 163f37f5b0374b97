#include "jetmoe/tokenizer.h"

#include <fstream>
#include <sstream>

#include "jetmoe/error.h"
#include "jetmoe/model_files.h"
#include "tokenizer/tokenizer_data.h"
#include "tokenizer/utf8.h"

namespace jetmoe {

using namespace tokenizer_detail;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path.string() + ": read failed");
  return ss.str();
}

// One plain-text segment (between added tokens) of the input.
void encode_plain(const TokenizerData& d, std::string_view text, bool at_input_start, std::vector<int32_t>& out) {
  if (d.segment_encoder) {
    d.segment_encoder(text, out);
    return;
  }
  const std::string normalized = normalize(d.normalizer, text);
  thread_local std::string buffer;
  thread_local std::vector<std::string_view> words;
  auto model = [&](std::string_view piece, bool at_start) {
    // pre_tokenize reuses the thread-local buffers; BPE never re-enters here.
    pre_tokenize(d.pre_tokenizer, piece, at_start, buffer, words);
    for (const std::string_view w : words) bpe_encode(d.bpe, d.cache, w, out);
  };
  if (d.normalized_added.empty()) {
    model(normalized, at_input_start);
    return;
  }
  std::vector<Segment> segments;
  split_added_tokens(d.normalized_added, normalized, segments);
  for (const Segment& s : segments) {
    if (s.id >= 0) out.push_back(s.id);
    else model(std::string_view(normalized).substr(s.begin, s.end - s.begin), at_input_start && s.begin == 0);
  }
}

void check_id(const TokenizerData& d, int32_t id, const char* what) {
  if (!d.valid(id))
    throw Error(std::string(what) + ": token id " + std::to_string(id) + " is outside the vocabulary of " + d.source + " (expected 0.." +
                std::to_string(d.size() - 1) + ")");
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerData> data) : data_(std::move(data)) {}

namespace {

// A .gguf model: the texts `jetmoe quantize` embedded.
Tokenizer from_gguf(const std::string& path) {
  std::string json_source, model_source, cfg_source, jinja_source;
  const auto json = read_model_file(path, "tokenizer.json", &json_source);
  std::optional<std::string> model;
  if (!json) model = read_model_file(path, "tokenizer.model", &model_source);
  if (!json && !model)
    throw Error(path + ": missing metadata key '" + gguf_key_for("tokenizer.json") + "' (or '" + gguf_key_for("tokenizer.model") +
                "'): this file has no embedded tokenizer");
  TokenizerConfig cfg;
  if (const auto text = read_model_file(path, "tokenizer_config.json", &cfg_source)) cfg = parse_tokenizer_config(*text, cfg_source);
  if (cfg.chat_template.empty())
    if (const auto text = read_model_file(path, "chat_template.jinja", &jinja_source)) cfg.chat_template = *text;
  auto data = std::make_shared<TokenizerData>();
  if (json) load_tokenizer_json(*data, *json, json_source);
  else load_sentencepiece_model(*data, *model, model_source, cfg);
  finish_tokenizer(*data, cfg);
  return Tokenizer(std::move(data));
}

}  // namespace

Tokenizer Tokenizer::from_pretrained(const fs::path& path) {
  fs::path dir, json_file, model_file;
  std::error_code ec;
  if (is_gguf_path(path.string()) && fs::is_regular_file(path, ec)) return from_gguf(path.string());
  if (fs::is_directory(path, ec)) {
    dir = path;
    if (fs::exists(path / "tokenizer.json", ec)) json_file = path / "tokenizer.json";
    else if (fs::exists(path / "tokenizer.model", ec)) model_file = path / "tokenizer.model";
    else throw Error(path.string() + ": no tokenizer.json or tokenizer.model in this folder");
  } else if (fs::exists(path, ec)) {
    dir = path.parent_path();
    if (path.extension() == ".json") json_file = path;
    else model_file = path;
  } else {
    throw Error(path.string() + ": no such file or folder (expected a model folder, tokenizer.json or tokenizer.model)");
  }
  TokenizerConfig cfg;
  const fs::path cfg_file = dir / "tokenizer_config.json";
  if (!(json_file == cfg_file) && fs::exists(cfg_file, ec)) cfg = parse_tokenizer_config(read_file(cfg_file), cfg_file.string());
  const fs::path jinja = dir / "chat_template.jinja";
  if (cfg.chat_template.empty() && fs::exists(jinja, ec)) cfg.chat_template = read_file(jinja);

  auto data = std::make_shared<TokenizerData>();
  if (!json_file.empty()) load_tokenizer_json(*data, read_file(json_file), json_file.string());
  else load_sentencepiece_model(*data, read_file(model_file), model_file.string(), cfg);
  finish_tokenizer(*data, cfg);
  return Tokenizer(std::move(data));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerData& d = *data_;
  if (const auto bad = find_invalid_utf8(text)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[*bad]));
    throw Error("encode: the text is not valid UTF-8 (byte " + std::string(hex) + " at offset " + std::to_string(*bad) + ")");
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out = d.prefix_ids;
  if (d.raw_added.empty()) {
    encode_plain(d, text, true, out);
  } else {
    std::vector<Segment> segments;
    split_added_tokens(d.raw_added, text, segments);
    for (const Segment& s : segments) {
      if (s.id >= 0) out.push_back(s.id);
      else encode_plain(d, text.substr(s.begin, s.end - s.begin), s.begin == 0, out);
    }
  }
  if (add_special_tokens) out.insert(out.end(), d.suffix_ids.begin(), d.suffix_ids.end());
  return out;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts, bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(encode(t, add_special_tokens));
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const TokenizerData& d = *data_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    check_id(d, id, "decode");
    if (skip_special_tokens && (d.flags[static_cast<size_t>(id)] & kSpecial)) continue;
    tokens.push_back(d.pieces[static_cast<size_t>(id)]);
  }
  return run_decoder(d.decoder, std::move(tokens));
}

int32_t Tokenizer::vocab_size() const { return data_->size(); }

namespace {
std::optional<int32_t> id_of(const TokenizerData& d, const std::string& token) {
  if (token.empty()) return std::nullopt;
  return d.find(token);
}
}  // namespace

std::optional<int32_t> Tokenizer::bos_token_id() const { return id_of(*data_, data_->bos_token); }
std::optional<int32_t> Tokenizer::eos_token_id() const { return id_of(*data_, data_->eos_token); }
std::optional<int32_t> Tokenizer::pad_token_id() const { return id_of(*data_, data_->pad_token); }
std::optional<int32_t> Tokenizer::unk_token_id() const { return id_of(*data_, data_->unk_token); }
const std::string& Tokenizer::bos_token() const { return data_->bos_token; }
const std::string& Tokenizer::eos_token() const { return data_->eos_token; }
const std::string& Tokenizer::chat_template() const { return data_->chat_template; }
bool Tokenizer::add_bos_token() const { return data_->add_bos; }
bool Tokenizer::add_eos_token() const { return data_->add_eos; }

bool Tokenizer::is_special(int32_t id) const { return data_->valid(id) && (data_->flags[static_cast<size_t>(id)] & kSpecial); }

std::string_view Tokenizer::id_to_piece(int32_t id) const {
  check_id(*data_, id, "id_to_piece");
  return data_->pieces[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::piece_to_id(std::string_view piece) const { return data_->find(piece); }

}  // namespace jetmoe
