// Safetensors reading and writing, and checkpoint folders (ModelFiles).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "jetmoe/error.h"
#include "scoped_temp_dir.h"
#include "jetmoe/model_files.h"
#include "jetmoe/safetensors.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;
using testing::ScopedTempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

// The 8-byte little-endian header length followed by the JSON text, padded
// with spaces to `pad` bytes (as the format allows).
std::string make_header(const nlohmann::json& header, size_t pad = 8) {
  std::string text = header.dump();
  while ((8 + text.size()) % pad != 0) text.push_back(' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text;
}

template <typename T>
std::string as_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string view_bytes(const TensorView& v) { return std::string(static_cast<const char*>(v.data), v.nbytes); }

bool aligned(const void* p, size_t alignment) { return reinterpret_cast<uintptr_t>(p) % alignment == 0; }

TEST(Safetensors, RoundTripAllDtypes) {
  ScopedTempDir dir;
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, std::numeric_limits<float>::infinity()};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x0000, 0x8000, 0x7f80, 0x7fc0, 0x1234};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000};
  const std::vector<int64_t> i64 = {-1, 0, int64_t{1} << 40, std::numeric_limits<int64_t>::min()};
  const std::vector<int32_t> i32 = {7, -7, std::numeric_limits<int32_t>::max(), 0, 42, -100};
  const float scalar = 6.5f;
  const std::vector<float> empty;

  // A 1-element U8 first, so later tensors start at odd offsets unless the
  // reader realigns them.
  const std::vector<TensorToWrite> tensors = {
      {"w.f32", DType::F32, {2, 3}, f32.data()},
      {"w.bf16", DType::BF16, {7}, bf16.data()},
      {"w.f16", DType::F16, {5, 1}, f16.data()},
      {"empty", DType::F32, {0, 5}, empty.data()},
      {"ids.i64", DType::I64, {4}, i64.data()},
      {"scalar", DType::F32, {}, &scalar},
      {"ids.i32", DType::I32, {3, 2}, i32.data()},
  };
  const std::string path = dir.file("t.safetensors");
  write_safetensors(path, tensors);

  // The layout, checked against the format's definition independently of the reader.
  const std::string raw = read_bytes(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(raw[static_cast<size_t>(i)]);
  EXPECT_EQ((8 + header_len) % 8, 0u) << "data section must start 8-byte aligned";
  const nlohmann::json header = nlohmann::json::parse(raw.substr(8, header_len));
  const size_t data_start = 8 + header_len;
  size_t expected_data = 0;
  for (const auto& t : tensors) {
    const nlohmann::json& e = header.at(t.name);
    EXPECT_EQ(e.at("dtype").get<std::string>(), dtype_name(t.dtype));
    EXPECT_EQ(e.at("shape").get<std::vector<int64_t>>(), t.shape);
    const auto off = e.at("data_offsets").get<std::vector<uint64_t>>();
    ASSERT_EQ(off.size(), 2u);
    EXPECT_EQ(off[0], expected_data) << t.name << " must follow the previous tensor";
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    EXPECT_EQ(off[1] - off[0], n) << t.name;
    EXPECT_EQ(raw.substr(data_start + off[0], n), std::string(static_cast<const char*>(t.data), n)) << t.name;
    expected_data += n;
  }
  EXPECT_EQ(raw.size(), data_start + expected_data);
  ASSERT_TRUE(header.contains("__metadata__"));
  EXPECT_EQ(header["__metadata__"].at("format"), "pt");

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->path(), path);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(file->find("missing"), nullptr);

  const TensorView* v = file->find("w.f32");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->name, "w.f32");
  EXPECT_EQ(v->dtype, DType::F32);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(v->numel(), 6);
  ASSERT_EQ(v->nbytes, 24u);
  ASSERT_TRUE(aligned(v->data, 4));
  const float* fp = static_cast<const float*>(v->data);
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(std::memcmp(&fp[i], &f32[i], 4), 0) << i;
  EXPECT_TRUE(std::signbit(fp[4]));

  v = file->find("w.bf16");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::BF16);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{7}));
  EXPECT_TRUE(aligned(v->data, 2));
  EXPECT_EQ(view_bytes(*v), as_bytes(bf16));

  v = file->find("w.f16");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::F16);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{5, 1}));
  EXPECT_TRUE(aligned(v->data, 2));
  EXPECT_EQ(view_bytes(*v), as_bytes(f16));

  v = file->find("empty");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::F32);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(v->numel(), 0);
  EXPECT_EQ(v->nbytes, 0u);

  v = file->find("ids.i64");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::I64);
  ASSERT_EQ(v->nbytes, 32u);
  ASSERT_TRUE(aligned(v->data, 8));
  for (size_t i = 0; i < i64.size(); ++i) EXPECT_EQ(static_cast<const int64_t*>(v->data)[i], i64[i]) << i;

  v = file->find("scalar");
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->shape.empty());
  EXPECT_EQ(v->numel(), 1);
  ASSERT_EQ(v->nbytes, 4u);
  ASSERT_TRUE(aligned(v->data, 4));
  EXPECT_EQ(*static_cast<const float*>(v->data), 6.5f);

  v = file->find("ids.i32");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, DType::I32);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{3, 2}));
  ASSERT_TRUE(aligned(v->data, 4));
  for (size_t i = 0; i < i32.size(); ++i) EXPECT_EQ(static_cast<const int32_t*>(v->data)[i], i32[i]) << i;
}

