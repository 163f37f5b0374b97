// Greedy search and multinomial sampling (transformers' _sample): one token
// per unfinished row per step; finished rows leave the batch and are padded.
#include <random>

#include "generate/logits_processors.h"
#include "generate/sampling.h"
#include "generate/search.h"
#include "jetmoe/kv_cache.h"

namespace jetmoe::gen {

GenerateOutput sample_search(const JetMoeForCausalLM& model, Request& r, const GenerateCallbacks& callbacks) {
  const GenerationConfig& c = r.config;
  const int64_t V = model.config().vocab_size;
  const auto rows = static_cast<int64_t>(r.ids.size());
  // Only a stop string can end a row when there is no EOS (hence no pad
  // either); 0 then fills it, transformers' usual pad id.
  const int32_t pad = c.pad_token_id.value_or(0);
  SamplingRng rng(c.seed ? *c.seed : std::random_device{}());
  WarpScratch warp;
  std::vector<float> probs;
  std::vector<float> scores(static_cast<size_t>(V));

  GenerateOutput out;
  out.prompt_length = r.prompt_length;
  out.num_new_tokens.assign(static_cast<size_t>(rows), 0);
  out.finish_reasons.assign(static_cast<size_t>(rows), GenerateOutput::FinishReason::Length);

  KVCache cache = model.make_kv_cache(rows, r.max_length);
  std::vector<int64_t> active(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) active[static_cast<size_t>(i)] = i;
  std::vector<int64_t> still_active, keep_slots;
  std::vector<int32_t> chosen(static_cast<size_t>(rows));
  std::vector<bool> is_active(static_cast<size_t>(rows));
  ModelInput in;
  CausalLMOutput fwd;

  while (true) {
    const std::vector<float>& logits = step(model, cache, r, active, in, fwd);
    for (size_t slot = 0; slot < active.size(); ++slot) {
      const int64_t row = active[slot];
      std::copy_n(logits.begin() + static_cast<std::ptrdiff_t>(slot) * V, V, scores.begin());
      apply_processors(c, r.ids[static_cast<size_t>(row)], r.prompt_length, scores);
      if (c.do_sample) {
        apply_warpers(c, 1, scores, warp);
        chosen[static_cast<size_t>(row)] = sample_from_scores(scores, rng.uniform(), probs);
      } else {
        chosen[static_cast<size_t>(row)] = argmax(scores);
      }
    }
    // Every row grows by one token and one mask entry, finished rows with pad.
    std::fill(is_active.begin(), is_active.end(), false);
    for (int64_t row : active) is_active[static_cast<size_t>(row)] = true;
    for (int64_t row = 0; row < rows; ++row) {
      const auto i = static_cast<size_t>(row);
      r.ids[i].push_back(is_active[i] ? chosen[i] : pad);
      r.masks[i].push_back(1);
    }
    still_active.clear();
    keep_slots.clear();
    for (size_t slot = 0; slot < active.size(); ++slot) {
      const int64_t row = active[slot];
      const auto i = static_cast<size_t>(row);
      const int32_t token = chosen[i];
      ++out.num_new_tokens[i];
      if (callbacks.on_token) callbacks.on_token(row, token);
      if (is_eos(c, token)) {
        out.finish_reasons[i] = GenerateOutput::FinishReason::Eos;
        continue;
      }
      if (callbacks.should_stop &&
          callbacks.should_stop(row, std::span<const int32_t>(r.ids[i]).subspan(static_cast<size_t>(r.prompt_length)))) {
        out.finish_reasons[i] = GenerateOutput::FinishReason::StopString;
        continue;
      }
      still_active.push_back(row);
      keep_slots.push_back(static_cast<int64_t>(slot));
    }
    const auto len = static_cast<int64_t>(r.ids[0].size());
    if (still_active.empty() || len >= r.max_length) break;
    if (still_active.size() != active.size()) cache.select_rows(keep_slots);
    active.swap(still_active);
  }
  out.sequences = std::move(r.ids);
  return out;
}

}  // namespace jetmoe::gen
