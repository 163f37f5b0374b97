#pragma once
// transformers' logits processors and warpers, one row at a time. The
// processors run for every decoding strategy; the warpers only when
// sampling. Each function edits `scores` in place and sets removed tokens to
// -inf, exactly as the transformers class of the same name.
#include <cstdint>
#include <span>
#include <vector>

#include "jetmoe/generation_config.h"

namespace jetmoe::gen {

// Reused buffers so that a step does not allocate once warmed up.
struct WarpScratch {
  std::vector<int32_t> order;
  std::vector<float> values;
  std::vector<double> probs;
  std::vector<int32_t> buckets, ranked;  // top_p: each candidate's bucket; the tokens it sorts
};

// `ids` is the whole row so far (prompt with its padding, then new tokens).
void repetition_penalty(std::span<const int32_t> ids, double penalty, std::span<float> scores);
void no_repeat_ngram(std::span<const int32_t> ids, int64_t n, std::span<float> scores);
void suppress_eos(const std::vector<int32_t>& eos, std::span<float> scores);

void temperature(double t, std::span<float> scores);
void top_k(int64_t k, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s);
void top_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s);
void min_p(double p, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s);
void typical_p(double mass, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s);

// Processors in transformers' order (repetition penalty, no-repeat n-gram,
// min length, min new tokens). `prompt_length` counts the padded prompt.
void apply_processors(const GenerationConfig& config, std::span<const int32_t> ids, int64_t prompt_length,
                      std::span<float> scores);
// Warpers in transformers' order (temperature, top-k, top-p, min-p, typical).
void apply_warpers(const GenerationConfig& config, int64_t min_tokens_to_keep, std::span<float> scores, WarpScratch& s);

// In-place log-softmax in float32, as torch computes it.
void log_softmax(std::span<float> scores);

}  // namespace jetmoe::gen
