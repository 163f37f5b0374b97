#include "golden_fixture.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "jetmoe/error.h"

namespace jetmoe::testing {

std::string golden_dir(const std::string& fixture) { return std::string(JETMOE_TEST_DATA) + "/golden/" + fixture; }

GoldenFixture::GoldenFixture(const std::string& fixture_name) : name(fixture_name), dir(golden_dir(fixture_name)) {
  std::ifstream in(dir + "/cases.json");
  if (!in) throw Error(dir + "/cases.json: cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  cases = nlohmann::json::parse(ss.str());
  expected = SafetensorsFile::open(dir + "/expected.safetensors");
}

const TensorView& GoldenFixture::tensor(const std::string& tensor_name) const {
  const TensorView* t = expected->find(tensor_name);
  if (!t) throw Error(dir + "/expected.safetensors: no tensor " + tensor_name);
  return *t;
}

cli::ForwardRequest request(const nlohmann::json& inputs, Task task) {
  return cli::parse_forward_request(inputs.dump(), "case inputs", task);
}

// Cached steps carry an attention_mask over cached + new tokens, which IN.json
// (one whole sequence) does not allow, so they are read directly.
ModelInput model_input(const nlohmann::json& inputs) {
  ModelInput in = ModelInput::from_ids(inputs.at("input_ids").get<std::vector<std::vector<int32_t>>>());
  auto flat = [](const nlohmann::json& rows) {
    std::vector<int32_t> out;
    for (const auto& r : rows)
      for (const auto& v : r) out.push_back(v.get<int32_t>());
    return out;
  };
  if (inputs.contains("attention_mask")) in.attention_mask = flat(inputs["attention_mask"]);
  if (inputs.contains("position_ids")) in.position_ids = flat(inputs["position_ids"]);
  return in;
}

std::vector<int32_t> valid_mask(const nlohmann::json& c, int64_t B, int64_t T) {
  std::vector<int32_t> mask(static_cast<size_t>(B * T), 1);
  if (c.contains("valid_mask")) {
    mask.clear();
    for (const auto& r : c["valid_mask"])
      for (const auto& v : r) mask.push_back(v.get<int32_t>());
  }
  return mask;
}

double max_abs_diff(const Tensor& got, const TensorView& expected, const std::vector<int32_t>& mask, int64_t B,
                    int64_t mask_cols, int64_t col_offset, int64_t cols) {
  if (expected.dtype != DType::F32 || expected.numel() != got.numel())
    throw Error("expected tensor " + expected.name + " has shape " + shape_string(expected.shape) + ", got " +
                shape_string(got.shape));
  const auto* e = static_cast<const float*>(expected.data);
  const int64_t width = got.numel() / (B * cols);
  double worst = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < cols; ++t) {
      if (!mask[static_cast<size_t>(b * mask_cols + col_offset + t)]) continue;
      for (int64_t i = 0; i < width; ++i) {
        const size_t k = static_cast<size_t>((b * cols + t) * width + i);
        const double d = std::abs(static_cast<double>(got.data[k]) - e[k]);
        if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
      }
    }
  }
  return worst;
}

}  // namespace jetmoe::testing
