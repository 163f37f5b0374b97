// Bad input of every kind (safetensors files, checkpoint folders, config.json
// values, forward inputs and the command line) must be refused with a
// jetmoe::Error whose message names the file, tensor or field at fault.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "jetmoe/config.h"
#include "jetmoe/error.h"
#include "scoped_temp_dir.h"
#include "jetmoe/losses.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "jetmoe/safetensors.h"

namespace {

namespace fs = std::filesystem;
using jetmoe::DType;
using jetmoe::TensorToWrite;

const fs::path kGolden = fs::path(JETMOE_TEST_DATA) / "golden";

// The message of the jetmoe::Error that `fn` throws, or a marker saying what
// happened instead (so a failing expectation shows it).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const jetmoe::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a jetmoe::Error: ") + e.what() + ">";
  }
  return "<no exception thrown>";
}

::testing::AssertionResult contains_all(const std::string& msg, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "message\n  " << msg << "\ndoes not contain\n  " << p;
  return ::testing::AssertionSuccess();
}

#define EXPECT_JETMOE_ERROR(statement, ...) \
  EXPECT_TRUE(contains_all(error_of([&] { statement; }), {__VA_ARGS__}))

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The 8-byte little-endian length, then the header, then the data section.
std::string length_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return length_prefix(header.size()) + header + data;
}

// A one-tensor header {"w": {...}} with the given raw JSON fields.
std::string one_tensor_header(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"w":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

// Reads every tensor of `src`, lets `edit` change the list (new data goes in
// `storage`, which outlives the write), and writes the result to `dst`.
using TensorEdit = std::function<void(std::vector<TensorToWrite>&, std::deque<std::vector<uint8_t>>&)>;
void rewrite_safetensors(const fs::path& src, const fs::path& dst, const TensorEdit& edit) {
  auto file = jetmoe::SafetensorsFile::open(src.string());
  std::vector<TensorToWrite> tensors;
  for (const auto& t : file->tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.data});
  std::deque<std::vector<uint8_t>> storage;
  edit(tensors, storage);
  jetmoe::write_safetensors(dst.string(), tensors);
}

TensorToWrite& tensor_named(std::vector<TensorToWrite>& tensors, const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return t;
  throw std::runtime_error("fixture has no tensor " + name);
}

void edit_json_file(const fs::path& path, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(read_bytes(path));
  edit(j);
  write_bytes(path, j.dump(2));
}

jetmoe::ModelInput ids(const std::vector<std::vector<int32_t>>& rows) { return jetmoe::ModelInput::from_ids(rows); }

jetmoe::LoadOptions one_thread() {
  jetmoe::LoadOptions o;
  o.num_threads = 1;
  return o;
}

class BadInput : public ::testing::Test {
 protected:
  jetmoe::testing::ScopedTempDir tmp_;
  const fs::path& dir_ = tmp_.path();

  // Copies a golden fixture's config.json and weight files (not
  // expected.safetensors, which would count as a weight file) into a new
  // folder of this test's directory.
  fs::path copy_fixture(const std::string& name) {
    const fs::path dst = dir_ / name;
    fs::create_directories(dst);
    for (const auto& entry : fs::directory_iterator(kGolden / name)) {
      const std::string file = entry.path().filename().string();
      if (file == "config.json" || file.rfind("model", 0) == 0) fs::copy_file(entry.path(), dst / file);
    }
    return dst;
  }

  fs::path write_st(const std::string& file, const std::string& bytes) {
    write_bytes(dir_ / file, bytes);
    return dir_ / file;
  }

  // Runs the built `jetmoe` with `args`; returns the exit code, stderr in `err`.
  int run_cli(const std::string& args, std::string* err) {
    const fs::path err_path = dir_ / "stderr.txt";
    const std::string cmd = std::string(JETMOE_CLI_PATH) + " " + args + " >/dev/null 2>" + err_path.string();
    const int status = std::system(cmd.c_str());
    *err = read_bytes(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

// ---------------------------------------------------------------------------
// safetensors files

TEST_F(BadInput, SafetensorsShorterThanEightBytes) {
  const fs::path p = write_st("short.safetensors", "abc");
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": file is 3 bytes",
                      "too short for the 8-byte header length");
}

TEST_F(BadInput, SafetensorsHeaderLengthBeyondFile) {
  const fs::path p = write_st("long_header.safetensors", length_prefix(1000) + std::string(20, ' '));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": header length 1000",
                      "runs past the end of the file (28 bytes; truncated?)");
}

TEST_F(BadInput, SafetensorsHeaderLengthOver100MB) {
  const fs::path p = write_st("huge_header.safetensors", length_prefix(200000000) + "{}");
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": header length 200000000",
                      "exceeds the 100 MB limit");
}

