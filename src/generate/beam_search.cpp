// Beam search with transformers' BeamSearchScorer semantics: the top
// 2*num_beams candidates per step, EOS candidates ranked within the first
// num_beams become finished hypotheses scored sum_logprobs / generated_len **
// length_penalty, early_stopping decides when a batch entry is done, and
// finalize adds the open beams before picking the best.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "generate/logits_processors.h"
#include "generate/search.h"
#include "jetmoe/error.h"
#include "jetmoe/kv_cache.h"

namespace jetmoe::gen {

namespace {

struct Hypothesis {
  double score;
  std::vector<int32_t> tokens;
};

// transformers' BeamHypotheses: at most num_beams finished hypotheses.
struct Hypotheses {
  int64_t num_beams;
  double length_penalty;
  EarlyStopping early_stopping;
  int64_t max_length;
  std::vector<Hypothesis> beams;
  double worst_score = 1e9;

  void add(std::vector<int32_t> tokens, double sum_logprobs, int64_t generated_len) {
    const double score = sum_logprobs / std::pow(static_cast<double>(generated_len), length_penalty);
    if (static_cast<int64_t>(beams.size()) < num_beams || score > worst_score) {
      beams.push_back({score, std::move(tokens)});
      if (static_cast<int64_t>(beams.size()) > num_beams) {
        // Python sorts (score, index) pairs: ties go to the lower index.
        std::vector<size_t> order(beams.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return beams[a].score < beams[b].score; });
        const double next_worst = beams[order[1]].score;
        beams.erase(beams.begin() + static_cast<std::ptrdiff_t>(order[0]));
        worst_score = next_worst;
      } else {
        worst_score = std::min(score, worst_score);
      }
    }
  }

  bool is_done(double best_sum_logprobs, int64_t cur_len, int64_t prompt_len) const {
    if (static_cast<int64_t>(beams.size()) < num_beams) return false;
    if (early_stopping == EarlyStopping::True) return true;
    int64_t len = cur_len - prompt_len;
    if (early_stopping == EarlyStopping::Never && length_penalty > 0) len = max_length - prompt_len;
    return worst_score >= best_sum_logprobs / std::pow(static_cast<double>(len), length_penalty);
  }
};

}  // namespace

