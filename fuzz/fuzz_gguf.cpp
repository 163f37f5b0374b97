// libFuzzer entry point for the GGUF reader: any bytes, opened as a .gguf
// file (through a memfd, so the reader mmaps them as it would a file). It
// must either open them or throw jetmoe::Error; a file that opens must have
// every tensor inside the mapping.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "jetmoe/error.h"
#include "jetmoe/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.gguf", 0);
  if (fd < 0) return 0;
  if (size && write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    auto f = jetmoe::GgufFile::open(path);
    volatile uint8_t sink = 0;
    for (const auto& t : f->tensors())
      if (t.nbytes) sink = sink ^ static_cast<const uint8_t*>(t.data)[0] ^ static_cast<const uint8_t*>(t.data)[t.nbytes - 1];
    for (const auto& [key, value] : f->metadata()) sink = sink ^ static_cast<uint8_t>(key.size() + value.str.size());
  } catch (const jetmoe::Error&) {
  }
  close(fd);
  return 0;
}
