// Encode throughput of jetmoe's tokenizer (tokenizer.json path) against
// libsentencepiece on the same multi-megabyte mixed-language text, in one run.
//   build/bench_tokenizer [--mb 8] [--reps 3] [--dir tests/data/tokenizer/llama2]
// The text: every encode-case string without typed special tokens (which
// SentencePiece would encode differently), then the demo model's
// validation.txt, repeated to --mb megabytes. Both are timed encoding it line
// by line (one call per line, like prompts) and as one document; the ids are
// checked to be identical, so the comparison is like for like.
#include <sentencepiece_processor.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "jetmoe/tokenizer.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    std::exit(1);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  double best_s = 1e30, first_s = 0;
  size_t tokens = 0;
};

Result measure(int reps, const std::function<size_t()>& run) {
  Result r;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r.tokens = run();
    const double s = seconds_since(t0);
    if (i == 0) r.first_s = s;
    r.best_s = std::min(r.best_s, s);
  }
  return r;
}

void report(const char* name, const Result& r, size_t bytes) {
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("  %-34s first %7.1f MB/s   best %7.1f MB/s  %6.2f M tokens/s  (%zu tokens)\n", name, mb / r.first_s, mb / r.best_s,
              static_cast<double>(r.tokens) / r.best_s / 1e6, r.tokens);
}

}  // namespace

int main(int argc, char** argv) {
  double target_mb = 8;
  int reps = 3;
  std::string dir = std::string(JETMOE_SOURCE_DIR) + "/tests/data/tokenizer/llama2";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mb")) target_mb = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
  }

  std::string unit;
  for (const auto& c : nlohmann::json::parse(slurp(dir + "/encode_cases.json"))) {
    const std::string t = c.at("text");
    if (c.contains("sentencepiece_ids") || t.find('\n') != std::string::npos) continue;
    unit += t + "\n";
  }
  unit += slurp(std::string(JETMOE_SOURCE_DIR) + "/models/jetmoe-kjv-tiny/validation.txt");
  std::string text;
  while (static_cast<double>(text.size()) < target_mb * 1e6) text += unit;
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::printf("text: %.2f MB, %zu lines (encode cases + validation.txt, repeated)\n", static_cast<double>(text.size()) / 1e6, lines.size());

  const jetmoe::Tokenizer ours = jetmoe::Tokenizer::from_pretrained(dir + "/tokenizer.json");
  const jetmoe::Tokenizer ours_model = jetmoe::Tokenizer::from_pretrained(dir + "/tokenizer.model");
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(dir + "/tokenizer.model").ok()) return 1;

  // Same ids, line by line and for the whole document.
  size_t mismatches = 0;
  for (size_t i = 0; i < lines.size() && i < 20000; ++i) {
    std::vector<int> want;
    (void)sp.Encode(lines[i], &want);
    const auto got = ours.encode(lines[i], false);
    mismatches += !std::equal(got.begin(), got.end(), want.begin(), want.end());
  }
  std::printf("id check: %zu mismatching lines of %zu checked\n", mismatches, std::min<size_t>(lines.size(), 20000));

  std::printf("line by line (%d reps; 'first' is the first pass, ours with a cold word cache):\n", reps);
  report("jetmoe tokenizer.json", measure(reps, [&] {
           size_t n = 0;
           for (const auto& l : lines) n += ours.encode(l, false).size();
           return n;
         }), text.size());
  report("jetmoe tokenizer.model (via sp)", measure(reps, [&] {
           size_t n = 0;
           for (const auto& l : lines) n += ours_model.encode(l, false).size();
           return n;
         }), text.size());
  report("libsentencepiece 0.1.97", measure(reps, [&] {
           size_t n = 0;
           std::vector<int> ids;
           for (const auto& l : lines) {
             (void)sp.Encode(l, &ids);
             n += ids.size();
           }
           return n;
         }), text.size());

  std::printf("whole document in one call:\n");
  const jetmoe::Tokenizer fresh = jetmoe::Tokenizer::from_pretrained(dir + "/tokenizer.json");
  std::vector<int32_t> doc_ours;
  report("jetmoe tokenizer.json", measure(reps, [&] {
           doc_ours = fresh.encode(text, false);
           return doc_ours.size();
         }), text.size());
  std::vector<int> doc_sp;
  report("libsentencepiece 0.1.97", measure(reps, [&] {
           (void)sp.Encode(text, &doc_sp);
           return doc_sp.size();
         }), text.size());
  std::printf("whole-document ids identical: %s\n", std::equal(doc_ours.begin(), doc_ours.end(), doc_sp.begin(), doc_sp.end()) ? "yes" : "NO");
  return mismatches == 0 ? 0 : 1;
}