TEST_F(BadInput, SafetensorsHeaderNotJson) {
  const fs::path p = write_st("not_json.safetensors", safetensors_bytes("{\"w\": [1, 2", ""));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": header is not valid JSON");
}

TEST_F(BadInput, SafetensorsHeaderNotAnObject) {
  const fs::path p = write_st("array.safetensors", safetensors_bytes("[1, 2, 3]", ""));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": header is not a JSON object");
}

TEST_F(BadInput, SafetensorsUnknownDtype) {
  const fs::path p = write_st("f8.safetensors", safetensors_bytes(one_tensor_header("\"F8\"", "[4]", "[0,4]"), "abcd"));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": tensor 'w': unknown dtype \"F8\"",
                      "expected one of F64, F32");
}

TEST_F(BadInput, SafetensorsShapeTimesDtypeDoesNotMatchByteRange) {
  const fs::path p =
      write_st("short_range.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[2,3]", "[0,20]"), std::string(20, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()),
                      p.string() + ": tensor 'w': data_offsets [0, 20] hold 20 bytes but shape [2, 3] of F32 needs 24");
}

TEST_F(BadInput, SafetensorsTruncatedFileOffsetsBeyondDataSection) {
  const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  const fs::path p = dir_ / "two.safetensors";
  jetmoe::write_safetensors(p.string(), {{"a", DType::F32, {4}, a}, {"b", DType::F32, {4}, b}});
  ASSERT_EQ(jetmoe::SafetensorsFile::open(p.string())->tensors().size(), 2u);  // valid before the cut
  fs::resize_file(p, fs::file_size(p) - 4);
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()),
                      p.string() + ": tensor 'b': data_offsets [16, 32] extend beyond the data section (28 bytes; truncated file?)");
}

TEST_F(BadInput, SafetensorsTruncatedCheckpointFailsToLoad) {
  const fs::path model = copy_fixture("tiny-tied-f32");
  const fs::path weights = model / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      weights.string() + ": tensor '", "extend beyond the data section", "truncated file?");
}

TEST_F(BadInput, SafetensorsOverlappingRanges) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  const fs::path p = write_st("overlap.safetensors", safetensors_bytes(header, std::string(24, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": tensor 'b' [8, 24) overlaps tensor 'a' [0, 16)");
}

TEST_F(BadInput, SafetensorsOffsetsEndBeforeBegin) {
  const fs::path p =
      write_st("backwards.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[4]", "[16,0]"), std::string(16, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()),
                      p.string() + ": tensor 'w': data_offsets [16, 0] end before they begin");
}

TEST_F(BadInput, SafetensorsOffsetsNotIntegers) {
  const fs::path fractional =
      write_st("fractional.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[1]", "[0,4.5]"), std::string(8, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(fractional.string()),
                      fractional.string() + ": tensor 'w': \"data_offsets\" must be two non-negative integers [begin, end]");
  const fs::path negative =
      write_st("negative.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[1]", "[-4,0]"), std::string(8, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(negative.string()),
                      negative.string() + ": tensor 'w': \"data_offsets\" must be two non-negative integers");
  const fs::path strings =
      write_st("strings.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[1]", "[\"0\",\"4\"]"), std::string(4, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(strings.string()),
                      strings.string() + ": tensor 'w': \"data_offsets\" must be two non-negative integers");
}

TEST_F(BadInput, SafetensorsNegativeShapeDimension) {
  const fs::path p =
      write_st("negative_dim.safetensors", safetensors_bytes(one_tensor_header("\"F32\"", "[-1,4]", "[0,16]"), std::string(16, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()),
                      p.string() + ": tensor 'w': shape [-1,4] has a dimension that is not a non-negative integer");
}

TEST_F(BadInput, SafetensorsMetadataNotAnObject) {
  const std::string header = R"({"__metadata__":"pt","w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const fs::path p = write_st("metadata.safetensors", safetensors_bytes(header, std::string(4, '\0')));
  EXPECT_JETMOE_ERROR(jetmoe::SafetensorsFile::open(p.string()), p.string() + ": \"__metadata__\" is not an object");
}

// ---------------------------------------------------------------------------
// checkpoint folders

TEST_F(BadInput, FolderMissingTensor) {
  const fs::path model = copy_fixture("tiny-tied-f32");
  rewrite_safetensors(kGolden / "tiny-tied-f32" / "model.safetensors", model / "model.safetensors",
                      [](std::vector<TensorToWrite>& tensors, std::deque<std::vector<uint8_t>>&) {
                        std::erase_if(tensors, [](const TensorToWrite& t) { return t.name == "model.norm.weight"; });
                      });
  EXPECT_NO_THROW(jetmoe::ModelFiles::open(model.string()));  // the file itself is fine
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      (model / "model.safetensors").string() + ": missing tensor 'model.norm.weight' (expected shape [64])");
}

