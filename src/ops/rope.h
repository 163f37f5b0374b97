#pragma once
#include <cstdint>
#include <vector>

namespace jetmoe::ops {

// Rotary embedding, "rotate half" convention: inv_freq[i] = theta^(-2i/d)
// for i < d/2, computed in float32 like transformers so that angles match.
std::vector<float> rope_inv_freq(int64_t head_dim, double theta);

// cos/sin of position * inv_freq, each d/2 values.
void rope_cos_sin(const std::vector<float>& inv_freq, int64_t position, float* cos_out, float* sin_out);

// Rotates `num_heads` consecutive heads of width head_dim in place.
void apply_rope(float* x, int64_t num_heads, int64_t head_dim, const float* cos, const float* sin);

}  // namespace jetmoe::ops
