#pragma once
// Typed access to tokenizer JSON fields that names the file, the field path
// and what was expected when the value is missing or of the wrong type.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "jetmoe/error.h"

namespace jetmoe::tokenizer_detail {

struct JsonContext {
  const std::string& source;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error(source + ": " + field + ": " + what);
  }
};

inline nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

inline std::string describe(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

inline const nlohmann::json& field(const JsonContext& c, const nlohmann::json& obj, const char* key, const std::string& path) {
  if (!obj.is_object()) c.fail(path, "expected an object, got " + describe(obj));
  const auto it = obj.find(key);
  if (it == obj.end()) c.fail(path + "." + key, "missing");
  return *it;
}

inline std::string get_string(const JsonContext& c, const nlohmann::json& v, const std::string& path) {
  if (!v.is_string()) c.fail(path, "expected a string, got " + describe(v));
  return v.get<std::string>();
}

inline bool get_bool(const JsonContext& c, const nlohmann::json& v, const std::string& path) {
  if (!v.is_boolean()) c.fail(path, "expected true or false, got " + describe(v));
  return v.get<bool>();
}

inline int64_t get_int(const JsonContext& c, const nlohmann::json& v, const std::string& path, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) c.fail(path, "expected an integer, got " + describe(v));
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  if (x < lo || x > hi) c.fail(path, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + describe(v));
  return x;
}

// Optional bool: absent or null -> fallback.
inline bool opt_bool(const JsonContext& c, const nlohmann::json& obj, const char* key, const std::string& path, bool fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return get_bool(c, *it, path + "." + key);
}

}  // namespace jetmoe::tokenizer_detail
