// The model picker's directory listing on a temporary tree, and the popup drawn without a GPU.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <imgui.h>

#include "tests/test_util.h"
#include "ui/file_picker.h"

namespace qvk::ui {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Names(const DirListing& listing) {
  std::vector<std::string> names;
  for (const DirEntry& entry : listing.entries) names.push_back(entry.name);
  return names;
}

class FilePickerTree : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path root = dir_.path();
    fs::create_directories(root / "zeta");
    fs::create_directories(root / "alpha");
    fs::create_directories(root / "Qwen2-0.5B");
    dir_.Write("Qwen2-0.5B/config.json", "{}");
    fs::create_directories(root / "config-is-a-folder/config.json");
    fs::create_directories(root / ".cache");
    dir_.Write("model-q8.gguf", std::string(1000, 'x'));
    dir_.Write("Big.GGUF", "");
    dir_.Write("notes.txt", "not a model");
    dir_.Write("gguf", "no extension");
    dir_.Write(".hidden.gguf", "");
    fs::create_symlink(root / "alpha", root / "link-to-alpha");
    fs::create_symlink(root / "missing", root / "broken.gguf");
  }

  qvk::test::TempDir dir_;
};

TEST_F(FilePickerTree, ListsFoldersFirstThenGgufFilesByName) {
  const DirListing listing = ListDirectory(dir_.path(), false);
  EXPECT_EQ(listing.error, "");
  const std::vector<DirEntry> expected = {{"alpha", EntryKind::Folder},
                                          {"config-is-a-folder", EntryKind::Folder},
                                          {"link-to-alpha", EntryKind::Folder},
                                          {"Qwen2-0.5B", EntryKind::ModelFolder},
                                          {"zeta", EntryKind::Folder},
                                          {"Big.GGUF", EntryKind::GgufFile, 0},
                                          {"model-q8.gguf", EntryKind::GgufFile, 1000}};
  EXPECT_EQ(listing.entries, expected);
}

TEST_F(FilePickerTree, HiddenEntriesOnlyWhenAsked) {
  const DirListing listing = ListDirectory(dir_.path(), true);
  EXPECT_EQ(Names(listing),
            (std::vector<std::string>{".cache", "alpha", "config-is-a-folder", "link-to-alpha", "Qwen2-0.5B", "zeta",
                                      ".hidden.gguf", "Big.GGUF", "model-q8.gguf"}));
}

TEST_F(FilePickerTree, UnreadableFoldersReportAnError) {
  const DirListing missing = ListDirectory(dir_.path() / "missing", false);
  EXPECT_TRUE(missing.entries.empty());
  qvk::test::ExpectMentions(missing.error, {"Cannot open", "missing", "No such file"});
  const DirListing file = ListDirectory(dir_.path() / "notes.txt", false);
  EXPECT_TRUE(file.entries.empty());
  qvk::test::ExpectMentions(file.error, {"notes.txt", "Not a directory"});
  EXPECT_EQ(ListDirectory(dir_.path() / "alpha", false).error, "");
  EXPECT_TRUE(ListDirectory(dir_.path() / "alpha", false).entries.empty());
}

TEST_F(FilePickerTree, ModelFolderNeedsAConfigFile) {
  EXPECT_TRUE(IsModelFolder(dir_.path() / "Qwen2-0.5B"));
  EXPECT_FALSE(IsModelFolder(dir_.path() / "config-is-a-folder"));
  EXPECT_FALSE(IsModelFolder(dir_.path() / "alpha"));
  EXPECT_TRUE(IsModelFolder(qvk::test::TestDataDir() / "qwen2-tiny"));
}

TEST_F(FilePickerTree, PopupDrawsWithoutAWindowSystem) {
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;
  io.DisplaySize = ImVec2(1280.0f, 800.0f);
  io.DeltaTime = 1.0f / 60.0f;
  unsigned char* pixels = nullptr;
  int width = 0;
  int height = 0;
  io.Fonts->GetTexDataAsRGBA32(&pixels, &width, &height);

  FilePicker picker;
  EXPECT_FALSE(picker.is_open());
  for (const fs::path& start : {dir_.path() / "model-q8.gguf", dir_.path() / "missing" / "deeper", fs::path()}) {
    picker.Open(start);
    EXPECT_TRUE(picker.is_open());
    for (int frame = 0; frame < 3; ++frame) {  // a popup appears hidden for a frame while it sizes itself
      ImGui::NewFrame();
      EXPECT_EQ(picker.Draw(), std::nullopt);
      ImGui::Render();
    }
    EXPECT_GT(ImGui::GetDrawData()->TotalVtxCount, 0);
    EXPECT_TRUE(picker.is_open());
  }
  ImGui::DestroyContext();
}

}  // namespace
}  // namespace qvk::ui
