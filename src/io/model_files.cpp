#include "jetmoe/model_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "jetmoe/error.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Shard names come from the index; they must stay inside the folder.
fs::path shard_path(const fs::path& dir, const fs::path& index, const std::string& file) {
  fs::path rel(file);
  if (file.empty() || rel.is_absolute() || file.find("..") != std::string::npos)
    throw Error(index.string() + ": weight_map names file \"" + file + "\", expected a file name inside the folder");
  return dir / rel;
}

}  // namespace

std::shared_ptr<ModelFiles> ModelFiles::open(const std::string& path_text) {
  auto mf = std::make_shared<ModelFiles>();
  const fs::path path(path_text);
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path_text + ": no such file or folder");

  std::map<std::string, std::string> expected_file;  // from the index: tensor -> shard
  fs::path index_path;
  if (fs::is_directory(path)) {
    index_path = path / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
      nlohmann::json index;
      try {
        index = nlohmann::json::parse(read_text_file(index_path));
      } catch (const nlohmann::json::exception& e) {
        throw Error(index_path.string() + ": not valid JSON: " + e.what());
      }
      auto wm = index.is_object() ? index.find("weight_map") : index.end();
      if (wm == index.end() || !wm->is_object() || wm->empty())
        throw Error(index_path.string() + ": expected an object with a non-empty \"weight_map\" {tensor name: file name}");
      std::vector<std::string> shard_files;
      for (auto it = wm->begin(); it != wm->end(); ++it) {
        if (!it->is_string()) throw Error(index_path.string() + ": weight_map entry '" + it.key() + "' is not a file name string");
        const std::string file = it->get<std::string>();
        shard_path(path, index_path, file);
        expected_file[it.key()] = file;
        if (std::find(shard_files.begin(), shard_files.end(), file) == shard_files.end()) shard_files.push_back(file);
      }
      std::sort(shard_files.begin(), shard_files.end());
      for (const auto& file : shard_files) mf->files_.push_back(SafetensorsFile::open(shard_path(path, index_path, file).string()));
      mf->description_ = index_path.string() + " (" + std::to_string(shard_files.size()) + " shards)";
    } else if (fs::exists(path / "model.safetensors")) {
      mf->files_.push_back(SafetensorsFile::open((path / "model.safetensors").string()));
      mf->description_ = (path / "model.safetensors").string();
    } else {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path))
        if (entry.path().extension() == ".safetensors") found.push_back(entry.path());
      if (found.size() != 1)
        throw Error(path_text + ": expected model.safetensors or model.safetensors.index.json in this folder (found " +
                    std::to_string(found.size()) + " other .safetensors files)");
      mf->files_.push_back(SafetensorsFile::open(found[0].string()));
      mf->description_ = found[0].string();
    }
  } else if (is_gguf_path(path_text)) {
    mf->gguf_ = open_model_gguf(path_text);
    mf->description_ = path_text;
    for (size_t i = 0; i < mf->gguf_->tensors().size(); ++i) mf->sorted_names_.emplace_back(mf->gguf_->tensors()[i].name, i);
    std::sort(mf->sorted_names_.begin(), mf->sorted_names_.end());
    return mf;
  } else {
    mf->files_.push_back(SafetensorsFile::open(path_text));
    mf->description_ = path_text;
  }

  std::map<std::string, size_t> owner;
  for (size_t i = 0; i < mf->files_.size(); ++i) {
    for (const auto& t : mf->files_[i]->tensors()) {
      auto [it, inserted] = owner.emplace(t.name, i);
      if (!inserted)
        throw Error("tensor '" + t.name + "' is stored twice: in " + mf->files_[it->second]->path() + " and in " +
                    mf->files_[i]->path());
    }
  }
  for (const auto& [name, file] : expected_file) {
    auto it = owner.find(name);
    if (it == owner.end() || fs::path(mf->files_[it->second]->path()).filename() != fs::path(file).filename())
      throw Error(index_path.string() + ": weight_map puts tensor '" + name + "' in " + file + ", but that file does not hold it");
  }
  mf->sorted_names_.assign(owner.begin(), owner.end());
  return mf;
}

const TensorView* ModelFiles::find(const std::string& name) const {
  auto it = std::lower_bound(sorted_names_.begin(), sorted_names_.end(), name,
                             [](const auto& entry, const std::string& n) { return entry.first < n; });
  if (it == sorted_names_.end() || it->first != name) return nullptr;
  if (gguf_) return &gguf_->tensors()[it->second];
  return files_[it->second]->find(name);
}

std::string ModelFiles::file_of(const std::string& name) const {
  auto it = std::lower_bound(sorted_names_.begin(), sorted_names_.end(), name,
                             [](const auto& entry, const std::string& n) { return entry.first < n; });
  if (it == sorted_names_.end() || it->first != name || gguf_) return description_;
  return files_[it->second]->path();
}

std::vector<std::string> ModelFiles::names() const {
  std::vector<std::string> out;
  for (const auto& e : sorted_names_) out.push_back(e.first);
  return out;
}

bool is_gguf_path(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".gguf" || ext == ".GGUF";
}

std::unique_ptr<GgufFile> open_model_gguf(const std::string& path) {
  auto f = GgufFile::open(path);
  const std::string arch = f->require_string("general.architecture");
  if (arch != "jetmoe")
    throw Error(path + ": general.architecture is \"" + arch + "\", expected \"jetmoe\" (this engine runs JetMoE models only)");
  return f;
}

std::string gguf_key_for(const std::string& file_name) {
  static const std::pair<const char*, const char*> kKeys[] = {
      {"config.json", "jetmoe.config_json"},
      {"tokenizer.json", "tokenizer.huggingface.json"},
      {"tokenizer_config.json", "jetmoe.tokenizer_config_json"},
      {"generation_config.json", "jetmoe.generation_config_json"},
      {"chat_template.jinja", "tokenizer.chat_template"},
      {"tokenizer.model", "jetmoe.tokenizer_model"},
  };
  for (const auto& [file, key] : kKeys)
    if (file_name == file) return key;
  return "";
}

std::optional<std::string> read_model_file(const std::string& model, const std::string& file_name, std::string* source) {
  std::error_code ec;
  if (!is_gguf_path(model) || fs::is_directory(model, ec)) {
    const fs::path p = fs::path(model) / file_name;
    if (source) *source = p.string();
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    return read_text_file(p);
  }
  const std::string key = gguf_key_for(file_name);
  if (source) *source = model + " (metadata " + key + ")";
  auto f = open_model_gguf(model);
  const GgufValue* v = f->get(key);
  if (!v) return std::nullopt;
  if (v->type == GgufValueType::STRING) return v->str;
  if (v->type == GgufValueType::ARRAY && v->elem_type == GgufValueType::UINT8) return v->raw;
  throw Error(model + ": metadata key '" + key + "' is not a string");
}

}  // namespace jetmoe
