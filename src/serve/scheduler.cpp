#include "serve/scheduler.h"

#include <algorithm>
#include <random>
#include <string_view>
#include <unordered_map>

#include "generate/logits_processors.h"
#include "generate/sampling.h"
#include "jetmoe/error.h"
#include "jetmoe/model.h"
#include "ops/thread_pool.h"
#include "serve/metrics.h"

namespace jetmoe::serve {

using Clock = std::chrono::steady_clock;

struct Scheduler::Sequence {
  Sequence(std::shared_ptr<RequestState> r, int c, int32_t s, const Tokenizer& tok)
      : req(std::move(r)),
        choice(c),
        slot(s),
        tokens(req->request.prompts[static_cast<size_t>(c)]),
        prompt_len(static_cast<int64_t>(tokens.size())),
        rng(req->request.sampling.seed ? *req->request.sampling.seed + static_cast<uint64_t>(c) : std::random_device{}()),
        decoder(tok, /*skip_special_tokens=*/true, tokens) {}
  std::shared_ptr<RequestState> req;
  int choice;
  int32_t slot;
  std::vector<int32_t> tokens;  // prompt, then what was generated
  int64_t prompt_len;
  int64_t filled = 0;           // positions in the KV cache
  int64_t generated = 0;
  std::unordered_map<int32_t, int> counts;  // generated tokens, for the penalties
  gen::SamplingRng rng;
  IncrementalDecoder decoder;  // continues after the prompt
  std::string pending;  // decoded text held back: it may begin a stop string
  Clock::time_point last_token;
  bool done = false;
};

Scheduler::Scheduler(const JetMoeForCausalLM& model, Tokenizer tokenizer, std::vector<int32_t> eos, SchedulerOptions options,
                     Metrics& metrics)
    : model_(model),
      tokenizer_(std::move(tokenizer)),
      eos_(std::move(eos)),
      options_(options),
      metrics_(metrics),
      cache_(model.make_kv_cache(options.max_batch, options.ctx_size)) {
  if (options_.prefill_chunk < 1) throw Error("prefill chunk must be at least 1 token");
  for (int64_t s = options_.max_batch - 1; s >= 0; --s) free_slots_.push_back(static_cast<int32_t>(s));
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Scheduler::Admission Scheduler::submit(const std::shared_ptr<RequestState>& request) {
  if (static_cast<int64_t>(request->request.prompts.size()) > options_.max_batch) return Admission::TooManyChoices;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_) return Admission::ShuttingDown;
    if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) return Admission::QueueFull;
    queue_.push_back(request);
  }
  cv_.notify_all();
  return Admission::Queued;
}

void Scheduler::drain(std::chrono::milliseconds grace) {
  const auto deadline = Clock::now() + grace;
  std::unique_lock<std::mutex> lock(mutex_);
  draining_ = true;
  cv_.notify_all();
  idle_cv_.wait_until(lock, deadline, [&] { return queue_.empty() && running_count_ == 0; });
  stop_ = true;
  cv_.notify_all();
  idle_cv_.wait(lock, [&] { return stopped_; });
}

void Scheduler::admit_locked() {
  while (!queue_.empty()) {
    const std::shared_ptr<RequestState>& front = queue_.front();
    if (front->cancelled) {
      queue_.pop_front();
      continue;
    }
    const auto need = front->request.prompts.size();
    if (free_slots_.size() < need) break;
    int64_t prompt_tokens = 0;
    for (size_t c = 0; c < need; ++c) {
      const int32_t slot = free_slots_.back();
      free_slots_.pop_back();
      running_.push_back(std::make_unique<Sequence>(front, static_cast<int>(c), slot, tokenizer_));
      prompt_tokens += running_.back()->prompt_len;
    }
    front->prompt_tokens = prompt_tokens;
    metrics_.tokens(prompt_tokens, 0);
    queue_.pop_front();
  }
}

void Scheduler::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (stop_) break;
      admit_locked();
      running_count_ = static_cast<int64_t>(running_.size());
      metrics_.set_queue(static_cast<int64_t>(queue_.size()), running_count_);
      if (running_.empty()) {
        idle_cv_.notify_all();
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        continue;
      }
    }
    step();
  }
  // Whatever is left when the grace period ends is given up, never dropped
  // silently: every choice gets a final event.
  std::unique_lock<std::mutex> lock(mutex_);
  for (auto& s : running_)
    if (!s->done) s->req->push(Event{s->choice, "", {}, FinishReason::Cancelled, "the server is shutting down"});
  running_.clear();
  for (auto& r : queue_)
    for (size_t c = 0; c < r->request.prompts.size(); ++c)
      r->push(Event{static_cast<int>(c), "", {}, FinishReason::Cancelled, "the server is shutting down"});
  queue_.clear();
  running_count_ = 0;
  stopped_ = true;
  idle_cv_.notify_all();
}

