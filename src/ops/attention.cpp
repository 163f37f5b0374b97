#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention_kernels.h"
#include "ops/convert.h"
#include "ops/cpu_features.h"
#include "ops/thread_pool.h"

namespace jetmoe::ops {

namespace {

// One cached element as f32.
struct ReadF32 {
  using T = float;
  static float one(const float* p) { return *p; }
};
struct ReadF16 {
  using T = uint16_t;
  static float one(const uint16_t* p) { return f16_to_f32(*p); }
};
struct ReadBF16 {
  using T = uint16_t;
  static float one(const uint16_t* p) { return bf16_to_f32(*p); }
};

template <class R>
void attention_portable(ThreadPool& pool, const float* q, int64_t num_tokens, const int64_t* rows, const int64_t* positions,
                        int64_t num_q_heads, int64_t head_dim, const KVView& kv, float* out) {
  using T = typename R::T;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const int64_t tasks = num_tokens * num_q_heads;
  pool.parallel_for(tasks, 4, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> scores;
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t h = task % num_q_heads;
      const int64_t n = task / num_q_heads;
      const int64_t b = rows[n];
      const int64_t kvh = h % kv.num_kv_heads;
      const float* qv = q + task * head_dim;
      float* o = out + task * head_dim;
      const int64_t visible = positions[n] + 1;
      // Sized once per cache capacity, so decode does not allocate.
      if (scores.size() < static_cast<size_t>(kv.capacity)) scores.resize(static_cast<size_t>(kv.capacity));
      const int32_t* mask = kv.mask + b * kv.capacity;
      const T* kbase = static_cast<const T*>(kv.keys) + b * kv.row_stride + kvh * kv.head_stride;
      const T* vbase = static_cast<const T*>(kv.values) + b * kv.row_stride + kvh * kv.head_stride;
      float mx = -INFINITY;
      for (int64_t s = 0; s < visible; ++s) {
        if (!mask[s]) continue;
        const T* k = kbase + s * kv.position_stride;
        float dot = 0.0f;
        for (int64_t i = 0; i < head_dim; ++i) dot += qv[i] * R::one(k + i);
        scores[static_cast<size_t>(s)] = dot * scale;
        mx = std::max(mx, scores[static_cast<size_t>(s)]);
      }
      for (int64_t i = 0; i < head_dim; ++i) o[i] = 0.0f;
      if (mx == -INFINITY) continue;
      float sum = 0.0f;
      for (int64_t s = 0; s < visible; ++s) {
        if (!mask[s]) continue;
        float& p = scores[static_cast<size_t>(s)];
        p = std::exp(p - mx);
        sum += p;
      }
      const float inv = 1.0f / sum;
      for (int64_t s = 0; s < visible; ++s) {
        if (!mask[s]) continue;
        const float p = scores[static_cast<size_t>(s)] * inv;
        const T* v = vbase + s * kv.position_stride;
        for (int64_t i = 0; i < head_dim; ++i) o[i] += p * R::one(v + i);
      }
    }
  });
}

}  // namespace

void attention(ThreadPool& pool, const float* q, int64_t num_tokens, const int64_t* rows, const int64_t* positions,
               int64_t num_q_heads, int64_t head_dim, const KVView& kv, float* out) {
  if (cpu_features().avx2_fma && head_dim % 8 == 0) {
    // One task per run of consecutive tokens and KV head i: the query heads
    // h = i, i + H, ... that share KV head i, of up to `run` tokens, read its
    // keys and values together, once. In a long prefill that divides the
    // cache bytes attention reads by `run`. Tokens of different rows share
    // nothing, so a batch of decode steps (one token per row) keeps a task
    // per token and KV head.
    const int64_t H = kv.num_kv_heads, per_token = (num_q_heads + H - 1) / H;
    int64_t longest = 1;
    for (int64_t n = 1, length = 1; n < num_tokens; ++n) {
      length = rows[n] == rows[n - 1] ? length + 1 : 1;
      longest = std::max(longest, length);
    }
    const int64_t run = std::min(longest, std::max<int64_t>(1, kernels::kAttendMaxQueries / per_token));
    const int64_t runs = (num_tokens + run - 1) / run;
    const size_t element = dtype_size(kv.dtype);
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    // One kernel for every call with this head size, so a token's bits do
    // not depend on the batch it came in.
    const auto attend = cpu_features().avx512 && kernels::avx512_attends(head_dim) ? kernels::avx512_attend
                                                                                  : kernels::avx2_attend;
    pool.parallel_for(runs * H, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t i = task % H, n_end = std::min(num_tokens, (task / H + 1) * run);
        // Tokens of one cache row at a time: a batch's run may span rows.
        for (int64_t n0 = task / H * run, n1; n0 < n_end; n0 = n1) {
          const int64_t b = rows[n0];
          for (n1 = n0 + 1; n1 < n_end && rows[n1] == b;) ++n1;
          kernels::AttendQuery queries[kernels::kAttendMaxQueries];
          int64_t count = 0;
          const size_t row = static_cast<size_t>(b * kv.row_stride + i * kv.head_stride) * element;
          auto flush = [&] {
            attend(queries, count, static_cast<const uint8_t*>(kv.keys) + row, static_cast<const uint8_t*>(kv.values) + row,
                   kv.dtype, kv.position_stride, kv.mask + b * kv.capacity, head_dim, scale);
            count = 0;
          };
          for (int64_t n = n0; n < n1; ++n)
            for (int64_t h = i; h < num_q_heads; h += H) {
              const int64_t offset = (n * num_q_heads + h) * head_dim;
              queries[count++] = {q + offset, out + offset, positions[n] + 1};
              if (count == kernels::kAttendMaxQueries) flush();
            }
          if (count > 0) flush();
        }
      }
    });
    return;
  }
  switch (kv.dtype) {
    case DType::F16: return attention_portable<ReadF16>(pool, q, num_tokens, rows, positions, num_q_heads, head_dim, kv, out);
    case DType::BF16: return attention_portable<ReadBF16>(pool, q, num_tokens, rows, positions, num_q_heads, head_dim, kv, out);
    default: return attention_portable<ReadF32>(pool, q, num_tokens, rows, positions, num_q_heads, head_dim, kv, out);
  }
}

void attention(ThreadPool& pool, const float* q, int64_t batch, int64_t q_len, int64_t num_q_heads, int64_t head_dim,
               const KVView& kv, int64_t past, float* out) {
  std::vector<int64_t> rows(static_cast<size_t>(batch * q_len)), positions(rows.size());
  for (int64_t n = 0; n < batch * q_len; ++n) {
    rows[static_cast<size_t>(n)] = n / q_len;
    positions[static_cast<size_t>(n)] = past + n % q_len;
  }
  attention(pool, q, batch * q_len, rows.data(), positions.data(), num_q_heads, head_dim, kv, out);
}

}  // namespace jetmoe::ops