TEST(Safetensors, MetadataRoundTrip) {
  ScopedTempDir dir;
  const std::vector<float> x = {1.0f, 2.0f};
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"author", "unit \"test\""}, {"empty", ""}, {"unicode", "gr\xc3\xbc\xc3\x9f"}};
  write_safetensors(dir.file("m.safetensors"), {{"x", DType::F32, {2}, x.data()}}, meta);
  auto file = SafetensorsFile::open(dir.file("m.safetensors"));
  EXPECT_EQ(file->metadata(), meta);
  const TensorView* v = file->find("x");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(static_cast<const float*>(v->data)[1], 2.0f);

  // No metadata at all: no __metadata__ entry, and none read back.
  write_safetensors(dir.file("n.safetensors"), {{"x", DType::F32, {2}, x.data()}}, {});
  const std::string raw = read_bytes(dir.file("n.safetensors"));
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(raw[static_cast<size_t>(i)]);
  EXPECT_FALSE(nlohmann::json::parse(raw.substr(8, len)).contains("__metadata__"));
  auto bare = SafetensorsFile::open(dir.file("n.safetensors"));
  EXPECT_TRUE(bare->metadata().empty());
  EXPECT_EQ(bare->tensors().size(), 1u);
}

TEST(Safetensors, EmptyFileHasNoTensors) {
  ScopedTempDir dir;
  write_safetensors(dir.file("e.safetensors"), {});
  auto file = SafetensorsFile::open(dir.file("e.safetensors"));
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_EQ(file->metadata().at("format"), "pt");
}

TEST(Safetensors, UnalignedOffsetsAreRealigned) {
  ScopedTempDir dir;
  const std::vector<uint8_t> u8 = {0xab};
  const std::vector<float> f32 = {1.5f, -3.0f, 1e-20f};
  const std::vector<int64_t> i64 = {-5, int64_t{1} << 50};
  const std::vector<uint16_t> f16 = {0x3c00, 0x0001};
  // Hand-built header: U8 [0, 1), F32 [1, 13), I64 [13, 29), F16 [29, 33).
  nlohmann::json header;
  header["a.u8"] = {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}};
  header["b.f32"] = {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {1, 13}}};
  header["c.i64"] = {{"dtype", "I64"}, {"shape", {2}}, {"data_offsets", {13, 29}}};
  header["d.f16"] = {{"dtype", "F16"}, {"shape", {2}}, {"data_offsets", {29, 33}}};
  const std::string bytes = make_header(header) + as_bytes(u8) + as_bytes(f32) + as_bytes(i64) + as_bytes(f16);
  ASSERT_EQ((make_header(header).size()) % 8, 0u);
  write_bytes(dir.file("u.safetensors"), bytes);

  auto file = SafetensorsFile::open(dir.file("u.safetensors"));
  ASSERT_EQ(file->tensors().size(), 4u);
  const TensorView* a = file->find("a.u8");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::U8);
  EXPECT_EQ(*static_cast<const uint8_t*>(a->data), 0xab);

  const TensorView* b = file->find("b.f32");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->nbytes, 12u);
  EXPECT_TRUE(aligned(b->data, alignof(float)));
  const float* bp = static_cast<const float*>(b->data);
  EXPECT_EQ(bp[0], 1.5f);
  EXPECT_EQ(bp[1], -3.0f);
  EXPECT_EQ(bp[2], 1e-20f);

  const TensorView* c = file->find("c.i64");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(aligned(c->data, alignof(int64_t)));
  EXPECT_EQ(static_cast<const int64_t*>(c->data)[0], -5);
  EXPECT_EQ(static_cast<const int64_t*>(c->data)[1], int64_t{1} << 50);

  const TensorView* d = file->find("d.f16");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(aligned(d->data, alignof(uint16_t)));
  EXPECT_EQ(static_cast<const uint16_t*>(d->data)[0], 0x3c00);
  EXPECT_EQ(static_cast<const uint16_t*>(d->data)[1], 0x0001);
}

