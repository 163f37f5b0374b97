// Model resolution: folders as they are, repo ids through the local
// Hugging Face cache layout (refs -> snapshots), clear errors otherwise.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>

#include "jetmoe/error.h"
#include "jetmoe/model_path.h"
#include "scoped_temp_dir.h"

namespace jetmoe {
namespace {

namespace fs = std::filesystem;

// Sets an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string error_of(const std::string& spec) {
  try {
    resolve_model_path(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelPath, ExistingFolderIsUsedAsIs) {
  testing::ScopedTempDir dir;
  EXPECT_EQ(resolve_model_path(dir.path().string()), dir.path().string());
}

TEST(ModelPath, RepoIdResolvesThroughRefsMain) {
  testing::ScopedTempDir dir;
  ScopedEnv cache("HF_HUB_CACHE", dir.path().string());
  const fs::path repo = dir.path() / "models--jetmoe--jetmoe-8b";
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / "abc123");
  fs::create_directories(repo / "snapshots" / "def456");
  std::ofstream(repo / "refs" / "main") << "def456\n";
  EXPECT_EQ(resolve_model_path("jetmoe/jetmoe-8b"), (repo / "snapshots" / "def456").string());
  EXPECT_EQ(resolve_model_path("jetmoe/jetmoe-8b@abc123"), (repo / "snapshots" / "abc123").string());
  EXPECT_NE(error_of("jetmoe/jetmoe-8b@v9").find("no snapshot for revision 'v9'"), std::string::npos);
}

TEST(ModelPath, HfHomeAndASingleSnapshotWithoutRefs) {
  testing::ScopedTempDir dir;
  ScopedEnv no_hub("HF_HUB_CACHE", "");
  ScopedEnv home("HF_HOME", dir.path().string());
  const fs::path repo = dir.path() / "hub" / "models--org--tiny";
  fs::create_directories(repo / "snapshots" / "0001");
  EXPECT_EQ(resolve_model_path("org/tiny"), (repo / "snapshots" / "0001").string());
}

TEST(ModelPath, MissingModelSaysWhereItLooked) {
  testing::ScopedTempDir dir;
  ScopedEnv cache("HF_HUB_CACHE", dir.path().string());
  const std::string e = error_of("nobody/nothing");
  EXPECT_NE(e.find("models--nobody--nothing"), std::string::npos) << e;
  EXPECT_NE(e.find("nothing is downloaded"), std::string::npos) << e;
  EXPECT_NE(error_of("no_such_folder_here").find("does not exist"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
}

}  // namespace
}  // namespace jetmoe
