#pragma once
#include <stdexcept>
#include <string>

namespace jetmoe {

// Every failure caused by bad input (files, config values, token ids, shapes)
// is reported as this exception; its message names the file, field or value
// and what was expected, so callers can show it to a user as is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace jetmoe
