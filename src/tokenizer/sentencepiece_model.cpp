// tokenizer.model (SentencePiece ModelProto) -> TokenizerData, through
// Debian's libsentencepiece. Special-token text is split out before
// SentencePiece sees a segment (SentencePiece itself would encode "<s>" as
// the characters < s >), so the ids equal Hugging Face's (legacy=true).
#include <sentencepiece_processor.h>

#include <memory>

#include "jetmoe/error.h"
#include "tokenizer/tokenizer_data.h"

namespace jetmoe::tokenizer_detail {

void load_sentencepiece_model(TokenizerData& d, std::string_view bytes, const std::string& source, const TokenizerConfig& cfg) {
  d.source = source;
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->LoadFromSerializedProto(absl::string_view(bytes.data(), bytes.size()));
  if (!status.ok()) throw Error(source + ": not a valid SentencePiece model (" + status.ToString() + ")");
  if (cfg.legacy == false)
    throw Error(source + ": tokenizer_config.json sets legacy=false, whose encoding (no \u2581 after special tokens) "
                         "SentencePiece cannot give; use tokenizer.json");
  const int n = sp->GetPieceSize();
  if (n <= 0) throw Error(source + ": the model has no pieces");
  std::vector<AddedToken> specials;
  for (int id = 0; id < n; ++id) {
    const std::string& piece = sp->IdToPiece(id);
    // Control and unknown pieces are what LlamaTokenizerFast registers as
    // special added tokens (normalized=false).
    const bool special = sp->IsControl(id) || sp->IsUnknown(id);
    d.set_piece(id, piece, static_cast<uint8_t>(kPresent | (special ? kSpecial | kAdded : 0)));
    d.vocab.emplace(piece, id);
    if (special && !piece.empty()) {
      d.added_ids[piece] = id;
      specials.push_back({id, piece, false, false, false, false, true});
    }
  }
  d.raw_added = make_added_token_matcher(std::move(specials));

  auto name = [&](int id) { return id >= 0 && id < n ? sp->IdToPiece(id) : std::string(); };
  d.bos_token = name(sp->bos_id());
  d.eos_token = name(sp->eos_id());
  d.pad_token = name(sp->pad_id());
  d.unk_token = name(sp->unk_id());
  // LlamaTokenizer's defaults when tokenizer_config.json does not say.
  d.add_bos = !d.bos_token.empty();
  d.add_eos = false;
  if (d.add_bos) d.prefix_ids.push_back(sp->bos_id());

  // The decoder transformers' LlamaConverter writes; the leading-space Strip
  // only when the model adds a dummy prefix, probed because the normalizer
  // spec is not exposed by the library's public header.
  std::vector<std::string> probe;
  const bool dummy_prefix = sp->Encode("a", &probe).ok() && !probe.empty() && probe[0].rfind("\xE2\x96\x81", 0) == 0;
  d.decoder.present = true;
  d.decoder.steps.push_back({DecoderStep::Kind::Replace, "\xE2\x96\x81", " ", ' ', 0, 0, true});
  d.decoder.steps.push_back({DecoderStep::Kind::ByteFallback, "", "", ' ', 0, 0, true});
  d.decoder.steps.push_back({DecoderStep::Kind::Fuse, "", "", ' ', 0, 0, true});
  if (dummy_prefix) d.decoder.steps.push_back({DecoderStep::Kind::Strip, "", "", ' ', 1, 0, true});

  d.segment_encoder = [sp, source](std::string_view text, std::vector<int32_t>& out) {
    std::vector<int> ids;
    const auto st = sp->Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!st.ok()) throw Error(source + ": SentencePiece could not encode the text (" + st.ToString() + ")");
    out.insert(out.end(), ids.begin(), ids.end());
  };
}

}  // namespace jetmoe::tokenizer_detail
