#pragma once
// A one-line progress bar on stderr, redrawn in place when stderr is a
// terminal; otherwise silent until the final line, so logs stay readable.
#include <cstdint>
#include <string>

namespace jetmoe::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void update(int64_t done, int64_t total, const std::string& note = "");
  void finish();

 private:
  std::string label_;
  bool tty_;
  bool drawn_ = false;
  int last_permille_ = -1;
};

}  // namespace jetmoe::cli
