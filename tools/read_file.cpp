#include "read_file.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "jetmoe/error.h"

namespace jetmoe::cli {

std::string read_file(const std::string& path) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading");
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace jetmoe::cli