void Scheduler::step() {
  // Sequences whose client went away free their slot before the next pass.
  std::erase_if(running_, [&](const std::unique_ptr<Sequence>& s) {
    const bool leave = s->done || s->req->cancelled;
    if (leave) free_slots_.push_back(s->slot);
    return leave;
  });
  if (running_.empty()) return;

  // Decode steps first (one token each), then prompt chunks within what is
  // left of the per-pass token budget, oldest request first.
  // Reused from step to step: only the forward pass itself allocates.
  TokenBatch& batch = batch_;
  std::vector<int64_t>& logit_rows = logit_rows_;
  std::vector<Sequence*>& sampled = sampled_;
  std::vector<std::pair<Sequence*, int64_t>>& advanced = advanced_;
  batch.token_ids.clear();
  batch.seq.clear();
  batch.pos.clear();
  logit_rows.clear();
  sampled.clear();
  advanced.clear();
  auto feed = [&](Sequence& s, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      batch.token_ids.push_back(s.tokens[static_cast<size_t>(s.filled + i)]);
      batch.seq.push_back(s.slot);
      batch.pos.push_back(static_cast<int32_t>(s.filled + i));
    }
    advanced.emplace_back(&s, count);
    if (s.filled + count == static_cast<int64_t>(s.tokens.size())) {
      logit_rows.push_back(static_cast<int64_t>(batch.token_ids.size()) - 1);
      sampled.push_back(&s);
    }
  };
  for (auto& s : running_)
    if (s->filled >= s->prompt_len) feed(*s, static_cast<int64_t>(s->tokens.size()) - s->filled);
  int64_t budget = std::max<int64_t>(options_.prefill_chunk - static_cast<int64_t>(batch.token_ids.size()), 1);
  for (auto& s : running_) {
    if (s->filled >= s->prompt_len || budget == 0) continue;
    const int64_t take = std::min(budget, s->prompt_len - s->filled);
    feed(*s, take);
    budget -= take;
  }
  metrics_.batch(static_cast<int64_t>(advanced.size()), static_cast<int64_t>(batch.token_ids.size()));

  Tensor& logits = logits_;
  try {
    model_.forward_batch(batch, cache_, logit_rows, logits);
  } catch (const std::exception& e) {
    for (auto& [s, n] : advanced) {
      s->req->push(Event{s->choice, "", {}, FinishReason::Cancelled, std::string("generation failed: ") + e.what()});
      s->done = true;
    }
    return;
  }
  for (auto& [s, n] : advanced) s->filled += n;
  const auto V = static_cast<size_t>(model_.config().vocab_size);
  // Sampling a 32000-token row takes 35-90 us; eight of them one after
  // another came to a quarter or more of a demo-model step.
  picks_.resize(sampled.size());
  model_.model().thread_pool().parallel_for(static_cast<int64_t>(sampled.size()), 1, [&](int64_t r0, int64_t r1) {
    for (auto r = static_cast<size_t>(r0); r < static_cast<size_t>(r1); ++r) {
      picks_[r].error.clear();
      try {
        pick_token(*sampled[r], &logits.data[r * V], picks_[r]);
      } catch (const std::exception& e) {
        picks_[r].error = e.what();
      }
    }
  });
  for (size_t r = 0; r < sampled.size(); ++r) handle_token(*sampled[r], picks_[r]);
  metrics_.tokens(0, static_cast<int64_t>(sampled.size()));
}

namespace {

// Length of the longest suffix of `text` that is a proper prefix of a stop
// string: that much must wait for the next token before it can be sent.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t len = std::min(text.size(), s.size() - 1); len > hold; --len)
      if (text.substr(text.size() - len) == std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
  return hold;
}

// Where the first stop string starts in `text`, or npos.
size_t first_stop(std::string_view text, const std::vector<std::string>& stops) {
  size_t at = std::string::npos;
  for (const std::string& stop : stops) at = std::min(at, text.find(stop));
  return at;
}

}  // namespace

