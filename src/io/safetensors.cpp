#include "jetmoe/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "jetmoe/error.h"

namespace jetmoe {

namespace {

// The reference implementation refuses headers above 100 MB; so do we, so a
// lying length cannot make us allocate or parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100ULL * 1024 * 1024;

struct ParsedEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

ParsedEntry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v) {
  auto bad = [&](const std::string& what) { fail_in_file(path, "tensor '" + name + "': " + what); };
  if (!v.is_object()) bad("header entry is not a JSON object");
  ParsedEntry e{name, DType::F32, {}, 0, 0};
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
  if (!parse_dtype(dt->get<std::string>(), &e.dtype))
    bad("unknown dtype \"" + dt->get<std::string>() + "\" (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) bad("missing or non-array \"shape\"");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      bad("shape " + sh->dump() + " has a dimension that is not a non-negative integer");
    uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim / 8) bad("shape " + sh->dump() + " is too large");
    numel *= dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("\"data_offsets\" must be two non-negative integers [begin, end]");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.end < e.begin) bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] end before they begin");
  uint64_t expected = numel * dtype_size(e.dtype);
  if (e.end - e.begin != expected)
    bad("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] hold " +
        std::to_string(e.end - e.begin) + " bytes but shape " + shape_string(e.shape) + " of " + dtype_name(e.dtype) +
        " needs " + std::to_string(expected));
  return e;
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_in_file(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail_in_file(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_in_file(path, "is not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail_in_file(path, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length (truncated?)");
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail_in_file(path, std::string("cannot mmap: ") + std::strerror(map_err));
  f->map_ = map;
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes)
    fail_in_file(path, "header length " + std::to_string(header_len) + " exceeds the 100 MB limit (corrupt file?)");
  if (header_len > file_size - 8)
    fail_in_file(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes; truncated?)");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8), reinterpret_cast<const char*>(bytes + data_start));
  } catch (const nlohmann::json::exception& e) {
    fail_in_file(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail_in_file(path, "header is not a JSON object");

  std::vector<ParsedEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail_in_file(path, "\"__metadata__\" is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail_in_file(path, "\"__metadata__\" value for '" + m.key() + "' is not a string");
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it));
  }
  for (const auto& e : entries) {
    if (e.end > data_size)
      fail_in_file(path, "tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     "] extend beyond the data section (" + std::to_string(data_size) + " bytes; truncated file?)");
  }
  std::vector<const ParsedEntry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const ParsedEntry* a, const ParsedEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ParsedEntry* a = by_offset[i - 1];
    const ParsedEntry* b = by_offset[i];
    if (b->begin < a->end)
      fail_in_file(path, "tensor '" + b->name + "' [" + std::to_string(b->begin) + ", " + std::to_string(b->end) +
                     ") overlaps tensor '" + a->name + "' [" + std::to_string(a->begin) + ", " + std::to_string(a->end) + ")");
  }

  for (const auto& e : entries) {
    TensorView v;
    v.name = e.name;
    v.dtype = e.dtype;
    v.shape = e.shape;
    v.nbytes = static_cast<size_t>(e.end - e.begin);
    const uint8_t* p = bytes + data_start + e.begin;
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
      auto& copy = f->realigned_.emplace_back((v.nbytes + 7) / 8);
      if (v.nbytes) std::memcpy(copy.data(), p, v.nbytes);
      p = reinterpret_cast<const uint8_t*>(copy.data());
    }
    v.data = p;
    f->index_[v.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(v));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace jetmoe
