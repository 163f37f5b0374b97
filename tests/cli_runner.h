#pragma once
// Runs the built `jetmoe` binary with arguments (and optional stdin text),
// capturing its exit code, stdout and stderr through files in a temp dir.
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "scoped_temp_dir.h"

namespace jetmoe::testing {

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline CliResult run_cli(const ScopedTempDir& dir, const std::string& args, const std::string& stdin_text = "") {
  const auto in = dir.path() / "cli_stdin.txt", out = dir.path() / "cli_stdout.txt", err = dir.path() / "cli_stderr.txt";
  std::ofstream(in, std::ios::binary) << stdin_text;
  const std::string cmd = std::string(JETMOE_CLI_PATH) + " " + args + " <" + in.string() + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace jetmoe::testing
