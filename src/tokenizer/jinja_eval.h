#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_ast.h"

namespace jetmoe::jinja {

// Bounds on one render, so a hostile or broken template fails with an error instead of
// exhausting memory or spinning: total bytes written and total loop iterations.
inline constexpr std::size_t kMaxOutputBytes = std::size_t{64} << 20;
inline constexpr std::size_t kMaxLoopIterations = 1'000'000;

// Renders `tmpl` with `globals` as the template's context (jinja2's default Undefined for
// anything else). Throws jetmoe::Error for raise_exception(), runtime type errors and limits.
std::string render(const Template& tmpl, std::vector<std::pair<std::string, Value>> globals);

}  // namespace jetmoe::jinja
