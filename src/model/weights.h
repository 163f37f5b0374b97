#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "ops/matmul.h"
#include "ops/page_buffer.h"

namespace jetmoe {

// E experts' matrices stored as one [E, rows, cols] tensor, as transformers'
// JetMoeParallelExperts keeps them.
// Quantised, `data` holds E experts' quants back to back and `scales` their
// scales likewise.
struct ExpertWeights {
  DType dtype = DType::F32;
  const uint8_t* data = nullptr;
  int64_t experts = 0, rows = 0, cols = 0;
  ops::Compute compute = ops::Compute::F32;
  ops::Quant quant = ops::Quant::None;
  const uint16_t* scales = nullptr;

  ops::WeightMatrix expert(int64_t e) const {
    ops::WeightMatrix w{dtype, nullptr, rows, cols, compute, quant, nullptr};
    const int64_t bytes = ops::weight_bytes(w) - (quant == ops::Quant::None ? 0 : rows * (cols / 32) * 2);
    w.data = data + static_cast<size_t>(e * bytes);
    if (scales) w.scales = scales + static_cast<size_t>(e * rows * (cols / 32));
    return w;
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
  // Quantised copies the matrices above point into (empty when native).
  std::vector<ops::PageBuffer> owned;
};

// Binds every weight of JetMoeModel by its Hugging Face name, checking dtype
// and shape; a missing or mis-shaped tensor is an Error naming it and its file.
ModelWeights bind_model_weights(const ModelFiles& files, const JetMoeConfig& config);

// Applies LoadOptions to bound weights: the compute mode on every matrix,
// and with a quantised format, owned quantised copies (kept in w.owned) of
// the experts and kv_proj in place of the mapped tensors.
// Matrices already stored quantised are used as they are (Native or the
// same format), or refused with an Error naming `source` (another format).
void prepare_weights(ModelWeights& w, const LoadOptions& options, ops::ThreadPool& pool, const std::string& source);
// The same for a head matrix; a quantised copy, or one packed for the
// CPU's kernels (ops::pack_weights), goes to *storage.
ops::WeightMatrix prepare_head(ops::WeightMatrix m, const LoadOptions& options, ops::ThreadPool& pool,
                               ops::PageBuffer* storage, const std::string& source);

// The format a matrix's quantisation stands for (Native when none).
WeightFormat weight_format_of(ops::Quant q);

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
