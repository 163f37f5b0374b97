#include "model/weights.h"

#include "jetmoe/error.h"
#include "ops/quantize.h"

namespace jetmoe {

namespace {

// Matrices may also be stored quantised (a .gguf from `jetmoe quantize`);
// vectors never are.
const TensorView& require(const ModelFiles& files, const std::string& name, const std::vector<int64_t>& shape,
                          bool quantized_ok = false) {
  const TensorView* t = files.find(name);
  if (!t) throw Error(files.description() + ": missing tensor '" + name + "' (expected shape " + shape_string(shape) + ")");
  if (is_quantized(t->dtype)) {
    if (!quantized_ok)
      throw Error(files.file_of(name) + ": tensor '" + name + "' is stored as " + dtype_name(t->dtype) +
                  ", expected F32, BF16 or F16 (vectors are never quantised)");
    if (!ops::quantizable(shape.back()))
      throw Error(files.file_of(name) + ": tensor '" + name + "' is stored as " + dtype_name(t->dtype) + " but its rows of " +
                  std::to_string(shape.back()) + " weights are not a multiple of 64, which the quantised kernels need");
  } else if (t->dtype != DType::F32 && t->dtype != DType::BF16 && t->dtype != DType::F16) {
    throw Error(files.file_of(name) + ": tensor '" + name + "' has dtype " + dtype_name(t->dtype) +
                ", expected F32, BF16 or F16");
  }
  if (t->shape != shape)
    throw Error(files.file_of(name) + ": tensor '" + name + "' has shape " + shape_string(t->shape) + ", expected " +
                shape_string(shape) + " from config.json");
  return *t;
}

std::vector<float> bind_vector(const ModelFiles& files, const std::string& name, int64_t n) {
  const TensorView& t = require(files, name, {n});
  std::vector<float> out(static_cast<size_t>(n));
  ops::to_f32(t.dtype, t.data, n, out.data());
  return out;
}

ops::Quant quant_of(DType dtype) {
  return dtype == DType::Q8_0 ? ops::Quant::Q8_0 : dtype == DType::Q4_0 ? ops::Quant::Q4_0 : ops::Quant::None;
}

// A quantised tensor holds every row's quants, then every row's scales.
const uint16_t* scales_of(const TensorView& t, int64_t rows, int64_t cols) {
  if (!is_quantized(t.dtype)) return nullptr;
  return reinterpret_cast<const uint16_t*>(static_cast<const uint8_t*>(t.data) + rows * ops::quant_row_bytes(quant_of(t.dtype), cols));
}

ExpertWeights bind_experts(const ModelFiles& files, const std::string& name, int64_t experts, int64_t rows, int64_t cols) {
  const TensorView& t = require(files, name, {experts, rows, cols}, true);
  ExpertWeights x{t.dtype, static_cast<const uint8_t*>(t.data), experts, rows, cols};
  x.quant = quant_of(t.dtype);
  x.scales = scales_of(t, experts * rows, cols);
  return x;
}

}  // namespace

ops::WeightMatrix bind_matrix(const ModelFiles& files, const std::string& name, int64_t rows, int64_t cols) {
  const TensorView& t = require(files, name, {rows, cols}, true);
  ops::WeightMatrix m{t.dtype, t.data, rows, cols};
  m.quant = quant_of(t.dtype);
  m.scales = scales_of(t, rows, cols);
  return m;
}

ModelWeights bind_model_weights(const ModelFiles& files, const JetMoeConfig& c) {
  const int64_t D = c.hidden_size, E = c.num_local_experts, Hd = c.num_key_value_heads * c.kv_channels;
  const int64_t I = c.intermediate_size;
  ModelWeights w;
  w.embed_tokens = bind_matrix(files, "model.embed_tokens.weight", c.vocab_size, D);
  w.norm = bind_vector(files, "model.norm.weight", D);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    L.input_layernorm = bind_vector(files, p + "input_layernorm.weight", D);
    L.post_attention_layernorm = bind_vector(files, p + "post_attention_layernorm.weight", D);
    L.attention_router = bind_matrix(files, p + "self_attention.experts.router.layer.weight", E, D);
    L.attention_input = bind_experts(files, p + "self_attention.experts.input_linear.weight", E, Hd, D);
    L.attention_output = bind_experts(files, p + "self_attention.experts.output_linear.weight", E, D, Hd);
    L.attention_bias = bind_vector(files, p + "self_attention.experts.bias", D);
    L.kv_proj = bind_matrix(files, p + "self_attention.kv_proj.weight", 2 * Hd, D);
    L.mlp_router = bind_matrix(files, p + "mlp.router.layer.weight", E, D);
    L.mlp_input = bind_experts(files, p + "mlp.input_linear.weight", E, 2 * I, D);
    L.mlp_output = bind_experts(files, p + "mlp.output_linear.weight", E, D, I);
    L.mlp_bias = bind_vector(files, p + "mlp.bias", D);
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace jetmoe

#include "jetmoe/model.h"

namespace jetmoe {

std::vector<TensorSpec> checkpoint_tensors(const JetMoeConfig& c, Task task) {
  const int64_t D = c.hidden_size, E = c.num_local_experts, Hd = c.num_key_value_heads * c.kv_channels;
  const int64_t I = c.intermediate_size;
  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocab_size, D}, InitKind::Normal});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "self_attention.experts.bias", {D}, InitKind::Zeros});
    specs.push_back({p + "self_attention.experts.input_linear.weight", {E, Hd, D}, InitKind::Normal});
    specs.push_back({p + "self_attention.experts.output_linear.weight", {E, D, Hd}, InitKind::Normal});
    specs.push_back({p + "self_attention.experts.router.layer.weight", {E, D}, InitKind::Normal});
    specs.push_back({p + "self_attention.kv_proj.weight", {2 * Hd, D}, InitKind::Normal});
    specs.push_back({p + "mlp.bias", {D}, InitKind::Zeros});
    specs.push_back({p + "mlp.input_linear.weight", {E, 2 * I, D}, InitKind::Normal});
    specs.push_back({p + "mlp.output_linear.weight", {E, D, I}, InitKind::Normal});
    specs.push_back({p + "mlp.router.layer.weight", {E, D}, InitKind::Normal});
    specs.push_back({p + "input_layernorm.weight", {D}, InitKind::Ones});
    specs.push_back({p + "post_attention_layernorm.weight", {D}, InitKind::Ones});
  }
  specs.push_back({"model.norm.weight", {D}, InitKind::Ones});
  if (task == Task::CausalLM && !c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, D}, InitKind::Normal});
  if (task == Task::SequenceClassification) specs.push_back({"score.weight", {c.num_labels, D}, InitKind::Normal});
  return specs;
}

}  // namespace jetmoe
