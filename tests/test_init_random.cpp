// init_random_checkpoint: Hugging Face layout, sharding, determinism and the
// distribution of the values it draws.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/error.h"
#include "scoped_temp_dir.h"
#include "jetmoe/init_random.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "jetmoe/safetensors.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

JetMoeConfig tiny_config() {
  JetMoeConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  c.num_key_value_heads = 2;
  c.kv_channels = 8;
  c.num_attention_heads = 4;
  c.intermediate_size = 48;
  c.max_position_embeddings = 128;
  c.initializer_range = 0.02;
  c.architectures = {"JetMoeForCausalLM"};
  return c;
}

// The tensors transformers' JetMoeForCausalLM (tied) state_dict holds, with
// shapes, written out independently of the library.
std::map<std::string, std::vector<int64_t>> expected_tensors(const JetMoeConfig& c) {
  const int64_t D = c.hidden_size, E = c.num_local_experts, Hd = c.num_key_value_heads * c.kv_channels,
                I = c.intermediate_size;
  std::map<std::string, std::vector<int64_t>> m;
  m["model.embed_tokens.weight"] = {c.vocab_size, D};
  m["model.norm.weight"] = {D};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m[p + "input_layernorm.weight"] = {D};
    m[p + "post_attention_layernorm.weight"] = {D};
    m[p + "self_attention.experts.bias"] = {D};
    m[p + "self_attention.experts.input_linear.weight"] = {E, Hd, D};
    m[p + "self_attention.experts.output_linear.weight"] = {E, D, Hd};
    m[p + "self_attention.experts.router.layer.weight"] = {E, D};
    m[p + "self_attention.kv_proj.weight"] = {2 * Hd, D};
    m[p + "mlp.bias"] = {D};
    m[p + "mlp.input_linear.weight"] = {E, 2 * I, D};
    m[p + "mlp.output_linear.weight"] = {E, D, I};
    m[p + "mlp.router.layer.weight"] = {E, D};
  }
  return m;
}

// A tensor's values as doubles, decoded from the stored dtype.
std::vector<double> values_of(const TensorView& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::F32) {
      out[i] = static_cast<const float*>(t.data)[i];
    } else {
      EXPECT_EQ(t.dtype, DType::BF16);
      const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(t.data)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      out[i] = f;
    }
  }
  return out;
}

std::string bytes_of(const TensorView& t) { return std::string(static_cast<const char*>(t.data), t.nbytes); }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

bool is_norm(const std::string& name) { return name.find("layernorm") != std::string::npos || name == "model.norm.weight"; }
bool is_bias(const std::string& name) { return name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0; }

TEST(InitRandom, ShardedLayoutAndIndex) {
  ScopedTempDir tmp;
  const JetMoeConfig config = tiny_config();
  const std::string dir = tmp.file("ckpt");
  InitRandomOptions opts;
  opts.dtype = DType::BF16;
  opts.seed = 42;
  opts.max_shard_bytes = 30000;  // the model is ~100 KB in bf16
  opts.num_threads = 2;
  init_random_checkpoint(config, dir, opts);

  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors"));
  ASSERT_TRUE(fs::exists(fs::path(dir) / "config.json"));
  ASSERT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));

  // Shard files: model-0000i-of-0000N.safetensors for i = 1..N, N >= 3.
  std::set<std::string> shard_files;
  int total_shards = -1;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".safetensors") continue;
    // The exact names are checked below, once the shard count is known.
    int index = 0, n = 0;
    char tail[32] = {};
    ASSERT_EQ(std::sscanf(name.c_str(), "model-%5d-of-%5d%31s", &index, &n, tail), 3) << name;
    EXPECT_STREQ(tail, ".safetensors") << name;
    if (total_shards < 0) total_shards = n;
    EXPECT_EQ(n, total_shards) << name;
    shard_files.insert(name);
  }
  ASSERT_GE(total_shards, 3);
  ASSERT_EQ(static_cast<int>(shard_files.size()), total_shards);
  for (int i = 1; i <= total_shards; ++i) {
    char want[64];
    std::snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", i, total_shards);
    EXPECT_TRUE(shard_files.count(want)) << want;
  }

  // Each shard stays under the limit (no single tensor here exceeds it).
  for (const auto& name : shard_files) {
    auto f = SafetensorsFile::open((fs::path(dir) / name).string());
    uint64_t bytes = 0;
    for (const auto& t : f->tensors()) bytes += t.nbytes;
    EXPECT_LE(bytes, opts.max_shard_bytes) << name;
    EXPECT_FALSE(f->tensors().empty()) << name;
  }

  // The index covers every tensor, in the shard that really holds it.
  const nlohmann::json index = read_json((fs::path(dir) / "model.safetensors.index.json").string());
  const nlohmann::json& wm = index.at("weight_map");
  const auto expected = expected_tensors(config);
  EXPECT_EQ(wm.size(), expected.size());
  uint64_t total = 0;
  std::set<std::string> seen_in_files;
  for (const auto& name : shard_files) {
    auto f = SafetensorsFile::open((fs::path(dir) / name).string());
    for (const auto& t : f->tensors()) {
      seen_in_files.insert(t.name);
      ASSERT_TRUE(wm.contains(t.name)) << t.name;
      EXPECT_EQ(wm[t.name].get<std::string>(), name) << t.name;
      EXPECT_EQ(t.dtype, DType::BF16) << t.name;
      total += static_cast<uint64_t>(t.numel()) * 2;
    }
  }
  for (const auto& [name, shape] : expected) {
    EXPECT_TRUE(wm.contains(name)) << name;
    EXPECT_TRUE(seen_in_files.count(name)) << name;
  }
  EXPECT_EQ(seen_in_files.size(), expected.size());
  EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), total);

  // Shapes as transformers lays them out.
  auto files = ModelFiles::open(dir);
  for (const auto& [name, shape] : expected) {
    const TensorView* t = files->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
  }
  EXPECT_EQ(files->find("lm_head.weight"), nullptr);  // tied by default
}

