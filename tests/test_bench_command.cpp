// `jetmoe bench` end to end on the demo model: the report's keys and that
// its numbers are consistent with each other; no timing thresholds.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "demo_model.h"
#include "cli_runner.h"

namespace jetmoe::testing {
namespace {

TEST(BenchCommand, JsonReportPerWeightFormat) {
  ScopedTempDir dir;
  for (const std::string weights : {"bf16", "q8_0", "q4_0"}) {
    SCOPED_TRACE(weights);
    const CliResult r = run_cli(dir, "bench --model " + kDemo + " --prompt-tokens 8 --new-tokens 4 --repetitions 1 --json --weights " + weights);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    for (const char* key : {"prefill_tokens_per_s", "decode_tokens_per_s", "decode_bytes_per_token", "read_bandwidth_gb_s",
                            "roofline_fraction", "peak_rss_mb"}) {
      ASSERT_TRUE(j.contains(key)) << key;
      EXPECT_GT(j[key].get<double>(), 0.0) << key;
    }
    EXPECT_EQ(j["weights"], weights);
    const double fraction = j["decode_tokens_per_s"].get<double>() * j["decode_bytes_per_token"].get<double>() /
                            (j["read_bandwidth_gb_s"].get<double>() * 1e9);
    EXPECT_NEAR(j["roofline_fraction"].get<double>(), fraction, 1e-9 + 1e-6 * fraction);
    EXPECT_NE(r.err.find("repetition 1/1"), std::string::npos) << "progress goes to stderr";
  }
}

// A quantised .gguf runs as stored, so the report names its format, not the
// default --weights bf16.
TEST(BenchCommand, ReportsTheFormatAGgufIsStoredIn) {
  ScopedTempDir dir;
  const std::string gguf = dir.file("demo-q4_0.gguf");
  CliResult r = run_cli(dir, "quantize --model " + kDemo + " --type q4_0 --output " + gguf);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(dir, "bench --model " + gguf + " --prompt-tokens 4 --new-tokens 2 --repetitions 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["weights"], "q4_0");
  r = run_cli(dir, "bench --model " + gguf + " --prompt-tokens 4 --new-tokens 2 --repetitions 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(weights q4_0, compute f32)"), std::string::npos) << r.out;
}

TEST(BenchCommand, QuantisedWeightsReadFewerBytesPerToken) {
  ScopedTempDir dir;
  double bytes[3];
  int i = 0;
  for (const std::string weights : {"bf16", "q8_0", "q4_0"}) {
    const CliResult r = run_cli(dir, "bench --model " + kDemo + " --prompt-tokens 4 --new-tokens 2 --repetitions 1 --json --weights " + weights);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    bytes[i++] = nlohmann::json::parse(r.out)["decode_bytes_per_token"].get<double>();
  }
  // The demo model's matrices all quantise: 34 and 18 bytes per 32 weights
  // against 64, plus the same KV bytes.
  EXPECT_LT(bytes[1], 0.6 * bytes[0]);
  EXPECT_LT(bytes[2], 0.65 * bytes[1]);
}

TEST(BenchCommand, SixteenBitKVCacheReadsHalfTheKVBytes) {
  ScopedTempDir dir;
  double bytes[2];
  for (int i = 0; i < 2; ++i) {
    const std::string kv = i ? "f16" : "f32";
    const CliResult r = run_cli(dir, "bench --model " + kDemo + " --prompt-tokens 300 --new-tokens 2 --repetitions 1 --json --kv-dtype " + kv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["kv_dtype"], kv);
    bytes[i] = j["decode_bytes_per_token"].get<double>();
  }
  // Per decoded token at ~301 positions the demo model's f32 cache reads
  // 301 x 4 layers x 2 x 64 x 4 B = 616 KB; f16 reads half of that.
  EXPECT_NEAR(bytes[0] - bytes[1], 301.5 * 4 * 2 * 64 * 2, 301.5 * 4 * 2 * 64 * 2 * 0.05);
}

TEST(BenchCommand, BatchedDecodeSharesTheWeightsAmongItsSequences) {
  ScopedTempDir dir;
  double bytes[2];
  for (int i = 0; i < 2; ++i) {
    const int batch = i ? 4 : 1;
    const CliResult r = run_cli(dir, "bench --model " + kDemo +
                                         " --prompt-tokens 8 --new-tokens 4 --repetitions 1 --json --batch " +
                                         std::to_string(batch));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["batch"], batch);
    bytes[i] = j["decode_bytes_per_token"].get<double>();
  }
  // Per token, four sequences read the 8.2 MB LM head a quarter as often as
  // one does (the experts they route to differ, so those shrink less).
  EXPECT_LT(bytes[1], 0.5 * bytes[0]);
  EXPECT_GT(bytes[1], 8.192e6 / 4);
  const CliResult bad = run_cli(dir, "bench --model " + kDemo + " --batch 0");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--batch: 0, expected at least 1"), std::string::npos) << bad.err;
}

TEST(BenchCommand, RejectsUnknownModes) {
  ScopedTempDir dir;
  CliResult r = run_cli(dir, "bench --model " + kDemo + " --weights q5_1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'q5_1', expected bf16, q8_0 or q4_0"), std::string::npos) << r.err;
  r = run_cli(dir, "bench --model " + kDemo + " --compute f16");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'f16', expected f32 or bf16"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace jetmoe::testing
