#include <sys/mman.h>
#include <unistd.h>

#include "jetmoe/error.h"
#include "model/weights.h"
#include "ops/quantize.h"

namespace jetmoe {

namespace {

ops::Quant quant_of(WeightFormat f) {
  switch (f) {
    case WeightFormat::Q8_0: return ops::Quant::Q8_0;
    case WeightFormat::Q4_0: return ops::Quant::Q4_0;
    default: return ops::Quant::None;
  }
}

// The checkpoint pages a quantised copy replaces are dropped from this
// process (they stay in the page cache), so peak RSS is about the quantised
// weights, not them plus the bf16 file.
void release_pages(const void* data, size_t bytes) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// Quantises `rows` rows into a new owned buffer; returns quants and scales.
std::pair<const uint8_t*, const uint16_t*> quantize_into(ops::PageBuffer& buffer, ops::ThreadPool& pool, ops::Quant q,
                                                         DType dtype, const void* src, int64_t rows, int64_t cols) {
  const size_t quant_bytes = static_cast<size_t>(rows * ops::quant_row_bytes(q, cols));
  buffer = ops::PageBuffer(quant_bytes + static_cast<size_t>(rows * (cols / ops::kQuantBlock)) * sizeof(uint16_t));
  auto* scales = reinterpret_cast<uint16_t*>(buffer.data() + quant_bytes);
  ops::quantize_rows(pool, q, dtype, src, rows, cols, buffer.data(), scales);
  release_pages(src, static_cast<size_t>(rows * cols) * dtype_size(dtype));
  return {buffer.data(), scales};
}

const char* quant_name(ops::Quant q) { return weight_format_name(weight_format_of(q)); }

// Weights stored quantised (a .gguf) are used as they are: Native means "as
// stored", the same format is a no-op, another one is refused rather than
// requantising already rounded weights.
bool already_quantized(ops::Quant stored, ops::Quant wanted, const std::string& source) {
  if (stored == ops::Quant::None) return false;
  if (wanted != ops::Quant::None && wanted != stored)
    throw Error(source + ": the weights are stored quantised as " + quant_name(stored) + "; --weights " + quant_name(wanted) +
                " would quantise them a second time. Leave --weights at bf16 (as stored) or " + quant_name(stored) +
                ", or run jetmoe quantize --type " + quant_name(wanted) + " on the original checkpoint");
  return true;
}

void prepare_matrix(ops::WeightMatrix& m, const LoadOptions& o, ops::ThreadPool& pool,
                    std::vector<ops::PageBuffer>& owned, const std::string& source) {
  m.compute = o.compute == ComputeMode::BF16 ? ops::Compute::BF16 : ops::Compute::F32;
  const ops::Quant q = quant_of(o.weights);
  if (already_quantized(m.quant, q, source)) return;
  if (q == ops::Quant::None || !ops::quantizable(m.cols)) return;
  owned.emplace_back();
  auto [quants, scales] = quantize_into(owned.back(), pool, q, m.dtype, m.data, m.rows, m.cols);
  m.data = quants;
  m.scales = scales;
  m.quant = q;
}

void prepare_experts(ExpertWeights& x, const LoadOptions& o, ops::ThreadPool& pool,
                     std::vector<ops::PageBuffer>& owned, const std::string& source) {
  x.compute = o.compute == ComputeMode::BF16 ? ops::Compute::BF16 : ops::Compute::F32;
  const ops::Quant q = quant_of(o.weights);
  if (already_quantized(x.quant, q, source)) return;
  if (q == ops::Quant::None || !ops::quantizable(x.cols)) return;
  owned.emplace_back();
  auto [quants, scales] = quantize_into(owned.back(), pool, q, x.dtype, x.data, x.experts * x.rows, x.cols);
  x.data = quants;
  x.scales = scales;
  x.quant = q;
}

}  // namespace

WeightFormat weight_format_of(ops::Quant q) {
  switch (q) {
    case ops::Quant::Q8_0: return WeightFormat::Q8_0;
    case ops::Quant::Q4_0: return WeightFormat::Q4_0;
    default: return WeightFormat::Native;
  }
}

void prepare_weights(ModelWeights& w, const LoadOptions& o, ops::ThreadPool& pool, const std::string& source) {
  // Routers stay as stored: they are tiny and decide which experts run.
  // (jetmoe quantize mirrors this choice: see src/model/quantize_model.cpp.)
  for (LayerWeights& L : w.layers) {
    prepare_experts(L.attention_input, o, pool, w.owned, source);
    prepare_experts(L.attention_output, o, pool, w.owned, source);
    prepare_matrix(L.kv_proj, o, pool, w.owned, source);
    prepare_experts(L.mlp_input, o, pool, w.owned, source);
    prepare_experts(L.mlp_output, o, pool, w.owned, source);
  }
}

ops::WeightMatrix prepare_head(ops::WeightMatrix m, const LoadOptions& o, ops::ThreadPool& pool,
                               ops::PageBuffer* storage, const std::string& source) {
  std::vector<ops::PageBuffer> owned;
  prepare_matrix(m, o, pool, owned, source);
  if (!owned.empty()) {
    *storage = std::move(owned.front());
  } else if (const int64_t bytes = ops::packed_bytes(m); bytes > 0) {
    // Every sequence's row meets the head at every step; the lookup keeps
    // reading the embedding as stored.
    *storage = ops::PageBuffer(static_cast<size_t>(bytes));
    ops::pack_weights(m, storage->data());
    m.packed = storage->data();
  }
  return m;
}

}  // namespace jetmoe