TEST(InitRandom, LoadsAndRunsForward) {
  ScopedTempDir tmp;
  const JetMoeConfig config = tiny_config();
  const std::string dir = tmp.file("ckpt");
  InitRandomOptions opts;
  opts.seed = 7;
  opts.max_shard_bytes = 30000;
  init_random_checkpoint(config, dir, opts);

  LoadOptions lo;
  lo.num_threads = 2;
  auto lm = JetMoeForCausalLM::from_pretrained(dir, lo);
  EXPECT_EQ(lm->config().hidden_size, 32);
  EXPECT_EQ(lm->config().torch_dtype, "bfloat16");
  const ModelInput input = ModelInput::from_ids({{1, 5, 9, 63, 0}, {2, 2, 40, 17, 3}});
  const CausalLMOutput out = lm->forward(input);
  ASSERT_EQ(out.logits.shape, (std::vector<int64_t>{2, 5, 64}));
  ASSERT_EQ(out.logits.numel(), 2 * 5 * 64);
  double spread = 0.0;
  for (float v : out.logits.data) {
    ASSERT_TRUE(std::isfinite(v));
    spread = std::max(spread, std::abs(static_cast<double>(v) - out.logits.data[0]));
  }
  EXPECT_GT(spread, 0.0) << "logits are all identical";
}

TEST(InitRandom, DeterministicAcrossShardingAndThreads) {
  ScopedTempDir tmp;
  const JetMoeConfig config = tiny_config();
  InitRandomOptions a;
  a.seed = 1234;
  a.dtype = DType::F32;
  a.num_threads = 1;
  InitRandomOptions b = a;
  b.max_shard_bytes = 20000;
  b.num_threads = 3;
  InitRandomOptions c = a;
  c.seed = 1235;
  init_random_checkpoint(config, tmp.file("a"), a);
  init_random_checkpoint(config, tmp.file("b"), b);
  init_random_checkpoint(config, tmp.file("c"), c);
  ASSERT_TRUE(fs::exists(tmp.file("a") + "/model.safetensors"));
  ASSERT_FALSE(fs::exists(tmp.file("a") + "/model.safetensors.index.json"));
  ASSERT_TRUE(fs::exists(tmp.file("b") + "/model.safetensors.index.json"));

  auto fa = ModelFiles::open(tmp.file("a"));
  auto fb = ModelFiles::open(tmp.file("b"));
  auto fc = ModelFiles::open(tmp.file("c"));
  ASSERT_EQ(fa->names(), fb->names());
  ASSERT_EQ(fa->names(), fc->names());
  int random_tensors = 0;
  for (const auto& name : fa->names()) {
    const TensorView* ta = fa->find(name);
    const TensorView* tb = fb->find(name);
    const TensorView* tc = fc->find(name);
    ASSERT_TRUE(ta && tb && tc) << name;
    EXPECT_EQ(bytes_of(*ta), bytes_of(*tb)) << name << " differs between sharded and unsharded";
    if (is_norm(name) || is_bias(name)) {
      EXPECT_EQ(bytes_of(*ta), bytes_of(*tc)) << name;
      continue;
    }
    ++random_tensors;
    // Another seed: (almost) every value differs.
    const auto va = values_of(*ta), vc = values_of(*tc);
    size_t same = 0;
    for (size_t i = 0; i < va.size(); ++i) same += va[i] == vc[i];
    EXPECT_LT(same, va.size() / 100 + 1) << name << " barely changed with the seed";
  }
  EXPECT_EQ(random_tensors, 1 + 2 * 7);

  // Tensors of the same shape are not copies of each other (values depend on the name).
  const auto r0 = values_of(*fa->find("model.layers.0.mlp.router.layer.weight"));
  const auto r1 = values_of(*fa->find("model.layers.1.mlp.router.layer.weight"));
  const auto r2 = values_of(*fa->find("model.layers.0.self_attention.experts.router.layer.weight"));
  EXPECT_NE(r0, r1);
  EXPECT_NE(r0, r2);

  // Running it again gives the same bytes.
  init_random_checkpoint(config, tmp.file("a2"), a);
  auto fa2 = ModelFiles::open(tmp.file("a2"));
  for (const auto& name : fa->names()) EXPECT_EQ(bytes_of(*fa->find(name)), bytes_of(*fa2->find(name))) << name;
}

