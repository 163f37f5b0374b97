#pragma once
#include <cstddef>
#include <cstdint>

namespace jetmoe::ops {

// Zeroed, page-aligned anonymous memory for large buffers read in long
// streams: weights quantised at load and the bandwidth probe. It asks for
// transparent huge pages before the first touch (in the common THP mode,
// "madvise", a plain allocation gets 4 KB pages). On the 2-core Zen 3 we
// measure on, one sequential stream per thread (the probe) reads 15-25%
// faster from 2 MB pages; the decode kernels, four far-apart streams per
// thread, read as fast either way. Pages arrive zeroed on first touch, so a
// quantised copy is written once, not zero-filled first as a std::vector is.
// Where huge pages are unavailable it is ordinary memory.
class PageBuffer {
 public:
  PageBuffer() = default;
  // Throws std::bad_alloc when the kernel refuses the mapping.
  explicit PageBuffer(size_t bytes);
  ~PageBuffer();
  PageBuffer(PageBuffer&& other) noexcept;
  PageBuffer& operator=(PageBuffer&& other) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace jetmoe::ops
