#include "model_input_json.h"

#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "jetmoe/error.h"

namespace jetmoe::cli {

namespace {

using json = nlohmann::json;

// A [B, T] array of integers; every row as long as the first.
std::vector<int32_t> int_matrix(const json& v, const std::string& source, const std::string& key, int64_t* rows, int64_t* cols) {
  auto bad = [&](const std::string& what) -> void { throw Error(source + ": \"" + key + "\" " + what); };
  if (!v.is_array() || v.empty()) bad("must be a non-empty list of rows, e.g. [[1, 2, 3]]");
  std::vector<int32_t> out;
  *rows = static_cast<int64_t>(v.size());
  *cols = -1;
  for (size_t r = 0; r < v.size(); ++r) {
    const json& row = v[r];
    if (!row.is_array()) bad("row " + std::to_string(r) + " is not a list (expected a 2-D list [[...], ...])");
    if (*cols < 0) *cols = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != *cols)
      bad("row " + std::to_string(r) + " has " + std::to_string(row.size()) + " values but row 0 has " + std::to_string(*cols) +
          " (pad rows to one length)");
    for (const json& x : row) {
      if (!x.is_number_integer()) bad("value " + x.dump() + " in row " + std::to_string(r) + " is not an integer");
      const int64_t value = x.get<int64_t>();
      if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max())
        bad("value " + std::to_string(value) + " is out of range");
      out.push_back(static_cast<int32_t>(value));
    }
  }
  return out;
}

void expect_shape(const std::string& source, const std::string& key, int64_t rows, int64_t cols, int64_t B, int64_t T) {
  if (rows != B || cols != T)
    throw Error(source + ": \"" + key + "\" has shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "] but input_ids has [" + std::to_string(B) + ", " + std::to_string(T) + "]");
}

void parse_class_labels(const json& v, const std::string& source, int64_t B, ClassificationLabels* out) {
  if (!v.is_array() || static_cast<int64_t>(v.size()) != B)
    throw Error(source + ": \"labels\" must be a list with one entry per row (" + std::to_string(B) + ")");
  out->integer = true;
  for (const json& row : v) {
    const json one = json::array({row});
    for (const json& x : row.is_array() ? row : one) {
      if (!x.is_number()) throw Error(source + ": \"labels\" value " + x.dump() + " is not a number");
      out->integer = out->integer && x.is_number_integer() && !row.is_array();
      out->values.push_back(x.get<float>());
    }
  }
  if (out->integer)
    for (const json& x : v) out->class_ids.push_back(x.get<int64_t>());
}

}  // namespace

ForwardRequest parse_forward_request(const std::string& text, const std::string& source, Task task) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("input_ids"))
    throw Error(source + ": expected an object with \"input_ids\": [[...]] (and optionally attention_mask, position_ids, labels)");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "input_ids" && k != "attention_mask" && k != "position_ids" && k != "labels")
      std::cerr << "jetmoe: " << source << ": ignoring unknown key \"" << k
                << "\" (known: input_ids, attention_mask, position_ids, labels)\n";
  }
  ForwardRequest req;
  int64_t B = 0, T = 0, rows = 0, cols = 0;
  req.input.input_ids = int_matrix(j["input_ids"], source, "input_ids", &B, &T);
  if (T == 0) throw Error(source + ": \"input_ids\" rows are empty");
  req.input.batch_size = B;
  req.input.seq_len = T;
  if (j.contains("attention_mask") && !j["attention_mask"].is_null()) {
    req.input.attention_mask = int_matrix(j["attention_mask"], source, "attention_mask", &rows, &cols);
    expect_shape(source, "attention_mask", rows, cols, B, T);
    for (int32_t m : req.input.attention_mask)
      if (m != 0 && m != 1) throw Error(source + ": \"attention_mask\" value " + std::to_string(m) + ", expected 0 or 1");
  }
  if (j.contains("position_ids") && !j["position_ids"].is_null()) {
    req.input.position_ids = int_matrix(j["position_ids"], source, "position_ids", &rows, &cols);
    expect_shape(source, "position_ids", rows, cols, B, T);
  }
  if (j.contains("labels") && !j["labels"].is_null()) {
    req.has_labels = true;
    if (task == Task::SequenceClassification) {
      parse_class_labels(j["labels"], source, B, &req.class_labels);
    } else if (task == Task::CausalLM) {
      req.token_labels = int_matrix(j["labels"], source, "labels", &rows, &cols);
      expect_shape(source, "labels", rows, cols, B, T);
    } else {
      throw Error(source + ": \"labels\" given, but the base model (--task base) computes no loss");
    }
  }
  return req;
}

}  // namespace jetmoe::cli
