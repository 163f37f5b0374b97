#pragma once
#include <memory>
#include <string>
#include <vector>

#include "jetmoe/safetensors.h"

namespace jetmoe {

// The weights of a Hugging Face checkpoint folder, as downloaded: either one
// model.safetensors, or shards listed by model.safetensors.index.json. Every
// tensor is looked up by its Hugging Face name.
class ModelFiles {
 public:
  // `path` is a folder (model.safetensors.index.json, else model.safetensors,
  // else the only *.safetensors in it) or a single .safetensors file.
  static std::shared_ptr<ModelFiles> open(const std::string& path);

  const TensorView* find(const std::string& name) const;
  // Which file a tensor lives in, for error messages.
  std::string file_of(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& description() const { return description_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::pair<std::string, size_t>> sorted_names_;  // name -> file index
  std::string description_;
};

}  // namespace jetmoe