void Scheduler::pick_token(Sequence& s, float* logits, Pick& pick) const {
  // Per thread, grown once to the vocabulary.
  struct Scratch {
    std::vector<float> logprobs, probs;
    std::vector<int32_t> order;
    gen::WarpScratch warp;
  };
  thread_local Scratch t;
  const SamplingParams& p = s.req->request.sampling;
  const int64_t V = model_.config().vocab_size;
  // The step's row for this sequence, read by nothing after this: bias,
  // penalties and warpers edit it in place (a copy per sequence per step
  // was 5% of a batched step's main thread).
  const std::span<float> scores(logits, static_cast<size_t>(V));
  TokenLogprob& lp = pick.lp;
  lp.top.clear();
  if (p.top_logprobs >= 0) {  // of the model's own distribution: before any edit
    t.logprobs.assign(scores.begin(), scores.end());
    gen::log_softmax(t.logprobs);
  }
  for (const auto& [token, bias] : p.logit_bias) scores[static_cast<size_t>(token)] += bias;
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
    for (const auto& [token, count] : s.counts)
      scores[static_cast<size_t>(token)] -= static_cast<float>(p.presence_penalty + p.frequency_penalty * count);
  if (p.temperature == 0.0) {
    lp.token = gen::argmax(scores);
  } else {
    gen::temperature(p.temperature, scores);
    if (p.top_p < 1.0) gen::top_p(p.top_p, 1, scores, t.warp);
    lp.token = gen::sample_from_scores(scores, s.rng.uniform(), t.probs);
  }
  if (p.top_logprobs >= 0) {
    lp.logprob = t.logprobs[static_cast<size_t>(lp.token)];
    if (p.top_logprobs > 0) {
      t.order.resize(static_cast<size_t>(V));
      for (int32_t i = 0; i < V; ++i) t.order[static_cast<size_t>(i)] = i;
      const auto k = static_cast<size_t>(std::min<int64_t>(p.top_logprobs, V));
      std::partial_sort(t.order.begin(), t.order.begin() + static_cast<std::ptrdiff_t>(k), t.order.end(),
                        [&](int32_t a, int32_t b) { return t.logprobs[static_cast<size_t>(a)] > t.logprobs[static_cast<size_t>(b)]; });
      for (size_t i = 0; i < k; ++i) lp.top.emplace_back(t.order[i], t.logprobs[static_cast<size_t>(t.order[i])]);
    }
  }
}

void Scheduler::handle_token(Sequence& s, Pick& pick) {
  const SamplingParams& p = s.req->request.sampling;
  if (!pick.error.empty()) {
    s.req->push(Event{s.choice, "", {}, FinishReason::Cancelled, "sampling failed: " + pick.error});
    s.done = true;
    return;
  }
  const int32_t token = pick.lp.token;
  const auto now = Clock::now();
  if (s.generated == 0) {
    if (s.choice == 0) metrics_.time_to_first_token(std::chrono::duration<double>(now - s.req->arrival).count());
  } else {
    metrics_.inter_token_latency(std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;
  ++s.generated;
  ++s.counts[token];
  s.tokens.push_back(token);
  ++s.req->completion_tokens;

  Event e;
  e.choice = s.choice;
  if (p.top_logprobs >= 0) e.logprobs.push_back(std::move(pick.lp));
  const std::vector<std::string>& stops = s.req->request.stop;
  if (std::find(eos_.begin(), eos_.end(), token) != eos_.end()) {
    e.text = s.pending + s.decoder.flush();
    e.finish = FinishReason::Stop;
  } else {
    s.pending += s.decoder.push(token);
    size_t at = first_stop(s.pending, stops);
    if (at != std::string::npos) {
      e.text = s.pending.substr(0, at);
      e.finish = FinishReason::Stop;
    } else if (s.generated >= s.req->request.max_tokens || static_cast<int64_t>(s.tokens.size()) >= options_.ctx_size) {
      e.text = s.pending + s.decoder.flush();
      // The flushed bytes may complete a stop string too.
      at = first_stop(e.text, stops);
      if (at != std::string::npos) e.text.resize(at);
      e.finish = at != std::string::npos ? FinishReason::Stop : FinishReason::Length;
    } else {
      const size_t keep = held_back(s.pending, stops);
      e.text = s.pending.substr(0, s.pending.size() - keep);
      s.pending.erase(0, s.pending.size() - keep);
    }
  }
  if (e.finish != FinishReason::None) {
    s.done = true;
    s.pending.clear();
  }
  if (!e.text.empty() || !e.logprobs.empty() || e.finish != FinishReason::None) s.req->push(std::move(e));
}

}  // namespace jetmoe::serve