GenerateOutput beam_search(const JetMoeForCausalLM& model, Request& r) {
  const GenerationConfig& c = r.config;
  const int64_t V = model.config().vocab_size;
  const int64_t nb = c.num_beams;
  const auto batch = static_cast<int64_t>(r.ids.size());
  const int64_t rows = batch * nb;
  const int32_t pad = c.pad_token_id.value_or(0);
  const int64_t n_keep = std::max<int64_t>(2, 1 + static_cast<int64_t>(c.eos_token_id.size())) * nb;
  if (n_keep > nb * V) throw Error("generate: num_beams " + std::to_string(nb) + " is too large for the vocabulary");

  // The prompt is processed once per batch entry and its cache copied to
  // every beam: identical rows give identical results.
  KVCache cache = model.make_kv_cache(batch, r.max_length);
  ModelInput in;
  CausalLMOutput fwd;
  std::vector<int64_t> prompt_rows(static_cast<size_t>(batch));
  std::iota(prompt_rows.begin(), prompt_rows.end(), 0);
  const std::vector<float> prompt_logits = step(model, cache, r, prompt_rows, in, fwd);
  std::vector<int64_t> expand;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k < nb; ++k) expand.push_back(b);
  cache.select_rows(expand);
  Request beams = r;
  beams.ids.clear();
  beams.masks.clear();
  for (int64_t row : expand) {
    beams.ids.push_back(r.ids[static_cast<size_t>(row)]);
    beams.masks.push_back(r.masks[static_cast<size_t>(row)]);
  }
  std::vector<float> logits(static_cast<size_t>(rows * V));
  for (int64_t i = 0; i < rows; ++i)
    std::copy_n(prompt_logits.begin() + expand[static_cast<size_t>(i)] * V, V, logits.begin() + i * V);

  // Only beam 0 starts alive, so the first step does not pick the same
  // token nb times.
  std::vector<float> beam_scores(static_cast<size_t>(rows), 0.0f);
  for (int64_t i = 0; i < rows; ++i)
    if (i % nb != 0) beam_scores[static_cast<size_t>(i)] = -1e9f;
  std::vector<Hypotheses> hyps(static_cast<size_t>(batch), Hypotheses{nb, c.length_penalty, c.early_stopping, r.max_length, {}});
  std::vector<bool> done(static_cast<size_t>(batch), false);
  std::vector<float> scores(static_cast<size_t>(rows * V));
  std::vector<int64_t> candidates(static_cast<size_t>(nb * V));
  std::vector<float> next_scores(static_cast<size_t>(rows));
  std::vector<int32_t> next_tokens(static_cast<size_t>(rows));
  std::vector<int64_t> next_rows(static_cast<size_t>(rows));
  std::vector<int64_t> all_rows(static_cast<size_t>(rows));
  std::iota(all_rows.begin(), all_rows.end(), 0);

  while (true) {
    const auto len = static_cast<int64_t>(beams.ids[0].size());
    for (int64_t i = 0; i < rows; ++i) {
      std::span<float> s(scores.data() + i * V, static_cast<size_t>(V));
      std::copy_n(logits.begin() + i * V, V, s.begin());
      log_softmax(s);
      apply_processors(c, beams.ids[static_cast<size_t>(i)], r.prompt_length, s);
      for (float& x : s) x += beam_scores[static_cast<size_t>(i)];
    }
    const int64_t cur_len = len + 1;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t base = b * nb;
      if (done[static_cast<size_t>(b)]) {
        for (int64_t k = 0; k < nb; ++k) {
          next_scores[static_cast<size_t>(base + k)] = 0;
          next_tokens[static_cast<size_t>(base + k)] = pad;
          next_rows[static_cast<size_t>(base + k)] = base;
        }
        continue;
      }
      const float* flat = scores.data() + base * V;
      std::iota(candidates.begin(), candidates.end(), 0);
      // torch.topk(sorted=True); equal scores keep the lower flat index first.
      std::partial_sort(candidates.begin(), candidates.begin() + n_keep, candidates.end(), [&](int64_t x, int64_t y) {
        return flat[x] > flat[y] || (flat[x] == flat[y] && x < y);
      });
      int64_t filled = 0;
      for (int64_t rank = 0; rank < n_keep && filled < nb; ++rank) {
        const int64_t cand = candidates[static_cast<size_t>(rank)];
        const auto token = static_cast<int32_t>(cand % V);
        const int64_t src = base + cand / V;
        const float score = flat[cand];
        if (is_eos(c, token)) {
          if (rank >= nb) continue;
          hyps[static_cast<size_t>(b)].add(beams.ids[static_cast<size_t>(src)], score, cur_len - r.prompt_length);
        } else {
          next_scores[static_cast<size_t>(base + filled)] = score;
          next_tokens[static_cast<size_t>(base + filled)] = token;
          next_rows[static_cast<size_t>(base + filled)] = src;
          ++filled;
        }
      }
      const float best = flat[candidates[0]];
      done[static_cast<size_t>(b)] = hyps[static_cast<size_t>(b)].is_done(best, cur_len, r.prompt_length);
    }
    // Reorder the beams to their sources and append the chosen tokens.
    std::vector<std::vector<int32_t>> ids(static_cast<size_t>(rows)), masks(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      ids[static_cast<size_t>(i)] = beams.ids[static_cast<size_t>(next_rows[static_cast<size_t>(i)])];
      ids[static_cast<size_t>(i)].push_back(next_tokens[static_cast<size_t>(i)]);
      masks[static_cast<size_t>(i)] = beams.masks[static_cast<size_t>(next_rows[static_cast<size_t>(i)])];
      masks[static_cast<size_t>(i)].push_back(1);
    }
    beams.ids.swap(ids);
    beams.masks.swap(masks);
    beam_scores = next_scores;
    cache.select_rows(next_rows);
    const bool all_done = std::all_of(done.begin(), done.end(), [](bool d) { return d; });
    if (all_done || len + 1 >= r.max_length) break;
    const std::vector<float>& step_logits = step(model, cache, beams, all_rows, in, fwd);
    std::copy(step_logits.begin(), step_logits.end(), logits.begin());
  }

  // finalize: open beams join the finished hypotheses.
  const int64_t final_len = static_cast<int64_t>(beams.ids[0].size());
  for (int64_t b = 0; b < batch; ++b) {
    if (done[static_cast<size_t>(b)]) continue;
    for (int64_t k = 0; k < nb; ++k) {
      const int64_t i = b * nb + k;
      hyps[static_cast<size_t>(b)].add(beams.ids[static_cast<size_t>(i)], beam_scores[static_cast<size_t>(i)],
                                       final_len - r.prompt_length);
    }
  }
  GenerateOutput out;
  out.prompt_length = r.prompt_length;
  size_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    // sorted(key=score) then pop(): the best first, ties to the later entry.
    auto sorted = hyps[static_cast<size_t>(b)].beams;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; });
    for (int64_t j = 0; j < c.num_return_sequences; ++j) {
      Hypothesis h = std::move(sorted.back());
      sorted.pop_back();
      longest = std::max(longest, h.tokens.size());
      out.sequences.push_back(std::move(h.tokens));
      out.sequences_scores.push_back(h.score);
    }
  }
  // Shorter hypotheses get their EOS back (when it fits), then padding.
  const size_t width = std::min<size_t>(longest + 1, static_cast<size_t>(r.max_length));
  for (auto& seq : out.sequences) {
    const size_t n = seq.size();
    const bool ended_by_eos = n < width;
    if (ended_by_eos && !c.eos_token_id.empty()) seq.push_back(c.eos_token_id[0]);
    out.num_new_tokens.push_back(static_cast<int64_t>(seq.size()) - r.prompt_length);
    out.finish_reasons.push_back(ended_by_eos ? GenerateOutput::FinishReason::Eos : GenerateOutput::FinishReason::Length);
    seq.resize(width, pad);
  }
  return out;
}

}  // namespace jetmoe::gen
