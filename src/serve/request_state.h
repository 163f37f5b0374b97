#pragma once
// What the HTTP side and the scheduler share about one request: its inputs,
// and a channel of events (text pieces, token log-probabilities, finish) the
// scheduler fills and the connection's thread drains.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jetmoe::serve {

// How the next token is chosen, as OpenAI's request fields define it.
struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;
  // OpenAI: logit[t] -= presence_penalty * (count[t] > 0) + frequency_penalty * count[t],
  // counting the tokens generated so far.
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::optional<uint64_t> seed;
  // -1: no log-probabilities; k >= 0: the chosen token's and the k most likely.
  int top_logprobs = -1;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;
};

enum class FinishReason { None, Stop, Length, Cancelled };

struct Event {
  int choice = 0;
  std::string text;
  std::vector<TokenLogprob> logprobs;  // of the tokens produced with this event
  FinishReason finish = FinishReason::None;
  std::string error;  // set when the server gave the request up (shutdown)
};

struct GenerationRequest {
  // One prompt per choice (OpenAI's n copies of each prompt, in order).
  std::vector<std::vector<int32_t>> prompts;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  SamplingParams sampling;
};

class RequestState {
 public:
  using Clock = std::chrono::steady_clock;
  // A streaming reader wakes for every event; a non-streaming one only when
  // a choice finishes, so that waiting costs the model's cores nothing.
  RequestState(GenerationRequest r, bool streaming) : request(std::move(r)), arrival(Clock::now()), streaming_(streaming) {}

  const GenerationRequest request;
  const Clock::time_point arrival;
  std::atomic<bool> cancelled{false};

  void push(Event e) {
    const bool wake = streaming_ || e.finish != FinishReason::None;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.push_back(std::move(e));
    }
    if (wake) cv_.notify_all();
  }
  // Moves the pending events into `out`, waiting up to `timeout` for one.
  void wait(std::deque<Event>& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
    while (!events_.empty()) {
      out.push_back(std::move(events_.front()));
      events_.pop_front();
    }
  }

  // Written by the scheduler only.
  std::atomic<int64_t> prompt_tokens{0};
  std::atomic<int64_t> completion_tokens{0};

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  const bool streaming_;
};

}  // namespace jetmoe::serve
