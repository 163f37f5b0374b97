#include "ops/activation.h"

#include <cmath>

namespace jetmoe::ops {

namespace {
struct Named {
  const char* name;
  Activation act;
};
constexpr Named kActivations[] = {
    {"silu", Activation::SiLU},           {"swish", Activation::SiLU},         {"gelu", Activation::GELU},
    {"gelu_new", Activation::GELUTanh},   {"gelu_pytorch_tanh", Activation::GELUTanh},
    {"gelu_fast", Activation::GELUTanh},  {"relu", Activation::ReLU},
};

inline float apply(Activation act, float x) {
  switch (act) {
    case Activation::SiLU:
      return x / (1.0f + std::exp(-x));
    case Activation::GELU:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::GELUTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case Activation::ReLU:
      return x > 0.0f ? x : 0.0f;
  }
  return x;
}
}  // namespace

bool parse_activation(const std::string& name, Activation* out) {
  for (const auto& a : kActivations) {
    if (name == a.name) {
      if (out) *out = a.act;
      return true;
    }
  }
  return false;
}

std::string supported_activations() {
  std::string s;
  for (const auto& a : kActivations) s += (s.empty() ? "" : ", ") + std::string(a.name);
  return s;
}

void gated_activation(const float* u, int64_t rows, int64_t dim, Activation act, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* ur = u + r * 2 * dim;
    float* o = out + r * dim;
    for (int64_t i = 0; i < dim; ++i) o[i] = apply(act, ur[i]) * ur[dim + i];
  }
}

}  // namespace jetmoe::ops
