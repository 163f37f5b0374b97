#include "jetmoe/quantize.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "jetmoe/config.h"
#include "jetmoe/error.h"
#include "jetmoe/gguf.h"
#include "jetmoe/model_files.h"
#include "jetmoe/tokenizer.h"
#include "ops/quantize.h"
#include "ops/thread_pool.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

// What prepare_weights / prepare_head quantise at load (when the rows hold
// a multiple of 64 weights); the routers, norms, biases, the embedding and
// score.weight stay as stored.
bool quantized_at_load(const std::string& name) {
  static const char* kSuffixes[] = {
      "self_attention.experts.input_linear.weight", "self_attention.experts.output_linear.weight",
      "self_attention.kv_proj.weight", "mlp.input_linear.weight", "mlp.output_linear.weight",
  };
  if (name == "lm_head.weight") return true;
  for (const char* s : kSuffixes) {
    const std::string suffix = std::string(".") + s;
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
  }
  return false;
}

GgufType gguf_type_of(DType dtype, const std::string& source, const std::string& name) {
  switch (dtype) {
    case DType::F32: return GgufType::F32;
    case DType::F16: return GgufType::F16;
    case DType::BF16: return GgufType::BF16;
    default:
      throw Error(source + ": tensor '" + name + "' has dtype " + dtype_name(dtype) +
                  "; a JetMoE checkpoint holds F32, F16 or BF16 tensors only");
  }
}

void release_pages(const void* data, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

struct OutTensor {
  std::string name;
  const TensorView* source;
  GgufType type;
  bool quantize;
};

void add_config_metadata(GgufWriter& w, const JetMoeConfig& c) {
  // llama.cpp's key names for the shape, for tools that list them; the
  // loader reads jetmoe.config_json.
  w.add_uint32("jetmoe.vocab_size", static_cast<uint32_t>(c.vocab_size));
  w.add_uint32("jetmoe.context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.add_uint32("jetmoe.embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.add_uint32("jetmoe.block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.add_uint32("jetmoe.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.add_uint32("jetmoe.attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.add_uint32("jetmoe.attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.add_uint32("jetmoe.attention.key_length", static_cast<uint32_t>(c.kv_channels));
  w.add_uint32("jetmoe.attention.value_length", static_cast<uint32_t>(c.kv_channels));
  w.add_uint32("jetmoe.expert_count", static_cast<uint32_t>(c.num_local_experts));
  w.add_uint32("jetmoe.expert_used_count", static_cast<uint32_t>(c.num_experts_per_tok));
  w.add_float32("jetmoe.rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_float32("jetmoe.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.add_bool("jetmoe.tie_word_embeddings", c.tie_word_embeddings);
}

void add_tokenizer_metadata(GgufWriter& w, const std::string& dir) {
  bool has_json = false;
  if (auto text = read_model_file(dir, "tokenizer.json")) {
    w.add_string(gguf_key_for("tokenizer.json"), *text);
    has_json = true;
  }
  if (!has_json) {
    // A folder without a tokenizer (test fixtures) gives a file without one.
    auto bytes = read_model_file(dir, "tokenizer.model");
    if (!bytes) return;
    w.add_uint8_array(gguf_key_for("tokenizer.model"), *bytes);
  }
  if (auto text = read_model_file(dir, "tokenizer_config.json")) w.add_string(gguf_key_for("tokenizer_config.json"), *text);
  // The standard tokenizer.ggml.* keys, for tools that list a vocabulary.
  const Tokenizer tok = Tokenizer::from_pretrained(dir);
  if (!tok.chat_template().empty()) w.add_string(gguf_key_for("chat_template.jinja"), tok.chat_template());
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string_view piece = tok.id_to_piece(id);
    tokens.emplace_back(piece);
    // ggml token types: 1 normal, 2 unknown, 3 control, 6 byte.
    const bool byte = piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece.back() == '>';
    types.push_back(tok.unk_token_id() == id ? 2 : tok.is_special(id) ? 3 : byte ? 6 : 1);
  }
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_int32_array("tokenizer.ggml.token_type", types);
  if (auto id = tok.bos_token_id()) w.add_uint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(*id));
  if (auto id = tok.eos_token_id()) w.add_uint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(*id));
  if (auto id = tok.unk_token_id()) w.add_uint32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(*id));
  if (auto id = tok.pad_token_id()) w.add_uint32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(*id));
  w.add_bool("tokenizer.ggml.add_bos_token", tok.add_bos_token());
  w.add_bool("tokenizer.ggml.add_eos_token", tok.add_eos_token());
}

}  // namespace

