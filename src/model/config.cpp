#include "jetmoe/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "jetmoe/error.h"
#include "jetmoe/model_files.h"
#include "ops/activation.h"

namespace jetmoe {

namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& source;

  [[noreturn]] void bad(const std::string& key, const std::string& expected) const {
    throw Error(source + ": field \"" + key + "\" = " + j.at(key).dump() + ", expected " + expected);
  }
  const json* get(const std::string& key) const {
    auto it = j.find(key);
    return (it == j.end() || it->is_null()) ? nullptr : &*it;
  }
  void integer(const std::string& key, int64_t* out) const {
    if (const json* v = get(key)) {
      if (!v->is_number_integer()) bad(key, "an integer");
      *out = v->get<int64_t>();
    }
  }
  void number(const std::string& key, double* out) const {
    if (const json* v = get(key)) {
      if (!v->is_number()) bad(key, "a number");
      *out = v->get<double>();
    }
  }
  void boolean(const std::string& key, bool* out) const {
    if (const json* v = get(key)) {
      if (!v->is_boolean()) bad(key, "true or false");
      *out = v->get<bool>();
    }
  }
  void string(const std::string& key, std::string* out) const {
    if (const json* v = get(key)) {
      if (!v->is_string()) bad(key, "a string");
      *out = v->get<std::string>();
    }
  }
  // Absent keeps the default; an explicit null clears it (as in transformers).
  void optional_integer(const std::string& key, std::optional<int64_t>* out) const {
    auto it = j.find(key);
    if (it == j.end()) return;
    if (it->is_null()) {
      out->reset();
      return;
    }
    if (!it->is_number_integer()) bad(key, "an integer or null");
    *out = it->get<int64_t>();
  }
};

}  // namespace

JetMoeConfig JetMoeConfig::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(source + ": expected a JSON object at the top level");
  Reader r{j, source};
  JetMoeConfig c;
  r.integer("vocab_size", &c.vocab_size);
  r.integer("hidden_size", &c.hidden_size);
  r.integer("num_hidden_layers", &c.num_hidden_layers);
  r.integer("num_key_value_heads", &c.num_key_value_heads);
  r.integer("kv_channels", &c.kv_channels);
  r.integer("intermediate_size", &c.intermediate_size);
  r.integer("max_position_embeddings", &c.max_position_embeddings);
  r.string("activation_function", &c.activation_function);
  r.integer("num_local_experts", &c.num_local_experts);
  r.integer("num_experts_per_tok", &c.num_experts_per_tok);
  r.number("aux_loss_coef", &c.aux_loss_coef);
  r.boolean("output_router_logits", &c.output_router_logits);
  r.boolean("use_cache", &c.use_cache);
  r.optional_integer("bos_token_id", &c.bos_token_id);
  r.optional_integer("pad_token_id", &c.pad_token_id);
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    c.eos_token_id.clear();
    if (it->is_number_integer()) {
      c.eos_token_id.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const auto& v : *it) {
        if (!v.is_number_integer()) r.bad("eos_token_id", "an integer or a list of integers");
        c.eos_token_id.push_back(v.get<int64_t>());
      }
    } else if (!it->is_null()) {
      r.bad("eos_token_id", "an integer or a list of integers");
    }
  }
  r.boolean("tie_word_embeddings", &c.tie_word_embeddings);
  r.number("rope_theta", &c.rope_theta);
  r.number("rms_norm_eps", &c.rms_norm_eps);
  r.number("initializer_range", &c.initializer_range);
  r.number("attention_dropout", &c.attention_dropout);
  r.string("model_type", &c.model_type);
  r.string("torch_dtype", &c.torch_dtype);
  r.string("problem_type", &c.problem_type);
  if (const json* a = r.get("architectures")) {
    if (!a->is_array()) r.bad("architectures", "a list of class names");
    for (const auto& v : *a) {
      if (!v.is_string()) r.bad("architectures", "a list of class names");
      c.architectures.push_back(v.get<std::string>());
    }
  }
  if (const json* m = r.get("id2label")) {
    if (!m->is_object()) r.bad("id2label", "an object {\"0\": \"LABEL_0\", ...}");
    for (auto it = m->begin(); it != m->end(); ++it) {
      int64_t id = 0;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        r.bad("id2label", "integer keys");
      }
      if (!it->is_string()) r.bad("id2label", "string labels");
      c.id2label[id] = it->get<std::string>();
    }
  }
  // transformers: num_labels comes from id2label when given, else the
  // explicit num_labels, else 2.
  if (!c.id2label.empty()) {
    c.num_labels = static_cast<int64_t>(c.id2label.size());
  } else {
    r.integer("num_labels", &c.num_labels);
  }
  if (const json* rs = r.get("rope_scaling")) {
    std::string type = "(missing \"type\")";
    if (rs->is_object()) {
      auto t = rs->find("rope_type");
      if (t == rs->end()) t = rs->find("type");
      if (t != rs->end() && t->is_string()) type = t->get<std::string>();
    }
    if (type != "default")
      throw Error(source + ": rope_scaling type \"" + type +
                  "\" is not supported: JetMoE uses plain rotary embeddings; supported are rope_scaling null or {\"rope_type\": \"default\"}");
  }
  c.num_attention_heads = c.num_key_value_heads * c.num_experts_per_tok;
  c.validate(source);
  return c;
}