TEST_F(BadInput, FolderTensorWithWrongShape) {
  const fs::path model = copy_fixture("tiny-tied-f32");
  rewrite_safetensors(kGolden / "tiny-tied-f32" / "model.safetensors", model / "model.safetensors",
                      [](std::vector<TensorToWrite>& tensors, std::deque<std::vector<uint8_t>>&) {
                        tensor_named(tensors, "model.layers.1.mlp.bias").shape = {32};  // first half of its data
                      });
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      (model / "model.safetensors").string() +
                          ": tensor 'model.layers.1.mlp.bias' has shape [32], expected [64] from config.json");
}

TEST_F(BadInput, FolderTensorWithIntegerDtype) {
  const fs::path model = copy_fixture("tiny-tied-f32");
  rewrite_safetensors(kGolden / "tiny-tied-f32" / "model.safetensors", model / "model.safetensors",
                      [](std::vector<TensorToWrite>& tensors, std::deque<std::vector<uint8_t>>& storage) {
                        TensorToWrite& t = tensor_named(tensors, "model.norm.weight");
                        storage.emplace_back(64 * sizeof(int64_t), 0);
                        t.dtype = DType::I64;
                        t.data = storage.back().data();
                      });
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      (model / "model.safetensors").string() +
                          ": tensor 'model.norm.weight' has dtype I64, expected F32, BF16 or F16");
}

TEST_F(BadInput, FolderIndexNamesMissingShard) {
  const fs::path model = copy_fixture("tiny-sharded");
  const fs::path shard = model / "model-00002-of-00002.safetensors";
  fs::remove(shard);
  EXPECT_JETMOE_ERROR(jetmoe::ModelFiles::open(model.string()), shard.string() + ": cannot open");
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      shard.string() + ": cannot open");
}

TEST_F(BadInput, FolderIndexPutsTensorInWrongShard) {
  const fs::path model = copy_fixture("tiny-sharded");
  const fs::path index = model / "model.safetensors.index.json";
  edit_json_file(index, [](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"; });
  EXPECT_JETMOE_ERROR(jetmoe::ModelFiles::open(model.string()),
                      index.string() +
                          ": weight_map puts tensor 'model.norm.weight' in model-00001-of-00002.safetensors, but that file "
                          "does not hold it");
}

TEST_F(BadInput, FolderWithoutSafetensors) {
  const fs::path model = dir_ / "empty-model";
  fs::create_directories(model);
  fs::copy_file(kGolden / "tiny-tied-f32" / "config.json", model / "config.json");
  EXPECT_JETMOE_ERROR(jetmoe::ModelFiles::open(model.string()),
                      model.string() + ": expected model.safetensors or model.safetensors.index.json in this folder (found 0");
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread()),
                      model.string() + ": expected model.safetensors or model.safetensors.index.json");
}

// ---------------------------------------------------------------------------
// config.json

TEST_F(BadInput, ConfigNotJson) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json("{\"hidden_size\": 64,", "ckpt/config.json"),
                      "ckpt/config.json: not valid JSON");
}

TEST_F(BadInput, ConfigMoreExpertsPerTokenThanExperts) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"num_local_experts": 4, "num_experts_per_tok": 5})", "ckpt/config.json"),
                      "ckpt/config.json: num_experts_per_tok = 5 is larger than num_local_experts = 4");
}

TEST_F(BadInput, ConfigNonPositiveHiddenSize) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"hidden_size": 0})", "ckpt/config.json"),
                      "ckpt/config.json: field \"hidden_size\" = 0, expected a positive integer");
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"hidden_size": -64})", "ckpt/config.json"),
                      "ckpt/config.json: field \"hidden_size\" = -64, expected a positive integer");
}

