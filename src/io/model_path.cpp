#include "jetmoe/model_path.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "jetmoe/error.h"

namespace jetmoe {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

bool looks_like_repo_id(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= s.size()) return false;
  if (s.find('/', slash + 1) != std::string::npos) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.' || c == '@')) return false;
  return s[0] != '.';
}

}  // namespace

std::string hf_hub_cache_dir() {
  if (std::string v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (std::string v = env("HF_HOME"); !v.empty()) return (fs::path(v) / "hub").string();
  if (std::string v = env("XDG_CACHE_HOME"); !v.empty()) return (fs::path(v) / "huggingface" / "hub").string();
  return (fs::path(env("HOME")) / ".cache" / "huggingface" / "hub").string();
}

std::string resolve_model_path(const std::string& spec) {
  if (spec.empty()) throw Error("model: empty path; pass a model folder or a Hugging Face repo id such as jetmoe/jetmoe-8b");
  std::error_code ec;
  if (fs::exists(spec, ec)) return spec;
  if (!looks_like_repo_id(spec))
    throw Error("model: " + spec + " does not exist (expected a model folder, a model file, or a Hugging Face repo id such as jetmoe/jetmoe-8b)");

  std::string repo = spec, revision = "main";
  if (const size_t at = spec.find('@'); at != std::string::npos) {
    repo = spec.substr(0, at);
    revision = spec.substr(at + 1);
    if (revision.empty() || revision.find('/') != std::string::npos) throw Error("model: bad revision in " + spec);
  }
  std::string folder = "models--" + repo;
  folder.replace(folder.find('/'), 1, "--");
  const fs::path cache = hf_hub_cache_dir();
  const fs::path repo_dir = cache / folder;
  const std::string where = "looked for a local folder named " + spec + " and for " + repo_dir.string() +
                            " in the Hugging Face cache (set HF_HUB_CACHE or HF_HOME to use another cache; nothing is downloaded)";
  if (!fs::is_directory(repo_dir, ec)) throw Error("model: " + spec + " not found: " + where);

  // A revision is a ref name (refs/<name> holds the commit) or a commit.
  std::string commit = revision;
  const fs::path ref = repo_dir / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) {
    std::ifstream in(ref);
    std::string line;
    std::getline(in, line);
    commit = trim(line);
  }
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  if (!commit.empty() && fs::is_directory(snapshot, ec)) return snapshot.string();
  // Without refs/main, a cache holding exactly one snapshot is unambiguous.
  std::vector<fs::path> snapshots;
  if (revision == "main" && fs::is_directory(repo_dir / "snapshots", ec))
    for (const auto& e : fs::directory_iterator(repo_dir / "snapshots", ec))
      if (e.is_directory()) snapshots.push_back(e.path());
  if (snapshots.size() == 1) return snapshots[0].string();
  throw Error("model: " + spec + ": the cache folder " + repo_dir.string() + " has no snapshot for revision '" + revision +
              "' (" + std::to_string(snapshots.size()) + " snapshots; expected refs/" + revision + " naming one of them)");
}

}  // namespace jetmoe
