#include <string>

#include "jetmoe/tensor.h"

namespace jetmoe {

namespace {
struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
  bool safetensors;  // a dtype safetensors headers may name
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8, true}, {DType::F32, "F32", 4, true}, {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true}, {DType::I64, "I64", 8, true}, {DType::I32, "I32", 4, true},
    {DType::I16, "I16", 2, true}, {DType::I8, "I8", 1, true}, {DType::U8, "U8", 1, true},
    {DType::BOOL, "BOOL", 1, true}, {DType::Q8_0, "Q8_0", 1, false}, {DType::Q4_0, "Q4_0", 1, false},
};
}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& info : kDTypes)
    if (info.dtype == dtype) return info.size;
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& info : kDTypes)
    if (info.dtype == dtype) return info.name;
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  for (const auto& info : kDTypes) {
    if (info.safetensors && name == info.name) {
      *out = info.dtype;
      return true;
    }
  }
  return false;
}

bool is_quantized(DType dtype) { return dtype == DType::Q8_0 || dtype == DType::Q4_0; }

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace jetmoe
