#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jetmoe/tensor.h"

namespace jetmoe {

// GGUF (ggml's single-file model format), version 3: "GGUF", u32 version,
// u64 tensor count, u64 metadata count, metadata key/values, tensor infos
// (name, dims innermost first, type, offset), padding to general.alignment
// (default 32), then the tensor data, each tensor at an aligned offset.
//
// Tensor types: ggml's F32 (0), F16 (1) and BF16 (30), and this engine's two
// block formats (ops/quantize.h). Those are NOT ggml's Q8_0 (8) / Q4_0 (2):
// ggml interleaves each block's f16 scale with its quants and stores q8 as
// signed bytes, whereas ours keep a tensor's quants first (q8 as q + 128, q4
// paired 64 weights per 32 bytes) and then all its f16 scales, the layout the
// kernels read straight from the mapping. Same size per block (34 and 18
// bytes per 32 weights), distinct ids, so a ggml reader refuses the tensors
// instead of misreading them.
enum class GgufType : uint32_t {
  F32 = 0,
  F16 = 1,
  BF16 = 30,
  JETMOE_Q8_0 = 1008,
  JETMOE_Q4_0 = 1002,
};

// Metadata value types of the format.
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

const char* gguf_type_name(GgufType type);
// The DType a GGUF tensor type reads as (Q8_0 / Q4_0 for ours).
DType gguf_type_dtype(GgufType type);
// Bytes of a tensor of `numel` elements (a multiple of 32 for block types).
uint64_t gguf_tensor_bytes(GgufType type, uint64_t numel);

// One metadata value. Scalars are held as integer/float/bool; strings as
// text; arrays as their element type and count, with the elements of string
// arrays in `strings`, of numeric arrays as raw little-endian bytes in `raw`.
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u = 0;  // unsigned and bool values (and non-negative signed ones)
  int64_t i = 0;   // signed values
  double f = 0;    // float values
  std::string str;
  GgufValueType elem_type = GgufValueType::UINT8;
  uint64_t count = 0;
  std::vector<std::string> strings;
  std::string raw;
};

// A memory-mapped .gguf file. Opening validates everything (magic, version,
// counts against the file size, every string length, value types, tensor
// dims, types, sizes, aligned offsets inside the data section, no overlaps,
// no duplicate names or keys); every error names the file and the key or
// tensor. TensorViews point into the mapping and live as long as this does.
class GgufFile {
 public:
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* get(const std::string& key) const;
  // A string value; nullopt when absent, Error when of another type.
  std::optional<std::string> get_string(const std::string& key) const;
  // A string value; Error naming the file and key when absent or not a string.
  std::string require_string(const std::string& key) const;

 private:
  GgufFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, GgufValue> metadata_;
};

// Writes a GGUF file in one pass: metadata and tensor infos first, then
// each tensor's bytes in the order they were added, so tensors can be
// produced one at a time. The file is written under PATH.tmp and renamed
// to PATH by finish(); a writer destroyed before that removes it.
class GgufWriter {
 public:
  explicit GgufWriter(std::string path, uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  void add_string(const std::string& key, const std::string& value);
  void add_uint32(const std::string& key, uint32_t value);
  void add_int32(const std::string& key, int32_t value);
  void add_float32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_int32_array(const std::string& key, const std::vector<int32_t>& values);
  void add_float32_array(const std::string& key, const std::vector<float>& values);
  void add_uint8_array(const std::string& key, std::string_view bytes);
  // `shape` is row-major (outermost first), as in safetensors.
  void add_tensor(const std::string& name, GgufType type, const std::vector<int64_t>& shape);

  // Writes the header (after the last add_*); then write_tensor for every
  // tensor in order (a tensor may come in several pieces), then finish().
  void write_header();
  void write_tensor_data(const void* data, size_t bytes);
  void finish();
  uint64_t total_bytes() const;  // of the whole file, known after the adds

 private:
  struct TensorInfo {
    std::string name;
    GgufType type;
    std::vector<int64_t> shape;
    uint64_t offset, bytes;
  };
  void write(const void* data, size_t bytes);
  void pad_to(uint64_t multiple);
  std::string path_, tmp_path_;
  uint32_t alignment_;
  std::string kv_;  // encoded key/values
  uint64_t kv_count_ = 0;
  std::vector<TensorInfo> tensors_;
  uint64_t data_bytes_ = 0;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  size_t current_ = 0;          // tensor being written
  uint64_t current_done_ = 0;   // its bytes written so far
  uint64_t data_start_ = 0;
  bool created_ = false;
  bool finished_ = false;
};

}  // namespace jetmoe