TEST(Safetensors, WriterPacksUnalignedAndReaderRealigns) {
  // write_safetensors packs tensors back to back, so an F32 after a 3-byte
  // U8 tensor sits at offset 3 in the data section.
  ScopedTempDir dir;
  const std::vector<uint8_t> u8 = {1, 2, 3};
  const std::vector<float> f32 = {0.25f, -8.0f};
  write_safetensors(dir.file("p.safetensors"),
                    {{"bytes", DType::U8, {3}, u8.data()}, {"floats", DType::F32, {2}, f32.data()}});
  auto file = SafetensorsFile::open(dir.file("p.safetensors"));
  const TensorView* f = file->find("floats");
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(aligned(f->data, 4));
  EXPECT_EQ(static_cast<const float*>(f->data)[0], 0.25f);
  EXPECT_EQ(static_cast<const float*>(f->data)[1], -8.0f);
  EXPECT_EQ(view_bytes(*file->find("bytes")), as_bytes(u8));
}

TEST(Safetensors, ModelFilesFindsEveryShardedTensor) {
  const fs::path dir = fs::path(JETMOE_TEST_DATA) / "golden" / "tiny-sharded";
  std::ifstream in(dir / "model.safetensors.index.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json index = nlohmann::json::parse(in);
  const nlohmann::json& weight_map = index.at("weight_map");
  ASSERT_FALSE(weight_map.empty());

  auto files = ModelFiles::open(dir.string());
  std::set<std::string> shard_names;
  uint64_t total = 0;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    const std::string shard = it->get<std::string>();
    shard_names.insert(shard);
    const TensorView* t = files->find(it.key());
    ASSERT_NE(t, nullptr) << it.key();
    EXPECT_EQ(t->name, it.key());
    EXPECT_EQ(fs::path(files->file_of(it.key())).filename().string(), shard) << it.key();
    total += t->nbytes;

    // The same bytes as opening that shard by itself.
    auto single = SafetensorsFile::open((dir / shard).string());
    const TensorView* direct = single->find(it.key());
    ASSERT_NE(direct, nullptr) << it.key() << " is not in " << shard;
    EXPECT_EQ(direct->shape, t->shape);
    EXPECT_EQ(view_bytes(*direct), view_bytes(*t)) << it.key();
  }
  EXPECT_GE(shard_names.size(), 2u);
  EXPECT_EQ(files->names().size(), weight_map.size());
  EXPECT_EQ(total, index.at("metadata").at("total_size").get<uint64_t>());
  EXPECT_EQ(files->find("lm_head.weight"), nullptr);
  EXPECT_EQ(files->find(""), nullptr);

  // The embedding has the shape config.json implies.
  std::ifstream cin(dir / "config.json");
  const nlohmann::json config = nlohmann::json::parse(cin);
  const TensorView* embed = files->find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->shape, (std::vector<int64_t>{config.at("vocab_size").get<int64_t>(), config.at("hidden_size").get<int64_t>()}));

  // Opening one shard file alone gives exactly that shard's tensors.
  const std::string first = *shard_names.begin();
  auto one = ModelFiles::open((dir / first).string());
  size_t in_first = 0;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    const bool here = it->get<std::string>() == first;
    in_first += here;
    EXPECT_EQ(one->find(it.key()) != nullptr, here) << it.key();
  }
  EXPECT_EQ(one->names().size(), in_first);
}

