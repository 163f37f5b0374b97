#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/kv_cache.h"
#include "jetmoe/tensor.h"

namespace jetmoe {

namespace ops {
class PageBuffer;
class ThreadPool;
struct WeightMatrix;
}  // namespace ops
class ModelFiles;
struct ModelWeights;

// How weights are held in memory. Native keeps the checkpoint's tensors
// memory-mapped as stored (bf16 for real checkpoints); Q8_0 and Q4_0 make
// owned quantised copies at load (blocks of 32 with a scale).
enum class WeightFormat { Native, Q8_0, Q4_0 };

// How matmuls multiply. F32 is exact (float32 activations and accumulation);
// BF16 rounds activations to bf16 for AVX512_BF16 dot products (f32
// accumulation), a fast mode whose accuracy is tested like quantisation.
enum class ComputeMode { F32, BF16 };

struct LoadOptions {
  int num_threads = 0;  // 0 = all cores
  WeightFormat weights = WeightFormat::Native;
  ComputeMode compute = ComputeMode::F32;
  // KV caches made for this model (by generate, serve, bench, forward): F32
  // (exact), F16 or BF16 (half the memory and the bytes attention reads).
  DType kv_dtype = DType::F32;
};

// "bf16" (= Native), "q8_0", "q4_0" / "f32", "bf16" / "f32", "f16", "bf16";
// Error naming the value otherwise.
WeightFormat parse_weight_format(const std::string& name);
// The --weights name of a format: "bf16" (Native), "q8_0" or "q4_0".
const char* weight_format_name(WeightFormat format);
ComputeMode parse_compute_mode(const std::string& name);
DType parse_kv_dtype(const std::string& name);  // "f32", "f16", "bf16"

// One forward call's inputs, Hugging Face style. `input_ids` holds the new
// tokens [batch_size, seq_len]. `attention_mask` (1 = real token) is empty or
// covers the cached tokens plus the new ones: [batch_size, past + seq_len].
// `position_ids` is empty (positions continue after the cache) or
// [batch_size, seq_len].
struct ModelInput {
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> attention_mask;
  std::vector<int32_t> position_ids;

  static ModelInput from_ids(const std::vector<std::vector<int32_t>>& rows);
};

// Throws Error unless `count` ids fill a [batch_size, seq_len] batch of at
// least one token.
void check_input_ids_shape(size_t count, int64_t batch_size, int64_t seq_len);

// What one forward call read from memory, added to by each call that is
// given one; benchmarks divide it by the tokens decoded.
struct ForwardStats {
  int64_t weight_bytes = 0;  // matrices streamed: routers, the chosen experts, kv_proj, lm_head
  int64_t kv_bytes = 0;      // KV cache bytes attention read
};

// A ragged batch for serving many sequences at once (continuous batching):
// token n enters KV-cache row seq[n] at position pos[n], which is also its
// rotary position. A row's tokens must continue the positions the row already
// holds, in increasing order; each sees its row's earlier positions and
// itself. Rows the batch does not name are left as they are, so a row can be
// reused for a new sequence by starting again at position 0.
struct TokenBatch {
  std::vector<int32_t> token_ids;
  std::vector<int32_t> seq;
  std::vector<int32_t> pos;
};

struct ForwardOptions {
  bool output_hidden_states = false;  // L+1 entries, each [B, T, D]
  bool output_router_logits = false;  // 2L entries, each [B*T, E]
  ForwardStats* stats = nullptr;
};

// JetMoeModel's outputs. hidden_states[0] is the embeddings, [i] the output
// of block i-1, and the last entry the final normed state (== last_hidden_state),
// as transformers returns them. router_logits alternate attention and MLP
// routers per layer.
struct BaseModelOutput {
  Tensor last_hidden_state;  // [B, T, D]
  std::vector<Tensor> hidden_states;
  std::vector<Tensor> router_logits;
};

// The decoder stack: embeddings, blocks, final norm.
class JetMoeModel {
 public:
  static std::unique_ptr<JetMoeModel> from_pretrained(const std::string& path, const LoadOptions& options = {});
  JetMoeModel(std::shared_ptr<ModelFiles> files, JetMoeConfig config, const LoadOptions& options);
  ~JetMoeModel();

  const JetMoeConfig& config() const { return config_; }
  const ModelFiles& files() const { return *files_; }
  ops::ThreadPool& thread_pool() const { return *pool_; }
  const LoadOptions& load_options() const { return options_; }
  // The format the expert matrices (nearly all the weights) are held in:
  // Q8_0 or Q4_0 when quantised at load or stored so in a .gguf, which
  // LoadOptions::weights = Native leaves as stored.
  WeightFormat weight_format() const;
  // A head matrix (lm_head, score) bound and converted like the blocks' weights.
  // A quantised or packed copy of the head lives in *storage, which the
  // caller keeps.
  ops::WeightMatrix bind_head(const std::string& name, int64_t rows, ops::PageBuffer* storage) const;
  // A KV cache for this model in the KV dtype it was loaded with.
  KVCache make_kv_cache(int64_t batch_size, int64_t capacity) const {
    return KVCache(config_, batch_size, capacity, options_.kv_dtype);
  }

