// The ragged batch path (continuous batching): sequences of different
// lengths, admitted at different steps and sharing forward calls, must get
// the logits each would get alone.
#include <gtest/gtest.h>

#include <cmath>

#include "jetmoe/error.h"
#include "jetmoe/model.h"

namespace jetmoe {
namespace {

const JetMoeForCausalLM& demo() {
  static const auto lm = JetMoeForCausalLM::from_pretrained(JETMOE_MODELS_DIR "/jetmoe-kjv-tiny");
  return *lm;
}

// Logits of every position of `ids` run alone, [T, V].
Tensor alone(const std::vector<int32_t>& ids) { return demo().forward(ModelInput::from_ids({ids})).logits; }

double max_diff(const float* a, const float* b, int64_t n) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - b[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  return worst;
}

TEST(TokenBatch, RaggedStepsMatchEachSequenceAlone) {
  const JetMoeForCausalLM& lm = demo();
  const int64_t V = lm.config().vocab_size;
  const std::vector<std::vector<int32_t>> seqs = {
      {1, 512, 3478, 278, 6462, 29892, 322, 1286},
      {1, 1126, 4177, 1497},
      {1, 450, 3186, 310, 278, 365, 1955, 29928, 471, 2041, 304},
  };
  std::vector<Tensor> ref;
  for (const auto& s : seqs) ref.push_back(alone(s));

  // Row 2 is a stale row from an earlier, longer sequence: the new sequence
  // put there must not see it.
  KVCache cache(lm.config(), 3, 16);
  {
    TokenBatch stale;
    for (int32_t p = 0; p < 14; ++p) {
      stale.token_ids.push_back(100 + p);
      stale.seq.push_back(2);
      stale.pos.push_back(p);
    }
    (void)lm.forward_batch(stale, cache, {});
  }
  // Step 1: seq 0 prefills 5 tokens, seq 1 its whole prompt.
  // Step 2: seq 0 the rest in one chunk, seq 1 nothing, seq 2 prefills 6 in row 2.
  // Then steps of one token each for everyone still going.
  std::vector<int32_t> done(3, 0);
  std::vector<std::vector<int32_t>> plan = {{5, 4, 0}, {3, 0, 6}, {0, 0, 3}, {0, 0, 1}, {0, 0, 1}};
  for (const auto& step : plan) {
    TokenBatch batch;
    std::vector<int64_t> logit_rows;
    std::vector<std::pair<int32_t, int32_t>> checks;  // (seq, position)
    for (int32_t s = 0; s < 3; ++s) {
      for (int32_t i = 0; i < step[static_cast<size_t>(s)]; ++i) {
        const int32_t p = done[static_cast<size_t>(s)]++;
        batch.token_ids.push_back(seqs[static_cast<size_t>(s)][static_cast<size_t>(p)]);
        batch.seq.push_back(s);
        batch.pos.push_back(p);
        logit_rows.push_back(static_cast<int64_t>(batch.token_ids.size()) - 1);
        checks.emplace_back(s, p);
      }
    }
    const Tensor logits = lm.forward_batch(batch, cache, logit_rows);
    ASSERT_EQ(logits.shape, (std::vector<int64_t>{static_cast<int64_t>(checks.size()), V}));
    for (size_t r = 0; r < checks.size(); ++r) {
      const auto [s, p] = checks[r];
      EXPECT_LE(max_diff(&logits.data[r * static_cast<size_t>(V)], &ref[static_cast<size_t>(s)].data[static_cast<size_t>(p * V)], V), 1e-4)
          << "sequence " << s << " position " << p;
    }
  }
}

TEST(TokenBatch, BadBatchesAreErrors) {
  const JetMoeForCausalLM& lm = demo();
  KVCache cache(lm.config(), 2, 8);
  auto message = [&](const TokenBatch& b, const std::vector<int64_t>& rows) {
    try {
      (void)lm.forward_batch(b, cache, rows);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{}, {}, {}}, {}).find("no tokens"), std::string::npos);
  EXPECT_NE(message({{1, 2}, {0}, {0, 1}}, {}).find("2 token ids but 1 seq"), std::string::npos);
  EXPECT_NE(message({{32000}, {0}, {0}}, {}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(message({{1}, {2}, {0}}, {}).find("KV-cache row 2"), std::string::npos);
  EXPECT_NE(message({{1}, {0}, {8}}, {}).find("position 8, outside [0, 8)"), std::string::npos);
  EXPECT_NE(message({{1}, {0}, {0}}, {1}).find("logit row 1 outside"), std::string::npos);
}

}  // namespace
}  // namespace jetmoe
