// GGUF export (jetmoe quantize) and load (--model FILE.gguf): the loaded
// model gives bit-identical logits to the folder quantised at load, the
// embedded tokenizer and generation config equal the folder's, and bad files
// are rejected with messages naming what is wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "demo_model.h"
#include "cli_runner.h"
#include "golden_fixture.h"
#include "jetmoe/config.h"
#include "jetmoe/error.h"
#include "jetmoe/generation_config.h"
#include "jetmoe/gguf.h"
#include "jetmoe/model.h"
#include "jetmoe/model_files.h"
#include "jetmoe/quantize.h"
#include "jetmoe/tokenizer.h"
#include "scoped_temp_dir.h"

namespace jetmoe::testing {
namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string quantize(const std::string& dir, WeightFormat type, const std::string& out) {
  QuantizeOptions o;
  o.type = type;
  quantize_to_gguf(dir, out, o);
  return out;
}

std::vector<float> logits(const std::string& model, WeightFormat weights, const std::vector<int32_t>& ids) {
  LoadOptions o;
  o.weights = weights;
  o.num_threads = 2;
  auto lm = JetMoeForCausalLM::from_pretrained(model, o);
  return lm->forward(ModelInput::from_ids({ids})).logits.data;
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Format {
  WeightFormat weights;
  const char* name;
};
const Format kFormats[] = {{WeightFormat::Q8_0, "q8_0"}, {WeightFormat::Q4_0, "q4_0"}};

TEST(Gguf, GoldenFixturesRoundTripBitIdentical) {
  ScopedTempDir tmp;
  // Tied and untied heads, bf16 and f32 weights, shards, MLP rows that are
  // not a multiple of 64 (intermediate 96: those stay bf16).
  for (const char* fixture : {"tiny-bf16", "tiny-untied-top1", "tiny-tied-f32", "tiny-sharded", "small-llama-vocab"}) {
    const std::string dir = golden_dir(fixture);
    const JetMoeConfig c = JetMoeConfig::from_pretrained(dir);
    const std::vector<int32_t> ids = {1, 5, 17, 3, static_cast<int32_t>(c.vocab_size - 1), 9, 2, 11};
    for (const Format& f : kFormats) {
      SCOPED_TRACE(std::string(fixture) + " " + f.name);
      const std::string gguf = quantize(dir, f.weights, tmp.file(std::string(fixture) + "-" + f.name + ".gguf"));
      const auto expected = logits(dir, f.weights, ids);
      EXPECT_TRUE(bit_identical(logits(gguf, WeightFormat::Native, ids), expected));
      EXPECT_TRUE(bit_identical(logits(gguf, f.weights, ids), expected));
      EXPECT_FALSE(bit_identical(logits(dir, WeightFormat::Native, ids), expected));  // really quantised
      const JetMoeConfig g = JetMoeConfig::from_pretrained(gguf);
      EXPECT_EQ(g.to_json(), c.to_json());
    }
  }
}

TEST(Gguf, SequenceClassificationRoundTrip) {
  ScopedTempDir tmp;
  const std::string dir = golden_dir("tiny-seqcls-single");
  const std::string gguf = quantize(dir, WeightFormat::Q8_0, tmp.file("cls.gguf"));
  LoadOptions q8;
  q8.weights = WeightFormat::Q8_0;
  const auto input = ModelInput::from_ids({{1, 7, 30, 4, 12}});
  const auto a = JetMoeForSequenceClassification::from_pretrained(dir, q8)->forward(input).pooled_logits.data;
  const auto b = JetMoeForSequenceClassification::from_pretrained(gguf)->forward(input).pooled_logits.data;
  EXPECT_TRUE(bit_identical(a, b));
  EXPECT_FALSE(is_quantized(GgufFile::open(gguf)->find("score.weight")->dtype));  // not quantised at load either
}

TEST(Gguf, FileHoldsQuantisedMatricesAndMetadata) {
  ScopedTempDir tmp;
  const std::string gguf = quantize(golden_dir("tiny-bf16"), WeightFormat::Q4_0, tmp.file("m.gguf"));
  const auto f = GgufFile::open(gguf);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->require_string("general.architecture"), "jetmoe");
  EXPECT_EQ(f->require_string("jetmoe.weights"), "q4_0");
  EXPECT_EQ(f->get("jetmoe.expert_count")->u, 4u);
  EXPECT_EQ(f->find("model.layers.0.mlp.input_linear.weight")->dtype, DType::Q4_0);       // rows of 64
  EXPECT_EQ(f->find("model.layers.0.mlp.output_linear.weight")->dtype, DType::BF16);      // rows of 96
  EXPECT_EQ(f->find("model.layers.0.self_attention.kv_proj.weight")->dtype, DType::Q4_0);
  EXPECT_EQ(f->find("model.layers.0.mlp.router.layer.weight")->dtype, DType::BF16);
  EXPECT_EQ(f->find("model.embed_tokens.weight")->dtype, DType::BF16);
  EXPECT_EQ(f->find("lm_head.weight")->dtype, DType::Q4_0);  // the tied head, quantised
  EXPECT_EQ(f->find("model.layers.0.self_attention.kv_proj.weight")->shape, (std::vector<int64_t>{64, 64}));
  for (const auto& t : f->tensors()) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;
}

TEST(Gguf, DemoModelLogitsTokenizerAndGenerationConfig) {
  ScopedTempDir tmp;
  const auto tok = Tokenizer::from_pretrained(kDemo);
  const std::vector<int32_t> ids = tok.encode("In the beginning God created the heaven and the earth.");
  for (const Format& f : kFormats) {
    SCOPED_TRACE(f.name);
    const std::string gguf = quantize(kDemo, f.weights, tmp.file(std::string("demo-") + f.name + ".gguf"));
    EXPECT_TRUE(bit_identical(logits(gguf, WeightFormat::Native, ids), logits(kDemo, f.weights, ids)));
  }
  const std::string gguf = tmp.file("demo-q8_0.gguf");
  const auto g = Tokenizer::from_pretrained(gguf);
  EXPECT_EQ(g.vocab_size(), tok.vocab_size());
  EXPECT_EQ(g.bos_token_id(), tok.bos_token_id());
  EXPECT_EQ(g.eos_token_id(), tok.eos_token_id());
  EXPECT_EQ(g.chat_template(), tok.chat_template());
  for (const char* text : {"And God said, Let there be light: and there was light.", "  héllo\n\tworld <s> 123 ☃ 🙂",
                           "", "</s>unto them"}) {
    EXPECT_EQ(g.encode(text), tok.encode(text)) << text;
    EXPECT_EQ(g.encode(text, false), tok.encode(text, false)) << text;
    const auto e = tok.encode(text);
    EXPECT_EQ(g.decode(e), tok.decode(e));
  }
  EXPECT_EQ(GenerationConfig::from_model_folder(gguf).to_json(), GenerationConfig::from_model_folder(kDemo).to_json());
  const auto f = GgufFile::open(gguf);
  EXPECT_EQ(f->get("tokenizer.ggml.tokens")->strings.size(), 32000u);
  EXPECT_EQ(f->get("tokenizer.ggml.tokens")->strings[1], "<s>");
  EXPECT_EQ(f->get("tokenizer.ggml.bos_token_id")->u, 1u);
}

TEST(Gguf, SentencePieceOnlyFolderEmbedsTokenizerModel) {
  ScopedTempDir tmp;
  const std::filesystem::path dir = tmp.path() / "spm";
  std::filesystem::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"})
    std::filesystem::copy_file(std::filesystem::path(kDemo) / f, dir / f);
  const std::string gguf = quantize(dir.string(), WeightFormat::Q8_0, tmp.file("spm.gguf"));
  EXPECT_EQ(GgufFile::open(gguf)->get("tokenizer.huggingface.json"), nullptr);
  const auto a = Tokenizer::from_pretrained(dir), b = Tokenizer::from_pretrained(gguf);
  for (const char* text : {"In the beginning God created the heaven", " x  y\n<s>z"}) EXPECT_EQ(a.encode(text), b.encode(text)) << text;
}

TEST(Gguf, OtherWeightFormatIsRefused) {
  ScopedTempDir tmp;
  const std::string gguf = quantize(golden_dir("tiny-bf16"), WeightFormat::Q8_0, tmp.file("m.gguf"));
  const std::string err = error_of([&] { logits(gguf, WeightFormat::Q4_0, {1, 2}); });
  EXPECT_NE(err.find(gguf), std::string::npos) << err;
  EXPECT_NE(err.find("stored quantised as q8_0; --weights q4_0 would quantise them a second time"), std::string::npos) << err;
}

TEST(Gguf, CliQuantizeThenGenerate) {
  ScopedTempDir tmp;
  const std::string gguf = tmp.file("demo.gguf");
  CliResult r = run_cli(tmp, "quantize --model " + kDemo + " --type q8_0 --output " + gguf);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("jetmoe quantize: wrote " + gguf), std::string::npos) << r.err;
  const std::string gen = " --no-stream --prompt 'In the beginning' --max-new-tokens 12";
  const CliResult from_gguf = run_cli(tmp, "generate --model " + gguf + gen);
  const CliResult from_dir = run_cli(tmp, "generate --model " + kDemo + " --weights q8_0" + gen);
  ASSERT_EQ(from_gguf.exit_code, 0) << from_gguf.err;
  ASSERT_EQ(from_dir.exit_code, 0) << from_dir.err;
  EXPECT_EQ(from_gguf.out, from_dir.out);
  EXPECT_NE(from_gguf.out.find("In the beginning"), std::string::npos);

