#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jetmoe {

// Element types of safetensors files. Only F32, F16 and BF16 can hold
// weights; the integer types are recognised so that a file holding them is
// read (and rejected with a clear message only where a weight is expected).
// Q8_0 and Q4_0 are this engine's block formats (ops/quantize.h) as stored
// in .gguf files: quants of every row, then f16 scales [rows, cols / 32].
// They are never safetensors dtypes.
enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, Q8_0, Q4_0 };

// Bytes per element; 1 for the block formats, whose size is not per
// element (gguf_tensor_bytes gives it).
size_t dtype_size(DType dtype);
bool is_quantized(DType dtype);
const char* dtype_name(DType dtype);  // safetensors spelling, e.g. "BF16"
bool parse_dtype(std::string_view name, DType* out);

int64_t shape_numel(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int64_t>& shape);  // "[2, 3]"

// A typed, non-owning view of tensor bytes: usually a pointer into a
// memory-mapped safetensors file.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
};

// An owned float32 tensor, row-major: what the engine returns.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(static_cast<size_t>(shape_numel(shape)), 0.0f) {}
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

}  // namespace jetmoe