TEST_F(BadInput, ConfigHiddenSizeOfWrongType) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"hidden_size": "64"})", "ckpt/config.json"),
                      "ckpt/config.json: field \"hidden_size\" = \"64\", expected an integer");
}

TEST_F(BadInput, ConfigUnknownActivation) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"activation_function": "swishy"})", "ckpt/config.json"),
                      "ckpt/config.json: activation_function \"swishy\" is not supported (supported: ", "silu");
}

TEST_F(BadInput, ConfigLinearRopeScaling) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"rope_scaling": {"type": "linear", "factor": 2}})", "ckpt/config.json"),
                      "ckpt/config.json: rope_scaling type \"linear\" is not supported");
}

TEST_F(BadInput, ConfigLlamaModelType) {
  EXPECT_JETMOE_ERROR(jetmoe::JetMoeConfig::from_json(R"({"model_type": "llama"})", "ckpt/config.json"),
                      "ckpt/config.json: model_type \"llama\" is not a JetMoE model (expected \"jetmoe\")");
}

// ---------------------------------------------------------------------------
// forward inputs (tiny-tied-f32: vocab_size 256)

TEST_F(BadInput, TokenIdAtVocabSize) {
  auto lm = jetmoe::JetMoeForCausalLM::from_pretrained((kGolden / "tiny-tied-f32").string(), one_thread());
  EXPECT_JETMOE_ERROR(lm->forward(ids({{1, 5, 7}, {1, 256, 7}})), "input_ids[1][1] = 256 is outside the vocabulary [0, 256)");
}

TEST_F(BadInput, NegativeTokenId) {
  auto model = jetmoe::JetMoeModel::from_pretrained((kGolden / "tiny-tied-f32").string(), one_thread());
  EXPECT_JETMOE_ERROR(model->forward(ids({{1, -3}})), "input_ids[0][1] = -3 is outside the vocabulary [0, 256)");
}

TEST_F(BadInput, SequenceLongerThanMaxPositionEmbeddings) {
  const fs::path model = copy_fixture("tiny-tied-f32");
  edit_json_file(model / "config.json", [](nlohmann::json& j) { j["max_position_embeddings"] = 8; });
  auto lm = jetmoe::JetMoeForCausalLM::from_pretrained(model.string(), one_thread());
  EXPECT_NO_THROW(lm->forward(ids({{1, 2, 3, 4, 5, 6, 7, 8}})));
  EXPECT_JETMOE_ERROR(lm->forward(ids({{1, 2, 3, 4, 5, 6, 7, 8, 9}})), "sequence length 9 exceeds max_position_embeddings = 8");
}

TEST_F(BadInput, AttentionMaskOfWrongLength) {
  auto lm = jetmoe::JetMoeForCausalLM::from_pretrained((kGolden / "tiny-tied-f32").string(), one_thread());
  jetmoe::ModelInput in = ids({{1, 5, 7}});
  in.attention_mask = {1, 1};
  EXPECT_JETMOE_ERROR(lm->forward(in), "attention_mask: 2 values, expected shape [1, 3] (cached 0 + new 3 tokens)");
}

TEST_F(BadInput, PositionIdsOfWrongLength) {
  auto lm = jetmoe::JetMoeForCausalLM::from_pretrained((kGolden / "tiny-tied-f32").string(), one_thread());
  jetmoe::ModelInput in = ids({{1, 5, 7}});
  in.position_ids = {0, 1, 2, 3};
  EXPECT_JETMOE_ERROR(lm->forward(in), "position_ids: 4 values, expected shape [1, 3] like input_ids");
}

TEST_F(BadInput, LabelsOfWrongLength) {
  auto lm = jetmoe::JetMoeForCausalLM::from_pretrained((kGolden / "tiny-tied-f32").string(), one_thread());
  const std::vector<int32_t> labels = {5, 7};
  EXPECT_JETMOE_ERROR(lm->forward(ids({{1, 5, 7}}), nullptr, {}, &labels), "labels: 2 values, expected shape [1, 3] like input_ids");
}

TEST_F(BadInput, CausalLmLossLabelOutsideVocabulary) {
  jetmoe::Tensor logits({1, 3, 256});
  const std::vector<int32_t> labels = {1, 5, 300};
  EXPECT_JETMOE_ERROR(jetmoe::causal_lm_loss(logits, labels), "labels: value 300 outside the vocabulary [0, 256) and not -100");
  const std::vector<int32_t> negative = {1, -7, 5};
  EXPECT_JETMOE_ERROR(jetmoe::causal_lm_loss(logits, negative), "labels: value -7 outside the vocabulary [0, 256)");
  const std::vector<int32_t> short_labels = {1, 5};
  EXPECT_JETMOE_ERROR(jetmoe::causal_lm_loss(logits, short_labels), "labels: 2 values, expected shape [1, 3]");
}

