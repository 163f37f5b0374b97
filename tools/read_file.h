#pragma once
// Whole files named on the command line (input JSON, chat templates).
#include <string>

namespace jetmoe::cli {

// The file's bytes; "-" reads standard input. Error naming the path otherwise.
std::string read_file(const std::string& path);

}  // namespace jetmoe::cli