QuantizeResult quantize_to_gguf(const std::string& model_dir, const std::string& output, const QuantizeOptions& options) {
  if (options.type != WeightFormat::Q8_0 && options.type != WeightFormat::Q4_0)
    throw Error("quantize: the type must be q8_0 or q4_0");
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec))
    throw Error(model_dir + ": expected a checkpoint folder (config.json, *.safetensors, tokenizer files) to quantise");
  const ops::Quant q = options.type == WeightFormat::Q8_0 ? ops::Quant::Q8_0 : ops::Quant::Q4_0;
  const GgufType qtype = q == ops::Quant::Q8_0 ? GgufType::JETMOE_Q8_0 : GgufType::JETMOE_Q4_0;
  const char* type_name = q == ops::Quant::Q8_0 ? "q8_0" : "q4_0";

  std::string config_source;
  const auto config_text = read_model_file(model_dir, "config.json", &config_source);
  if (!config_text) throw Error(config_source + ": cannot open (a JetMoE checkpoint folder needs a config.json)");
  const JetMoeConfig config = JetMoeConfig::from_json(*config_text, config_source);
  const auto files = ModelFiles::open(model_dir);

  // The output tensors, by Hugging Face name (sorted).
  std::vector<OutTensor> out;
  const bool tied_head = config.tie_word_embeddings && task_from_config(config) != Task::SequenceClassification;
  for (const std::string& name : files->names()) {
    const TensorView* t = files->find(name);
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;  // tied: the head comes from the embedding
    const GgufType stored = gguf_type_of(t->dtype, files->file_of(name), name);
    if (t->shape.empty() || t->shape.size() > 4)
      throw Error(files->file_of(name) + ": tensor '" + name + "' has shape " + shape_string(t->shape) +
                  ", GGUF holds 1 to 4 dimensions");
    const bool quantize = t->shape.size() >= 2 && quantized_at_load(name) && ops::quantizable(t->shape.back());
    out.push_back({name, t, quantize ? qtype : stored, quantize});
  }
  if (tied_head) {
    // The head the load would quantise from the embedding, stored under the
    // name an untied model uses (the embedding itself stays for the lookup).
    const TensorView* embed = files->find("model.embed_tokens.weight");
    if (embed && embed->shape.size() == 2 && ops::quantizable(embed->shape.back()))
      out.push_back({"lm_head.weight", embed, qtype, true});
  }
  std::sort(out.begin(), out.end(), [](const OutTensor& a, const OutTensor& b) { return a.name < b.name; });

  GgufWriter w(output);
  w.add_string("general.architecture", "jetmoe");
  std::string name = fs::path(model_dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(model_dir).lexically_normal().parent_path().filename().string();
  w.add_string("general.name", name);
  w.add_string("jetmoe.weights", type_name);
  w.add_string(gguf_key_for("config.json"), *config_text);
  add_config_metadata(w, config);
  if (auto text = read_model_file(model_dir, "generation_config.json")) w.add_string(gguf_key_for("generation_config.json"), *text);
  add_tokenizer_metadata(w, model_dir);
  for (const auto& t : out) w.add_tensor(t.name, t.type, t.source->shape);

  const uint64_t total = w.total_bytes();
  w.write_header();
  ops::ThreadPool pool(options.num_threads);
  QuantizeResult result;
  uint64_t done = total;
  for (const auto& t : out) done -= gguf_tensor_bytes(t.type, static_cast<uint64_t>(t.source->numel()));
  auto report = [&](const std::string& tensor) {
    if (options.progress) options.progress(done, total, tensor);
  };
  report("");
  std::vector<uint8_t> quants;
  std::vector<uint16_t> scales;
  for (const auto& t : out) {
    const int64_t cols = t.source->shape.back(), rows = t.source->numel() / cols;
    const auto* src = static_cast<const uint8_t*>(t.source->data);
    const int64_t src_row = cols * static_cast<int64_t>(dtype_size(t.source->dtype));
    // Pieces of about 16M weights: memory stays small, the bar moves.
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / cols);
    if (t.quantize) {
      // Quants of every row first, then every scale (ops/quantize.h layout).
      const int64_t row_bytes = ops::quant_row_bytes(q, cols), blocks = cols / ops::kQuantBlock;
      scales.assign(static_cast<size_t>(rows * blocks), 0);
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = std::min(chunk, rows - r0);
        quants.resize(static_cast<size_t>(n * row_bytes));
        ops::quantize_rows(pool, q, t.source->dtype, src + r0 * src_row, n, cols, quants.data(), scales.data() + r0 * blocks);
        release_pages(src + r0 * src_row, static_cast<size_t>(n * src_row));
        w.write_tensor_data(quants.data(), quants.size());
        done += quants.size();
        report(t.name);
      }
      w.write_tensor_data(scales.data(), scales.size() * sizeof(uint16_t));
      done += scales.size() * sizeof(uint16_t);
      ++result.quantized;
    } else {
      for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = std::min(chunk, rows - r0);
        w.write_tensor_data(src + r0 * src_row, static_cast<size_t>(n * src_row));
        release_pages(src + r0 * src_row, static_cast<size_t>(n * src_row));
        done += static_cast<uint64_t>(n * src_row);
        report(t.name);
      }
    }
    // The checkpoint's pages are dropped from this process piece by piece
    // (they stay in the page cache; the tied embedding is read twice), so
    // peak RSS is about one piece, not the largest tensor.
    release_pages(src, t.source->nbytes);
    ++result.tensors;
    report(t.name);
  }
  w.finish();
  if (options.progress) options.progress(total, total, "");
  result.file_bytes = total;
  return result;
}

}  // namespace jetmoe
