#pragma once
// Continuous batching: one thread runs the model over a ragged batch that
// holds every running sequence. Between forward passes it admits queued
// requests into free KV-cache slots, so new streams join without waiting for
// the running ones, and it feeds long prompts in chunks so that a new
// prompt never stalls the running streams for more than one chunk.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "generate/logits_processors.h"
#include "jetmoe/kv_cache.h"
#include "jetmoe/model.h"
#include "jetmoe/tokenizer.h"
#include "serve/request_state.h"

namespace jetmoe {
class JetMoeForCausalLM;
}

namespace jetmoe::serve {

class Metrics;

struct SchedulerOptions {
  int64_t max_batch = 4;         // KV-cache slots = sequences decoded together
  int64_t ctx_size = 2048;       // positions per slot (prompt + completion)
  int64_t max_queue = 64;        // requests waiting for slots before 503
  int64_t prefill_chunk = 256;   // most tokens one forward pass takes
};

class Scheduler {
 public:
  Scheduler(const JetMoeForCausalLM& model, Tokenizer tokenizer, std::vector<int32_t> eos_token_ids, SchedulerOptions options,
            Metrics& metrics);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Admission { Queued, QueueFull, ShuttingDown, TooManyChoices };
  Admission submit(const std::shared_ptr<RequestState>& request);
  // Stops admitting; lets running and queued requests finish for up to
  // `grace`, then ends whatever is left with an error event. Returns when
  // nothing is left.
  void drain(std::chrono::milliseconds grace);
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Sequence;
  void loop();
  void admit_locked();
  void step();
  // A step's token for one sequence: what its sampling parameters pick
  // from its logits row (edited in place). Rows are independent, so a
  // batch's rows are picked on the model's threads at once.
  struct Pick {
    TokenLogprob lp;  // the token, with its logprobs when asked for
    std::string error;
  };
  void pick_token(Sequence& s, float* logits, Pick& pick) const;
  // The rest, in row order on the scheduler thread: counts, metrics, text,
  // stop strings and the event.
  void handle_token(Sequence& s, Pick& pick);

  const JetMoeForCausalLM& model_;
  Tokenizer tokenizer_;
  std::vector<int32_t> eos_;
  SchedulerOptions options_;
  Metrics& metrics_;
  KVCache cache_;

  std::mutex mutex_;
  std::condition_variable cv_;       // wakes the scheduler: work arrived or stop
  std::condition_variable idle_cv_;  // wakes drain(): idle, or stopped
  std::deque<std::shared_ptr<RequestState>> queue_;
  bool draining_ = false;
  bool stop_ = false;
  bool stopped_ = false;
  int64_t running_count_ = 0;

  // Touched by the scheduler thread only.
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<int32_t> free_slots_;
  TokenBatch batch_;
  std::vector<int64_t> logit_rows_;
  Tensor logits_;
  std::vector<Sequence*> sampled_;
  std::vector<std::pair<Sequence*, int64_t>> advanced_;  // sequence, tokens fed this pass
  std::vector<Pick> picks_;
  std::thread thread_;
};

}  // namespace jetmoe::serve