TEST(InitRandom, ValuesFollowInitWeights) {
  ScopedTempDir tmp;
  JetMoeConfig config = tiny_config();
  config.initializer_range = 0.05;
  config.intermediate_size = 160;  // mlp.input_linear: 4 * 320 * 32 = 40960 values
  for (DType dtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const std::string dir = tmp.file(dtype_name(dtype));
    InitRandomOptions opts;
    opts.dtype = dtype;
    opts.seed = 99;
    init_random_checkpoint(config, dir, opts);
    auto files = ModelFiles::open(dir);
    for (const auto& name : files->names()) {
      const TensorView* t = files->find(name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->dtype, dtype) << name;
      const auto v = values_of(*t);
      if (is_norm(name)) {
        for (double x : v) ASSERT_EQ(x, 1.0) << name;
      } else if (is_bias(name)) {
        for (double x : v) ASSERT_EQ(x, 0.0) << name;
        for (size_t i = 0; i < t->nbytes; ++i) ASSERT_EQ(static_cast<const uint8_t*>(t->data)[i], 0) << name << " (-0?)";
      } else {
        for (double x : v) ASSERT_TRUE(std::isfinite(x)) << name;
      }
    }
    // Statistics of the largest matrix: normal(0, initializer_range).
    const auto v = values_of(*files->find("model.layers.1.mlp.input_linear.weight"));
    ASSERT_EQ(v.size(), 40960u);
    const double sigma = config.initializer_range;
    double sum = 0.0, sq = 0.0, maxabs = 0.0;
    size_t within1 = 0, within2 = 0;
    for (double x : v) {
      sum += x;
      sq += x * x;
      maxabs = std::max(maxabs, std::abs(x));
      within1 += std::abs(x) < sigma;
      within2 += std::abs(x) < 2 * sigma;
    }
    const double n = static_cast<double>(v.size());
    const double mean = sum / n;
    const double sd = std::sqrt(sq / n - mean * mean);
    EXPECT_LT(std::abs(mean), 5 * sigma / std::sqrt(n));
    EXPECT_NEAR(sd / sigma, 1.0, 0.03);
    // The shape of a normal: 68.3% within 1 sigma, 95.4% within 2 (a
    // uniform with the same std would give 57.7% and 100%).
    EXPECT_NEAR(within1 / n, 0.6827, 0.015);
    EXPECT_NEAR(within2 / n, 0.9545, 0.01);
    EXPECT_LT(maxabs, 7 * sigma);
    EXPECT_GT(maxabs, 3 * sigma);
  }

  // The bf16 file holds the f32 values rounded to bfloat16.
  auto f32 = ModelFiles::open(tmp.file("F32"));
  auto bf16 = ModelFiles::open(tmp.file("BF16"));
  for (const auto& name : f32->names()) {
    const auto a = values_of(*f32->find(name));
    const auto b = values_of(*bf16->find(name));
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_LE(std::abs(a[i] - b[i]), std::abs(a[i]) * 0x1p-8) << name << "[" << i << "]";
  }
}

