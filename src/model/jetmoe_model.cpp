#include <algorithm>
#include <filesystem>

#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "model/moe.h"
#include "model/router.h"
#include "model/weights.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/thread_pool.h"

namespace jetmoe {

namespace {

// transformers builds both per-block norms with the RMSNorm default eps;
// only the final norm uses config.rms_norm_eps.
constexpr float kBlockNormEps = 1e-6f;

// The cache keeps each KV head's positions together, so the head split must
// match, not only the kv width.
void check_cache_shape(const KVCache& cache, const JetMoeConfig& c) {
  if (cache.num_layers != c.num_hidden_layers || cache.num_kv_heads != c.num_key_value_heads ||
      cache.head_dim != c.kv_channels)
    throw Error("KV cache was made for a different model shape");
}

void check_input(const ModelInput& in, const JetMoeConfig& c, int64_t past, const KVCache* cache) {
  const int64_t B = in.batch_size, T = in.seq_len;
  check_input_ids_shape(in.input_ids.size(), B, T);
  for (int64_t i = 0; i < B * T; ++i) {
    const int32_t id = in.input_ids[static_cast<size_t>(i)];
    if (id < 0 || id >= c.vocab_size)
      throw Error("input_ids[" + std::to_string(i / T) + "][" + std::to_string(i % T) + "] = " + std::to_string(id) +
                  " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  const int64_t total = past + T;
  c.check_sequence_length(total);
  if (cache) {
    if (cache->batch_size != B)
      throw Error("KV cache holds " + std::to_string(cache->batch_size) + " rows but input_ids has " + std::to_string(B));
    check_cache_shape(*cache, c);
    if (total > cache->capacity)
      throw Error("KV cache capacity " + std::to_string(cache->capacity) + " is too small for " + std::to_string(total) + " positions");
  }
  if (!in.attention_mask.empty()) {
    if (static_cast<int64_t>(in.attention_mask.size()) != B * total)
      throw Error("attention_mask: " + std::to_string(in.attention_mask.size()) + " values, expected shape [" +
                  std::to_string(B) + ", " + std::to_string(total) + "] (cached " + std::to_string(past) + " + new " +
                  std::to_string(T) + " tokens)");
    for (int32_t m : in.attention_mask)
      if (m != 0 && m != 1) throw Error("attention_mask: value " + std::to_string(m) + ", expected 0 or 1");
  }
  if (!in.position_ids.empty()) {
    if (static_cast<int64_t>(in.position_ids.size()) != B * T)
      throw Error("position_ids: " + std::to_string(in.position_ids.size()) + " values, expected shape [" + std::to_string(B) +
                  ", " + std::to_string(T) + "] like input_ids");
    for (int32_t p : in.position_ids)
      if (p < 0 || p >= c.max_position_embeddings)
        throw Error("position_ids: value " + std::to_string(p) + " outside [0, max_position_embeddings = " +
                    std::to_string(c.max_position_embeddings) + ")");
  }
}

// Bytes of the experts that received at least one token.
int64_t routed_bytes(const Routing& r, const ExpertWeights& a, const ExpertWeights& b) {
  int64_t used = 0;
  for (int64_t e = 0; e < r.num_experts; ++e) used += r.offsets[static_cast<size_t>(e + 1)] > r.offsets[static_cast<size_t>(e)];
  return used * (ops::weight_bytes(a.expert(0)) + ops::weight_bytes(b.expert(0)));
}

}  // namespace

WeightFormat parse_weight_format(const std::string& name) {
  if (name == "bf16" || name == "native") return WeightFormat::Native;
  if (name == "q8_0") return WeightFormat::Q8_0;
  if (name == "q4_0") return WeightFormat::Q4_0;
  throw Error("--weights: '" + name + "', expected bf16, q8_0 or q4_0");
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::Q8_0: return "q8_0";
    case WeightFormat::Q4_0: return "q4_0";
    default: return "bf16";
  }
}

DType parse_kv_dtype(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "bf16") return DType::BF16;
  throw Error("--kv-dtype: '" + name + "', expected f32, f16 or bf16");
}

ComputeMode parse_compute_mode(const std::string& name) {
  if (name == "f32") return ComputeMode::F32;
  if (name == "bf16") return ComputeMode::BF16;
  throw Error("--compute: '" + name + "', expected f32 or bf16");
}

void check_input_ids_shape(size_t count, int64_t B, int64_t T) {
  if (B <= 0 || T <= 0)
    throw Error("input_ids: shape [" + std::to_string(B) + ", " + std::to_string(T) + "], expected at least one token in each of at least one row");
  if (static_cast<int64_t>(count) != B * T)
    throw Error("input_ids: " + std::to_string(count) + " values for shape [" + std::to_string(B) + ", " + std::to_string(T) + "]");
}

ModelInput ModelInput::from_ids(const std::vector<std::vector<int32_t>>& rows) {
  ModelInput in;
  in.batch_size = static_cast<int64_t>(rows.size());
  in.seq_len = rows.empty() ? 0 : static_cast<int64_t>(rows[0].size());
  for (const auto& r : rows) {
    if (static_cast<int64_t>(r.size()) != in.seq_len)
      throw Error("input_ids: rows have different lengths (" + std::to_string(r.size()) + " vs " + std::to_string(in.seq_len) +
                  "); pad them and pass an attention_mask");
    in.input_ids.insert(in.input_ids.end(), r.begin(), r.end());
  }
  return in;
}

Task task_from_config(const JetMoeConfig& c) {
  for (const auto& a : c.architectures) {
    if (a == "JetMoeForCausalLM") return Task::CausalLM;
    if (a == "JetMoeForSequenceClassification") return Task::SequenceClassification;
    if (a == "JetMoeModel") return Task::Base;
  }
  return Task::CausalLM;
}

std::unique_ptr<JetMoeModel> JetMoeModel::from_pretrained(const std::string& path, const LoadOptions& options) {
  JetMoeConfig config = JetMoeConfig::from_pretrained(path);
  return std::make_unique<JetMoeModel>(ModelFiles::open(path), std::move(config), options);
}

JetMoeModel::JetMoeModel(std::shared_ptr<ModelFiles> files, JetMoeConfig config, const LoadOptions& options)
    : files_(std::move(files)), config_(std::move(config)), options_(options) {
  config_.validate();
  pool_ = std::make_unique<ops::ThreadPool>(options.num_threads);
  weights_ = std::make_unique<ModelWeights>(bind_model_weights(*files_, config_));
  prepare_weights(*weights_, options_, *pool_, files_->description());
  rope_inv_freq_ = ops::rope_inv_freq(config_.kv_channels, config_.rope_theta);
}

ops::WeightMatrix JetMoeModel::bind_head(const std::string& name, int64_t rows, ops::PageBuffer* storage) const {
  return prepare_head(bind_matrix(*files_, name, rows, config_.hidden_size), options_, *pool_, storage, files_->description());
}

JetMoeModel::~JetMoeModel() = default;

WeightFormat JetMoeModel::weight_format() const { return weight_format_of(weights_->layers.front().mlp_input.quant); }

// Where each token of a forward call goes: its KV-cache row, its position in
// that row (where its key and value are written and up to which it attends)
// and its rotary position. Rectangular calls and ragged serving batches both
// reduce to this.
struct JetMoeModel::TokenLayout {
  const int32_t* ids = nullptr;
  int64_t num_tokens = 0;
  const int64_t* rows = nullptr;
  const int64_t* cache_positions = nullptr;
  const int64_t* rope_positions = nullptr;
  // Rectangular calls report hidden states as [B, T, D].
  int64_t batch = 0, seq_len = 0;
};

namespace {

// The buffers of one forward call, kept per calling thread and only ever
// grown, so that a steady decode loop allocates nothing (checked by
// tests/test_decode_allocations.cpp).
struct ForwardScratch {
  std::vector<int64_t> rows, cache_positions, rope_positions;
  std::vector<float> cos, sin, x, normed, y, router_logits, q, attn, kv;
  Routing routing;
  MoeScratch moe;
};

ForwardScratch& forward_scratch() {
  thread_local ForwardScratch scratch;
  return scratch;
}

}  // namespace

BaseModelOutput JetMoeModel::forward(const ModelInput& in, KVCache* cache, const ForwardOptions& options) const {
  const JetMoeConfig& c = config_;
  const int64_t past = cache ? cache->length : 0;
  check_input(in, c, past, cache);
  const int64_t B = in.batch_size, T = in.seq_len, N = B * T, total = past + T;

  // Without a cache the call still needs somewhere to keep this call's keys.
  std::unique_ptr<KVCache> local;
  if (!cache) {
    local = std::make_unique<KVCache>(make_kv_cache(B, T));
    cache = local.get();
  }
  const int64_t cap = cache->capacity;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < total; ++s) {
      const bool given = !in.attention_mask.empty();
      if (given || s >= past) cache->mask[static_cast<size_t>(b * cap + s)] = given ? in.attention_mask[static_cast<size_t>(b * total + s)] : 1;
    }
  }

  ForwardScratch& scratch = forward_scratch();
  scratch.rows.resize(static_cast<size_t>(N));
  scratch.cache_positions.resize(static_cast<size_t>(N));
  scratch.rope_positions.resize(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    const auto i = static_cast<size_t>(n);
    scratch.rows[i] = n / T;
    scratch.cache_positions[i] = past + n % T;
    scratch.rope_positions[i] = in.position_ids.empty() ? past + n % T : in.position_ids[i];
  }
  TokenLayout layout;
  layout.ids = in.input_ids.data();
  layout.num_tokens = N;
  layout.batch = B;
  layout.seq_len = T;
  layout.rows = scratch.rows.data();
  layout.cache_positions = scratch.cache_positions.data();
  layout.rope_positions = scratch.rope_positions.data();
  BaseModelOutput out;
  out.last_hidden_state = Tensor({B, T, c.hidden_size});
  run(layout, *cache, options, &out, out.last_hidden_state.data.data());
  if (options.output_hidden_states) out.hidden_states.push_back(out.last_hidden_state);
  cache->length = total;
  return out;
}