  r = run_cli(tmp, "tokenize --model " + gguf, "{\"text\": \"In the beginning\"}\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[1,512,278,6763]}\n");

  r = run_cli(tmp, "generate --model " + gguf + " --weights q4_0" + gen);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("stored quantised as q8_0"), std::string::npos) << r.err;

  r = run_cli(tmp, "quantize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--type"), std::string::npos);
  EXPECT_NE(r.out.find("same logits"), std::string::npos);

  r = run_cli(tmp, "quantize --model " + kDemo + " --type q2_k --output " + gguf);
  EXPECT_NE(r.exit_code, 0);
  r = run_cli(tmp, "quantize --model " + kDemo + " --type q8_0 --output " + tmp.file("x.bin"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("expected a file name ending in .gguf"), std::string::npos) << r.err;
  r = run_cli(tmp, "quantize --model " + gguf + " --type q8_0 --output " + tmp.file("y.gguf"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already a GGUF file"), std::string::npos) << r.err;
}

// ------------------------------------------------------------ bad files

// A small GGUF built byte by byte, so each field can be made wrong.
struct RawGguf {
  uint32_t version = 3;
  std::string magic = "GGUF";
  uint64_t string_len_override = 0;  // for the first metadata value
  bool with_arch = true;
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    uint64_t offset;
  };
  std::vector<T> tensors = {{"a", {64}, 0, 0}, {"b", {32, 2}, 0, 256}};
  uint64_t data_bytes = 512;

  static void u(std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  }
  std::string bytes() const {
    std::string s = magic;
    u(s, version, 4);
    u(s, tensors.size(), 8);
    u(s, with_arch ? 2 : 1, 8);
    u(s, 9, 8);
    s += "test.name";
    u(s, 8, 4);  // STRING
    u(s, string_len_override ? string_len_override : 4, 8);
    s += "abcd";
    if (with_arch) {
      u(s, 20, 8);
      s += "general.architecture";
      u(s, 8, 4);
      u(s, 6, 8);
      s += "jetmoe";
    }
    for (const T& t : tensors) {
      u(s, t.name.size(), 8);
      s += t.name;
      u(s, t.ne.size(), 4);
      for (uint64_t d : t.ne) u(s, d, 8);
      u(s, t.type, 4);
      u(s, t.offset, 8);
    }
    while (s.size() % 32) s.push_back('\0');
    s.append(static_cast<size_t>(data_bytes), '\0');
    return s;
  }
  std::string write(const ScopedTempDir& tmp, const std::string& name) const {
    const std::string path = tmp.file(name);
    std::ofstream(path, std::ios::binary) << bytes();
    return path;
  }
};

std::string open_error(const std::string& path) {
  return error_of([&] { GgufFile::open(path); });
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(GgufBadInput, WellFormedBaselineOpens) {
  ScopedTempDir tmp;
  const auto f = GgufFile::open(RawGguf().write(tmp, "ok.gguf"));
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->find("b")->shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(f->require_string("test.name"), "abcd");
}

TEST(GgufBadInput, EachFieldNamed) {
  ScopedTempDir tmp;
  RawGguf g;
  g.magic = "GGUX";
  std::string p = g.write(tmp, "magic.gguf");
  EXPECT_HAS(open_error(p), p + ": not a GGUF file (magic \"GGUX\", expected \"GGUF\")");

  g = RawGguf();
  g.version = 2;
  p = g.write(tmp, "version.gguf");
  EXPECT_HAS(open_error(p), p + ": GGUF version 2 is not supported (expected 3)");

  g = RawGguf();
  g.tensors[1].offset = 4096;
  p = g.write(tmp, "beyond.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': bytes [4096, 4352) of [2, 32] F32 extend beyond the data section (512 bytes");

  g = RawGguf();
  g.tensors[1].offset = 128;
  p = g.write(tmp, "overlap.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b' [128, 384) overlaps tensor 'a' [0, 256)");

  g = RawGguf();
  g.tensors[1].type = 17;
  p = g.write(tmp, "type.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': unknown tensor type 17 (supported: F32 (0), F16 (1), BF16 (30)");

  g = RawGguf();
  g.string_len_override = uint64_t{1} << 60;
  p = g.write(tmp, "string.gguf");
  EXPECT_HAS(open_error(p), p + ": metadata key 'test.name': string length 1152921504606846976 runs past the end of the file");

  g = RawGguf();
  g.tensors[1].offset = 260;
  p = g.write(tmp, "align.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': offset 260 is not a multiple of the alignment 32");

  g = RawGguf();
  g.tensors[1].ne = {32, 2, 1, 1, 1};
  p = g.write(tmp, "dims.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': n_dims 5 (expected 1 to 4)");

  g = RawGguf();
  g.tensors[1].ne = {uint64_t{1} << 40, uint64_t{1} << 40};
  p = g.write(tmp, "huge.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': dimension 1 = 1099511627776 is zero or makes the tensor too large");

  g = RawGguf();
  g.tensors[1].type = static_cast<uint32_t>(GgufType::JETMOE_Q8_0);
  g.tensors[1].ne = {48, 2};
  p = g.write(tmp, "block.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'b': innermost dimension 48 is not a multiple of JETMOE_Q8_0's block of 32");

  g = RawGguf();
  g.tensors[1].name = "a";
  p = g.write(tmp, "dup.gguf");
  EXPECT_HAS(open_error(p), p + ": tensor 'a' appears twice");
}

TEST(GgufBadInput, TruncatedFiles) {
  ScopedTempDir tmp;
  const std::string full = RawGguf().bytes();
  const std::string p = tmp.file("cut.gguf");
  std::ofstream(p, std::ios::binary) << full.substr(0, 10);
  EXPECT_HAS(open_error(p), p + ": file is 10 bytes, too short for a GGUF header");
  std::ofstream(p, std::ios::binary | std::ios::trunc) << full.substr(0, 150);
  EXPECT_HAS(open_error(p), p + ": truncated: tensor 'b' dimension needs 8 bytes at offset 149");
  std::ofstream(p, std::ios::binary | std::ios::trunc) << full.substr(0, full.size() - 100);
  EXPECT_HAS(open_error(p), p + ": tensor 'b': bytes [256, 512) of [2, 32] F32 extend beyond the data section (412 bytes");
  // Every prefix of a real model file is rejected, never read out of bounds.
  const std::string model = quantize(golden_dir("tiny-bf16"), WeightFormat::Q8_0, tmp.file("m.gguf"));
  const std::string real = slurp(model);
  for (size_t n : {size_t{0}, size_t{23}, size_t{100}, real.size() / 3, real.size() / 2, real.size() - 1}) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << real.substr(0, n);
    EXPECT_HAS(open_error(p), p + ": ");
  }
}

TEST(GgufBadInput, MissingMetadataKeys) {
  ScopedTempDir tmp;
  // Valid GGUF, but not a model this engine wrote.
  const std::string p = RawGguf().write(tmp, "nokeys.gguf");
  EXPECT_HAS(error_of([&] { JetMoeConfig::from_pretrained(p); }),
             p + ": missing metadata key 'jetmoe.config_json' (the model's config.json");
  EXPECT_HAS(error_of([&] { Tokenizer::from_pretrained(p); }), p + ": missing metadata key 'tokenizer.huggingface.json'");
  RawGguf g;
  g.with_arch = false;
  const std::string q = g.write(tmp, "noarch.gguf");
  EXPECT_HAS(error_of([&] { ModelFiles::open(q); }), q + ": missing metadata key 'general.architecture'");
  // Tensors missing from a file: the usual missing-tensor error.
  const auto files = ModelFiles::open(p);
  EXPECT_EQ(files->find("model.norm.weight"), nullptr);
  EXPECT_HAS(error_of([&] { JetMoeModel(files, JetMoeConfig::from_pretrained(golden_dir("tiny-bf16")), LoadOptions{}); }),
             p + ": missing tensor 'model.embed_tokens.weight'");
}

}  // namespace
}  // namespace jetmoe::testing
