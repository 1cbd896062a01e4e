// The desktop window on whatever Vulkan device can present (lavapipe under Xvfb here): ImGui
// frames, screenshots read back and checked pixel by pixel, a resize, font rebuilds, and compute
// work on the same device from another thread while frames render. CTest runs this binary under
// xvfb-run with QWENVK_VALIDATION=1; any validation message fails.
#include <atomic>
#include <cstdlib>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <GLFW/glfw3.h>
#include <gtest/gtest.h>
#include <imgui.h>
#include <stb_image.h>

#include "gpu/device.h"
#include "gpu/graph.h"
#include "gpu/instance.h"
#include "gpu/memory.h"
#include "gpu/ops.h"
#include "tests/test_util.h"
#include "ui/window.h"

namespace qvk::test {
namespace {

const ImVec4 kMagenta{1.0f, 0.0f, 1.0f, 1.0f};

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgba;
};

Image ReadPng(const std::filesystem::path& path) {
  Image image;
  int channels = 0;
  unsigned char* data = stbi_load(path.string().c_str(), &image.width, &image.height, &channels, 4);
  EXPECT_NE(data, nullptr) << "cannot read " << path << ": " << stbi_failure_reason();
  if (data == nullptr) return image;
  image.rgba.assign(data, data + static_cast<size_t>(image.width) * image.height * 4);
  stbi_image_free(data);
  return image;
}

size_t CountPixels(const Image& image, uint8_t r, uint8_t g, uint8_t b) {
  size_t count = 0;
  for (size_t i = 0; i < image.rgba.size(); i += 4) {
    if (image.rgba[i] == r && image.rgba[i + 1] == g && image.rgba[i + 2] == b) ++count;
  }
  return count;
}

size_t CountBrightPixels(const Image& image) {
  size_t count = 0;
  for (size_t i = 0; i < image.rgba.size(); i += 4) {
    if (image.rgba[i] > 200 && image.rgba[i + 1] > 200 && image.rgba[i + 2] > 200) ++count;
  }
  return count;
}

size_t DistinctColors(const Image& image) {
  std::set<uint32_t> colors;
  for (size_t i = 0; i < image.rgba.size(); i += 4) {
    colors.insert(uint32_t{image.rgba[i]} << 16 | uint32_t{image.rgba[i + 1]} << 8 | image.rgba[i + 2]);
  }
  return colors.size();
}

VkExtent2D FramebufferSize(ui::Window& window) {
  int width = 0, height = 0;
  glfwGetFramebufferSize(window.glfw_window(), &width, &height);
  return {static_cast<uint32_t>(width), static_cast<uint32_t>(height)};
}

// An ImGui window with a line of text and a 200x60 magenta button, fully inside 640x480.
void RenderFrame(ui::Window& window, int frame) {
  window.BeginFrame(0);
  ImGui::SetNextWindowPos(ImVec2(20, 20));
  ImGui::SetNextWindowSize(ImVec2(360, 200));
  ImGui::Begin("Window test", nullptr, ImGuiWindowFlags_NoSavedSettings);
  ImGui::Text("Hello from QwenVK, frame %d", frame);
  ImGui::PushStyleColor(ImGuiCol_Button, kMagenta);
  ImGui::PushStyleColor(ImGuiCol_ButtonHovered, kMagenta);
  ImGui::PushStyleColor(ImGuiCol_ButtonActive, kMagenta);
  ImGui::Button("Magenta", ImVec2(200, 60));
  ImGui::PopStyleColor(3);
  ImGui::End();
  window.EndFrame();
}

// Takes a screenshot of the next frame and checks that it is the framebuffer's size and shows the
// button and some text on a background.
void ExpectScreenshotShowsTheUi(ui::Window& window, const std::filesystem::path& png, int frame) {
  window.RequestScreenshot(png);
  RenderFrame(window, frame);
  ASSERT_TRUE(std::filesystem::exists(png)) << png;
  const Image image = ReadPng(png);
  const VkExtent2D size = FramebufferSize(window);
  EXPECT_EQ(image.width, static_cast<int>(size.width));
  EXPECT_EQ(image.height, static_cast<int>(size.height));
  // The button's face minus its label: most of 200x60 pixels.
  EXPECT_GT(CountPixels(image, 255, 0, 255), 200u * 60u / 2u) << png;
  EXPECT_GT(CountBrightPixels(image), 50u) << "no text in " << png;
  EXPECT_GT(DistinctColors(image), 10u) << png;
}

// Gathers table rows on the window's device in a loop on its own thread, checking every result,
// until stopped: the kernels' submissions interleave with the window's submissions and presents.
class ComputeLoad {
 public:
  explicit ComputeLoad(Device& device) : thread_([this, &device] { Run(device); }) {}
  ~ComputeLoad() { Stop(); }
  ComputeLoad(const ComputeLoad&) = delete;
  ComputeLoad& operator=(const ComputeLoad&) = delete;

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int iterations() const { return iterations_; }
  bool finished() const { return finished_; }
  int wrong_results() const { return wrong_results_; }
  const std::string& error() const { return error_; }

