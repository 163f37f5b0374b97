#include "jetmoe/generation_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "jetmoe/config.h"
#include "jetmoe/error.h"
#include "jetmoe/model_files.h"

namespace jetmoe {

namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& source;

  [[noreturn]] void bad(const std::string& key, const std::string& expected) const {
    throw Error(source + ": field \"" + key + "\" = " + j.at(key).dump() + ", expected " + expected);
  }
  // nullptr when absent; an explicit null is returned so optionals can reset.
  const json* find(const std::string& key) const {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  void integer(const std::string& key, int64_t* out) const {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_number_integer()) bad(key, "an integer");
    *out = v->get<int64_t>();
  }
  void number(const std::string& key, double* out) const {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_number()) bad(key, "a number");
    *out = v->get<double>();
  }
  void boolean(const std::string& key, bool* out) const {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_boolean()) bad(key, "true or false");
    *out = v->get<bool>();
  }
  template <typename T>
  void optional_integer(const std::string& key, std::optional<T>* out) const {
    const json* v = find(key);
    if (!v) return;
    if (v->is_null()) return out->reset();
    if (!v->is_number_integer()) bad(key, "an integer or null");
    const int64_t x = v->get<int64_t>();
    if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) || x > static_cast<int64_t>(std::numeric_limits<T>::max()))
      bad(key, "an integer in range");
    *out = static_cast<T>(x);
  }
  void optional_number(const std::string& key, std::optional<double>* out) const {
    const json* v = find(key);
    if (!v) return;
    if (v->is_null()) return out->reset();
    if (!v->is_number()) bad(key, "a number or null");
    *out = v->get<double>();
  }
  // transformers accepts one id or a list of ids.
  void token_ids(const std::string& key, std::vector<int32_t>* out) const {
    const json* v = find(key);
    if (!v) return;
    out->clear();
    if (v->is_null()) return;
    auto one = [&](const json& x) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad(key, "a non-negative token id or a list of them");
      out->push_back(static_cast<int32_t>(x.get<int64_t>()));
    };
    if (v->is_array()) {
      for (const json& x : *v) one(x);
    } else {
      one(*v);
    }
  }
  void strings(const std::string& key, std::vector<std::string>* out) const {
    const json* v = find(key);
    if (!v) return;
    out->clear();
    if (v->is_null()) return;
    if (v->is_string()) return out->push_back(v->get<std::string>());
    if (!v->is_array()) bad(key, "a string or a list of strings");
    for (const json& x : *v) {
      if (!x.is_string()) bad(key, "a string or a list of strings");
      out->push_back(x.get<std::string>());
    }
  }
};

void require(bool ok, const std::string& field, const std::string& value, const std::string& expected) {
  if (!ok) throw Error("generation config: " + field + " = " + value + ", expected " + expected);
}

std::string num(double x) {
  std::ostringstream ss;
  ss << x;
  return ss.str();
}

}  // namespace

void GenerationConfig::update_from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(source + ": expected a JSON object at the top level");
  Reader r{j, source};
  r.integer("max_length", &max_length);
  r.optional_integer("max_new_tokens", &max_new_tokens);
  r.integer("min_length", &min_length);
  r.optional_integer("min_new_tokens", &min_new_tokens);
  r.boolean("do_sample", &do_sample);
  r.number("temperature", &temperature);
  r.integer("top_k", &top_k);
  r.number("top_p", &top_p);
  r.optional_number("min_p", &min_p);
  r.number("typical_p", &typical_p);
  r.number("repetition_penalty", &repetition_penalty);
  r.integer("no_repeat_ngram_size", &no_repeat_ngram_size);
  r.integer("num_beams", &num_beams);
  r.number("length_penalty", &length_penalty);
  if (const json* v = r.find("early_stopping"); v && !v->is_null()) {
    if (v->is_boolean()) {
      early_stopping = v->get<bool>() ? EarlyStopping::True : EarlyStopping::False;
    } else if (v->is_string() && v->get<std::string>() == "never") {
      early_stopping = EarlyStopping::Never;
    } else {
      r.bad("early_stopping", "true, false or \"never\"");
    }
  }
  r.integer("num_return_sequences", &num_return_sequences);
  r.token_ids("eos_token_id", &eos_token_id);
  r.optional_integer("pad_token_id", &pad_token_id);
  r.optional_integer("bos_token_id", &bos_token_id);
  r.strings("stop_strings", &stop_strings);
  r.optional_integer("seed", &seed);
}

GenerationConfig GenerationConfig::from_json(const std::string& text, const std::string& source) {
  GenerationConfig c;
  c.update_from_json(text, source);
  return c;
}