TEST_F(BadInput, SequenceClassificationBatchWithoutPadToken) {
  const fs::path model = copy_fixture("tiny-seqcls-single");
  edit_json_file(model / "config.json", [](nlohmann::json& j) { j.erase("pad_token_id"); });
  auto clf = jetmoe::JetMoeForSequenceClassification::from_pretrained(model.string(), one_thread());
  EXPECT_NO_THROW(clf->forward(ids({{1, 5, 7}})));  // one row needs no pad token
  EXPECT_JETMOE_ERROR(clf->forward(ids({{1, 5, 7}, {1, 9, 11}})),
                      "sequence classification of a batch of 2 needs pad_token_id in config.json");
}

TEST_F(BadInput, SequenceClassificationInputIdsNotMatchingShape) {
  auto clf = jetmoe::JetMoeForSequenceClassification::from_pretrained((kGolden / "tiny-seqcls-single").string(), one_thread());
  jetmoe::ModelInput in;
  in.batch_size = 2;
  in.seq_len = 4;
  in.input_ids = {1, 5, 7};
  EXPECT_JETMOE_ERROR(clf->forward(in), "input_ids: 3 values for shape [2, 4]");
  EXPECT_JETMOE_ERROR(clf->pooling_index({1, 5, 7}, 1, 0), "input_ids: shape [1, 0]");
}

// ---------------------------------------------------------------------------
// the command line

TEST_F(BadInput, CliChunksNotAddingUpToSequenceLength) {
  write_bytes(dir_ / "in.json", R"({"input_ids": [[1, 5, 7, 9]]})");
  std::string err;
  const int code = run_cli("forward --model " + (kGolden / "tiny-tied-f32").string() + " --input " + (dir_ / "in.json").string() +
                               " --output " + (dir_ / "out.safetensors").string() + " --threads 1 --chunks 2,1",
                           &err);
  EXPECT_EQ(code, 1) << err;
  EXPECT_TRUE(contains_all(err, {"jetmoe: error: --chunks 2,1 covers 3 tokens but input_ids rows have 4"}));
  EXPECT_FALSE(fs::exists(dir_ / "out.safetensors"));
}

TEST_F(BadInput, CliInputRowsOfDifferentLengths) {
  const fs::path in = dir_ / "ragged.json";
  write_bytes(in, R"({"input_ids": [[1, 5, 7], [1, 5]]})");
  std::string err;
  const int code = run_cli("forward --model " + (kGolden / "tiny-tied-f32").string() + " --input " + in.string() + " --output " +
                               (dir_ / "out.safetensors").string() + " --threads 1",
                           &err);
  EXPECT_EQ(code, 1) << err;
  EXPECT_TRUE(contains_all(err, {"jetmoe: error: " + in.string() +
                                 ": \"input_ids\" row 1 has 2 values but row 0 has 3 (pad rows to one length)"}));
}

TEST_F(BadInput, CliInputNotJson) {
  const fs::path in = dir_ / "broken.json";
  write_bytes(in, "{\"input_ids\": [[1, 5, 7]");
  std::string err;
  const int code = run_cli("forward --model " + (kGolden / "tiny-tied-f32").string() + " --input " + in.string() + " --output " +
                               (dir_ / "out.safetensors").string() + " --threads 1",
                           &err);
  EXPECT_EQ(code, 1) << err;
  EXPECT_TRUE(contains_all(err, {"jetmoe: error: " + in.string() + ": not valid JSON"}));
}

TEST_F(BadInput, CliCausalLmLabelOutsideVocabulary) {
  const fs::path in = dir_ / "labels.json";
  write_bytes(in, R"({"input_ids": [[1, 5, 7]], "labels": [[1, 5, 999]]})");
  std::string err;
  const int code = run_cli("forward --model " + (kGolden / "tiny-tied-f32").string() + " --input " + in.string() + " --output " +
                               (dir_ / "out.safetensors").string() + " --threads 1",
                           &err);
  EXPECT_EQ(code, 1) << err;
  EXPECT_TRUE(contains_all(err, {"jetmoe: error: labels: value 999 outside the vocabulary [0, 256) and not -100"}));
}

}  // namespace
