#pragma once
// The Llama-2 reference tokenizer files and Hugging Face's expected
// encode/decode cases (tests/data/tokenizer/llama2, see its README), loaded
// once per test binary.
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "jetmoe/tokenizer.h"

namespace jetmoe::testing {

inline std::string llama2_dir() { return std::string(JETMOE_TEST_DATA) + "/tokenizer/llama2"; }

inline const nlohmann::json& tokenizer_cases(const std::string& name) {
  static const nlohmann::json encode = nlohmann::json::parse(std::ifstream(llama2_dir() + "/encode_cases.json"));
  static const nlohmann::json decode = nlohmann::json::parse(std::ifstream(llama2_dir() + "/decode_cases.json"));
  return name == "encode" ? encode : decode;
}

// From the folder: tokenizer.json (+ tokenizer_config.json).
inline const Tokenizer& llama2_json() {
  static const Tokenizer t = Tokenizer::from_pretrained(llama2_dir());
  return t;
}

// tokenizer.model alone (+ tokenizer_config.json next to it).
inline const Tokenizer& llama2_model() {
  static const Tokenizer t = Tokenizer::from_pretrained(llama2_dir() + "/tokenizer.model");
  return t;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& v) { return v.get<std::vector<int32_t>>(); }

}  // namespace jetmoe::testing
