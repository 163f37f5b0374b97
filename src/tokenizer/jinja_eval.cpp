#include "tokenizer/jinja_eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "jetmoe/error.h"

namespace jetmoe::jinja {

namespace {

using Type = Value::Type;

// Python indexes strings by code point; chat content is UTF-8.
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t k = 0; k < s.size();) {
    std::size_t n = 1;
    const auto c = static_cast<unsigned char>(s[k]);
    if (c >= 0xF0) n = 4;
    else if (c >= 0xE0) n = 3;
    else if (c >= 0xC0) n = 2;
    n = std::min(n, s.size() - k);
    out.push_back(s.substr(k, n));
    k += n;
  }
  return out;
}

std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  const auto strip_it = [&](char c) {
    if (!chars || chars->type == Type::None || chars->is_undefined()) return is_space(c);
    return chars->s.find(c) != std::string::npos;
  };
  std::size_t b = 0, e = s.size();
  if (left) while (b < e && strip_it(s[b])) ++b;
  if (right) while (e > b && strip_it(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string ascii_map(std::string s, int (*fn)(int)) {
  for (char& c : s) c = static_cast<char>(fn(static_cast<unsigned char>(c)));
  return s;
}

std::string capitalize(const std::string& s) {
  std::string out = ascii_map(s, [](int c) { return std::tolower(c); });
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

// Python's str.title(): a letter after a non-letter is upper-cased, other letters lower-cased.
std::string python_title(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(prev_letter ? std::tolower(u) : std::toupper(u));
      prev_letter = true;
    } else {
      prev_letter = false;
    }
  }
  return out;
}

// jinja2's title filter: words start after runs of whitespace, '-', '(', '{', '[' or '<'.
std::string jinja_title(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool sep = is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      out += c;
      word_start = true;
    } else {
      out += static_cast<char>(word_start ? std::toupper(u) : std::tolower(u));
      word_start = false;
    }
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, std::int64_t count) {
  if (from.empty()) {
    // Python inserts `to` between every code point (and at both ends).
    std::string out;
    std::int64_t done = 0;
    for (const auto& cp : code_points(s)) {
      if (count < 0 || done < count) { out += to; ++done; }
      out += cp;
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  std::string out;
  std::size_t pos = 0;
  std::int64_t done = 0;
  for (;;) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos || (count >= 0 && done >= count)) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::int64_t as_int(const Value& v) { return v.type == Type::Bool ? v.b : v.i; }
double as_double(const Value& v) { return v.type == Type::Float ? v.f : static_cast<double>(as_int(v)); }

// Python's slice.indices(): resolves omitted / negative bounds for a sequence of `len`.
std::vector<std::size_t> slice_indices(std::int64_t len, const Value& start_v, const Value& stop_v, const Value& step_v) {
  const auto given = [](const Value& v) { return v.type != Type::Undefined && v.type != Type::None; };
  const std::int64_t step = given(step_v) ? as_int(step_v) : 1;
  std::int64_t start, stop;
  if (step > 0) {
    start = given(start_v) ? as_int(start_v) : 0;
    stop = given(stop_v) ? as_int(stop_v) : len;
    if (start < 0) start = std::max<std::int64_t>(0, start + len);
    if (stop < 0) stop = std::max<std::int64_t>(0, stop + len);
    start = std::min(start, len);
    stop = std::min(stop, len);
  } else {
    start = given(start_v) ? as_int(start_v) : len - 1;
    stop = given(stop_v) ? as_int(stop_v) : -1;
    if (given(start_v) && start < 0) start = std::max<std::int64_t>(-1, start + len);
    if (given(stop_v) && stop < 0) stop = std::max<std::int64_t>(-1, stop + len);
    start = std::min(start, len - 1);
    stop = std::min(stop, len - 1);
  }
  std::vector<std::size_t> out;
  for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(static_cast<std::size_t>(k));
  return out;
}

class Renderer {
 public:
  explicit Renderer(std::vector<std::pair<std::string, Value>> globals) { scopes_.push_back(std::move(globals)); }

  std::string run(const Template& t) {
    exec(t.body);
    return std::move(out_);
  }

 private:
  enum class Flow { Normal, Break, Continue };

  [[noreturn]] static void fail(SourcePos pos, const std::string& what) { throw Error(where(pos) + what); }

  [[noreturn]] static void undefined_error(SourcePos pos, const Value& v) {
    fail(pos, "'" + v.s + "' is undefined");
  }

  void write(const std::string& s) {
    if (out_.size() + s.size() > kMaxOutputBytes)
      throw Error("chat template output exceeds " + std::to_string(kMaxOutputBytes) + " bytes");
    out_ += s;
  }

  Value lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope)
      for (const auto& [k, v] : *scope)
        if (k == name) return v;
    return Value::undefined(name);
  }

  bool is_bound(const std::string& name) const {
    for (const auto& scope : scopes_)
      for (const auto& kv : scope)
        if (kv.first == name) return true;
    return false;
  }

  void assign(const std::string& name, Value v) {
    auto& scope = scopes_.back();
    for (auto& kv : scope)
      if (kv.first == name) { kv.second = std::move(v); return; }
    scope.emplace_back(name, std::move(v));
  }

  // ---- statements
  Flow exec(const Body& body) {
    for (const Node& n : body) {
      switch (n.kind) {
        case NodeKind::Text: write(n.text); break;
        case NodeKind::Output: write(to_str(eval(*n.expr))); break;
        case NodeKind::If:
          for (const auto& [cond, branch] : n.branches) {
            if (!cond || truthy(eval(*cond))) {
              const Flow f = exec(branch);
              if (f != Flow::Normal) return f;
              break;
            }
          }
          break;
        case NodeKind::For: exec_for(n); break;
        case NodeKind::Set: exec_set(n); break;
        case NodeKind::Break: return Flow::Break;
        case NodeKind::Continue: return Flow::Continue;
      }
    }
    return Flow::Normal;
  }

  void exec_set(const Node& n) {
    Value v = eval(*n.expr);
    if (n.targets.size() == 1) {
      assign(n.targets[0], std::move(v));
      return;
    }
    const Value ns = lookup(n.targets[0]);
    if (ns.type != Type::Namespace)
      fail(n.pos, "cannot assign attribute '" + n.targets[1] + "' on '" + n.targets[0] + "', which is a " +
                      type_name(ns) + ", not a namespace()");
    for (auto& kv : *ns.dict)
      if (kv.first == n.targets[1]) { kv.second = std::move(v); return; }
    ns.dict->emplace_back(n.targets[1], std::move(v));
  }

  List iterate(const Value& v, SourcePos pos) {
    switch (v.type) {
      case Type::Undefined: return {};
      case Type::List: return *v.list;
      case Type::Dict: {
        List keys;
        for (const auto& kv : *v.dict) keys.push_back(Value::string(kv.first));
        return keys;
      }
      case Type::String: {
        List chars;
        for (auto& cp : code_points(v.s)) chars.push_back(Value::string(std::move(cp)));
        return chars;
      }
      default: fail(pos, std::string("'") + type_name(v) + "' object is not iterable");
    }
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      assign(n.targets[0], item);
      return;
    }
    if (item.type != Type::List || item.list->size() != n.targets.size())
      fail(n.pos, "cannot unpack a " + std::string(type_name(item)) + " into " + std::to_string(n.targets.size()) +
                      " loop variables");
    for (std::size_t k = 0; k < n.targets.size(); ++k) assign(n.targets[k], (*item.list)[k]);
  }

  void count_iteration(SourcePos pos) {
    if (++iterations_ > kMaxLoopIterations)
      fail(pos, "loops ran more than " + std::to_string(kMaxLoopIterations) + " iterations in total");
  }

  void exec_for(const Node& n) {
    List items = iterate(eval(*n.expr), n.expr->pos);
    if (n.loop_filter) {
      List kept;
      for (auto& item : items) {
        count_iteration(n.pos);
        scopes_.emplace_back();
        bind_targets(n, item);
        const bool keep = truthy(eval(*n.loop_filter));
        scopes_.pop_back();
        if (keep) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec(n.else_body);
      return;
    }
    const auto len = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < len; ++k) {
      count_iteration(n.pos);
      scopes_.emplace_back();
      bind_targets(n, items[k]);
      Dict loop = {{"index", Value::integer(k + 1)},
                   {"index0", Value::integer(k)},
                   {"revindex", Value::integer(len - k)},
                   {"revindex0", Value::integer(len - k - 1)},
                   {"first", Value::boolean(k == 0)},
                   {"last", Value::boolean(k == len - 1)},
                   {"length", Value::integer(len)}};
      if (k > 0) loop.emplace_back("previtem", items[k - 1]);
      if (k + 1 < len) loop.emplace_back("nextitem", items[k + 1]);
      assign("loop", Value::make_dict(std::move(loop)));
      const Flow f = exec(n.body);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
  }

  // ---- expressions
  Value eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::Literal: return e.value;
      case ExprKind::Name: return lookup(e.name);
      case ExprKind::ListLit: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value::make_list(std::move(items));
      }
      case ExprKind::DictLit: {
        Dict items;
        for (const auto& [k, a] : e.kwargs) items.emplace_back(k, eval(*a));
        return Value::make_dict(std::move(items));
      }
      case ExprKind::Unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.is_undefined()) undefined_error(e.pos, v);
        if (!v.is_number()) fail(e.pos, std::string("bad operand type for unary ") + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v.type == Type::Bool ? Value::integer(v.b) : v;
        return v.type == Type::Float ? Value::floating(-v.f) : Value::integer(-as_int(v));
      }
      case ExprKind::Binary: {
        if (e.name == "and" || e.name == "or") {
          Value a = eval(*e.args[0]);
          if ((e.name == "and") != truthy(a)) return a;
          return eval(*e.args[1]);
        }
        return arithmetic(e, eval(*e.args[0]), eval(*e.args[1]));
      }
      case ExprKind::Compare: {
        Value left = eval(*e.args[0]);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!compare(e.pos, e.ops[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case ExprKind::Cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("inline if without else");
      case ExprKind::GetAttr: {
        const Value obj = eval(*e.args[0]);
        if (obj.is_undefined()) undefined_error(e.pos, obj);
        if (obj.is_mapping())
          if (const Value* v = dict_find(*obj.dict, e.name)) return *v;
        return Value::undefined(std::string(type_name(obj)) + " object has no attribute " + e.name);
      }
      case ExprKind::GetItem: return get_item(e, eval(*e.args[0]), eval(*e.args[1]));
      case ExprKind::Slice: return slice(e);
      case ExprKind::Call: return call(e);
      case ExprKind::Filter: return filter(e);
      case ExprKind::Test: return Value::boolean(test(e) != e.negated);
    }
    return Value::undefined("?");
  }

  Value get_item(const Expr& e, const Value& obj, const Value& key) {
    if (obj.is_undefined()) undefined_error(e.pos, obj);
    if (obj.type == Type::List && (key.type == Type::Int || key.type == Type::Bool)) {
      std::int64_t k = as_int(key);
      const auto len = static_cast<std::int64_t>(obj.list->size());
      if (k < 0) k += len;
      if (k >= 0 && k < len) return (*obj.list)[static_cast<std::size_t>(k)];
      return Value::undefined("list object has no element " + std::to_string(as_int(key)));
    }
    if (obj.type == Type::String && (key.type == Type::Int || key.type == Type::Bool)) {
      const auto cps = code_points(obj.s);
      std::int64_t k = as_int(key);
      const auto len = static_cast<std::int64_t>(cps.size());
      if (k < 0) k += len;
      if (k >= 0 && k < len) return Value::string(cps[static_cast<std::size_t>(k)]);
      return Value::undefined("str object has no element " + std::to_string(as_int(key)));
    }
    if (obj.is_mapping() && key.type == Type::String) {
      if (const Value* v = dict_find(*obj.dict, key.s)) return *v;
      return Value::undefined(key.s);
    }
    return Value::undefined(std::string(type_name(obj)) + " object has no element " + to_str(key));
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.args[0]);
    Value parts[3];
    for (int k = 0; k < 3; ++k) {
      if (!e.args[k + 1]) continue;
      parts[k] = eval(*e.args[k + 1]);
      if (parts[k].type != Type::None && parts[k].type != Type::Int && parts[k].type != Type::Bool)
        fail(e.pos, std::string("slice indices must be integers or none, not '") + type_name(parts[k]) + "'");
    }
    if (parts[2].type != Type::Undefined && parts[2].type != Type::None && as_int(parts[2]) == 0)
      fail(e.pos, "slice step cannot be zero");
    if (obj.is_undefined()) undefined_error(e.pos, obj);
    if (obj.type == Type::List) {
      List out;
      for (std::size_t k : slice_indices(static_cast<std::int64_t>(obj.list->size()), parts[0], parts[1], parts[2]))
        out.push_back((*obj.list)[k]);
      return Value::make_list(std::move(out));
    }
    if (obj.type == Type::String) {
      const auto cps = code_points(obj.s);
      std::string out;
      for (std::size_t k : slice_indices(static_cast<std::int64_t>(cps.size()), parts[0], parts[1], parts[2])) out += cps[k];
      return Value::string(std::move(out));
    }
    fail(e.pos, std::string("'") + type_name(obj) + "' object cannot be sliced");
  }

  Value arithmetic(const Expr& e, const Value& a, const Value& b) {
    const std::string& op = e.name;
    if (op == "~") return Value::string(to_str(a) + to_str(b));
    if (a.is_undefined()) undefined_error(e.pos, a);
    if (b.is_undefined()) undefined_error(e.pos, b);
    const auto type_error = [&]() -> Value {
      fail(e.pos, "unsupported operand types for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (a.is_number() && b.is_number()) {
      const bool floating = a.type == Type::Float || b.type == Type::Float || op == "/";
      if (op == "/" || op == "//" || op == "%") {
        if (as_double(b) == 0.0) fail(e.pos, "division by zero");
      }
      if (floating || (op == "**" && as_int(b) < 0)) {
        const double x = as_double(a), y = as_double(b);
        if (op == "+") return Value::floating(x + y);
        if (op == "-") return Value::floating(x - y);
        if (op == "*") return Value::floating(x * y);
        if (op == "/") return Value::floating(x / y);
        if (op == "//") return Value::floating(std::floor(x / y));
        if (op == "%") { double r = std::fmod(x, y); if (r != 0 && ((r < 0) != (y < 0))) r += y; return Value::floating(r); }
        if (op == "**") return Value::floating(std::pow(x, y));
        return type_error();
      }
      const std::int64_t x = as_int(a), y = as_int(b);
      std::int64_t r = 0;
      bool overflow = false;
      if (op == "+") overflow = __builtin_add_overflow(x, y, &r);
      else if (op == "-") overflow = __builtin_sub_overflow(x, y, &r);
      else if (op == "*") overflow = __builtin_mul_overflow(x, y, &r);
      else if (op == "//") { r = x / y; if ((x % y != 0) && ((x < 0) != (y < 0))) --r; }
      else if (op == "%") { r = x % y; if (r != 0 && ((r < 0) != (y < 0))) r += y; }
      else if (op == "**") {
        r = 1;
        for (std::int64_t k = 0; k < y && !overflow; ++k) overflow = __builtin_mul_overflow(r, x, &r);
      } else {
        return type_error();
      }
      if (overflow) fail(e.pos, "integer overflow in " + op + " (values beyond 64 bits are not supported)");
      return Value::integer(r);
    }
    if (op == "+" && a.type == Type::String && b.type == Type::String) return Value::string(a.s + b.s);
    if (op == "+" && a.type == Type::List && b.type == Type::List) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(out));
    }
    if (op == "*" && ((a.type == Type::String && b.type == Type::Int) || (a.type == Type::Int && b.type == Type::String))) {
      const std::string& s = a.type == Type::String ? a.s : b.s;
      const std::int64_t n = a.type == Type::Int ? a.i : b.i;
      if (n <= 0) return Value::string("");
      if (s.size() * static_cast<std::size_t>(n) > kMaxOutputBytes) fail(e.pos, "string repetition result is too large");
      std::string out;
      for (std::int64_t k = 0; k < n; ++k) out += s;
      return Value::string(std::move(out));
    }
    return type_error();
  }

  bool compare(SourcePos pos, const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in" || op == "not in") return contains(pos, b, a) == (op == "in");
    if (a.is_undefined()) undefined_error(pos, a);
    if (b.is_undefined()) undefined_error(pos, b);
    int c;
    if (a.is_number() && b.is_number()) {
      const double x = as_double(a), y = as_double(b);
      c = x < y ? -1 : x > y ? 1 : 0;
    } else if (a.type == Type::String && b.type == Type::String) {
      c = a.s.compare(b.s);
    } else {
      fail(pos, "'" + op + "' not supported between '" + type_name(a) + "' and '" + type_name(b) + "'");
    }
    if (op == "<") return c < 0;
    if (op == ">") return c > 0;
    if (op == "<=") return c <= 0;
    return c >= 0;
  }

  bool contains(SourcePos pos, const Value& container, const Value& item) {
    switch (container.type) {
      case Type::Undefined: return false;
      case Type::String:
        if (item.type != Type::String)
          fail(pos, std::string("'in <string>' requires a string on the left, not '") + type_name(item) + "'");
        return container.s.find(item.s) != std::string::npos;
      case Type::List:
        return std::any_of(container.list->begin(), container.list->end(), [&](const Value& v) { return equals(v, item); });
      case Type::Dict:
        return item.type == Type::String && dict_find(*container.dict, item.s) != nullptr;
      default: fail(pos, std::string("argument of type '") + type_name(container) + "' is not a container");
    }
  }

  // ---- calls: globals and methods
  struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    // Python-style binding: positional index or keyword name; nullptr when absent.
    const Value* get(std::size_t index, const char* name) const {
      if (index < pos.size()) return &pos[index];
      for (const auto& kv : kw)
        if (kv.first == name) return &kv.second;
      return nullptr;
    }
  };

  Args eval_args(const Expr& e, std::size_t first) {
    Args a;
    for (std::size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
    return a;
  }

  static const std::string& need_string(SourcePos pos, const Value* v, const char* what) {
    if (!v || v->type != Type::String) fail(pos, std::string(what) + " must be a string");
    return v->s;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.kind == ExprKind::GetAttr) return call_method(e, eval(*callee.args[0]), callee.name);
    if (callee.kind == ExprKind::Name && !is_bound(callee.name)) {
      const Args a = eval_args(e, 1);
      if (callee.name == "raise_exception") {
        const Value* msg = a.get(0, "message");
        throw Error(msg ? to_str(*msg) : std::string("raise_exception() called"));
      }
      if (callee.name == "namespace") {
        Value ns;
        ns.type = Type::Namespace;
        ns.dict = std::make_shared<Dict>();
        if (!a.pos.empty() && a.pos[0].type == Type::Dict) *ns.dict = *a.pos[0].dict;
        for (const auto& kv : a.kw) ns.dict->push_back(kv);
        return ns;
      }
      if (callee.name == "range") {
        std::int64_t start = 0, stop = 0, step = 1;
        for (const auto& v : a.pos)
          if (v.type != Type::Int && v.type != Type::Bool) fail(e.pos, "range() arguments must be integers");
        if (a.pos.size() == 1) stop = as_int(a.pos[0]);
        else if (a.pos.size() >= 2) { start = as_int(a.pos[0]); stop = as_int(a.pos[1]); }
        if (a.pos.size() == 3) step = as_int(a.pos[2]);
        if (a.pos.empty() || a.pos.size() > 3 || step == 0) fail(e.pos, "range() takes 1 to 3 integer arguments, step not 0");
        List out;
        for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
          if (out.size() >= kMaxLoopIterations) fail(e.pos, "range() is larger than " + std::to_string(kMaxLoopIterations));
          out.push_back(Value::integer(k));
        }
        return Value::make_list(std::move(out));
      }
      fail(e.pos, "'" + callee.name + "' is undefined, so it cannot be called (callable globals: raise_exception, namespace, range)");
    }
    const Value v = eval(callee);
    fail(e.pos, std::string("'") + type_name(v) + "' object is not callable");
  }

  Value call_method(const Expr& e, const Value& obj, const std::string& name) {
    const Args a = eval_args(e, 1);
    const SourcePos pos = e.pos;
    if (obj.is_undefined()) undefined_error(pos, obj);
    if (obj.type == Type::String) {
      const std::string& s = obj.s;
      if (name == "strip") return Value::string(strip(s, a.get(0, "chars"), true, true));
      if (name == "lstrip") return Value::string(strip(s, a.get(0, "chars"), true, false));
      if (name == "rstrip") return Value::string(strip(s, a.get(0, "chars"), false, true));
      if (name == "upper") return Value::string(ascii_map(s, [](int c) { return std::toupper(c); }));
      if (name == "lower") return Value::string(ascii_map(s, [](int c) { return std::tolower(c); }));
      if (name == "title") return Value::string(python_title(s));
      if (name == "capitalize") return Value::string(capitalize(s));
      if (name == "startswith" || name == "endswith") {
        const Value* arg = a.get(0, "prefix");
        if (!arg) fail(pos, name + "() takes one argument");
        List candidates = arg->type == Type::List ? *arg->list : List{*arg};
        for (const auto& c : candidates) {
          const std::string& p = need_string(pos, &c, (name + "() argument").c_str());
          if (p.size() <= s.size() &&
              (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0))
            return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      if (name == "split") {
        const Value* sep = a.get(0, "sep");
        const Value* maxsplit_v = a.get(1, "maxsplit");
        const std::int64_t maxsplit = maxsplit_v ? as_int(*maxsplit_v) : -1;
        List parts;
        if (!sep || sep->type == Type::None) {
          std::size_t k = 0;
          std::int64_t done = 0;
          while (k < s.size()) {
            while (k < s.size() && is_space(s[k])) ++k;
            if (k >= s.size()) break;
            if (maxsplit >= 0 && done >= maxsplit) {
              std::string rest = s.substr(k);
              while (!rest.empty() && is_space(rest.back())) rest.pop_back();
              parts.push_back(Value::string(rest));
              break;
            }
            std::size_t j = k;
            while (j < s.size() && !is_space(s[j])) ++j;
            parts.push_back(Value::string(s.substr(k, j - k)));
            ++done;
            k = j;
          }
        } else {
          const std::string& d = need_string(pos, sep, "split() separator");
          if (d.empty()) fail(pos, "split() separator must not be empty");
          std::size_t k = 0;
          std::int64_t done = 0;
          for (;;) {
            const std::size_t hit = s.find(d, k);
            if (hit == std::string::npos || (maxsplit >= 0 && done >= maxsplit)) break;
            parts.push_back(Value::string(s.substr(k, hit - k)));
            k = hit + d.size();
            ++done;
          }
          parts.push_back(Value::string(s.substr(k)));
        }
        return Value::make_list(std::move(parts));
      }
      if (name == "replace") {
        const Value* count = a.get(2, "count");
        return Value::string(replace_all(s, need_string(pos, a.get(0, "old"), "replace() old"),
                                         need_string(pos, a.get(1, "new"), "replace() new"), count ? as_int(*count) : -1));
      }
      if (name == "join") {
        const Value* items = a.get(0, "iterable");
        if (!items) fail(pos, "join() takes one argument");
        std::string out;
        bool first = true;
        for (const auto& item : iterate(*items, pos)) {
          if (!first) out += s;
          first = false;
          out += need_string(pos, &item, "join() items");
        }
        return Value::string(std::move(out));
      }
    } else if (obj.type == Type::Dict) {
      if (name == "items") {
        List out;
        for (const auto& [k, v] : *obj.dict) out.push_back(Value::make_list({Value::string(k), v}));
        return Value::make_list(std::move(out));
      }
      if (name == "keys" || name == "values") {
        List out;
        for (const auto& [k, v] : *obj.dict) out.push_back(name == "keys" ? Value::string(k) : v);
        return Value::make_list(std::move(out));
      }
      if (name == "get") {
        const Value* key = a.get(0, "key");
        const Value* dflt = a.get(1, "default");
        if (key && key->type == Type::String)
          if (const Value* v = dict_find(*obj.dict, key->s)) return *v;
        return dflt ? *dflt : Value::none();
      }
    }
    fail(pos, std::string("method '") + name + "' of '" + type_name(obj) +
                  "' is not supported (str: strip, lstrip, rstrip, upper, lower, title, capitalize, startswith, "
                  "endswith, split, replace, join; dict: items, keys, values, get)");
  }

  // ---- filters and tests
  Value filter(const Expr& e) {
    const Value v = eval(*e.args[0]);
    const Args a = eval_args(e, 1);
    const std::string& f = e.name;
    const SourcePos pos = e.pos;
    const auto need_str = [&]() -> std::string {
      if (v.is_undefined()) return "";
      return to_str(v);
    };
    if (f == "safe") return v;
    if (f == "default" || f == "d") {
      const Value* dflt = a.get(0, "default_value");
      const Value* boolean = a.get(1, "boolean");
      const bool use_default = v.is_undefined() || (boolean && truthy(*boolean) && !truthy(v));
      return use_default ? (dflt ? *dflt : Value::string("")) : v;
    }
    if (f == "trim") return Value::string(strip(need_str(), a.get(0, "chars"), true, true));
    if (f == "upper") return Value::string(ascii_map(need_str(), [](int c) { return std::toupper(c); }));
    if (f == "lower") return Value::string(ascii_map(need_str(), [](int c) { return std::tolower(c); }));
    if (f == "capitalize") return Value::string(capitalize(need_str()));
    if (f == "title") return Value::string(jinja_title(need_str()));
    if (f == "string") return Value::string(to_str(v));
    if (f == "replace") {
      const Value* count = a.get(2, "count");
      return Value::string(replace_all(need_str(), to_str(a.get(0, "old") ? *a.get(0, "old") : Value()),
                                       to_str(a.get(1, "new") ? *a.get(1, "new") : Value()),
                                       count && count->type != Type::None ? as_int(*count) : -1));
    }
    if (f == "tojson") {
      const Value* indent = a.get(0, "indent");
      return Value::string(to_json(v, indent && indent->type != Type::None ? static_cast<int>(as_int(*indent)) : -1));
    }
    if (f == "length" || f == "count") {
      switch (v.type) {
        case Type::Undefined: return Value::integer(0);
        case Type::String: return Value::integer(static_cast<std::int64_t>(code_points(v.s).size()));
        case Type::List: return Value::integer(static_cast<std::int64_t>(v.list->size()));
        case Type::Dict:
        case Type::Namespace: return Value::integer(static_cast<std::int64_t>(v.dict->size()));
        default: fail(pos, std::string("object of type '") + type_name(v) + "' has no length");
      }
    }
    if (f == "first" || f == "last" || f == "list" || f == "reverse" || f == "join") {
      List items = iterate(v, pos);
      if (f == "first") return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
      if (f == "last") return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
      if (f == "list") return Value::make_list(std::move(items));
      if (f == "reverse") {
        std::reverse(items.begin(), items.end());
        if (v.type == Type::String) {
          std::string out;
          for (const auto& c : items) out += c.s;
          return Value::string(std::move(out));
        }
        return Value::make_list(std::move(items));
      }
      const Value* sep = a.get(0, "d");
      const Value* attribute = a.get(1, "attribute");
      std::string out;
      for (std::size_t k = 0; k < items.size(); ++k) {
        if (k && sep) out += to_str(*sep);
        Value item = items[k];
        if (attribute && item.is_mapping()) {
          const Value* field = dict_find(*item.dict, to_str(*attribute));
          item = field ? *field : Value();
        }
        out += to_str(item);
      }
      return Value::string(std::move(out));
    }
    if (f == "items") {
      if (v.is_undefined()) return Value::make_list();
      if (v.type != Type::Dict) fail(pos, std::string("items filter needs a mapping, got '") + type_name(v) + "'");
      List out;
      for (const auto& [k, x] : *v.dict) out.push_back(Value::make_list({Value::string(k), x}));
      return Value::make_list(std::move(out));
    }
    if (f == "int" || f == "float") {
      const Value* dflt = a.get(0, "default");
      const Value fallback = dflt ? *dflt : (f == "int" ? Value::integer(0) : Value::floating(0.0));
      double d = 0;
      bool ok = true;
      if (v.is_number()) {
        d = as_double(v);
        if (f == "int" && v.type != Type::Float) return Value::integer(as_int(v));
      } else if (v.type == Type::String) {
        const std::string t = strip(v.s, nullptr, true, true);
        char* end = nullptr;
        if (f == "int") {
          const long long n = std::strtoll(t.c_str(), &end, 10);
          if (!t.empty() && end == t.c_str() + t.size()) return Value::integer(n);
        }
        d = std::strtod(t.c_str(), &end);
        ok = !t.empty() && end == t.c_str() + t.size();
      } else {
        ok = false;
      }
      if (!ok) return fallback;
      return f == "int" ? Value::integer(static_cast<std::int64_t>(d)) : Value::floating(d);
    }
    if (f == "abs") {
      if (!v.is_number()) fail(pos, std::string("bad operand type for abs(): '") + type_name(v) + "'");
      return v.type == Type::Float ? Value::floating(std::fabs(v.f)) : Value::integer(std::llabs(as_int(v)));
    }
    fail(pos, "filter '" + f + "' is not implemented");
  }

  bool test(const Expr& e) {
    const Value v = eval(*e.args[0]);
    const Args a = eval_args(e, 1);
    const std::string& t = e.name;
    const Value* arg = a.get(0, "other");
    const auto need_arg = [&]() -> const Value& {
      if (!arg) fail(e.pos, "test '" + t + "' needs an argument");
      return *arg;
    };
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.type == Type::None;
    if (t == "string") return v.type == Type::String;
    if (t == "number") return v.is_number();
    if (t == "integer") return v.type == Type::Int;
    if (t == "float") return v.type == Type::Float;
    if (t == "boolean") return v.type == Type::Bool;
    if (t == "true") return v.type == Type::Bool && v.b;
    if (t == "false") return v.type == Type::Bool && !v.b;
    if (t == "mapping") return v.type == Type::Dict;
    if (t == "iterable" || t == "sequence")
      return v.type == Type::List || v.type == Type::Dict || v.type == Type::String || v.is_undefined();
    if (t == "lower") return v.type == Type::String && ascii_map(v.s, [](int c) { return std::tolower(c); }) == v.s;
    if (t == "upper") return v.type == Type::String && ascii_map(v.s, [](int c) { return std::toupper(c); }) == v.s;
    if (t == "even" || t == "odd" || t == "divisibleby") {
      if (v.type != Type::Int && v.type != Type::Bool) fail(e.pos, "test '" + t + "' needs an integer, got '" + type_name(v) + "'");
      if (t == "even") return as_int(v) % 2 == 0;
      if (t == "odd") return as_int(v) % 2 != 0;
      const Value& n = need_arg();
      if (!n.is_number() || as_double(n) == 0) fail(e.pos, "divisibleby needs a non-zero number");
      return as_int(v) % as_int(n) == 0;
    }
    if (t == "eq" || t == "equalto" || t == "==") return compare(e.pos, "==", v, need_arg());
    if (t == "ne" || t == "!=") return compare(e.pos, "!=", v, need_arg());
    if (t == "lt" || t == "<") return compare(e.pos, "<", v, need_arg());
    if (t == "gt" || t == ">") return compare(e.pos, ">", v, need_arg());
    if (t == "le" || t == "<=") return compare(e.pos, "<=", v, need_arg());
    if (t == "ge" || t == ">=") return compare(e.pos, ">=", v, need_arg());
    if (t == "in") return contains(e.pos, need_arg(), v);
    fail(e.pos, "test '" + t + "' is not implemented");
  }

  std::vector<std::vector<std::pair<std::string, Value>>> scopes_;
  std::string out_;
  std::size_t iterations_ = 0;
};

}  // namespace

std::string render(const Template& tmpl, std::vector<std::pair<std::string, Value>> globals) {
  return Renderer(std::move(globals)).run(tmpl);
}

}  // namespace jetmoe::jinja