Tensor JetMoeModel::forward_batch(const TokenBatch& batch, KVCache& cache, ForwardStats* stats) const {
  Tensor hidden;
  forward_batch(batch, cache, hidden, stats);
  return hidden;
}

void JetMoeModel::forward_batch(const TokenBatch& batch, KVCache& cache, Tensor& hidden, ForwardStats* stats) const {
  const JetMoeConfig& c = config_;
  const int64_t N = static_cast<int64_t>(batch.token_ids.size());
  if (N == 0) throw Error("forward_batch: the batch holds no tokens");
  if (batch.seq.size() != batch.token_ids.size() || batch.pos.size() != batch.token_ids.size())
    throw Error("forward_batch: " + std::to_string(N) + " token ids but " + std::to_string(batch.seq.size()) + " seq and " +
                std::to_string(batch.pos.size()) + " pos entries");
  check_cache_shape(cache, c);
  const int64_t max_pos = std::min<int64_t>(cache.capacity, c.max_position_embeddings);
  ForwardScratch& scratch = forward_scratch();
  scratch.rows.clear();
  scratch.cache_positions.clear();
  scratch.rope_positions.clear();
  for (int64_t n = 0; n < N; ++n) {
    const auto i = static_cast<size_t>(n);
    const int32_t id = batch.token_ids[i], s = batch.seq[i], p = batch.pos[i];
    if (id < 0 || id >= c.vocab_size)
      throw Error("forward_batch: token " + std::to_string(n) + " has id " + std::to_string(id) + ", outside the vocabulary [0, " +
                  std::to_string(c.vocab_size) + ")");
    if (s < 0 || s >= cache.batch_size)
      throw Error("forward_batch: token " + std::to_string(n) + " names KV-cache row " + std::to_string(s) + ", outside [0, " +
                  std::to_string(cache.batch_size) + ")");
    if (p < 0 || p >= max_pos)
      throw Error("forward_batch: token " + std::to_string(n) + " at position " + std::to_string(p) + ", outside [0, " +
                  std::to_string(max_pos) + ") (KV-cache capacity and max_position_embeddings)");
    scratch.rows.push_back(s);
    scratch.cache_positions.push_back(p);
    scratch.rope_positions.push_back(p);
    cache.mask[static_cast<size_t>(s * cache.capacity + p)] = 1;
  }
  TokenLayout layout;
  layout.ids = batch.token_ids.data();
  layout.num_tokens = N;
  layout.rows = scratch.rows.data();
  layout.cache_positions = scratch.cache_positions.data();
  layout.rope_positions = scratch.rope_positions.data();
  hidden.shape.assign({N, c.hidden_size});
  hidden.data.resize(static_cast<size_t>(N * c.hidden_size));
  ForwardOptions options;
  options.stats = stats;
  run(layout, cache, options, nullptr, hidden.data.data());
}

