#pragma once
// The desktop window: GLFW, Dear ImGui (GLFW + Vulkan backends) drawn on the same Vulkan device
// that runs the model, event-driven frames, and PNG screenshots of what was presented.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpu/device.h"
#include "gpu/instance.h"

struct GLFWwindow;

namespace qvk::ui {

struct WindowOptions {
  int width = 1280;  // in screen coordinates (scaled by the monitor's content scale where the platform does that)
  int height = 800;
  std::string title = "QwenVK";
  std::optional<uint32_t> device;  // as `--device N`; else QWENVK_DEVICE, else the best that can present
  // The device saved in the settings: used when it can present to the window, else the choice is
  // automatic and device_note() says why (a removed GPU must not keep the app from starting).
  std::optional<uint32_t> preferred_device;
};

// One window per process (GLFW is process-wide). Every method runs on the thread that made the
// window, except device(), whose Device serializes queue use with other threads.
// Those other threads must be done with device() before the Window is destroyed.
class Window {
 public:
  // Throws Error when there is no display, no Vulkan device can present to the window, or the
  // window cannot be made. Validation follows QWENVK_VALIDATION, as for every Instance.
  explicit Window(const WindowOptions& options);
  ~Window();
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  Instance& instance();
  Device& device();
  // Every device with the reason it cannot be used (presenting to this window included).
  const std::vector<DeviceInfo>& devices() const;
  // Why the saved device was not used; empty when it was, or none was saved.
  const std::string& device_note() const;

  bool ShouldClose() const;
  void RequestClose();
  // The monitor's content scale (1 on ordinary displays, 2 on HiDPI ones): size fonts by it.
  float content_scale() const;
  GLFWwindow* glfw_window();

  // Uploads ImGui's font atlas as it is now (io.Fonts, set up by the caller). Call it between
  // frames; BeginFrame uploads the default font if it was never called.
  void RebuildFonts();

  // Waits for events for up to `wait_timeout_s` seconds (0: only takes what is pending), then
  // starts an ImGui frame.
  void BeginFrame(double wait_timeout_s);
  // Keyboard input as GLFW's callbacks deliver it; the --script driver types through these too.
  // ImGui 1.86 reads key state once per frame, so a key pressed and released between two frames
  // would never be seen down: input is queued, and each frame takes it in order up to the second
  // change of any one key, which waits for the next frame (that frame comes at once).
  void QueueKey(int key, int scancode, int action, int mods);
  void QueueChar(unsigned int code_point);

  // Renders and presents the ImGui frame; rebuilds the swapchain when the window's size changed;
  // writes a requested screenshot. Draws nothing while the window is minimized.
  void EndFrame();
  // For Texture (ui/texture.h): `record` runs on the next frame's command buffer before it draws
  // (replacing what `owner` asked for before); ForgetRecording drops it. While EndFrame records
  // ImGui's draw lists, drawing_commands() is the command buffer they go to (draw callbacks bind
  // with it). WaitForFrames returns once no frame in flight reads what it drew with.
  void RecordBeforeDrawing(const void* owner, std::function<void(VkCommandBuffer)> record);
  void ForgetRecording(const void* owner);
  VkCommandBuffer drawing_commands() const;
  // Counts the starts of ImGui's Vulkan backend (RebuildFonts restarts it, making its layouts again).
  uint64_t renderer_starts() const;
  void WaitForFrames();

  // The next presented frame is written to `png` as 8-bit RGBA, at the framebuffer's size.
  // Throws Error when the display's images cannot be read back; EndFrame throws Error when the
  // file cannot be written.
  void RequestScreenshot(const std::filesystem::path& png);

 private:
  struct State;
  void FeedQueuedInput();
  void RecreateSwapchain();
  void StartRenderer();
  std::unique_ptr<State> state_;
};

}  // namespace qvk::ui
