#include "jetmoe/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "jetmoe/error.h"

namespace jetmoe {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kBlock = 32;

struct TypeInfo {
  GgufType type;
  const char* name;
  DType dtype;
  uint64_t block, block_bytes;
};
constexpr TypeInfo kTypes[] = {
    {GgufType::F32, "F32", DType::F32, 1, 4},
    {GgufType::F16, "F16", DType::F16, 1, 2},
    {GgufType::BF16, "BF16", DType::BF16, 1, 2},
    {GgufType::JETMOE_Q8_0, "JETMOE_Q8_0", DType::Q8_0, kBlock, kBlock + 2},
    {GgufType::JETMOE_Q4_0, "JETMOE_Q4_0", DType::Q4_0, kBlock, kBlock / 2 + 2},
};

const TypeInfo* type_info(uint32_t type) {
  for (const auto& t : kTypes)
    if (static_cast<uint32_t>(t.type) == type) return &t;
  return nullptr;
}

std::string supported_types() {
  std::string s;
  for (const auto& t : kTypes) s += std::string(s.empty() ? "" : ", ") + t.name + " (" + std::to_string(static_cast<uint32_t>(t.type)) + ")";
  return s;
}

// Bytes of one scalar of a metadata value type; 0 for string/array; -1 unknown.
int scalar_size(uint32_t t) {
  switch (static_cast<GgufValueType>(t)) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: case GgufValueType::ARRAY: return 0;
  }
  return -1;
}

// Bounds-checked little-endian reads from the mapping.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, uint64_t size) : path_(path), data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      fail_in_file(path_, "truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                      " but the file has " + std::to_string(left()) + " left");
  }
  uint64_t uint(int bytes, const std::string& what) {
    need(static_cast<uint64_t>(bytes), what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | data_[pos_ + static_cast<uint64_t>(i)];
    pos_ += static_cast<uint64_t>(bytes);
    return v;
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(uint(4, what)); }
  uint64_t u64(const std::string& what) { return uint(8, what); }
  std::string str(const std::string& what) {
    const uint64_t n = u64(what + " length");
    if (n > left())
      fail_in_file(path_, what + ": string length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(left()) +
                      " bytes left at offset " + std::to_string(pos_) + ")");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }
  std::string bytes(uint64_t n, const std::string& what) {
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

void read_scalar(Cursor& c, uint32_t type, GgufValue& v, const std::string& what) {
  const int n = scalar_size(type);
  const uint64_t bits = c.uint(n, what);
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::INT8: v.i = static_cast<int8_t>(bits); break;
    case GgufValueType::INT16: v.i = static_cast<int16_t>(bits); break;
    case GgufValueType::INT32: v.i = static_cast<int32_t>(bits); break;
    case GgufValueType::INT64: v.i = static_cast<int64_t>(bits); break;
    case GgufValueType::FLOAT32: {
      float f;
      const auto b32 = static_cast<uint32_t>(bits);
      std::memcpy(&f, &b32, 4);
      v.f = f;
      return;
    }
    case GgufValueType::FLOAT64: std::memcpy(&v.f, &bits, 8); return;
    default: v.u = bits; v.i = static_cast<int64_t>(bits); return;
  }
  v.u = v.i >= 0 ? static_cast<uint64_t>(v.i) : 0;
}

GgufValue read_value(const std::string& path, Cursor& c, const std::string& key) {
  GgufValue v;
  const std::string what = "metadata key '" + key + "'";
  const uint32_t type = c.u32(what + " value type");
  const int size = scalar_size(type);
  if (size < 0) fail_in_file(path, what + ": unknown value type " + std::to_string(type) + " (expected 0..12)");
  v.type = static_cast<GgufValueType>(type);
  if (v.type == GgufValueType::STRING) {
    v.str = c.str(what);
  } else if (v.type == GgufValueType::ARRAY) {
    const uint32_t et = c.u32(what + " array element type");
    const int esize = scalar_size(et);
    if (esize < 0) fail_in_file(path, what + ": array of unknown value type " + std::to_string(et) + " (expected 0..12)");
    if (static_cast<GgufValueType>(et) == GgufValueType::ARRAY) fail_in_file(path, what + ": arrays of arrays are not supported");
    v.elem_type = static_cast<GgufValueType>(et);
    v.count = c.u64(what + " array length");
    if (v.elem_type == GgufValueType::STRING) {
      // Each string takes at least its 8-byte length: a lying count fails
      // here, before anything is reserved.
      if (v.count > c.left() / 8)
        fail_in_file(path, what + ": array of " + std::to_string(v.count) + " strings cannot fit in the " + std::to_string(c.left()) +
                       " bytes left");
      v.strings.reserve(static_cast<size_t>(v.count));
      for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.str(what + " element " + std::to_string(i)));
    } else {
      if (v.count > c.left() / static_cast<uint64_t>(esize))
        fail_in_file(path, what + ": array of " + std::to_string(v.count) + " elements of " + std::to_string(esize) +
                       " bytes runs past the end of the file (" + std::to_string(c.left()) + " bytes left)");
      v.raw = c.bytes(v.count * static_cast<uint64_t>(esize), what);
    }
  } else {
    read_scalar(c, type, v, what);
    if (v.type == GgufValueType::BOOL && v.u > 1) fail_in_file(path, what + ": bool value " + std::to_string(v.u) + " is not 0 or 1");
  }
  return v;
}

