#include "jetmoe/generate.h"

#include <algorithm>

#include "generate/search.h"
#include "jetmoe/error.h"
#include "jetmoe/kv_cache.h"
#include "jetmoe/model.h"

namespace jetmoe {

GenerateInput left_pad(const std::vector<std::vector<int32_t>>& prompts, int32_t pad_token_id) {
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  GenerateInput in;
  for (const auto& p : prompts) {
    const size_t pad = longest - p.size();
    std::vector<int32_t> ids(pad, pad_token_id), mask(pad, 0);
    ids.insert(ids.end(), p.begin(), p.end());
    mask.resize(longest, 1);
    in.input_ids.push_back(std::move(ids));
    in.attention_mask.push_back(std::move(mask));
  }
  return in;
}

namespace gen {

bool is_eos(const GenerationConfig& c, int32_t token) {
  return std::find(c.eos_token_id.begin(), c.eos_token_id.end(), token) != c.eos_token_id.end();
}

const std::vector<float>& step(const JetMoeForCausalLM& model, KVCache& cache, const Request& r,
                               const std::vector<int64_t>& rows, ModelInput& in, CausalLMOutput& out) {
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t len = static_cast<int64_t>(r.ids[static_cast<size_t>(rows[0])].size());
  const int64_t T = cache.length == 0 ? len : 1;
  in.batch_size = n;
  in.seq_len = T;
  in.input_ids.clear();
  in.attention_mask.clear();
  in.position_ids.clear();
  for (int64_t row : rows) {
    const auto& ids = r.ids[static_cast<size_t>(row)];
    const auto& mask = r.masks[static_cast<size_t>(row)];
    in.input_ids.insert(in.input_ids.end(), ids.end() - T, ids.end());
    in.attention_mask.insert(in.attention_mask.end(), mask.begin(), mask.end());
    int32_t ones = 0;
    for (int64_t t = 0; t < len; ++t) {
      ones += mask[static_cast<size_t>(t)];
      if (t >= len - T) in.position_ids.push_back(mask[static_cast<size_t>(t)] ? ones - 1 : 1);
    }
  }
  out = model.forward(in, &cache, {}, nullptr, /*logits_last_only=*/true);
  return out.logits.data;
}

}  // namespace gen

GenerateOutput generate(const JetMoeForCausalLM& model, const GenerateInput& input, const GenerationConfig& config,
                        const GenerateCallbacks& callbacks) {
  config.validate();
  const JetMoeConfig& mc = model.config();
  const auto& ids = input.input_ids;
  if (ids.empty()) throw Error("generate: input_ids has no rows");
  const size_t T = ids[0].size();
  if (T == 0) throw Error("generate: input_ids rows are empty; a prompt needs at least one token (e.g. BOS)");
  for (size_t b = 0; b < ids.size(); ++b) {
    if (ids[b].size() != T)
      throw Error("generate: input_ids row " + std::to_string(b) + " has " + std::to_string(ids[b].size()) +
                  " tokens but row 0 has " + std::to_string(T) + "; left-pad the prompts (see left_pad) and pass an attention_mask");
    for (int32_t id : ids[b])
      if (id < 0 || id >= mc.vocab_size)
        throw Error("generate: input_ids row " + std::to_string(b) + " holds token id " + std::to_string(id) +
                    ", outside the vocabulary [0, " + std::to_string(mc.vocab_size) + ")");
  }
  std::vector<std::vector<int32_t>> masks = input.attention_mask;
  if (masks.empty()) masks.assign(ids.size(), std::vector<int32_t>(T, 1));
  if (masks.size() != ids.size())
    throw Error("generate: attention_mask has " + std::to_string(masks.size()) + " rows, input_ids has " + std::to_string(ids.size()));
  for (size_t b = 0; b < masks.size(); ++b) {
    if (masks[b].size() != T)
      throw Error("generate: attention_mask row " + std::to_string(b) + " has " + std::to_string(masks[b].size()) +
                  " values, expected " + std::to_string(T) + " like input_ids");
    for (int32_t m : masks[b])
      if (m != 0 && m != 1) throw Error("generate: attention_mask values must be 0 or 1, got " + std::to_string(m));
    if (std::find(masks[b].begin(), masks[b].end(), 1) == masks[b].end())
      throw Error("generate: attention_mask row " + std::to_string(b) + " has no real token");
  }
  for (int32_t e : config.eos_token_id)
    if (e >= mc.vocab_size)
      throw Error("generate: eos_token_id " + std::to_string(e) + " is outside the vocabulary [0, " + std::to_string(mc.vocab_size) + ")");

  gen::Request r;
  r.config = config;
  // As transformers: without a pad token, finished rows are filled with the
  // first EOS.
  if (!r.config.pad_token_id && !r.config.eos_token_id.empty()) r.config.pad_token_id = r.config.eos_token_id[0];
  if (r.config.pad_token_id && (*r.config.pad_token_id < 0 || *r.config.pad_token_id >= mc.vocab_size))
    throw Error("generate: pad_token_id " + std::to_string(*r.config.pad_token_id) + " is outside the vocabulary [0, " +
                std::to_string(mc.vocab_size) + ")");
  r.prompt_length = static_cast<int64_t>(T);
  r.max_length = config.max_new_tokens ? r.prompt_length + *config.max_new_tokens : config.max_length;
  if (r.max_length <= r.prompt_length)
    throw Error("generate: max_length " + std::to_string(r.max_length) + " leaves no room after the " + std::to_string(T) +
                "-token prompt; set max_new_tokens instead");
  if (r.max_length > mc.max_position_embeddings)
    throw Error("generate: prompt (" + std::to_string(T) + " tokens) plus new tokens reach " + std::to_string(r.max_length) +
                " positions, more than the model's max_position_embeddings " + std::to_string(mc.max_position_embeddings) +
                "; lower max_new_tokens");
  // Sampling several sequences per prompt repeats each prompt, in place
  // (transformers' repeat_interleave).
  const int64_t copies = config.num_beams > 1 ? 1 : config.num_return_sequences;
  for (size_t b = 0; b < ids.size(); ++b)
    for (int64_t c = 0; c < copies; ++c) {
      r.ids.push_back(ids[b]);
      r.masks.push_back(masks[b]);
    }
  if (config.num_beams > 1) return gen::beam_search(model, r);
  return gen::sample_search(model, r, callbacks);
}

}  // namespace jetmoe
