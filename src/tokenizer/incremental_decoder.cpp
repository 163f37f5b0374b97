#include "jetmoe/error.h"
#include "jetmoe/tokenizer.h"
#include "tokenizer/tokenizer_data.h"

namespace jetmoe {

using namespace tokenizer_detail;

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {
  for (const DecoderStep& step : tokenizer_.data().decoder.steps)
    whole_text_ = whole_text_ || (step.kind == DecoderStep::Kind::Strip && (step.stop > 0 || step.start > 1));
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens, std::span<const int32_t> context)
    : IncrementalDecoder(tokenizer, skip_special_tokens) {
  context_bytes_ = tokenizer_.decode(context, skip_special_tokens_).size();
  for (int32_t id : context) (void)push(id);
}

std::string IncrementalDecoder::without_context(std::string piece) {
  const size_t n = std::min(context_bytes_, piece.size());
  context_bytes_ -= n;
  piece.erase(0, n);
  return piece;
}

std::string IncrementalDecoder::push(int32_t id) { return without_context(next(id)); }

std::string IncrementalDecoder::flush() {
  std::string out = without_context(finish());
  context_bytes_ = 0;
  return out;
}

namespace {

// The new text of `window` beyond its anchor's own decoded text. The anchor is
// a settled piece that is not a byte, so the decoder output of
// [anchor, rest...] starts with that of [anchor]: whatever start-of-text rule
// applies (Strip, Metaspace) acts on the anchor alike in both.
std::string new_text(const Tokenizer& t, const std::vector<int32_t>& window, bool has_anchor, const std::string& anchor_text) {
  std::string text = t.decode(window, false);
  if (has_anchor && text.compare(0, anchor_text.size(), anchor_text) == 0) text.erase(0, anchor_text.size());
  return text;
}

}  // namespace

std::string IncrementalDecoder::next(int32_t id) {
  const TokenizerData& d = tokenizer_.data();
  if (!d.valid(id))
    throw Error("decode: token id " + std::to_string(id) + " is outside the vocabulary of " + d.source + " (expected 0.." +
                std::to_string(d.size() - 1) + ")");
  const uint8_t flags = d.flags[static_cast<size_t>(id)];
  // A skipped special token is invisible: it neither prints nor ends a byte run.
  if (skip_special_tokens_ && (flags & kSpecial)) return {};
  window_.push_back(id);
  // The byte run may continue, and Hugging Face decodes it as a whole.
  if (flags & kBytePiece) return {};
  if (whole_text_) return extend(tokenizer_.decode(window_, false));
  std::string out = new_text(tokenizer_, window_, has_anchor_, anchor_text_);
  window_.assign(1, id);
  has_anchor_ = true;
  anchor_text_ = tokenizer_.decode(window_, false);
  return out;
}

// With whole-text decoding, a later decode extends an earlier one except
// for what the end-strip removed, which comes back once text follows it.
std::string IncrementalDecoder::extend(const std::string& full) {
  std::string out;
  if (full.compare(0, emitted_.size(), emitted_) == 0) out = full.substr(emitted_.size());
  emitted_ = full;
  return out;
}

std::string IncrementalDecoder::finish() {
  if (whole_text_) {
    std::string out = window_.empty() ? std::string() : extend(tokenizer_.decode(window_, false));
    window_.clear();
    emitted_.clear();
    return out;
  }
  std::string out;
  if (window_.size() > (has_anchor_ ? 1u : 0u)) out = new_text(tokenizer_, window_, has_anchor_, anchor_text_);
  // The stream has ended; a further push starts a new one.
  window_.clear();
  has_anchor_ = false;
  anchor_text_.clear();
  return out;
}

}  // namespace jetmoe
