#pragma once
// Splits a Jinja2 template into text and tag tokens, applying the whitespace rules
// transformers renders with (trim_blocks, lstrip_blocks, {%- -%} / {{- -}} / {#- -#}).
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe::jinja {

struct SourcePos {
  int line = 1;
  int column = 1;
};

enum class TokenType {
  Text,        // literal template data, already whitespace-processed
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // value holds the unescaped literal
  Integer,
  Float,
  Operator,    // + - * / // % ** ~ == != < > <= >= ( ) [ ] { } , . : | =
  End,
};

struct Token {
  TokenType type;
  std::string value;
  SourcePos pos;
};

// Throws jetmoe::Error ("chat template line L, column C: ...") on unterminated tags,
// comments or strings and on characters that cannot start a token.
std::vector<Token> tokenize(std::string_view source);

// "chat template line L, column C: " — the prefix of every positioned error.
std::string where(SourcePos pos);

// The six ASCII whitespace characters of C's isspace, for the lexer's
// whitespace control and the evaluator's string filters.
inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace jetmoe::jinja