GenerationConfig GenerationConfig::from_model_folder(const std::string& folder) {
  GenerationConfig c;
  // As transformers' from_model_config: the special tokens of config.json
  // are the starting point, generation_config.json overrides them. A .gguf
  // model holds both files' texts.
  std::string source;
  if (const auto text = read_model_file(folder, "config.json", &source)) {
    const JetMoeConfig mc = JetMoeConfig::from_json(*text, source);
    for (int64_t e : mc.eos_token_id) c.eos_token_id.push_back(static_cast<int32_t>(e));
    if (mc.bos_token_id) c.bos_token_id = static_cast<int32_t>(*mc.bos_token_id);
    if (mc.pad_token_id) c.pad_token_id = static_cast<int32_t>(*mc.pad_token_id);
  }
  if (const auto text = read_model_file(folder, "generation_config.json", &source)) c.update_from_json(*text, source);
  return c;
}

void GenerationConfig::validate() const {
  require(max_length >= 1, "max_length", std::to_string(max_length), "at least 1");
  if (max_new_tokens) require(*max_new_tokens >= 1, "max_new_tokens", std::to_string(*max_new_tokens), "at least 1");
  require(min_length >= 0, "min_length", std::to_string(min_length), "at least 0");
  if (min_new_tokens) require(*min_new_tokens >= 0, "min_new_tokens", std::to_string(*min_new_tokens), "at least 0");
  require(std::isfinite(temperature) && temperature > 0, "temperature", num(temperature), "a number > 0");
  require(top_k >= 0, "top_k", std::to_string(top_k), "at least 0 (0 disables it)");
  require(top_p > 0 && top_p <= 1, "top_p", num(top_p), "a number in (0, 1]");
  if (min_p) require(*min_p >= 0 && *min_p <= 1, "min_p", num(*min_p), "a number in [0, 1]");
  require(typical_p > 0 && typical_p <= 1, "typical_p", num(typical_p), "a number in (0, 1]");
  require(std::isfinite(repetition_penalty) && repetition_penalty > 0, "repetition_penalty", num(repetition_penalty),
          "a number > 0 (1 disables it)");
  require(no_repeat_ngram_size >= 0, "no_repeat_ngram_size", std::to_string(no_repeat_ngram_size), "at least 0");
  require(num_beams >= 1 && num_beams <= 1024, "num_beams", std::to_string(num_beams), "between 1 and 1024");
  require(std::isfinite(length_penalty), "length_penalty", num(length_penalty), "a finite number");
  require(num_return_sequences >= 1 && num_return_sequences <= 1024, "num_return_sequences",
          std::to_string(num_return_sequences), "between 1 and 1024");
  if (num_beams > 1)
    require(num_return_sequences <= num_beams, "num_return_sequences", std::to_string(num_return_sequences),
            "at most num_beams (" + std::to_string(num_beams) + ") with beam search");
  else
    require(do_sample || num_return_sequences == 1, "num_return_sequences", std::to_string(num_return_sequences),
            "1 with greedy search (it would return the same sequence each time); set do_sample or num_beams");
  if (num_beams > 1 && do_sample)
    throw Error("generation config: do_sample with num_beams > 1 (beam sampling) is not supported; use one or the other");
  if (num_beams > 1 && !stop_strings.empty())
    throw Error("generation config: stop_strings work with greedy search and sampling, not with beam search");
  for (const std::string& s : stop_strings) require(!s.empty(), "stop_strings", "\"\"", "non-empty strings");
}

std::string GenerationConfig::to_json() const {
  json j;
  j["max_length"] = max_length;
  j["max_new_tokens"] = max_new_tokens ? json(*max_new_tokens) : json(nullptr);
  j["min_length"] = min_length;
  j["min_new_tokens"] = min_new_tokens ? json(*min_new_tokens) : json(nullptr);
  j["do_sample"] = do_sample;
  j["temperature"] = temperature;
  j["top_k"] = top_k;
  j["top_p"] = top_p;
  j["min_p"] = min_p ? json(*min_p) : json(nullptr);
  j["typical_p"] = typical_p;
  j["repetition_penalty"] = repetition_penalty;
  j["no_repeat_ngram_size"] = no_repeat_ngram_size;
  j["num_beams"] = num_beams;
  j["length_penalty"] = length_penalty;
  j["early_stopping"] = early_stopping == EarlyStopping::Never ? json("never") : json(early_stopping == EarlyStopping::True);
  j["num_return_sequences"] = num_return_sequences;
  j["eos_token_id"] = eos_token_id;
  j["pad_token_id"] = pad_token_id ? json(*pad_token_id) : json(nullptr);
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  j["stop_strings"] = stop_strings;
  j["seed"] = seed ? json(*seed) : json(nullptr);
  return j.dump(2);
}

}  // namespace jetmoe