JetMoeConfig JetMoeConfig::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (a JetMoE checkpoint folder needs a config.json)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str(), path);
}

JetMoeConfig JetMoeConfig::from_pretrained(const std::string& model) {
  std::string source;
  const std::optional<std::string> text = read_model_file(model, "config.json", &source);
  if (!text && is_gguf_path(model))
    throw Error(model + ": missing metadata key '" + gguf_key_for("config.json") +
                "' (the model's config.json, which jetmoe quantize embeds)");
  if (!text) throw Error(source + ": cannot open (a JetMoE checkpoint folder needs a config.json)");
  return from_json(*text, source);
}

void JetMoeConfig::validate(const std::string& source) const {
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) throw Error(source + ": field \"" + key + "\" = " + std::to_string(v) + ", expected a positive integer");
  };
  if (model_type != "jetmoe")
    throw Error(source + ": model_type \"" + model_type + "\" is not a JetMoE model (expected \"jetmoe\")");
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_key_value_heads", num_key_value_heads);
  positive("kv_channels", kv_channels);
  positive("intermediate_size", intermediate_size);
  positive("max_position_embeddings", max_position_embeddings);
  positive("num_local_experts", num_local_experts);
  positive("num_experts_per_tok", num_experts_per_tok);
  positive("num_labels", num_labels);
  if (num_experts_per_tok > num_local_experts)
    throw Error(source + ": num_experts_per_tok = " + std::to_string(num_experts_per_tok) +
                " is larger than num_local_experts = " + std::to_string(num_local_experts) +
                " (each token picks that many distinct experts)");
  if (kv_channels % 2 != 0)
    throw Error(source + ": kv_channels = " + std::to_string(kv_channels) + ", expected an even number (rotary embeddings rotate pairs)");
  if (!ops::parse_activation(activation_function, nullptr))
    throw Error(source + ": activation_function \"" + activation_function + "\" is not supported (supported: " +
                ops::supported_activations() + ")");
  if (!(rms_norm_eps > 0)) throw Error(source + ": rms_norm_eps = " + std::to_string(rms_norm_eps) + ", expected > 0");
  if (!(rope_theta > 0)) throw Error(source + ": rope_theta = " + std::to_string(rope_theta) + ", expected > 0");
  if (!problem_type.empty() && problem_type != "regression" && problem_type != "single_label_classification" &&
      problem_type != "multi_label_classification")
    throw Error(source + ": problem_type \"" + problem_type +
                "\" is not one of regression, single_label_classification, multi_label_classification");
  auto token = [&](const char* key, int64_t id) {
    if (id < 0 || id >= vocab_size)
      throw Error(source + ": " + key + " = " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  };
  if (pad_token_id) token("pad_token_id", *pad_token_id);
}

void JetMoeConfig::check_sequence_length(int64_t length) const {
  if (length > max_position_embeddings)
    throw Error("sequence length " + std::to_string(length) + " exceeds max_position_embeddings = " +
                std::to_string(max_position_embeddings));
}

std::string JetMoeConfig::to_json() const {
  nlohmann::ordered_json j;
  j["architectures"] = architectures.empty() ? std::vector<std::string>{"JetMoeForCausalLM"} : architectures;
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_key_value_heads"] = num_key_value_heads;
  j["num_attention_heads"] = num_attention_heads;
  j["kv_channels"] = kv_channels;
  j["intermediate_size"] = intermediate_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["activation_function"] = activation_function;
  j["num_local_experts"] = num_local_experts;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["aux_loss_coef"] = aux_loss_coef;
  j["output_router_logits"] = output_router_logits;
  j["use_cache"] = use_cache;
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  j["eos_token_id"] = eos_token_id.size() == 1 ? json(eos_token_id[0]) : json(eos_token_id);
  if (pad_token_id) j["pad_token_id"] = *pad_token_id;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["rope_theta"] = rope_theta;
  j["rms_norm_eps"] = rms_norm_eps;
  j["initializer_range"] = initializer_range;
  j["attention_dropout"] = attention_dropout;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  if (!id2label.empty()) {
    nlohmann::ordered_json m;
    for (const auto& [id, label] : id2label) m[std::to_string(id)] = label;
    j["id2label"] = m;
  } else if (num_labels != 2) {
    j["num_labels"] = num_labels;
  }
  return j.dump(2) + "\n";
}

}  // namespace jetmoe
