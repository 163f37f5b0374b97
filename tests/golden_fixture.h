#pragma once
// Reading the golden fixtures produced by transformers' own JetMoE code
// (tests/data/golden/<name>/{config.json, cases.json, expected.safetensors}).
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jetmoe/model.h"
#include "jetmoe/safetensors.h"
#include "model_input_json.h"

namespace jetmoe::testing {

std::string golden_dir(const std::string& fixture);

struct GoldenFixture {
  std::string name;
  std::string dir;
  nlohmann::json cases;
  std::unique_ptr<SafetensorsFile> expected;

  explicit GoldenFixture(const std::string& fixture_name);
  const TensorView& tensor(const std::string& name) const;
};

// A case's "inputs" object read as `jetmoe forward` reads IN.json (labels
// interpreted for `task`).
cli::ForwardRequest request(const nlohmann::json& inputs, Task task);
ModelInput model_input(const nlohmann::json& inputs);  // a cached step; no labels

// Rows [B, T] where values may be compared: from the case's valid_mask, or
// all ones. Padded positions hold unspecified values.
std::vector<int32_t> valid_mask(const nlohmann::json& c, int64_t B, int64_t T);

// Largest |got - expected| over positions the mask allows. `row_major_tokens`
// tensors are [B, T, X] (or [B*T, X] for router logits); the mask is [B, T]
// and col_offset selects which columns of it the tensor covers.
double max_abs_diff(const Tensor& got, const TensorView& expected, const std::vector<int32_t>& mask, int64_t B,
                    int64_t mask_cols, int64_t col_offset, int64_t cols);

}  // namespace jetmoe::testing
