#pragma once
// The values a chat template computes with: Python's types as jinja2 exposes them.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace jetmoe::jinja {

struct Value;
using List = std::vector<Value>;
// Insertion-ordered like a Python dict; chat-template dicts are small, so linear lookup.
using Dict = std::vector<std::pair<std::string, Value>>;

struct Value {
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace };
  Type type = Type::Undefined;
  bool b = false;
  std::int64_t i = 0;
  double f = 0.0;
  std::string s;                // String; for Undefined, the name that was looked up
  std::shared_ptr<List> list;   // List
  std::shared_ptr<Dict> dict;   // Dict, Namespace (shared: namespace() attributes are assignable)

  static Value undefined(std::string name) { Value v; v.s = std::move(name); return v; }
  static Value none() { Value v; v.type = Type::None; return v; }
  static Value boolean(bool x) { Value v; v.type = Type::Bool; v.b = x; return v; }
  static Value integer(std::int64_t x) { Value v; v.type = Type::Int; v.i = x; return v; }
  static Value floating(double x) { Value v; v.type = Type::Float; v.f = x; return v; }
  static Value string(std::string x) { Value v; v.type = Type::String; v.s = std::move(x); return v; }
  static Value make_list(List items = {}) { Value v; v.type = Type::List; v.list = std::make_shared<List>(std::move(items)); return v; }
  static Value make_dict(Dict items = {}) { Value v; v.type = Type::Dict; v.dict = std::make_shared<Dict>(std::move(items)); return v; }

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
  bool is_mapping() const { return type == Type::Dict || type == Type::Namespace; }
};

// Python's type() name, for error messages.
const char* type_name(const Value& v);
// Python truthiness; Undefined is falsy.
bool truthy(const Value& v);
// Python str(v) (what {{ v }} prints); Undefined prints as "".
std::string to_str(const Value& v);
// Python repr(v), used inside printed lists and dicts.
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent) — indent < 0 means None.
std::string to_json(const Value& v, int indent);
// Python ==.
bool equals(const Value& a, const Value& b);
// Key lookup; nullptr when absent.
const Value* dict_find(const Dict& d, const std::string& key);

}  // namespace jetmoe::jinja
