#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "ops/page_buffer.h"

namespace jetmoe {
namespace {

// The THP mode in brackets ("always [madvise] never"), or "" without THP.
std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  const auto open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

// The THPeligible field of the mapping that holds `p` in /proc/self/smaps:
// whether the kernel may back it with huge pages (-1 when not reported).
int thp_eligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto address = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= address && address < end;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::stoi(line.substr(12));
    }
  }
  return -1;
}

TEST(PageBuffer, ZeroedWritableAndAlignedToHugePages) {
  const size_t bytes = (size_t{5} << 20) + 123;  // not a multiple of any page size
  ops::PageBuffer b(bytes);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b.size(), bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (uintptr_t{2} << 20), 0u);
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes; ++i) sum += b.data()[i];
  EXPECT_EQ(sum, 0u);
  b.data()[0] = 1;
  b.data()[bytes - 1] = 2;  // the last byte is ours to write
  EXPECT_EQ(b.data()[0] + b.data()[bytes - 1], 3);
}

TEST(PageBuffer, AsksForHugePagesWhereTheKernelOffersThem) {
  const std::string mode = thp_mode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages are '" << mode << "' here";
  ops::PageBuffer b(size_t{8} << 20);
  b.data()[0] = 1;
  const int eligible = thp_eligible(b.data());
  if (eligible < 0) GTEST_SKIP() << "this kernel's smaps has no THPeligible field";
  EXPECT_EQ(eligible, 1);
}

TEST(PageBuffer, MoveHandsOverTheMemory) {
  ops::PageBuffer a(4096 * 3);
  a.data()[100] = 7;
  uint8_t* const p = a.data();
  ops::PageBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[100], 7);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  ops::PageBuffer c(64);
  c = std::move(b);  // unmaps c's own pages first
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.size(), size_t{4096 * 3});
  ops::PageBuffer empty(0);
  EXPECT_EQ(empty.data(), nullptr);
}

}  // namespace
}  // namespace jetmoe
