// Where the bundled demo model is looked for, and what is said when it is not there (no GPU).
#include "chat/bundled_model.h"

#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace qvk::chat {
namespace {

namespace fs = std::filesystem;

// Sets QWENVK_BUNDLED_MODEL (none: unsets it) for one test, and puts back what was there.
class BundledModelVariable {
 public:
  explicit BundledModelVariable(const std::optional<fs::path>& value) {
    if (const char* before = std::getenv(kName)) before_ = before;
    if (value) {
      setenv(kName, value->c_str(), 1);
    } else {
      unsetenv(kName);
    }
  }
  ~BundledModelVariable() {
    if (before_) {
      setenv(kName, before_->c_str(), 1);
    } else {
      unsetenv(kName);
    }
  }
  BundledModelVariable(const BundledModelVariable&) = delete;
  BundledModelVariable& operator=(const BundledModelVariable&) = delete;

 private:
  static constexpr const char* kName = "QWENVK_BUNDLED_MODEL";
  std::optional<std::string> before_;
};

// The build folders of a checkout, an installed program's share/, then the source tree.
TEST(BundledModelTest, LooksBesideTheProgramThenInTheSourceTree) {
  const BundledModelVariable unset(std::nullopt);
  const fs::path prefix = fs::read_symlink("/proc/self/exe").parent_path().parent_path().lexically_normal();
  const std::vector<fs::path> candidates = BundledModelCandidates();
  // The test binary sits a folder below the build folder, not the checkout: three places.
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(candidates[0], prefix / "assets" / "wordnet-chat");
  EXPECT_EQ(candidates[1], prefix / "share" / "qwenvk" / "wordnet-chat");
  EXPECT_TRUE(candidates[2].is_absolute()) << candidates[2];
  EXPECT_EQ(candidates[2].parent_path().filename(), "assets") << candidates[2];
  EXPECT_EQ(candidates[2].filename(), "wordnet-chat") << candidates[2];
}

TEST(BundledModelTest, TheEnvironmentNamesTheOnlyPlace) {
  const fs::path fixture = test::TestDataDir() / "qwen2-tiny";
  const BundledModelVariable named(fixture);
  EXPECT_EQ(BundledModelCandidates(), std::vector<fs::path>{fixture});
  EXPECT_EQ(FindBundledModel(), fs::canonical(fixture));
  EXPECT_EQ(BundledModelPath(), fs::canonical(fixture));
}

// A folder without a model's config.json is not the model, and the error says where it looked.
TEST(BundledModelTest, AFolderWithoutAModelIsMissing) {
  const test::TempDir empty;
  const BundledModelVariable named(empty.path());
  EXPECT_EQ(FindBundledModel(), std::nullopt);
  test::ExpectMentions(test::ErrorOf([] { BundledModelPath(); }),
                       {"the bundled demo model is missing", "no config.json in " + empty.path().string(),
                        "pass --model with a Hugging Face model folder or a .gguf file"});
}

}  // namespace
}  // namespace qvk::chat
