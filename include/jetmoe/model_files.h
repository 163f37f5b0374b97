#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "jetmoe/gguf.h"
#include "jetmoe/safetensors.h"

namespace jetmoe {

// The weights of a Hugging Face checkpoint folder, as downloaded: either one
// model.safetensors, or shards listed by model.safetensors.index.json; or of
// a .gguf file written by `jetmoe quantize`. Every tensor is looked up by its
// Hugging Face name.
class ModelFiles {
 public:
  // `path` is a folder (model.safetensors.index.json, else model.safetensors,
  // else the only *.safetensors in it), a single .safetensors file, or a
  // .gguf file (general.architecture "jetmoe").
  static std::shared_ptr<ModelFiles> open(const std::string& path);

  const TensorView* find(const std::string& name) const;
  // Which file a tensor lives in, for error messages.
  std::string file_of(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& description() const { return description_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unique_ptr<GgufFile> gguf_;
  std::vector<std::pair<std::string, size_t>> sorted_names_;  // name -> file index
  std::string description_;
};

// A .gguf path (by its extension): a single-file model.
bool is_gguf_path(const std::string& path);

// Opens a .gguf file and checks that it holds a JetMoE model
// (general.architecture "jetmoe"), else Error naming the file.
std::unique_ptr<GgufFile> open_model_gguf(const std::string& path);

// Where a .gguf model keeps the text of each file a checkpoint folder has
// besides its weights ("config.json", "tokenizer.json",
// "tokenizer_config.json", "generation_config.json", "chat_template.jinja",
// "tokenizer.model"); "" for other names.
std::string gguf_key_for(const std::string& file_name);

// The contents of one of those files of a model: read from the folder, or
// from the metadata of a .gguf model. nullopt when the model has none.
// *source (if given) receives what error messages should name: the file's
// path, or "MODEL.gguf (metadata KEY)".
std::optional<std::string> read_model_file(const std::string& model, const std::string& file_name,
                                           std::string* source = nullptr);

}  // namespace jetmoe
