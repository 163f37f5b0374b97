#include "tokenizer/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace jetmoe::jinja {

const char* type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "Undefined";
    case Value::Type::None: return "NoneType";
    case Value::Type::Bool: return "bool";
    case Value::Type::Int: return "int";
    case Value::Type::Float: return "float";
    case Value::Type::String: return "str";
    case Value::Type::List: return "list";
    case Value::Type::Dict: return "dict";
    case Value::Type::Namespace: return "Namespace";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return false;
    case Value::Type::Bool: return v.b;
    case Value::Type::Int: return v.i != 0;
    case Value::Type::Float: return v.f != 0.0;
    case Value::Type::String: return !v.s.empty();
    case Value::Type::List: return !v.list->empty();
    case Value::Type::Dict: return !v.dict->empty();
    case Value::Type::Namespace: return true;
  }
  return false;
}

namespace {

// Python's float repr: shortest round-trip digits, always with a '.' or an exponent.
std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  // Python switches to exponent notation when the decimal exponent is < -4 or >= 16.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, end);
  const auto epos = sci.find('e');
  const int exponent = std::stoi(sci.substr(epos + 1));
  if (exponent < -4 || exponent >= 16) {
    std::string mant = sci.substr(0, epos);
    std::string exp = sci.substr(epos + 1);
    // Python writes at least two exponent digits: 1e+16, 1e-05.
    char sign = exp[0] == '-' ? '-' : '+';
    if (exp[0] == '-' || exp[0] == '+') exp = exp.substr(1);
    while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
    if (exp.size() < 2) exp = "0" + exp;
    return mant + "e" + sign + exp;
  }
  auto [end2, ec2] = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed);
  std::string fixed(buf, end2);
  if (fixed.find('.') == std::string::npos) fixed += ".0";
  return fixed;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == quote || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) { char b[8]; std::snprintf(b, sizeof b, "\\x%02x", c); out += b; }
    else out += static_cast<char>(c);
  }
  out += quote;
  return out;
}

void json_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) { char b[8]; std::snprintf(b, sizeof b, "\\u%04x", c); out += b; }
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}

void json_into(const Value& v, int indent, int depth, std::string& out) {
  const auto newline = [&](int d) {
    out += '\n';
    out.append(static_cast<std::size_t>(indent * d), ' ');
  };
  switch (v.type) {
    case Value::Type::Undefined:
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.b ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.i); return;
    case Value::Type::Float:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(v.f);
      return;
    case Value::Type::String: json_string(v.s, out); return;
    case Value::Type::List: {
      if (v.list->empty()) { out += "[]"; return; }
      out += '[';
      bool first = true;
      for (const auto& item : *v.list) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(depth + 1);
        json_into(item, indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    }
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      if (v.dict->empty()) { out += "{}"; return; }
      out += '{';
      bool first = true;
      for (const auto& [k, item] : *v.dict) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(depth + 1);
        json_string(k, out);
        out += ": ";
        json_into(item, indent, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string repr(const Value& v) {
  if (v.type == Value::Type::String) return string_repr(v.s);
  return to_str(v);
}

std::string to_str(const Value& v) {
  switch (v.type) {
    case Value::Type::Undefined: return "";
    case Value::Type::None: return "None";
    case Value::Type::Bool: return v.b ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: return float_repr(v.f);
    case Value::Type::String: return v.s;
    case Value::Type::List: {
      std::string out = "[";
      for (std::size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.list)[k]);
      }
      return out + "]";
    }
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      std::string out = v.type == Value::Type::Namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, item] : *v.dict) {
        if (!first) out += ", ";
        first = false;
        out += string_repr(k) + ": " + repr(item);
      }
      return out + (v.type == Value::Type::Namespace ? "}>" : "}");
    }
  }
  return "";
}

std::string to_json(const Value& v, int indent) {
  std::string out;
  json_into(v, indent, 0, out);
  return out;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.type == Value::Type::Float || b.type == Value::Type::Float) {
      const double x = a.type == Value::Type::Float ? a.f : static_cast<double>(a.type == Value::Type::Bool ? a.b : a.i);
      const double y = b.type == Value::Type::Float ? b.f : static_cast<double>(b.type == Value::Type::Bool ? b.b : b.i);
      return x == y;
    }
    const std::int64_t x = a.type == Value::Type::Bool ? a.b : a.i;
    const std::int64_t y = b.type == Value::Type::Bool ? b.b : b.i;
    return x == y;
  }
  if (a.type != b.type) return false;
  switch (a.type) {
    case Value::Type::Undefined:
    case Value::Type::None: return true;
    case Value::Type::String: return a.s == b.s;
    case Value::Type::List:
      if (a.list->size() != b.list->size()) return false;
      for (std::size_t k = 0; k < a.list->size(); ++k)
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::Type::Dict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, item] : *a.dict) {
        const Value* other = dict_find(*b.dict, k);
        if (!other || !equals(item, *other)) return false;
      }
      return true;
    case Value::Type::Namespace: return a.dict == b.dict;
    default: return false;
  }
}

const Value* dict_find(const Dict& d, const std::string& key) {
  for (const auto& [k, v] : d)
    if (k == key) return &v;
  return nullptr;
}

}  // namespace jetmoe::jinja