struct ParsedTensor {
  std::string name;
  const TypeInfo* type;
  std::vector<int64_t> shape;  // row-major
  uint64_t offset, bytes;
};

}  // namespace

const char* gguf_type_name(GgufType type) {
  const TypeInfo* t = type_info(static_cast<uint32_t>(type));
  return t ? t->name : "?";
}

DType gguf_type_dtype(GgufType type) {
  const TypeInfo* t = type_info(static_cast<uint32_t>(type));
  return t ? t->dtype : DType::U8;
}

uint64_t gguf_tensor_bytes(GgufType type, uint64_t numel) {
  const TypeInfo* t = type_info(static_cast<uint32_t>(type));
  return t ? numel / t->block * t->block_bytes : 0;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_in_file(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_in_file(path, "is not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 24) {
    ::close(fd);
    fail_in_file(path, "file is " + std::to_string(file_size) + " bytes, too short for a GGUF header (24 bytes; truncated?)");
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail_in_file(path, std::string("cannot mmap: ") + std::strerror(map_err));
  f->map_ = map;
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(map);

  if (std::memcmp(bytes, "GGUF", 4) != 0) {
    std::string got;
    for (int i = 0; i < 4; ++i) got += std::isprint(bytes[i]) ? static_cast<char>(bytes[i]) : '?';
    fail_in_file(path, "not a GGUF file (magic \"" + got + "\", expected \"GGUF\")");
  }
  Cursor c(path, bytes, file_size);
  c.u32("magic");
  f->version_ = c.u32("version");
  if (f->version_ != kVersion)
    fail_in_file(path, "GGUF version " + std::to_string(f->version_) + " is not supported (expected " + std::to_string(kVersion) + ")");
  const uint64_t tensor_count = c.u64("tensor count");
  const uint64_t kv_count = c.u64("metadata count");
  // Smallest encodings: a key/value is 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
  if (kv_count > c.left() / 13)
    fail_in_file(path, "header claims " + std::to_string(kv_count) + " metadata entries, more than the file's " +
                   std::to_string(file_size) + " bytes can hold (corrupt or truncated)");
  if (tensor_count > c.left() / 32)
    fail_in_file(path, "header claims " + std::to_string(tensor_count) + " tensors, more than the file's " + std::to_string(file_size) +
                   " bytes can hold (corrupt or truncated)");

  for (uint64_t k = 0; k < kv_count; ++k) {
    const std::string key = c.str("metadata key " + std::to_string(k));
    if (key.empty()) fail_in_file(path, "metadata key " + std::to_string(k) + " is empty");
    GgufValue v = read_value(path, c, key);
    if (!f->metadata_.emplace(key, std::move(v)).second) fail_in_file(path, "metadata key '" + key + "' appears twice");
  }

  uint64_t alignment = kDefaultAlignment;
  if (const GgufValue* a = f->get("general.alignment")) {
    if (a->type != GgufValueType::UINT32 || a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail_in_file(path, "metadata key 'general.alignment' must be a UINT32 power of two");
    alignment = a->u;
  }

  std::vector<ParsedTensor> parsed;
  std::set<std::string> names;
  for (uint64_t t = 0; t < tensor_count; ++t) {
    ParsedTensor p;
    p.name = c.str("tensor info " + std::to_string(t) + " name");
    const std::string what = "tensor '" + p.name + "'";
    if (!names.insert(p.name).second) fail_in_file(path, what + " appears twice");
    const uint32_t n_dims = c.u32(what + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail_in_file(path, what + ": n_dims " + std::to_string(n_dims) + " (expected 1 to " + std::to_string(kMaxDims) + ")");
    std::vector<uint64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = c.u64(what + " dimension");
      if (ne[d] == 0 || ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          numel > std::numeric_limits<uint64_t>::max() / 64 / ne[d])
        fail_in_file(path, what + ": dimension " + std::to_string(d) + " = " + std::to_string(ne[d]) +
                       " is zero or makes the tensor too large");
      numel *= ne[d];
    }
    for (uint32_t d = n_dims; d-- > 0;) p.shape.push_back(static_cast<int64_t>(ne[d]));
    const uint32_t type = c.u32(what + " type");
    p.type = type_info(type);
    if (!p.type) fail_in_file(path, what + ": unknown tensor type " + std::to_string(type) + " (supported: " + supported_types() + ")");
    if (ne[0] % p.type->block != 0)
      fail_in_file(path, what + ": innermost dimension " + std::to_string(ne[0]) + " is not a multiple of " + p.type->name +
                     "'s block of " + std::to_string(p.type->block));
    p.bytes = numel / p.type->block * p.type->block_bytes;
    p.offset = c.u64(what + " offset");
    if (p.offset % alignment != 0)
      fail_in_file(path, what + ": offset " + std::to_string(p.offset) + " is not a multiple of the alignment " + std::to_string(alignment));
    parsed.push_back(std::move(p));
  }

  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_start > file_size)
    fail_in_file(path, "the data section would start at " + std::to_string(data_start) + ", past the end of the file (" +
                   std::to_string(file_size) + " bytes; truncated?)");
  const uint64_t data_size = file_size - data_start;
  for (const auto& p : parsed) {
    if (p.offset > data_size || p.bytes > data_size - p.offset)
      fail_in_file(path, "tensor '" + p.name + "': bytes [" + std::to_string(p.offset) + ", " + std::to_string(p.offset + p.bytes) +
                     ") of " + shape_string(p.shape) + " " + p.type->name + " extend beyond the data section (" +
                     std::to_string(data_size) + " bytes; truncated file?)");
  }
  std::vector<const ParsedTensor*> by_offset;
  for (const auto& p : parsed) by_offset.push_back(&p);
  std::sort(by_offset.begin(), by_offset.end(), [](const ParsedTensor* a, const ParsedTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ParsedTensor *a = by_offset[i - 1], *b = by_offset[i];
    if (b->offset < a->offset + a->bytes)
      fail_in_file(path, "tensor '" + b->name + "' [" + std::to_string(b->offset) + ", " + std::to_string(b->offset + b->bytes) +
                     ") overlaps tensor '" + a->name + "' [" + std::to_string(a->offset) + ", " +
                     std::to_string(a->offset + a->bytes) + ")");
  }
  for (const auto& p : parsed) {
    TensorView v;
    v.name = p.name;
    v.dtype = p.type->dtype;
    v.shape = p.shape;
    v.nbytes = static_cast<size_t>(p.bytes);
    v.data = bytes + data_start + p.offset;  // aligned: the mapping is page-aligned, offsets to >= 32
    f->index_[v.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(v));
  }
  return f;
}

GgufFile::~GgufFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorView* GgufFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::get(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = get(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) fail_in_file(path_, "metadata key '" + key + "' is not a string");
  return v->str;
}

std::string GgufFile::require_string(const std::string& key) const {
  auto v = get_string(key);
  if (!v) fail_in_file(path_, "missing metadata key '" + key + "'");
  return *v;
}

// ---------------------------------------------------------------- writer

namespace {

void put_uint(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_string(std::string& out, std::string_view s) {
  put_uint(out, s.size(), 8);
  out.append(s);
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp"), alignment_(alignment) {
  if (alignment_ != kDefaultAlignment) add_uint32("general.alignment", alignment_);
}

GgufWriter::~GgufWriter() {
  if (file_) std::fclose(file_);
  if (!finished_ && created_) std::remove(tmp_path_.c_str());
}

#define JETMOE_GGUF_KEY(type)          \
  put_string(kv_, key);                \
  put_uint(kv_, static_cast<uint32_t>(type), 4); \
  ++kv_count_

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  JETMOE_GGUF_KEY(GgufValueType::STRING);
  put_string(kv_, value);
}
void GgufWriter::add_uint32(const std::string& key, uint32_t value) {
  JETMOE_GGUF_KEY(GgufValueType::UINT32);
  put_uint(kv_, value, 4);
}
void GgufWriter::add_int32(const std::string& key, int32_t value) {
  JETMOE_GGUF_KEY(GgufValueType::INT32);
  put_uint(kv_, static_cast<uint32_t>(value), 4);
}
void GgufWriter::add_float32(const std::string& key, float value) {
  JETMOE_GGUF_KEY(GgufValueType::FLOAT32);
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  put_uint(kv_, bits, 4);
}
void GgufWriter::add_bool(const std::string& key, bool value) {
  JETMOE_GGUF_KEY(GgufValueType::BOOL);
  put_uint(kv_, value ? 1 : 0, 1);
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  JETMOE_GGUF_KEY(GgufValueType::ARRAY);
  put_uint(kv_, static_cast<uint32_t>(GgufValueType::STRING), 4);
  put_uint(kv_, values.size(), 8);
  for (const auto& s : values) put_string(kv_, s);
}
void GgufWriter::add_int32_array(const std::string& key, const std::vector<int32_t>& values) {
  JETMOE_GGUF_KEY(GgufValueType::ARRAY);
  put_uint(kv_, static_cast<uint32_t>(GgufValueType::INT32), 4);
  put_uint(kv_, values.size(), 8);
  for (int32_t v : values) put_uint(kv_, static_cast<uint32_t>(v), 4);
}
void GgufWriter::add_float32_array(const std::string& key, const std::vector<float>& values) {
  JETMOE_GGUF_KEY(GgufValueType::ARRAY);
  put_uint(kv_, static_cast<uint32_t>(GgufValueType::FLOAT32), 4);
  put_uint(kv_, values.size(), 8);
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_uint(kv_, bits, 4);
  }
}
void GgufWriter::add_uint8_array(const std::string& key, std::string_view bytes) {
  JETMOE_GGUF_KEY(GgufValueType::ARRAY);
  put_uint(kv_, static_cast<uint32_t>(GgufValueType::UINT8), 4);
  put_uint(kv_, bytes.size(), 8);
  kv_.append(bytes);
}
#undef JETMOE_GGUF_KEY

void GgufWriter::add_tensor(const std::string& name, GgufType type, const std::vector<int64_t>& shape) {
  if (file_) throw Error(path_ + ": add_tensor after write_header");
  const TypeInfo* t = type_info(static_cast<uint32_t>(type));
  if (!t || shape.empty() || shape.size() > kMaxDims) throw Error(path_ + ": tensor '" + name + "': bad type or shape");
  if (shape.back() % static_cast<int64_t>(t->block) != 0)
    throw Error(path_ + ": tensor '" + name + "': " + shape_string(shape) + " rows are not whole " + t->name + " blocks");
  const uint64_t bytes = gguf_tensor_bytes(type, static_cast<uint64_t>(shape_numel(shape)));
  tensors_.push_back({name, type, shape, data_bytes_, bytes});
  data_bytes_ = (data_bytes_ + bytes + alignment_ - 1) / alignment_ * alignment_;
}

void GgufWriter::write(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw Error(tmp_path_ + ": write failed: " + std::strerror(errno) + " (disk full?)");
  written_ += bytes;
}

void GgufWriter::pad_to(uint64_t multiple) {
  static const char zeros[256] = {};
  uint64_t pad = (multiple - written_ % multiple) % multiple;
  while (pad) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(pad, sizeof zeros));
    write(zeros, n);
    pad -= n;
  }
}

void GgufWriter::write_header() {
  std::string h = "GGUF";
  put_uint(h, kVersion, 4);
  put_uint(h, tensors_.size(), 8);
  put_uint(h, kv_count_, 8);
  h += kv_;
  for (const auto& t : tensors_) {
    put_string(h, t.name);
    put_uint(h, t.shape.size(), 4);
    for (size_t d = t.shape.size(); d-- > 0;) put_uint(h, static_cast<uint64_t>(t.shape[d]), 8);
    put_uint(h, static_cast<uint32_t>(t.type), 4);
    put_uint(h, t.offset, 8);
  }
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw Error(tmp_path_ + ": cannot create: " + std::strerror(errno));
  created_ = true;
  write(h.data(), h.size());
  pad_to(alignment_);
  data_start_ = written_;
}

void GgufWriter::write_tensor_data(const void* data, size_t bytes) {
  if (!file_ || current_ >= tensors_.size() || current_done_ + bytes > tensors_[current_].bytes)
    throw Error(path_ + ": tensor data written out of order or beyond its size");
  write(data, bytes);
  current_done_ += bytes;
  if (current_done_ == tensors_[current_].bytes) {
    pad_to(alignment_);
    ++current_;
    current_done_ = 0;
  }
}

void GgufWriter::finish() {
  if (!file_ || current_ != tensors_.size()) throw Error(path_ + ": finish before every tensor was written");
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) throw Error(tmp_path_ + ": write failed: " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) throw Error(path_ + ": cannot rename from " + tmp_path_ + ": " + ec.message());
  finished_ = true;
}

uint64_t GgufWriter::total_bytes() const {
  uint64_t header = 4 + 4 + 8 + 8 + kv_.size();
  for (const auto& t : tensors_) header += 8 + t.name.size() + 4 + 8 * t.shape.size() + 4 + 8;
  header = (header + alignment_ - 1) / alignment_ * alignment_;
  return header + data_bytes_;
}

}  // namespace jetmoe