 private:
  void Run(Device& device) {
    try {
      constexpr uint32_t kRows = 1024, kCols = 64, kCount = kRows * kCols;
      std::vector<float> table(kCount);
      for (uint32_t i = 0; i < kCount; ++i) table[i] = 0.5f * static_cast<float>(i);
      std::vector<uint32_t> ids(kRows);  // the rows in reverse
      for (uint32_t t = 0; t < kRows; ++t) ids[t] = kRows - 1 - t;
      Buffer tb = device.allocator().CreateBuffer(kCount * 4, MemoryKind::Device);
      Buffer ib = device.allocator().CreateBuffer(kRows * 4, MemoryKind::Device);
      Buffer yb = device.allocator().CreateBuffer(kCount * 4, MemoryKind::Device);
      device.Upload(tb, 0, std::as_bytes(std::span(table)));
      device.Upload(ib, 0, std::as_bytes(std::span(ids)));
      std::vector<float> y(kCount);
      while (!stop_) {
        Graph graph(device);
        ops::Embed(graph, {&tb, 0, DType::F32, kRows, kCols}, ib, yb, kRows);
        graph.Run();
        device.Download(yb, 0, std::as_writable_bytes(std::span(y)));
        for (uint32_t i = 0; i < kCount; ++i) {
          if (y[i] != table[ids[i / kCols] * kCols + i % kCols]) {
            ++wrong_results_;
            break;
          }
        }
        ++iterations_;
      }
    } catch (const std::exception& e) {
      error_ = e.what();
    }
    finished_ = true;
  }

  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<int> iterations_{0};
  std::atomic<int> wrong_results_{0};
  std::string error_;
  std::thread thread_;
};

class WindowTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_EQ(Instance::ProcessValidationMessageCount(), 0u); }

  // Screenshots go to a temporary directory, or to QWENVK_TEST_SCREENSHOT_DIR to look at them.
  std::filesystem::path ScreenshotPath(const std::string& name) const {
    const char* keep = std::getenv("QWENVK_TEST_SCREENSHOT_DIR");
    return (keep != nullptr && *keep != '\0' ? std::filesystem::path(keep) : temp_.path()) / name;
  }

 private:
  TempDir temp_;
};

TEST_F(WindowTest, DrawsScreenshotsAndResizesWhileComputeRunsOnTheSameDevice) {
  ui::Window window(ui::WindowOptions{.width = 1024, .height = 700, .title = "QwenVK window test"});
  if (std::getenv("QWENVK_VALIDATION") != nullptr) {
    EXPECT_TRUE(window.instance().validation_enabled());
  }
  ASSERT_FALSE(window.devices().empty());
  EXPECT_TRUE(window.devices()[window.device().info().index].usable());
  EXPECT_GT(window.content_scale(), 0.0f);
  ImGui::GetIO().Fonts->AddFontDefault();
  window.RebuildFonts();

  ComputeLoad compute(window.device());
  // Enough frames that the compute loop has certainly run alongside several of them.
  int frame = 0;
  while (frame < 8 || (compute.iterations() < 3 && !compute.finished())) RenderFrame(window, frame++);
  ExpectScreenshotShowsTheUi(window, ScreenshotPath("window.png"), frame++);

  // A larger font, uploaded again between frames (the old atlas texture must be freed).
  ImFontConfig big;
  big.SizePixels = 20.0f;
  ImGui::GetIO().Fonts->Clear();
  ImGui::GetIO().Fonts->AddFontDefault(&big);
  window.RebuildFonts();
  for (int i = 0; i < 3; ++i) RenderFrame(window, frame++);

  glfwSetWindowSize(window.glfw_window(), 640, 480);
  for (int i = 0; i < 500 && !(FramebufferSize(window).width == 640 && FramebufferSize(window).height == 480); ++i) {
    RenderFrame(window, frame++);
  }
  ASSERT_EQ(FramebufferSize(window).width, 640u);
  ASSERT_EQ(FramebufferSize(window).height, 480u);
  for (int i = 0; i < 3; ++i) RenderFrame(window, frame++);
  ExpectScreenshotShowsTheUi(window, ScreenshotPath("window-resized.png"), frame++);

  compute.Stop();
  EXPECT_EQ(compute.error(), "");
  EXPECT_GE(compute.iterations(), 3);
  EXPECT_EQ(compute.wrong_results(), 0);
}

