#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "jetmoe/model.h"

namespace jetmoe {

struct QuantizeOptions {
  WeightFormat type = WeightFormat::Q8_0;  // Q8_0 or Q4_0
  int num_threads = 0;                     // 0 = all cores
  // Called as the file grows: bytes written, the file's final size, and the
  // tensor being written.
  std::function<void(uint64_t done, uint64_t total, const std::string& tensor)> progress;
};

struct QuantizeResult {
  uint64_t file_bytes = 0;
  int64_t tensors = 0;
  int64_t quantized = 0;  // tensors stored in the quantised format
};

// Writes a checkpoint folder as one .gguf file (general.architecture
// "jetmoe"): config.json, the tokenizer files and generation_config.json
// embedded as metadata, the matrices that `--weights q8_0|q4_0` quantises at
// load (experts, kv_proj, the LM head) in that format, byte for byte what the
// load would have made, everything else as stored. Loading the file with
// --model FILE.gguf therefore gives the same logits as --model DIR --weights
// TYPE. Tensors are quantised and written one piece at a time (memory stays
// small for a full-size model); the file appears only when complete.
QuantizeResult quantize_to_gguf(const std::string& model_dir, const std::string& output, const QuantizeOptions& options);

}  // namespace jetmoe
