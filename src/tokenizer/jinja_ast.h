#pragma once
// The parsed form of a chat template: plain data, walked by jinja_eval.cpp.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_value.h"

namespace jetmoe::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Literal,    // value
  Name,       // name
  ListLit,    // args
  DictLit,    // kwargs (keys are string literals)
  Unary,      // name = "-", "+", "not"; args[0]
  Binary,     // name = arithmetic operator, "and" or "or"; args[0], args[1]
  Compare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
  Cond,       // args[0] if args[1] else args[2] (args[2] may be null)
  GetAttr,    // args[0].name
  GetItem,    // args[0][args[1]]
  Slice,      // args[0][args[1]:args[2]:args[3]] (null parts omitted)
  Call,       // args[0](args[1..], kwargs)
  Filter,     // args[0] | name(args[1..], kwargs)
  Test,       // args[0] is [not] name(args[1..]); negated
};

struct Expr {
  ExprKind kind;
  SourcePos pos;
  std::string name;
  Value value;
  bool negated = false;
  std::vector<std::string> ops;  // Compare: ==, !=, <, >, <=, >=, in, not in
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using Body = std::vector<Node>;

enum class NodeKind { Text, Output, If, For, Set, Break, Continue };

struct Node {
  NodeKind kind;
  SourcePos pos;
  std::string text;                    // Text
  ExprPtr expr;                        // Output value; For iterable; Set value
  // If: one (condition, body) per if/elif; a null condition is the else branch.
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::string> targets;    // For loop variables; Set: {name} or {namespace, attribute}
  ExprPtr loop_filter;                 // For ... if cond
  Body body;                           // For body
  Body else_body;                      // For else
};

struct Template {
  Body body;
};

}  // namespace jetmoe::jinja
