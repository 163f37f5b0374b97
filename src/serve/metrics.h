#pragma once
// Server counters, gauges and histograms, rendered in Prometheus' text
// exposition format for GET /metrics. Thread-safe.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace jetmoe::serve {

struct Histogram {
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bucket (not cumulative); last = +Inf
  double sum = 0.0;
  uint64_t count = 0;
};

class Metrics {
 public:
  Metrics();
  void request_finished(const std::string& endpoint, int status);
  void request_cancelled();
  void tokens(int64_t prompt, int64_t generated);
  void time_to_first_token(double seconds);
  void inter_token_latency(double seconds);
  void batch(int64_t sequences, int64_t tokens);
  void set_queue(int64_t queued, int64_t running);
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t cancelled_ = 0;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  int64_t queued_ = 0, running_ = 0;
  Histogram ttft_, itl_, batch_sequences_, batch_tokens_;
};

}  // namespace jetmoe::serve
