#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <array>
#include <string>

#include "jetmoe/error.h"

namespace jetmoe::jinja {

namespace {

constexpr std::array kFilters = {"trim", "upper", "lower", "length", "count", "first", "last", "default", "d",
                                 "join", "replace", "tojson", "capitalize", "title", "string", "int", "float",
                                 "list", "items", "reverse", "abs", "safe"};
constexpr std::array kTests = {"defined", "undefined", "none", "string", "number", "integer", "float", "boolean",
                               "true", "false", "mapping", "iterable", "sequence", "even", "odd", "divisibleby",
                               "eq", "equalto", "==", "ne", "!=", "lt", "<", "gt", ">", "le", "<=", "ge", ">=",
                               "in", "lower", "upper"};
constexpr std::array kUnsupportedTags = {"macro", "endmacro", "call", "endcall", "filter", "endfilter", "include",
                                         "import", "from", "extends", "block", "endblock", "raw", "endraw", "with",
                                         "endwith", "autoescape", "endautoescape", "do", "generation",
                                         "endgeneration", "endset", "trans", "pluralize", "endtrans"};

template <std::size_t N>
bool contains(const std::array<const char*, N>& names, const std::string& name) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

template <std::size_t N>
std::string listing(const std::array<const char*, N>& names) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::Text: return "template text";
    case TokenType::VarBegin: return "'{{'";
    case TokenType::VarEnd: return "'}}'";
    case TokenType::BlockBegin: return "'{%'";
    case TokenType::BlockEnd: return "'%}'";
    case TokenType::End: return "end of template";
    case TokenType::String: return "string literal";
    default: return "'" + t.value + "'";
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Template run() {
    Template t;
    std::string end_tag;
    t.body = parse_body({}, end_tag, {});
    return t;
  }

