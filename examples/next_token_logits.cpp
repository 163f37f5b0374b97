// The C++ counterpart of transformers' AutoModelForCausalLM snippet: load a
// checkpoint folder, run token ids through it and print the most likely next
// tokens. Usage: next_token_logits MODEL_DIR [TOKEN_ID ...]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#include "jetmoe/error.h"
#include "jetmoe/model.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [TOKEN_ID ...]   (default ids: 1 = <s>)\n", argv[0]);
    return 2;
  }
  try {
    auto model = jetmoe::JetMoeForCausalLM::from_pretrained(argv[1]);
    std::vector<int32_t> ids;
    for (int i = 2; i < argc; ++i) ids.push_back(static_cast<int32_t>(std::atoi(argv[i])));
    if (ids.empty()) ids.push_back(1);
    auto out = model->forward(jetmoe::ModelInput::from_ids({ids}), nullptr, {}, nullptr, /*logits_last_only=*/true);
    const std::vector<float>& logits = out.logits.data;
    std::vector<int> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    std::printf("next-token logits over %zu tokens; top 5:\n", logits.size());
    for (int i = 0; i < 5; ++i) std::printf("  id %6d  logit %.5f\n", order[i], logits[order[i]]);
  } catch (const jetmoe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
