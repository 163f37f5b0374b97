#include "serve/metrics.h"

#include <cstdio>
#include <sstream>

namespace jetmoe::serve {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      batch_sequences_({1, 2, 4, 8, 16, 32, 64}),
      batch_tokens_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

void Metrics::request_finished(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::request_cancelled() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++cancelled_;
}

void Metrics::tokens(int64_t prompt, int64_t generated) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += static_cast<uint64_t>(prompt);
  generation_tokens_ += static_cast<uint64_t>(generated);
}

void Metrics::time_to_first_token(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  ttft_.observe(s);
}

void Metrics::inter_token_latency(double s) {
  std::lock_guard<std::mutex> lock(mutex_);
  itl_.observe(s);
}

void Metrics::batch(int64_t sequences, int64_t tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_sequences_.observe(static_cast<double>(sequences));
  batch_tokens_.observe(static_cast<double>(tokens));
}

void Metrics::set_queue(int64_t queued, int64_t running) {
  std::lock_guard<std::mutex> lock(mutex_);
  queued_ = queued;
  running_ = running;
}

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void histogram(std::ostringstream& o, const char* name, const char* help, const Histogram& h) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cum += h.counts[i];
    o << name << "_bucket{le=\"" << number(h.bounds[i]) << "\"} " << cum << "\n";
  }
  cum += h.counts.back();
  o << name << "_bucket{le=\"+Inf\"} " << cum << "\n" << name << "_sum " << number(h.sum) << "\n" << name << "_count " << h.count << "\n";
}

}  // namespace

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream o;
  o << "# HELP jetmoe_requests_total HTTP requests answered, by endpoint and status code.\n"
       "# TYPE jetmoe_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    o << "jetmoe_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  o << "# HELP jetmoe_requests_cancelled_total Generations stopped because the client went away.\n"
       "# TYPE jetmoe_requests_cancelled_total counter\njetmoe_requests_cancelled_total "
    << cancelled_ << "\n";
  o << "# HELP jetmoe_prompt_tokens_total Prompt tokens processed.\n# TYPE jetmoe_prompt_tokens_total counter\n"
       "jetmoe_prompt_tokens_total "
    << prompt_tokens_ << "\n";
  o << "# HELP jetmoe_generation_tokens_total Tokens generated.\n# TYPE jetmoe_generation_tokens_total counter\n"
       "jetmoe_generation_tokens_total "
    << generation_tokens_ << "\n";
  o << "# HELP jetmoe_queue_depth Requests waiting for a KV-cache slot.\n# TYPE jetmoe_queue_depth gauge\njetmoe_queue_depth "
    << queued_ << "\n";
  o << "# HELP jetmoe_running_sequences Sequences in the running batch.\n# TYPE jetmoe_running_sequences gauge\n"
       "jetmoe_running_sequences "
    << running_ << "\n";
  histogram(o, "jetmoe_time_to_first_token_seconds", "Time from arrival to the first generated token.", ttft_);
  histogram(o, "jetmoe_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.", itl_);
  histogram(o, "jetmoe_batch_sequences", "Sequences sharing one forward pass.", batch_sequences_);
  histogram(o, "jetmoe_batch_tokens", "Tokens (prefill chunks and decode steps) in one forward pass.", batch_tokens_);
  return o.str();
}

}  // namespace jetmoe::serve
