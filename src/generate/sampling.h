#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace jetmoe::gen {

// The first index of the largest score, as torch.argmax.
int32_t argmax(std::span<const float> scores);

// The largest score, NaNs aside (-inf when there is none).
float max_score(std::span<const float> scores);

// The indices of the scores at or above `floor`, in order, replacing `out`.
// Checks four scores a compare, so a pass that finds few is quick.
void indices_at_least(std::span<const float> scores, float floor, std::vector<int32_t>& out);

// Draws one token from softmax(scores) (tokens at -inf never come out).
// `u` is a uniform draw in [0, 1); taking it as an argument keeps the draw
// testable and the generator choice in one place.
int32_t sample_from_scores(std::span<const float> scores, double u, std::vector<float>& probs_scratch);

// The generator behind every draw: a fixed algorithm (mt19937_64) so that a
// seed gives the same tokens on every platform and standard library.
class SamplingRng {
 public:
  explicit SamplingRng(uint64_t seed) : engine_(seed) {}
  // 53 random bits scaled into [0, 1); std::uniform_real_distribution is
  // not specified bit for bit across standard libraries.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace jetmoe::gen