TEST(Safetensors, ModelFilesFolderAndSingleFile) {
  ScopedTempDir dir;
  const std::vector<float> a = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<uint16_t> b = {0x3f80, 0x4000};

  // A folder holding model.safetensors.
  fs::create_directories(dir.path() / "folder");
  const std::string model = (dir.path() / "folder" / "model.safetensors").string();
  write_safetensors(model, {{"a", DType::F32, {2, 2}, a.data()}, {"b", DType::BF16, {2}, b.data()}});
  auto files = ModelFiles::open((dir.path() / "folder").string());
  EXPECT_EQ(files->names(), (std::vector<std::string>{"a", "b"}));
  ASSERT_NE(files->find("a"), nullptr);
  EXPECT_EQ(static_cast<const float*>(files->find("a")->data)[3], 4.0f);
  ASSERT_NE(files->find("b"), nullptr);
  EXPECT_EQ(files->find("b")->dtype, DType::BF16);
  EXPECT_EQ(fs::path(files->file_of("a")).string(), fs::path(model).string());
  EXPECT_EQ(files->find("c"), nullptr);

  // The same file named directly.
  auto direct = ModelFiles::open(model);
  EXPECT_EQ(direct->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(direct->file_of("b"), model);
  EXPECT_EQ(view_bytes(*direct->find("b")), as_bytes(b));

  // A folder whose only weights file has another name.
  fs::create_directories(dir.path() / "other");
  const std::string other = (dir.path() / "other" / "weights.safetensors").string();
  write_safetensors(other, {{"z", DType::F32, {1}, a.data()}});
  auto o = ModelFiles::open((dir.path() / "other").string());
  ASSERT_NE(o->find("z"), nullptr);
  EXPECT_EQ(fs::path(o->file_of("z")).string(), fs::path(other).string());

  // A hand-made sharded folder: file_of names the shard holding each tensor.
  fs::create_directories(dir.path() / "sharded");
  write_safetensors((dir.path() / "sharded" / "s1.safetensors").string(), {{"x", DType::F32, {2}, a.data()}});
  write_safetensors((dir.path() / "sharded" / "s2.safetensors").string(),
                    {{"y", DType::F32, {1}, a.data() + 2}, {"w", DType::BF16, {2}, b.data()}});
  nlohmann::json index;
  index["metadata"] = {{"total_size", 16}};
  index["weight_map"] = {{"x", "s1.safetensors"}, {"y", "s2.safetensors"}, {"w", "s2.safetensors"}};
  write_bytes((dir.path() / "sharded" / "model.safetensors.index.json").string(), index.dump());
  auto s = ModelFiles::open((dir.path() / "sharded").string());
  EXPECT_EQ(s->names(), (std::vector<std::string>{"w", "x", "y"}));
  EXPECT_EQ(fs::path(s->file_of("x")).filename().string(), "s1.safetensors");
  EXPECT_EQ(fs::path(s->file_of("y")).filename().string(), "s2.safetensors");
  EXPECT_EQ(fs::path(s->file_of("w")).filename().string(), "s2.safetensors");
  ASSERT_NE(s->find("y"), nullptr);
  EXPECT_EQ(*static_cast<const float*>(s->find("y")->data), 3.0f);

  // An index that puts a tensor in the wrong shard is rejected.
  index["weight_map"]["y"] = "s1.safetensors";
  write_bytes((dir.path() / "sharded" / "model.safetensors.index.json").string(), index.dump());
  EXPECT_THROW(ModelFiles::open((dir.path() / "sharded").string()), Error);

  EXPECT_THROW(ModelFiles::open((dir.path() / "does-not-exist").string()), Error);
}

}  // namespace
}  // namespace jetmoe