void JetMoeModel::run(const TokenLayout& layout, KVCache& cache, const ForwardOptions& options, BaseModelOutput* out,
                      float* final_normed) const {
  const JetMoeConfig& c = config_;
  const int64_t N = layout.num_tokens;
  const int64_t D = c.hidden_size, E = c.num_local_experts, K = c.num_experts_per_tok;
  const int64_t H = c.num_key_value_heads, d = c.kv_channels, Hd = H * d;
  ops::ThreadPool& pool = *pool_;

  ForwardScratch& scratch = forward_scratch();
  std::vector<float>& cos = scratch.cos;
  std::vector<float>& sin = scratch.sin;
  cos.resize(static_cast<size_t>(N * d / 2));
  sin.resize(cos.size());
  for (int64_t n = 0; n < N; ++n)
    ops::rope_cos_sin(rope_inv_freq_, layout.rope_positions[n], &cos[static_cast<size_t>(n * d / 2)],
                      &sin[static_cast<size_t>(n * d / 2)]);

  ops::Activation act{};
  ops::parse_activation(c.activation_function, &act);

  std::vector<float>& x = scratch.x;
  x.resize(static_cast<size_t>(N * D));
  for (int64_t n = 0; n < N; ++n) ops::weight_row_to_f32(weights_->embed_tokens, layout.ids[n], &x[static_cast<size_t>(n * D)]);

  auto snapshot = [&](const std::vector<float>& v, std::vector<int64_t> shape) {
    Tensor t(std::move(shape));
    std::copy(v.begin(), v.end(), t.data.begin());
    return t;
  };
  auto keep_router_logits = [&](const std::vector<float>& logits) {
    if (out && options.output_router_logits) out->router_logits.push_back(snapshot(logits, {N, E}));
  };
  // KV bytes attention reads: every visible cached position of each token's row.
  int64_t kv_positions = 0;
  if (options.stats) {
    if (layout.batch > 0) {
      kv_positions = layout.batch * (layout.cache_positions[N - 1] + 1);
    } else {
      for (int64_t n = 0; n < N; ++n) kv_positions += layout.cache_positions[n] + 1;
    }
  }

  std::vector<float>& normed = scratch.normed;
  std::vector<float>& y = scratch.y;
  std::vector<float>& router_logits = scratch.router_logits;
  std::vector<float>& q = scratch.q;
  std::vector<float>& attn = scratch.attn;
  std::vector<float>& kv = scratch.kv;
  normed.resize(x.size());
  y.resize(x.size());
  router_logits.resize(static_cast<size_t>(N * E));
  q.resize(static_cast<size_t>(N * K * Hd));
  attn.resize(q.size());
  kv.resize(static_cast<size_t>(N * 2 * Hd));
  Routing& routing = scratch.routing;
  MoeScratch& moe = scratch.moe;
  const int64_t cap = cache.capacity;

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (out && options.output_hidden_states) out->hidden_states.push_back(snapshot(x, {layout.batch, layout.seq_len, D}));
    const LayerWeights& w = weights_->layers[static_cast<size_t>(l)];

    // Mixture of attention heads.
    ops::rms_norm(x.data(), N, D, w.input_layernorm.data(), kBlockNormEps, normed.data());
    ops::matmul(pool, normed.data(), N, w.attention_router, router_logits.data());
    keep_router_logits(router_logits);
    route_tokens(router_logits.data(), N, E, K, &routing);
    moa_map(pool, normed.data(), routing, w.attention_input, q.data(), moe);
    ops::matmul(pool, normed.data(), N, w.kv_proj, kv.data());
    for (int64_t n = 0; n < N; ++n) {
      const auto i = static_cast<size_t>(n);
      const float* cs = &cos[static_cast<size_t>(n * d / 2)];
      const float* sn = &sin[static_cast<size_t>(n * d / 2)];
      ops::apply_rope(&q[static_cast<size_t>(n * K * Hd)], K * H, d, cs, sn);
      float* k = &kv[static_cast<size_t>(n * 2 * Hd)];
      ops::apply_rope(k, H, d, cs, sn);
      for (int64_t h = 0; h < H; ++h) {
        ops::from_f32(k + h * d, d, cache.dtype, cache.key_at(l, layout.rows[i], h, layout.cache_positions[i]));
        ops::from_f32(k + Hd + h * d, d, cache.dtype, cache.value_at(l, layout.rows[i], h, layout.cache_positions[i]));
      }
    }
    const ops::KVView view{cache.key_at(l, 0, 0, 0), cache.value_at(l, 0, 0, 0), cache.mask.data(), cap, H, cache.dtype,
                           cache.row_stride(), cache.head_stride(), d};
    ops::attention(pool, q.data(), N, layout.rows, layout.cache_positions, K * H, d, view, attn.data());
    moa_reduce(pool, attn.data(), routing, w.attention_output, w.attention_bias, y.data(), moe);
    if (options.stats) {
      options.stats->weight_bytes += ops::weight_bytes(w.attention_router) + ops::weight_bytes(w.kv_proj) +
                                     routed_bytes(routing, w.attention_input, w.attention_output);
      options.stats->kv_bytes += kv_positions * 2 * Hd * static_cast<int64_t>(cache.element_size());
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];

    // Mixture of MLP experts.
    ops::rms_norm(x.data(), N, D, w.post_attention_layernorm.data(), kBlockNormEps, normed.data());
    ops::matmul(pool, normed.data(), N, w.mlp_router, router_logits.data());
    keep_router_logits(router_logits);
    route_tokens(router_logits.data(), N, E, K, &routing);
    moe_mlp(pool, normed.data(), routing, w.mlp_input, w.mlp_output, act, w.mlp_bias, y.data(), moe);
    if (options.stats)
      options.stats->weight_bytes += ops::weight_bytes(w.mlp_router) + routed_bytes(routing, w.mlp_input, w.mlp_output);
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }

  ops::rms_norm(x.data(), N, D, weights_->norm.data(), static_cast<float>(c.rms_norm_eps), final_normed);
}

}  // namespace jetmoe
