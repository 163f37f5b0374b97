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

// Throws Error("FILE: WHAT"), the form of every error about a file's contents.
[[noreturn]] inline void fail_in_file(const std::string& file, const std::string& what) { throw Error(file + ": " + what); }

}  // namespace jetmoe
