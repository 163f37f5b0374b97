#pragma once
// The Hugging Face-compatible tokenizer of Llama-family checkpoints (JetMoE
// ships Llama-2's): text -> ids exactly as transformers' fast tokenizer
// (`tokenizers` Rust core) gives them, ids -> text exactly as its decode().
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

namespace tokenizer_detail {
struct TokenizerData;
}

class Tokenizer {
 public:
  // path: a model folder (prefers tokenizer.json, else tokenizer.model; reads
  // tokenizer_config.json and chat_template.jinja if present), or a
  // tokenizer.json / tokenizer.model file directly (then the
  // tokenizer_config.json next to it is read too), or a .gguf model (the
  // same files' texts from its metadata). Throws jetmoe::Error.
  static Tokenizer from_pretrained(const std::filesystem::path& path);

  // text must be valid UTF-8 (Error naming the byte offset otherwise: Hugging
  // Face only ever sees Unicode strings). add_special_tokens adds BOS/EOS as
  // the config says; special-token text typed in `text` ("<s>") is always
  // recognised, as in Hugging Face.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = true) const;
  // Error for an id outside [0, vocab_size()) (Hugging Face drops them silently).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const;  // including added tokens
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  std::optional<int32_t> pad_token_id() const;
  std::optional<int32_t> unk_token_id() const;
  const std::string& bos_token() const;  // "" when none
  const std::string& eos_token() const;  // "" when none
  const std::string& chat_template() const;  // from tokenizer_config.json, "" when none
  bool add_bos_token() const;
  bool add_eos_token() const;
  bool is_special(int32_t id) const;
  // The token as stored ("▁Hello", "<0x0A>", "<s>"); Error outside the vocabulary.
  std::string_view id_to_piece(int32_t id) const;
  std::optional<int32_t> piece_to_id(std::string_view piece) const;

  // Internal: the loaded data (cheap to copy: shared, immutable).
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerData> data);
  const tokenizer_detail::TokenizerData& data() const { return *data_; }

 private:
  std::shared_ptr<const tokenizer_detail::TokenizerData> data_;
};

// Streaming decode: push ids one at a time; the returned pieces concatenate to
// decode(all ids) and never split a UTF-8 character. A run of byte-fallback
// pieces is held back until a piece that is not a byte ends it (or flush()),
// because Hugging Face decodes the run as a whole (an invalid run becomes one
// U+FFFD per byte). Keeps its own copy of the tokenizer (cheap); not
// thread-safe (one decoder per stream).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  // Continues after `context` (a prompt) without emitting its text: the
  // pieces are decode(context + new ids) with decode(context)'s length cut
  // off, as transformers' pipeline cuts it, so the first new token keeps the
  // leading space it has in the whole text.
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens, std::span<const int32_t> context);
  std::string push(int32_t id);  // Error for an id outside the vocabulary
  std::string flush();           // whatever is still held back at the end

 private:
  std::string next(int32_t id);
  std::string finish();
  std::string without_context(std::string piece);
  std::string extend(const std::string& full);
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  // Visible ids not yet settled, after one settled "anchor" id whose decoded
  // text is subtracted (so start-of-text rules such as Strip apply only once).
  std::vector<int32_t> window_;
  bool has_anchor_ = false;
  std::string anchor_text_;
  // Decoders that strip the end of the text (Strip with stop > 0), or more
  // than one leading character (start > 1: an anchor made only of such
  // characters would lose them twice), make the anchor trick unsound: then
  // every push decodes the whole stream and emits what extends the text
  // already emitted (quadratic, but only such rare tokenizers pay).
  bool whole_text_ = false;
  std::string emitted_;
  size_t context_bytes_ = 0;  // context text still to come out and be dropped
};

}  // namespace jetmoe