TEST(InitRandom, DtypeRecordedInConfig) {
  ScopedTempDir tmp;
  const JetMoeConfig config = tiny_config();
  for (DType dtype : {DType::F32, DType::BF16}) {
    const std::string dir = tmp.file(dtype_name(dtype));
    InitRandomOptions opts;
    opts.dtype = dtype;
    init_random_checkpoint(config, dir, opts);
    const nlohmann::json j = read_json(dir + "/config.json");
    EXPECT_EQ(j.at("torch_dtype").get<std::string>(), dtype == DType::F32 ? "float32" : "bfloat16");
    EXPECT_EQ(j.at("hidden_size").get<int64_t>(), 32);
    EXPECT_EQ(j.at("num_attention_heads").get<int64_t>(), 4);
    EXPECT_EQ(j.at("model_type").get<std::string>(), "jetmoe");
    const JetMoeConfig back = JetMoeConfig::from_file(dir + "/config.json");
    EXPECT_EQ(back.vocab_size, 64);
    EXPECT_EQ(back.intermediate_size, 48);
    EXPECT_EQ(back.num_local_experts, 4);
    auto files = ModelFiles::open(dir);
    const TensorView* e = files->find("model.embed_tokens.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->dtype, dtype);
    EXPECT_EQ(e->nbytes, static_cast<size_t>(64 * 32) * (dtype == DType::F32 ? 4 : 2));
    // Loadable either way.
    auto lm = JetMoeForCausalLM::from_pretrained(dir, LoadOptions{1});
    const CausalLMOutput out = lm->forward(ModelInput::from_ids({{3, 4}}));
    for (float v : out.logits.data) ASSERT_TRUE(std::isfinite(v));
  }
  InitRandomOptions bad;
  bad.dtype = DType::F16;
  EXPECT_THROW(init_random_checkpoint(config, tmp.file("f16"), bad), Error);
}

TEST(InitRandom, UntiedWritesLmHead) {
  ScopedTempDir tmp;
  JetMoeConfig config = tiny_config();
  config.tie_word_embeddings = false;
  const std::string dir = tmp.file("untied");
  init_random_checkpoint(config, dir, InitRandomOptions{});
  auto files = ModelFiles::open(dir);
  const TensorView* head = files->find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{64, 32}));
  EXPECT_NE(bytes_of(*head), bytes_of(*files->find("model.embed_tokens.weight")));
  EXPECT_EQ(files->names().size(), expected_tensors(config).size() + 1);
  EXPECT_EQ(files->find("score.weight"), nullptr);
  EXPECT_FALSE(JetMoeConfig::from_file(dir + "/config.json").tie_word_embeddings);
  auto lm = JetMoeForCausalLM::from_pretrained(dir, LoadOptions{1});
  const CausalLMOutput out = lm->forward(ModelInput::from_ids({{3, 4, 5}}));
  ASSERT_EQ(out.logits.shape, (std::vector<int64_t>{1, 3, 64}));
  for (float v : out.logits.data) ASSERT_TRUE(std::isfinite(v));
}

TEST(InitRandom, SequenceClassificationWritesScore) {
  ScopedTempDir tmp;
  JetMoeConfig config = tiny_config();
  config.architectures = {"JetMoeForSequenceClassification"};
  config.num_labels = 3;
  config.tie_word_embeddings = false;  // still no lm_head: the head is score
  const std::string dir = tmp.file("seqcls");
  init_random_checkpoint(config, dir, InitRandomOptions{});
  auto files = ModelFiles::open(dir);
  const TensorView* score = files->find("score.weight");
  ASSERT_NE(score, nullptr);
  EXPECT_EQ(score->shape, (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(files->find("lm_head.weight"), nullptr);
  EXPECT_EQ(files->names().size(), expected_tensors(config).size() + 1);
  const JetMoeConfig back = JetMoeConfig::from_file(dir + "/config.json");
  EXPECT_EQ(back.architectures, (std::vector<std::string>{"JetMoeForSequenceClassification"}));
  EXPECT_EQ(back.num_labels, 3);

  auto model = JetMoeForSequenceClassification::from_pretrained(dir, LoadOptions{1});
  // One row: without pad_token_id only a batch of 1 can be pooled.
  const SequenceClassifierOutput out = model->forward(ModelInput::from_ids({{3, 4, 5}}));
  ASSERT_EQ(out.pooled_logits.shape, (std::vector<int64_t>{1, 3}));
  for (float v : out.pooled_logits.data) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace jetmoe
