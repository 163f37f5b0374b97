#include "ops/page_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <utility>

namespace jetmoe::ops {

namespace {

constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

}  // namespace

PageBuffer::PageBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t length = (bytes + page - 1) / page * page;
  // Only a 2 MB-aligned stretch can be a huge page, so the mapping is made
  // one huge page longer and trimmed to start on a boundary.
  const size_t slack = length >= kHugePage ? kHugePage : 0;
  void* p = mmap(nullptr, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = slack ? (start + slack - 1) & ~(slack - 1) : start;
  const size_t head = aligned - start;
  if (head) munmap(p, head);
  if (slack > head) munmap(reinterpret_cast<void*>(aligned + length), slack - head);
  data_ = reinterpret_cast<uint8_t*>(aligned);
#ifdef MADV_HUGEPAGE
  // Advice only: a kernel without THP answers EINVAL and the pages stay 4 KB.
  madvise(data_, length, MADV_HUGEPAGE);
#endif
}

PageBuffer::~PageBuffer() {
  if (data_) munmap(data_, size_);
}

PageBuffer::PageBuffer(PageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

PageBuffer& PageBuffer::operator=(PageBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

}  // namespace jetmoe::ops