 private:
  // ---- token helpers
  const Token& peek(std::size_t ahead = 0) const { return toks_[std::min(i_ + ahead, toks_.size() - 1)]; }
  const Token& next() { const Token& t = peek(); if (i_ < toks_.size() - 1) ++i_; return t; }
  bool is_op(const char* op, std::size_t ahead = 0) const {
    return peek(ahead).type == TokenType::Operator && peek(ahead).value == op;
  }
  bool is_name(const char* name, std::size_t ahead = 0) const {
    return peek(ahead).type == TokenType::Name && peek(ahead).value == name;
  }
  [[noreturn]] void fail(const Token& at, const std::string& what) const { throw Error(where(at.pos) + what); }
  void expect_op(const char* op, const char* context) {
    if (!is_op(op)) fail(peek(), std::string("expected '") + op + "' " + context + ", got " + describe(peek()));
    next();
  }
  void expect_block_end(const char* tag) {
    if (peek().type != TokenType::BlockEnd)
      fail(peek(), std::string("expected '%}' to close '{% ") + tag + " %}', got " + describe(peek()));
    next();
  }
  std::string expect_name(const char* context) {
    if (peek().type != TokenType::Name) fail(peek(), std::string("expected a name ") + context + ", got " + describe(peek()));
    return next().value;
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting)
        p_.fail(p_.peek(), "template nests deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  // ---- statements
  // Parses until one of `stops` opens a block tag; leaves i_ on that tag's name.
  Body parse_body(std::initializer_list<const char*> stops, std::string& stopped_at, SourcePos opened_at) {
    DepthGuard guard(*this);
    Body body;
    for (;;) {
      const Token& t = peek();
      if (t.type == TokenType::End) {
        if (stops.size() != 0) {
          throw Error(where(opened_at) + "this block is never closed: expected '{% " + *(stops.end() - 1) +
                      " %}' before the end of the template");
        }
        return body;
      }
      if (t.type == TokenType::Text) {
        Node n{NodeKind::Text, t.pos, t.value, {}, {}, {}, {}, {}, {}};
        body.push_back(std::move(n));
        next();
      } else if (t.type == TokenType::VarBegin) {
        next();
        Node n{NodeKind::Output, t.pos, {}, parse_expr(), {}, {}, {}, {}, {}};
        if (peek().type != TokenType::VarEnd) fail(peek(), "expected '}}' to end the expression, got " + describe(peek()));
        next();
        body.push_back(std::move(n));
      } else if (t.type == TokenType::BlockBegin) {
        const Token& kw = peek(1);
        if (kw.type == TokenType::Name &&
            std::any_of(stops.begin(), stops.end(), [&](const char* s) { return kw.value == s; })) {
          stopped_at = kw.value;
          next();  // '{%'
          next();  // the tag name; the caller parses the rest of the tag
          return body;
        }
        next();
        body.push_back(parse_statement());
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  Node parse_statement() {
    const Token& kw = peek();
    if (kw.type != TokenType::Name) fail(kw, "expected a tag name after '{%', got " + describe(kw));
    const std::string name = kw.value;
    const SourcePos pos = kw.pos;
    next();
    if (name == "if") return parse_if(pos);
    if (name == "for") return parse_for(pos);
    if (name == "set") return parse_set(pos);
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(kw, "'{% " + name + " %}' outside of a for loop");
      expect_block_end(name.c_str());
      return Node{name == "break" ? NodeKind::Break : NodeKind::Continue, pos, {}, {}, {}, {}, {}, {}, {}};
    }
    if (name == "elif" || name == "else" || name == "endif" || name == "endfor")
      throw Error(where(pos) + "'{% " + name + " %}' without a matching opening tag");
    if (contains(kUnsupportedTags, name))
      throw Error(where(pos) + "'{% " + name +
                  " %}' is not supported by jetmoe's chat template engine (supported tags: if/elif/else/endif, "
                  "for/else/endfor, set, break, continue)");
    throw Error(where(pos) + "unknown tag '{% " + name + " %}'");
  }

  Node parse_if(SourcePos pos) {
    Node n{NodeKind::If, pos, {}, {}, {}, {}, {}, {}, {}};
    ExprPtr cond = parse_expr();
    expect_block_end("if");
    for (;;) {
      std::string stop;
      Body body = parse_body({"elif", "else", "endif"}, stop, pos);
      n.branches.emplace_back(std::move(cond), std::move(body));
      if (stop == "elif") {
        cond = parse_expr();
        expect_block_end("elif");
      } else if (stop == "else") {
        expect_block_end("else");
        std::string end;
        Body else_body = parse_body({"endif"}, end, pos);
        n.branches.emplace_back(nullptr, std::move(else_body));
        expect_block_end("endif");
        return n;
      } else {
        expect_block_end("endif");
        return n;
      }
    }
  }

  Node parse_for(SourcePos pos) {
    Node n{NodeKind::For, pos, {}, {}, {}, {}, {}, {}, {}};
    n.targets.push_back(expect_name("as the for-loop variable"));
    while (is_op(",")) {
      next();
      n.targets.push_back(expect_name("as a for-loop variable"));
    }
    if (!is_name("in")) fail(peek(), "expected 'in' in the for loop, got " + describe(peek()));
    next();
    n.expr = parse_or();
    if (is_name("if")) {
      next();
      n.loop_filter = parse_expr();
    }
    if (is_name("recursive")) fail(peek(), "recursive for loops are not supported");
    expect_block_end("for");
    ++loop_depth_;
    std::string stop;
    n.body = parse_body({"else", "endfor"}, stop, pos);
    --loop_depth_;
    if (stop == "else") {
      expect_block_end("else");
      std::string end;
      n.else_body = parse_body({"endfor"}, end, pos);
    }
    expect_block_end("endfor");
    return n;
  }

  Node parse_set(SourcePos pos) {
    Node n{NodeKind::Set, pos, {}, {}, {}, {}, {}, {}, {}};
    n.targets.push_back(expect_name("after 'set'"));
    if (is_op(".")) {
      next();
      n.targets.push_back(expect_name("as the namespace attribute to set"));
    }
    if (is_op(",")) fail(peek(), "'{% set a, b = ... %}' (tuple assignment) is not supported");
    if (!is_op("=")) fail(peek(), "block assignment '{% set x %}...{% endset %}' is not supported; use '{% set x = ... %}'");
    next();
    n.expr = parse_expr();
    expect_block_end("set");
    return n;
  }

  // ---- expressions, in jinja2's precedence order
  ExprPtr make(ExprKind kind, SourcePos pos, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    e->name = std::move(name);
    return e;
  }
  ExprPtr binary(const char* op, SourcePos pos, ExprPtr a, ExprPtr b) {
    auto e = make(ExprKind::Binary, pos, op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_expr() {
    DepthGuard guard(*this);
    const SourcePos pos = peek().pos;
    ExprPtr left = parse_or();
    while (is_name("if")) {
      next();
      auto e = make(ExprKind::Cond, pos);
      e->args.push_back(std::move(left));
      e->args.push_back(parse_or());
      if (is_name("else")) {
        next();
        e->args.push_back(parse_expr());
      } else {
        e->args.push_back(nullptr);
      }
      left = std::move(e);
    }
    return left;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const SourcePos pos = next().pos;
      left = binary("or", pos, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const SourcePos pos = next().pos;
      left = binary("and", pos, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const SourcePos pos = next().pos;
      auto e = make(ExprKind::Unary, pos, "not");
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const SourcePos pos = peek().pos;
    ExprPtr first = parse_math1();
    ExprPtr chain;
    for (;;) {
      std::string op;
      if (peek().type == TokenType::Operator &&
          (peek().value == "==" || peek().value == "!=" || peek().value == "<" || peek().value == ">" ||
           peek().value == "<=" || peek().value == ">=")) {
        op = next().value;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!chain) {
        chain = make(ExprKind::Compare, pos);
        chain->args.push_back(std::move(first));
      }
      chain->ops.push_back(op);
      chain->args.push_back(parse_math1());
    }
    return chain ? std::move(chain) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      const char* op = t.value == "+" ? "+" : "-";
      left = binary(op, t.pos, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const SourcePos pos = next().pos;
      left = binary("~", pos, std::move(left), parse_math2());
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      const std::string op = t.value;
      left = binary(op == "*" ? "*" : op == "/" ? "/" : op == "//" ? "//" : "%", t.pos, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const SourcePos pos = next().pos;
      left = binary("**", pos, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      node = make(ExprKind::Unary, t.pos, t.value == "-" ? "-" : "+");
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case TokenType::Name: {
        next();
        auto e = make(ExprKind::Literal, t.pos);
        if (t.value == "true" || t.value == "True") e->value = Value::boolean(true);
        else if (t.value == "false" || t.value == "False") e->value = Value::boolean(false);
        else if (t.value == "none" || t.value == "None") e->value = Value::none();
        else { e->kind = ExprKind::Name; e->name = t.value; }
        return e;
      }
      case TokenType::String: {
        auto e = make(ExprKind::Literal, t.pos);
        std::string s;
        while (peek().type == TokenType::String) s += next().value;  // adjacent literals concatenate
        e->value = Value::string(std::move(s));
        return e;
      }
      case TokenType::Integer: {
        next();
        auto e = make(ExprKind::Literal, t.pos);
        try {
          e->value = Value::integer(std::stoll(t.value));
        } catch (const std::exception&) {
          fail(t, "integer literal " + t.value + " does not fit in 64 bits");
        }
        return e;
      }
      case TokenType::Float: {
        next();
        auto e = make(ExprKind::Literal, t.pos);
        e->value = Value::floating(std::stod(t.value));
        return e;
      }
      case TokenType::Operator:
        if (t.value == "(") {
          next();
          ExprPtr inner = parse_expr();
          if (is_op(",")) {  // a tuple: behaves like a list here
            auto list = make(ExprKind::ListLit, t.pos);
            list->args.push_back(std::move(inner));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              list->args.push_back(parse_expr());
            }
            inner = std::move(list);
          }
          expect_op(")", "to close '('");
          return inner;
        }
        if (t.value == "[") {
          next();
          auto list = make(ExprKind::ListLit, t.pos);
          while (!is_op("]")) {
            list->args.push_back(parse_expr());
            if (!is_op(",")) break;
            next();
          }
          expect_op("]", "to close the list literal");
          return list;
        }
        if (t.value == "{") {
          next();
          auto dict = make(ExprKind::DictLit, t.pos);
          while (!is_op("}")) {
            if (peek().type != TokenType::String) fail(peek(), "dict literal keys must be string literals");
            std::string key = next().value;
            expect_op(":", "after a dict key");
            dict->kwargs.emplace_back(std::move(key), parse_expr());
            if (!is_op(",")) break;
            next();
          }
          expect_op("}", "to close the dict literal");
          return dict;
        }
        break;
      default: break;
    }
    fail(t, "expected an expression, got " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      if (is_op(".")) {
        const SourcePos pos = next().pos;
        auto e = make(ExprKind::GetAttr, pos);
        if (peek().type == TokenType::Integer) {
          e->kind = ExprKind::GetItem;
          e->args.push_back(std::move(node));
          auto idx = make(ExprKind::Literal, peek().pos);
          idx->value = Value::integer(std::stoll(next().value));
          e->args.push_back(std::move(idx));
        } else {
          e->name = expect_name("after '.'");
          e->args.push_back(std::move(node));
        }
        node = std::move(e);
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const SourcePos pos = next().pos;  // '['
    ExprPtr parts[3];
    int colons = 0;
    if (!is_op(":")) parts[0] = parse_expr();
    while (is_op(":") && colons < 2) {
      next();
      ++colons;
      if (!is_op(":") && !is_op("]")) parts[colons] = parse_expr();
    }
    expect_op("]", "to close the subscript");
    if (colons == 0) {
      auto e = make(ExprKind::GetItem, pos);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(ExprKind::Slice, pos);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Fills positional args (after any already present) and keyword args of a call.
  void parse_args(Expr& e) {
    expect_op("(", "to start the argument list");
    while (!is_op(")")) {
      if (peek().type == TokenType::Name && is_op("=", 1)) {
        std::string key = next().value;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expr());
      } else {
        if (!e.kwargs.empty()) fail(peek(), "positional argument after a keyword argument");
        e.args.push_back(parse_expr());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")", "to close the argument list");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(ExprKind::Call, peek().pos);
    e->args.push_back(std::move(callee));
    parse_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    for (;;) {
      if (is_op("|")) {
        next();
        const Token& t = peek();
        const std::string name = expect_name("as the filter after '|'");
        if (!contains(kFilters, name))
          fail(t, "filter '" + name + "' is not supported (supported filters: " + listing(kFilters) + ")");
        auto e = make(ExprKind::Filter, t.pos, name);
        e->args.push_back(std::move(node));
        if (is_op("(")) parse_args(*e);
        node = std::move(e);
      } else if (is_name("is")) {
        next();
        bool negated = false;
        if (is_name("not")) {
          next();
          negated = true;
        }
        const Token& t = peek();
        std::string name;
        if (t.type == TokenType::Name || (t.type == TokenType::Operator && contains(kTests, t.value))) {
          name = next().value;
        } else {
          fail(t, "expected a test name after 'is', got " + describe(t));
        }
        if (!contains(kTests, name))
          fail(t, "test '" + name + "' is not supported (supported tests: " + listing(kTests) + ")");
        auto e = make(ExprKind::Test, t.pos, name);
        e->negated = negated;
        e->args.push_back(std::move(node));
        if (is_op("(")) {
          parse_args(*e);
        } else if ((peek().type == TokenType::Name || peek().type == TokenType::String ||
                    peek().type == TokenType::Integer || peek().type == TokenType::Float || is_op("(") ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail(peek(), "tests cannot be chained with 'is'");
          e->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(e);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  std::size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Template parse_template(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace jetmoe::jinja
