#include "progress_bar.h"

#include <unistd.h>

#include <iostream>

namespace jetmoe::cli {

ProgressBar::ProgressBar(std::string label) : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) != 0) {}

void ProgressBar::update(int64_t done, int64_t total, const std::string& note) {
  if (!tty_ || total <= 0) return;
  const int permille = static_cast<int>(1000 * done / total);
  if (permille == last_permille_ && done != total) return;
  last_permille_ = permille;
  constexpr int kWidth = 30;
  const int filled = kWidth * permille / 1000;
  std::cerr << "\r" << label_ << " [" << std::string(static_cast<size_t>(filled), '=')
            << std::string(static_cast<size_t>(kWidth - filled), ' ') << "] " << done << "/" << total << " " << note << "\x1b[K"
            << std::flush;
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::cerr << "\n";
  drawn_ = false;
}

}  // namespace jetmoe::cli
