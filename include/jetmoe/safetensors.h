#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "jetmoe/tensor.h"

namespace jetmoe {

// A memory-mapped .safetensors file. Opening validates the whole header
// (length, JSON, dtypes, shapes against byte ranges, ranges inside the file
// and not overlapping); afterwards every TensorView points into the mapping
// (zero-copy) and stays valid as long as this object lives.
class SafetensorsFile {
 public:
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  // Copies of tensors whose offset in the file is not aligned to their
  // element size (legal in the format, but not loadable through a typed
  // pointer). uint64_t storage gives 8-byte alignment.
  std::vector<std::vector<uint64_t>> realigned_;
};

// One entry of a file to write: a name, a dtype, a shape and its bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// The 8-byte length and the JSON header (data offsets laid out in order,
// padded so that the data section starts 8-byte aligned). `data` is unused.
std::string encode_safetensors_header(const std::vector<TensorToWrite>& tensors,
                                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a complete safetensors file. Throws Error naming the path on I/O failure.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace jetmoe
