#include "jetmoe/init_random.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "jetmoe/safetensors.h"
#include "model/weights.h"
#include "ops/convert.h"
#include "ops/thread_pool.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

// Values are generated in fixed pieces, each from its own seed, so the
// result does not depend on thread count or shard layout.
constexpr int64_t kPiece = 1 << 20;
constexpr int64_t kPiecesPerBatch = 32;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ULL;
  return h;
}

// Box-Muller normal(0, stddev) values into out[0..n).
void fill_normal(uint64_t seed, float stddev, float* out, int64_t n) {
  uint64_t state = seed;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
    out[i] = static_cast<float>(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
  }
}

struct Shard {
  std::vector<const TensorSpec*> tensors;
  uint64_t bytes = 0;
};

void write_tensor(ops::ThreadPool& pool, FILE* f, const std::string& path, const TensorSpec& spec, uint64_t seed,
                  float stddev, DType dtype, std::vector<float>& values, std::vector<uint16_t>& half) {
  const int64_t n = shape_numel(spec.shape);
  const uint64_t name_seed = seed ^ hash_name(spec.name);
  for (int64_t start = 0; start < n; start += kPiece * kPiecesPerBatch) {
    const int64_t count = std::min(n - start, kPiece * kPiecesPerBatch);
    values.resize(static_cast<size_t>(count));
    pool.parallel_for((count + kPiece - 1) / kPiece, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t off = p * kPiece, len = std::min(kPiece, count - off);
        float* dst = values.data() + off;
        if (spec.init == InitKind::Normal) {
          uint64_t s = name_seed + static_cast<uint64_t>((start + off) / kPiece) * 0x632be59bd9b4e019ULL;
          fill_normal(splitmix64(s), stddev, dst, len);
        } else {
          std::fill_n(dst, len, spec.init == InitKind::Ones ? 1.0f : 0.0f);
        }
      }
    });
    const void* bytes = values.data();
    size_t nbytes = static_cast<size_t>(count) * 4;
    if (dtype == DType::BF16) {
      half.resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) half[static_cast<size_t>(i)] = ops::f32_to_bf16(values[static_cast<size_t>(i)]);
      bytes = half.data();
      nbytes = static_cast<size_t>(count) * 2;
    }
    if (std::fwrite(bytes, 1, nbytes, f) != nbytes) throw Error(path + ": write failed: " + std::strerror(errno));
  }
}

}  // namespace

void init_random_checkpoint(const JetMoeConfig& config, const std::string& output_dir, const InitRandomOptions& options) {
  config.validate();
  if (options.dtype != DType::F32 && options.dtype != DType::BF16)
    throw Error(std::string("init-random: dtype ") + dtype_name(options.dtype) + " is not supported (expected F32 or BF16)");
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) throw Error(output_dir + ": cannot create folder: " + ec.message());

  const std::vector<TensorSpec> specs = checkpoint_tensors(config, task_from_config(config));
  const size_t esize = dtype_size(options.dtype);
  std::vector<Shard> shards(1);
  uint64_t total = 0;
  for (const auto& s : specs) {
    const uint64_t bytes = static_cast<uint64_t>(shape_numel(s.shape)) * esize;
    if (!shards.back().tensors.empty() && shards.back().bytes + bytes > options.max_shard_bytes) shards.emplace_back();
    shards.back().tensors.push_back(&s);
    shards.back().bytes += bytes;
    total += bytes;
  }

  JetMoeConfig written = config;
  written.torch_dtype = options.dtype == DType::BF16 ? "bfloat16" : "float32";
  {
    std::ofstream out(fs::path(output_dir) / "config.json");
    out << written.to_json();
    if (!out) throw Error(output_dir + "/config.json: write failed");
  }

  ops::ThreadPool pool(options.num_threads);
  std::vector<float> values;
  std::vector<uint16_t> half;
  nlohmann::ordered_json weight_map;
  char name[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards.size() == 1) {
      std::snprintf(name, sizeof name, "model.safetensors");
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    }
    const std::string path = (fs::path(output_dir) / name).string();
    std::vector<TensorToWrite> entries;
    for (const TensorSpec* s : shards[i].tensors) {
      entries.push_back({s->name, options.dtype, s->shape, nullptr});
      weight_map[s->name] = name;
    }
    const std::string header = encode_safetensors_header(entries);
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
    if (!f) throw Error(path + ": cannot create: " + std::strerror(errno));
    if (std::fwrite(header.data(), 1, header.size(), f.get()) != header.size()) throw Error(path + ": write failed");
    for (const TensorSpec* s : shards[i].tensors)
      write_tensor(pool, f.get(), path, *s, options.seed, static_cast<float>(config.initializer_range), options.dtype, values, half);
    if (std::fflush(f.get()) != 0) throw Error(path + ": write failed: " + std::strerror(errno));
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    std::ofstream out(fs::path(output_dir) / "model.safetensors.index.json");
    out << index.dump(2) << "\n";
    if (!out) throw Error(output_dir + "/model.safetensors.index.json: write failed");
  }
}

}  // namespace jetmoe
