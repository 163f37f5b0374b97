#pragma once
#include <string>
#include <vector>

#include "jetmoe/model.h"

namespace jetmoe::cli {

// A forward request as Hugging Face keyword arguments in JSON:
// {"input_ids": [[...]], "attention_mask": [[...]], "position_ids": [[...]], "labels": ...}.
struct ForwardRequest {
  ModelInput input;  // attention_mask / position_ids empty when absent
  bool has_labels = false;
  std::vector<int32_t> token_labels;     // causal LM: [B, T]
  ClassificationLabels class_labels;     // sequence classification
};

ForwardRequest parse_forward_request(const std::string& json_text, const std::string& source, Task task);

}  // namespace jetmoe::cli
