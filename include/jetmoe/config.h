#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace jetmoe {

// transformers' JetMoeConfig: the same field names and, for every field a
// config.json leaves out, the same defaults. Unknown keys are ignored.
struct JetMoeConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 2048;
  int64_t num_hidden_layers = 12;
  int64_t num_key_value_heads = 16;
  int64_t kv_channels = 128;
  int64_t intermediate_size = 5632;
  int64_t max_position_embeddings = 4096;
  std::string activation_function = "silu";
  int64_t num_local_experts = 8;
  int64_t num_experts_per_tok = 2;
  // Derived as transformers does: num_key_value_heads * num_experts_per_tok
  // (a value in config.json is not used).
  int64_t num_attention_heads = 32;
  double aux_loss_coef = 0.01;
  bool output_router_logits = false;
  bool use_cache = true;
  std::optional<int64_t> bos_token_id = 1;
  std::vector<int64_t> eos_token_id = {2};
  std::optional<int64_t> pad_token_id;
  bool tie_word_embeddings = true;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  double initializer_range = 0.01;
  double attention_dropout = 0.0;
  std::string model_type = "jetmoe";
  std::vector<std::string> architectures;
  std::string torch_dtype;
  // Sequence classification.
  int64_t num_labels = 2;
  std::string problem_type;  // "", "regression", "single_label_classification", "multi_label_classification"
  std::map<int64_t, std::string> id2label;

  // Parses and validates; `source` names the file in error messages.
  static JetMoeConfig from_json(const std::string& json_text, const std::string& source = "config.json");
  static JetMoeConfig from_file(const std::string& path);
  // The config of a model: its folder's config.json, or the config a .gguf
  // model embeds (metadata jetmoe.config_json).
  static JetMoeConfig from_pretrained(const std::string& model);
  // Throws Error naming the first invalid field.
  void validate(const std::string& source = "config.json") const;
  // Throws Error when a sequence of `length` positions exceeds
  // max_position_embeddings.
  void check_sequence_length(int64_t length) const;
  // The config as a config.json text (what init-random writes).
  std::string to_json() const;
};

}  // namespace jetmoe