  // With a cache, the new tokens attend to everything cached and are
  // appended to it; without one, the call sees only its own tokens.
  BaseModelOutput forward(const ModelInput& input, KVCache* cache = nullptr, const ForwardOptions& options = {}) const;
  // The final normed states [N, D] of a ragged batch. The cache's `length`
  // is neither used nor changed: each row's length is the caller's to track.
  Tensor forward_batch(const TokenBatch& batch, KVCache& cache, ForwardStats* stats = nullptr) const;
  // The same into `hidden`, whose buffers are reused: with them and the
  // calling thread's scratch grown, a decode step allocates nothing.
  void forward_batch(const TokenBatch& batch, KVCache& cache, Tensor& hidden, ForwardStats* stats = nullptr) const;

 private:
  struct TokenLayout;
  void run(const TokenLayout& layout, KVCache& cache, const ForwardOptions& options, BaseModelOutput* out,
           float* final_normed) const;

  std::shared_ptr<ModelFiles> files_;
  JetMoeConfig config_;
  LoadOptions options_;
  std::unique_ptr<ops::ThreadPool> pool_;
  std::unique_ptr<ModelWeights> weights_;
  std::vector<float> rope_inv_freq_;
};

struct CausalLMOutput {
  Tensor logits;  // [B, T, V], or [B, 1, V] with logits_last_only
  BaseModelOutput model;
  std::optional<double> loss;        // cross-entropy of shifted labels
  std::optional<double> aux_loss;    // load balancing over all routers
  std::optional<double> total_loss;  // loss + aux_loss_coef * aux_loss
};

class JetMoeForCausalLM {
 public:
  static std::unique_ptr<JetMoeForCausalLM> from_pretrained(const std::string& path, const LoadOptions& options = {});
  explicit JetMoeForCausalLM(std::unique_ptr<JetMoeModel> model);
  ~JetMoeForCausalLM();

  const JetMoeConfig& config() const { return model_->config(); }
  const JetMoeModel& model() const { return *model_; }
  KVCache make_kv_cache(int64_t batch_size, int64_t capacity) const { return model_->make_kv_cache(batch_size, capacity); }

  // `labels` [B, T] (-100 = ignored) adds loss, aux_loss and total_loss;
  // aux_loss is also computed when router logits are requested.
  CausalLMOutput forward(const ModelInput& input, KVCache* cache = nullptr, const ForwardOptions& options = {},
                         const std::vector<int32_t>* labels = nullptr, bool logits_last_only = false) const;
  // Logits [logit_rows.size(), V] of the listed tokens of a ragged batch
  // (the last token of each sequence that samples next, typically).
  Tensor forward_batch(const TokenBatch& batch, KVCache& cache, const std::vector<int64_t>& logit_rows,
                       ForwardStats* stats = nullptr) const;
  // The same into `logits`, whose buffers are reused: the allocation-free
  // decode step of serving and benchmarks.
  void forward_batch(const TokenBatch& batch, KVCache& cache, const std::vector<int64_t>& logit_rows, Tensor& logits,
                     ForwardStats* stats = nullptr) const;
  // lm_head applied to final normed states [N, D] -> [N, V].
  void lm_head(const float* hidden, int64_t rows, float* logits) const;

 private:
  std::unique_ptr<JetMoeModel> model_;
  std::unique_ptr<ops::PageBuffer> lm_head_storage_;
  std::unique_ptr<ops::WeightMatrix> lm_head_;
};

// Labels for sequence classification, in the form the problem type needs.
struct ClassificationLabels {
  std::vector<int64_t> class_ids;  // single-label: [B]
  std::vector<float> values;       // regression: [B * num_labels]; multi-label: [B * num_labels] of 0/1
  bool integer = false;            // labels were integers (decides the problem type when the config has none)
};

struct SequenceClassifierOutput {
  Tensor pooled_logits;  // [B, num_labels]
  std::vector<int64_t> pooling_index;  // per row
  BaseModelOutput model;
  std::optional<double> loss;
};

class JetMoeForSequenceClassification {
 public:
  static std::unique_ptr<JetMoeForSequenceClassification> from_pretrained(const std::string& path, const LoadOptions& options = {});
  explicit JetMoeForSequenceClassification(std::unique_ptr<JetMoeModel> model);
  ~JetMoeForSequenceClassification();

  const JetMoeConfig& config() const { return model_->config(); }
  const JetMoeModel& model() const { return *model_; }

  SequenceClassifierOutput forward(const ModelInput& input, const ForwardOptions& options = {},
                                   const ClassificationLabels* labels = nullptr) const;
  // The position transformers pools for each row: the token before the first
  // pad_token_id (mod T), or the last token when pad_token_id is unset.
  std::vector<int64_t> pooling_index(const std::vector<int32_t>& input_ids, int64_t batch_size, int64_t seq_len) const;
  // score applied to the pooled rows of a final normed state [B, T, D].
  Tensor pooled_logits(const Tensor& last_hidden_state, const std::vector<int64_t>& pooling_index) const;
  std::string problem_type(const ClassificationLabels& labels) const;
  double loss(const Tensor& pooled_logits, const ClassificationLabels& labels) const;

 private:
  std::unique_ptr<JetMoeModel> model_;
  std::unique_ptr<ops::WeightMatrix> score_;
};

// Which head a checkpoint's config.json asks for, from `architectures`.
enum class Task { Base, CausalLM, SequenceClassification };
Task task_from_config(const JetMoeConfig& config);

}  // namespace jetmoe