TEST_F(WindowTest, UnwritableScreenshotAndSecondWindowAreClearErrors) {
  ui::Window window(ui::WindowOptions{.width = 320, .height = 240});
  ExpectMentions(ErrorOf([] { ui::Window second(ui::WindowOptions{}); }), {"one QwenVK window"});
  for (int frame = 0; frame < 2; ++frame) RenderFrame(window, frame);
  const std::filesystem::path unwritable = ScreenshotPath("no-such-directory") / "shot.png";
  window.RequestScreenshot(unwritable);
  ExpectMentions(ErrorOf([&] { RenderFrame(window, 2); }), {"Cannot write the screenshot", unwritable.string()});
  // The failed EndFrame threw after presenting: the window carries on.
  RenderFrame(window, 3);
}

// A key pressed and released between two frames (the app draws frames on events, so a quick tap
// is one) is down for one frame, and what was typed after it arrives after it.
TEST_F(WindowTest, AKeyTappedBetweenTwoFramesIsSeenDownForOne) {
  ui::Window window(ui::WindowOptions{.width = 320, .height = 240});
  RenderFrame(window, 0);
  GLFWwindow* glfw = window.glfw_window();
  // What GLFW calls on keyboard input: the callbacks the window installed.
  const GLFWkeyfun key = glfwSetKeyCallback(glfw, nullptr);
  glfwSetKeyCallback(glfw, key);
  const GLFWcharfun typed = glfwSetCharCallback(glfw, nullptr);
  glfwSetCharCallback(glfw, typed);
  ASSERT_NE(key, nullptr);
  ASSERT_NE(typed, nullptr);
  key(glfw, GLFW_KEY_LEFT_CONTROL, 0, GLFW_PRESS, 0);
  key(glfw, GLFW_KEY_A, 0, GLFW_PRESS, GLFW_MOD_CONTROL);
  key(glfw, GLFW_KEY_A, 0, GLFW_RELEASE, GLFW_MOD_CONTROL);
  key(glfw, GLFW_KEY_LEFT_CONTROL, 0, GLFW_RELEASE, 0);
  typed(glfw, 'x');

  window.BeginFrame(0);
  EXPECT_TRUE(ImGui::IsKeyPressed(GLFW_KEY_A, false));
  EXPECT_TRUE(ImGui::GetIO().KeyCtrl);
  EXPECT_TRUE(ImGui::GetIO().InputQueueCharacters.empty());  // typed after Ctrl+A: not with it
  window.EndFrame();

  window.BeginFrame(0);
  EXPECT_FALSE(ImGui::IsKeyDown(GLFW_KEY_A));
  EXPECT_FALSE(ImGui::GetIO().KeyCtrl);
  ASSERT_EQ(ImGui::GetIO().InputQueueCharacters.Size, 1);
  EXPECT_EQ(ImGui::GetIO().InputQueueCharacters[0], 'x');
  window.EndFrame();
}

TEST_F(WindowTest, NoDisplayIsAClearError) {
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char* name : {"DISPLAY", "WAYLAND_DISPLAY"}) {
    if (const char* value = std::getenv(name); value != nullptr) saved.emplace_back(name, value);
    ::unsetenv(name);
  }
  ExpectMentions(ErrorOf([] { ui::Window window(ui::WindowOptions{}); }), {"no display", "xvfb-run"});
  for (const auto& [name, value] : saved) ::setenv(name.c_str(), value.c_str(), 1);
}

}  // namespace
}  // namespace qvk::test
