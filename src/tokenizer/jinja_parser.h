#pragma once
#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace jetmoe::jinja {

// Parses the supported subset of Jinja2. Throws jetmoe::Error naming the line, column and
// construct for syntax errors and for anything outside the subset.
Template parse_template(std::string_view source);

// Deeper nesting than this (blocks or expressions) is refused rather than risking the stack.
inline constexpr int kMaxNesting = 128;

}  // namespace jetmoe::jinja
