#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/model_files.h"
#include "ops/matmul.h"

namespace jetmoe {

// E experts' matrices stored as one [E, rows, cols] tensor, as transformers'
// JetMoeParallelExperts keeps them.
struct ExpertWeights {
  DType dtype = DType::F32;
  const uint8_t* data = nullptr;
  int64_t experts = 0, rows = 0, cols = 0;

  ops::WeightMatrix expert(int64_t e) const {
    return {dtype, data + static_cast<size_t>(e * rows * cols) * dtype_size(dtype), rows, cols};
  }
};

struct LayerWeights {
  std::vector<float> input_layernorm;
  std::vector<float> post_attention_layernorm;
  // Mixture of attention heads (self_attention.*).
  ops::WeightMatrix attention_router;  // [E, D]
  ExpertWeights attention_input;       // [E, H*d, D]
  ExpertWeights attention_output;      // [E, D, H*d]
  std::vector<float> attention_bias;   // [D]
  ops::WeightMatrix kv_proj;           // [2*H*d, D]
  // Mixture of MLP experts (mlp.*).
  ops::WeightMatrix mlp_router;        // [E, D]
  ExpertWeights mlp_input;             // [E, 2I, D]
  ExpertWeights mlp_output;            // [E, D, I]
  std::vector<float> mlp_bias;         // [D]
};

struct ModelWeights {
  ops::WeightMatrix embed_tokens;  // [V, D]
  std::vector<LayerWeights> layers;
  std::vector<float> norm;         // [D]
};

// Binds every weight of JetMoeModel by its Hugging Face name, checking dtype
// and shape; a missing or mis-shaped tensor is an Error naming it and its file.
ModelWeights bind_model_weights(const ModelFiles& files, const JetMoeConfig& config);

// One [rows, cols] matrix by name, checked the same way.
ops::WeightMatrix bind_matrix(const ModelFiles& files, const std::string& name, int64_t rows, int64_t cols);

}  // namespace jetmoe

namespace jetmoe {

enum class Task;

// How transformers' _init_weights fills a tensor.
enum class InitKind { Normal, Ones, Zeros };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  InitKind init;
};

// Every tensor a checkpoint of this config holds for `task`, in
// transformers' state_dict order (the order it writes shards in).
std::vector<TensorSpec> checkpoint_tensors(const JetMoeConfig& config, Task task);

}  // namespace jetmoe
