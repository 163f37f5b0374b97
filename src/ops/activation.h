#pragma once
#include <cstdint>
#include <string>

namespace jetmoe::ops {

enum class Activation { SiLU, GELU, GELUTanh, ReLU };

// transformers' ACT2FN names; returns false for names we do not implement.
// `out` may be null to only check.
bool parse_activation(const std::string& name, Activation* out);
std::string supported_activations();

// Gated MLP: out[r, i] = act(u[r, i]) * u[r, dim + i] for u [rows, 2*dim].
void gated_activation(const float* u, int64_t rows, int64_t dim, Activation act, float* out);

}  // namespace jetmoe::ops
