// Sections: owners (GLFW, Vulkan handles, ImGui) / window state / construction and teardown /
// fonts / frames / screenshots
#include "ui/window.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include <vulkan/vulkan.h>
#define GLFW_INCLUDE_VULKAN
#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_vulkan.h>
#include <fmt/format.h>
#include <imgui.h>
#include <spdlog/spdlog.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "gpu/device_handle.h"
#include "gpu/error.h"
#include "gpu/memory.h"
#include "gpu/swapchain.h"

namespace qvk::ui {
namespace {

// Two frames in flight: the CPU records one while the GPU draws the other.
constexpr uint32_t kFramesInFlight = 2;
constexpr VkClearColorValue kClearColor{{0.10f, 0.10f, 0.12f, 1.0f}};

std::atomic<bool> g_window_open{false};

std::string GlfwErrorText() {
  const char* description = nullptr;
  glfwGetError(&description);
  return description != nullptr ? description : "no details from GLFW";
}

// glfwInit .. glfwTerminate. GLFW is process-wide, hence one window at a time.
class GlfwLibrary {
 public:
  GlfwLibrary() {
    if (g_window_open.exchange(true)) throw Error("Only one QwenVK window can be open at a time.");
    if (glfwInit() != GLFW_TRUE) {
      const std::string why = GlfwErrorText();
      g_window_open = false;
      throw Error(fmt::format("no display: set DISPLAY or run under xvfb-run ({})", why));
    }
    if (glfwVulkanSupported() != GLFW_TRUE) {
      glfwTerminate();
      g_window_open = false;
      throw Error("GLFW cannot find the Vulkan loader (libvulkan.so.1).");
    }
  }
  ~GlfwLibrary() {
    glfwTerminate();
    g_window_open = false;
  }
  GlfwLibrary(const GlfwLibrary&) = delete;
  GlfwLibrary& operator=(const GlfwLibrary&) = delete;
};

struct GlfwWindowDeleter {
  void operator()(GLFWwindow* window) const { glfwDestroyWindow(window); }
};

// What one frame in flight records and synchronizes with. Its own pool, reset whole each frame:
// the Device's pool belongs to the compute thread.
struct FrameSlot {
  CommandPoolHandle pool;
  VkCommandBuffer cmd = VK_NULL_HANDLE;  // freed with the pool
  FenceHandle done;                      // signalled when the frame's submission has finished
  SemaphoreHandle image_acquired;
};

FrameSlot MakeFrameSlot(const Device& device) {
  const VkDevice dev = device.handle();
  FrameSlot slot;
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
  pool_info.queueFamilyIndex = device.queue_family();
  VkCommandPool pool = VK_NULL_HANDLE;
  VK_CHECK(vkCreateCommandPool(dev, &pool_info, nullptr, &pool));
  slot.pool = {dev, pool};
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VK_CHECK(vkAllocateCommandBuffers(dev, &alloc, &slot.cmd));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  fence_info.flags = VK_FENCE_CREATE_SIGNALED_BIT;  // nothing to wait for before the first use
  VkFence fence = VK_NULL_HANDLE;
  VK_CHECK(vkCreateFence(dev, &fence_info, nullptr, &fence));
  slot.done = {dev, fence};
  VkSemaphoreCreateInfo semaphore_info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  VkSemaphore semaphore = VK_NULL_HANDLE;
  VK_CHECK(vkCreateSemaphore(dev, &semaphore_info, nullptr, &semaphore));
  slot.image_acquired = {dev, semaphore};
  return slot;
}

void BeginCommands(VkDevice device, const FrameSlot& slot) {
  VK_CHECK(vkResetCommandPool(device, slot.pool.get(), 0));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  VK_CHECK(vkBeginCommandBuffer(slot.cmd, &begin));
}

void CheckImGuiVkResult(VkResult result) {
  if (result != VK_SUCCESS) ThrowVkFailure("Dear ImGui's Vulkan backend", __FILE__, __LINE__, result);
}

class ImGuiContextOwner {
 public:
  ImGuiContextOwner() {
    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    // The app keeps no imgui.ini in whatever directory it was started from.
    ImGui::GetIO().IniFilename = nullptr;
  }
  ~ImGuiContextOwner() { ImGui::DestroyContext(); }
  ImGuiContextOwner(const ImGuiContextOwner&) = delete;
  ImGuiContextOwner& operator=(const ImGuiContextOwner&) = delete;
};

class ImGuiGlfwBackend {
 public:
  explicit ImGuiGlfwBackend(GLFWwindow* window) {
    if (!ImGui_ImplGlfw_InitForVulkan(window, true)) throw Error("Dear ImGui's GLFW backend failed to start.");
  }
  ~ImGuiGlfwBackend() { ImGui_ImplGlfw_Shutdown(); }
  ImGuiGlfwBackend(const ImGuiGlfwBackend&) = delete;
  ImGuiGlfwBackend& operator=(const ImGuiGlfwBackend&) = delete;
};

class ImGuiVulkanBackend {
 public:
  ImGuiVulkanBackend(ImGui_ImplVulkan_InitInfo info, VkRenderPass render_pass) {
    if (!ImGui_ImplVulkan_Init(&info, render_pass)) throw Error("Dear ImGui's Vulkan backend failed to start.");
  }
  ~ImGuiVulkanBackend() { ImGui_ImplVulkan_Shutdown(); }
  ImGuiVulkanBackend(const ImGuiVulkanBackend&) = delete;
  ImGuiVulkanBackend& operator=(const ImGuiVulkanBackend&) = delete;
};

VkExtent2D FramebufferSize(GLFWwindow* window) {
  int width = 0, height = 0;
  glfwGetFramebufferSize(window, &width, &height);
  return {static_cast<uint32_t>(std::max(width, 0)), static_cast<uint32_t>(std::max(height, 0))};
}

bool SameSize(VkExtent2D a, VkExtent2D b) {
  return a.width == b.width && a.height == b.height;
}

// A key change or a typed character, as GLFW reported it.
struct InputEvent {
  bool is_key = false;
  int key = 0;
  int scancode = 0;
  int action = 0;
  int mods = 0;
  unsigned int code_point = 0;
};

bool IsBgra8(VkFormat format) {
  return format == VK_FORMAT_B8G8R8A8_UNORM || format == VK_FORMAT_B8G8R8A8_SRGB;
}
bool IsRgba8(VkFormat format) {
  return format == VK_FORMAT_R8G8B8A8_UNORM || format == VK_FORMAT_R8G8B8A8_SRGB;
}

}  // namespace

// Declared in teardown order, last first: ImGui before the Vulkan objects it draws with, those
// before the device, the device before the surface, the surface before the window and instance.
struct Window::State {
  GlfwLibrary glfw;
  std::unique_ptr<Instance> instance;
  std::unique_ptr<GLFWwindow, GlfwWindowDeleter> window;
  Surface surface;
  std::vector<DeviceInfo> devices;
  std::string device_note;  // why the saved device was not used
  std::unique_ptr<Device> device;
  std::optional<Swapchain> swapchain;
  VkExtent2D swapchain_size{0, 0};  // the framebuffer size it was last built for
  bool swapchain_stale = false;     // out of date or suboptimal: rebuild before the next frame
  DescriptorPoolHandle descriptor_pool;
  std::vector<FrameSlot> frames;
  uint32_t next_frame = 0;
  ImGuiContextOwner imgui;
  std::optional<ImGuiGlfwBackend> imgui_glfw;
  std::optional<ImGuiVulkanBackend> imgui_vulkan;
  bool fonts_uploaded = false;
  std::optional<std::filesystem::path> screenshot;
  std::deque<InputEvent> pending_input;  // not yet given to ImGui, oldest first
  // Recorded before the next frame draws (texture uploads), one per owner.
  std::vector<std::pair<const void*, std::function<void(VkCommandBuffer)>>> before_drawing;
  VkCommandBuffer drawing = VK_NULL_HANDLE;  // while EndFrame records the draw lists
  uint64_t renderer_starts = 0;
};

namespace {

void QueueKeyCallback(GLFWwindow* window, int key, int scancode, int action, int mods) {
  static_cast<Window*>(glfwGetWindowUserPointer(window))->QueueKey(key, scancode, action, mods);
}
void QueueCharCallback(GLFWwindow* window, unsigned int code_point) {
  static_cast<Window*>(glfwGetWindowUserPointer(window))->QueueChar(code_point);
}

}  // namespace

Window::Window(const WindowOptions& options) {
  if (options.width <= 0 || options.height <= 0) {
    throw Error(fmt::format("A window of {}x{} cannot be opened.", options.width, options.height));
  }
  state_ = std::make_unique<State>();
  State& s = *state_;

  uint32_t extension_count = 0;
  const char** extensions = glfwGetRequiredInstanceExtensions(&extension_count);
  if (extensions == nullptr) {
    throw Error(fmt::format("Vulkan cannot draw into windows on this display ({}).", GlfwErrorText()));
  }
  InstanceOptions instance_options;
  instance_options.extra_extensions.assign(extensions, extensions + extension_count);
  s.instance = std::make_unique<Instance>(instance_options);

  glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API);
  glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_TRUE);
  s.window.reset(glfwCreateWindow(options.width, options.height, options.title.c_str(), nullptr, nullptr));
  if (!s.window) {
    throw Error(fmt::format("Cannot open a {}x{} window: {}", options.width, options.height, GlfwErrorText()));
  }
  VkSurfaceKHR surface = VK_NULL_HANDLE;
  const VkResult surface_result = glfwCreateWindowSurface(s.instance->handle(), s.window.get(), nullptr, &surface);
  if (surface_result != VK_SUCCESS) {
    throw Error(
        fmt::format("Vulkan cannot draw into the window: {} ({})", GlfwErrorText(), VkResultName(surface_result)));
  }
  s.surface = Surface(*s.instance, surface);

  s.devices = EnumerateDevices(*s.instance, surface);
  std::optional<uint32_t> requested = options.device;
  if (!requested && options.preferred_device) {
    const uint32_t saved = *options.preferred_device;
    if (saved < s.devices.size() && s.devices[saved].usable()) {
      requested = saved;
    } else {
      s.device_note = fmt::format("The saved device {} cannot be used ({}); another was chosen.", saved,
                                  saved < s.devices.size() ? s.devices[saved].unusable_reason : "not present");
    }
  }
  const DeviceInfo& chosen = ChooseDevice(s.devices, requested, surface);
  s.device = std::make_unique<Device>(*s.instance, chosen, DeviceOptions{surface});
  s.swapchain_size = FramebufferSize(s.window.get());
  s.swapchain.emplace(*s.device, surface, s.swapchain_size);

  // The 1.86 backend binds one descriptor set, for the font atlas.
  VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &pool_size;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VK_CHECK(vkCreateDescriptorPool(s.device->handle(), &pool_info, nullptr, &pool));
  s.descriptor_pool = {s.device->handle(), pool};

  for (uint32_t i = 0; i < kFramesInFlight; ++i) s.frames.push_back(MakeFrameSlot(*s.device));
  s.imgui_glfw.emplace(s.window.get());
  // Over the backend's own key and character callbacks (its shutdown puts back what was before it).
  glfwSetWindowUserPointer(s.window.get(), this);
  glfwSetKeyCallback(s.window.get(), QueueKeyCallback);
  glfwSetCharCallback(s.window.get(), QueueCharCallback);
  StartRenderer();
  spdlog::debug("window {}x{} on device {} ({}), swapchain {}x{}", options.width, options.height, chosen.index,
                chosen.name, s.swapchain->extent().width, s.swapchain->extent().height);
}

Window::~Window() {
  if (!state_ || !state_->device) return;
  try {
    WaitForFrames();
    // Presentations still wait on the swapchain's semaphores; only the queue knows when they are done.
    state_->device->WaitQueueIdle();
  } catch (const Error& e) {
    spdlog::error("closing the window: {}", e.what());
  }
}

void Window::StartRenderer() {
  State& s = *state_;
  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = s.instance->handle();
  info.PhysicalDevice = s.device->info().physical;
  info.Device = s.device->handle();
  info.QueueFamily = s.device->queue_family();
  info.Queue = s.device->queue();  // not used by the 1.86 backend: every submission goes through Device
  info.PipelineCache = VK_NULL_HANDLE;
  info.DescriptorPool = s.descriptor_pool.get();
  info.Subpass = 0;
  // The backend keeps ImageCount vertex/index buffer pairs and reuses them in turn, one per
  // RenderDrawData. With one pair per frame in flight, a pair is reused only after the fence of
  // the frame that last drew from it was waited.
  info.MinImageCount = kFramesInFlight;
  info.ImageCount = kFramesInFlight;
  info.MSAASamples = VK_SAMPLE_COUNT_1_BIT;
  info.Allocator = nullptr;
  info.CheckVkResultFn = CheckImGuiVkResult;
  s.imgui_vulkan.emplace(info, s.swapchain->render_pass());
  ++s.renderer_starts;
}

Instance& Window::instance() {
  return *state_->instance;
}
Device& Window::device() {
  return *state_->device;
}
const std::vector<DeviceInfo>& Window::devices() const {
  return state_->devices;
}
bool Window::ShouldClose() const {
  return glfwWindowShouldClose(state_->window.get()) == GLFW_TRUE;
}
void Window::RequestClose() {
  glfwSetWindowShouldClose(state_->window.get(), GLFW_TRUE);
}
const std::string& Window::device_note() const {
  return state_->device_note;
}
GLFWwindow* Window::glfw_window() {
  return state_->window.get();
}

float Window::content_scale() const {
  float x = 1.0f, y = 1.0f;
  glfwGetWindowContentScale(state_->window.get(), &x, &y);
  return x;
}

void Window::WaitForFrames() {
  State& s = *state_;
  for (const FrameSlot& slot : s.frames) {
    const VkFence fence = slot.done.get();
    VK_CHECK(vkWaitForFences(s.device->handle(), 1, &fence, VK_TRUE, UINT64_MAX));
  }
}

void Window::RecordBeforeDrawing(const void* owner, std::function<void(VkCommandBuffer)> record) {
  ForgetRecording(owner);
  state_->before_drawing.emplace_back(owner, std::move(record));
}

void Window::ForgetRecording(const void* owner) {
  std::erase_if(state_->before_drawing, [owner](const auto& entry) { return entry.first == owner; });
}

VkCommandBuffer Window::drawing_commands() const {
  return state_->drawing;
}

uint64_t Window::renderer_starts() const {
  return state_->renderer_starts;
}

void Window::RebuildFonts() {
  State& s = *state_;
  const VkDevice dev = s.device->handle();
  WaitForFrames();
  if (s.fonts_uploaded) {
    // The 1.86 backend cannot replace its font texture (a second upload leaks the first);
    // restarting it frees the old one.
    s.imgui_vulkan.reset();
    s.fonts_uploaded = false;
    VK_CHECK(vkResetDescriptorPool(dev, s.descriptor_pool.get(), 0));
    StartRenderer();
  }
  const FrameSlot& slot = s.frames[s.next_frame];
  BeginCommands(dev, slot);
  ImGui_ImplVulkan_CreateFontsTexture(slot.cmd);
  VK_CHECK(vkEndCommandBuffer(slot.cmd));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &slot.cmd;
  const VkFence fence = slot.done.get();
  VK_CHECK(vkResetFences(dev, 1, &fence));
  s.device->Submit(submit, fence);
  VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX));
  ImGui_ImplVulkan_DestroyFontUploadObjects();
  s.fonts_uploaded = true;
}

void Window::QueueKey(int key, int scancode, int action, int mods) {
  state_->pending_input.push_back({.is_key = true, .key = key, .scancode = scancode, .action = action, .mods = mods});
}

void Window::QueueChar(unsigned int code_point) {
  state_->pending_input.push_back({.code_point = code_point});
}

void Window::FeedQueuedInput() {
  State& s = *state_;
  std::vector<int> changed;  // keys that went down or up in this frame
  while (!s.pending_input.empty()) {
    const InputEvent& event = s.pending_input.front();
    if (event.is_key) {
      // A repeat changes nothing ImGui sees (it repeats held keys itself).
      if (event.action != GLFW_REPEAT) {
        if (std::find(changed.begin(), changed.end(), event.key) != changed.end()) return;
        changed.push_back(event.key);
      }
      ImGui_ImplGlfw_KeyCallback(s.window.get(), event.key, event.scancode, event.action, event.mods);
    } else {
      ImGui_ImplGlfw_CharCallback(s.window.get(), event.code_point);
    }
    s.pending_input.pop_front();
  }
}

void Window::BeginFrame(double wait_timeout_s) {
  if (!state_->fonts_uploaded) RebuildFonts();
  if (wait_timeout_s > 0 && state_->pending_input.empty()) {
    glfwWaitEventsTimeout(wait_timeout_s);
  } else {
    glfwPollEvents();
  }
  FeedQueuedInput();
  ImGui_ImplVulkan_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
}

void Window::RecreateSwapchain() {
  State& s = *state_;
  WaitForFrames();
  s.device->WaitQueueIdle();
  s.swapchain_size = FramebufferSize(s.window.get());
  s.swapchain->Recreate(s.swapchain_size);
  s.swapchain_stale = false;
}

namespace {

// Copies the rendered image into a host buffer, then returns the image to the presentation layout.
Buffer RecordReadback(Device& device, VkCommandBuffer cmd, VkImage image, VkExtent2D extent) {
  Buffer pixels = device.allocator().CreateBuffer(VkDeviceSize{extent.width} * extent.height * 4, MemoryKind::Readback);
  RecordImageTransition(cmd, image,
                        {.from = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR,
                         .to = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                         .src_stage = VK_PIPELINE_STAGE_TRANSFER_BIT,
                         .src_access = 0,  // the render pass made its writes available to transfers
                         .dst_stage = VK_PIPELINE_STAGE_TRANSFER_BIT,
                         .dst_access = VK_ACCESS_TRANSFER_READ_BIT});
  VkBufferImageCopy region{};
  region.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
  region.imageExtent = {extent.width, extent.height, 1};
  vkCmdCopyImageToBuffer(cmd, image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, pixels.handle(), 1, &region);
  RecordImageTransition(cmd, image,
                        {.from = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                         .to = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR,
                         .src_stage = VK_PIPELINE_STAGE_TRANSFER_BIT,
                         .src_access = 0,
                         .dst_stage = VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT,
                         .dst_access = 0});
  VkBufferMemoryBarrier to_host{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
  to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  to_host.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  to_host.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  to_host.buffer = pixels.handle();
  to_host.size = VK_WHOLE_SIZE;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 0, nullptr, 1, &to_host, 0,
                       nullptr);
  return pixels;
}

void WritePng(const std::filesystem::path& path, const Buffer& pixels, VkExtent2D extent, VkFormat format) {
  pixels.InvalidateMapped();
  const auto* source = reinterpret_cast<const uint8_t*>(pixels.mapped());
  std::vector<uint8_t> rgba(static_cast<size_t>(extent.width) * extent.height * 4);
  const bool bgra = IsBgra8(format);
  for (size_t i = 0; i < rgba.size(); i += 4) {
    rgba[i + 0] = source[i + (bgra ? 2 : 0)];
    rgba[i + 1] = source[i + 1];
    rgba[i + 2] = source[i + (bgra ? 0 : 2)];
    rgba[i + 3] = 255;  // the window is opaque whatever alpha the blending left
  }
  errno = 0;
  const int written =
      stbi_write_png(path.string().c_str(), static_cast<int>(extent.width), static_cast<int>(extent.height), 4,
                     rgba.data(), static_cast<int>(extent.width * 4));
  if (written == 0) {
    throw Error(fmt::format("Cannot write the screenshot {}: {}", path.string(),
                            errno != 0 ? std::strerror(errno) : "write failed"));
  }
}

}  // namespace

void Window::EndFrame() {
  State& s = *state_;
  const VkDevice dev = s.device->handle();
  ImGui::Render();
  ImDrawData* draw_data = ImGui::GetDrawData();

  const VkExtent2D size = FramebufferSize(s.window.get());
  const bool visible = size.width > 0 && size.height > 0;
  if (s.swapchain_stale || !SameSize(size, s.swapchain_size) || (s.swapchain->empty() && visible)) RecreateSwapchain();
  if (s.swapchain->empty()) return;

  const FrameSlot& slot = s.frames[s.next_frame];
  const VkFence fence = slot.done.get();
  VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX));
  bool suboptimal = false;
  const std::optional<uint32_t> image = s.swapchain->Acquire(slot.image_acquired.get(), suboptimal);
  if (!image) {
    s.swapchain_stale = true;  // nothing was signalled; the next frame rebuilds and draws
    return;
  }
  s.swapchain_stale = suboptimal;

  BeginCommands(dev, slot);
  for (const auto& [owner, record] : s.before_drawing) record(slot.cmd);
  s.before_drawing.clear();
  VkRenderPassBeginInfo pass{VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO};
  pass.renderPass = s.swapchain->render_pass();
  pass.framebuffer = s.swapchain->framebuffer(*image);
  pass.renderArea.extent = s.swapchain->extent();
  VkClearValue clear{};
  clear.color = kClearColor;
  pass.clearValueCount = 1;
  pass.pClearValues = &clear;
  vkCmdBeginRenderPass(slot.cmd, &pass, VK_SUBPASS_CONTENTS_INLINE);
  s.drawing = slot.cmd;
  ImGui_ImplVulkan_RenderDrawData(draw_data, slot.cmd);
  s.drawing = VK_NULL_HANDLE;
  vkCmdEndRenderPass(slot.cmd);
  std::optional<Buffer> screenshot_pixels;
  if (s.screenshot) {
    screenshot_pixels = RecordReadback(*s.device, slot.cmd, s.swapchain->image(*image), s.swapchain->extent());
  }
  VK_CHECK(vkEndCommandBuffer(slot.cmd));

  const VkSemaphore acquired = slot.image_acquired.get();
  const VkSemaphore rendered = s.swapchain->render_finished(*image);
  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.waitSemaphoreCount = 1;
  submit.pWaitSemaphores = &acquired;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &slot.cmd;
  submit.signalSemaphoreCount = 1;
  submit.pSignalSemaphores = &rendered;
  VK_CHECK(vkResetFences(dev, 1, &fence));
  s.device->Submit(submit, fence);
  s.next_frame = (s.next_frame + 1) % kFramesInFlight;
  if (!s.swapchain->Present(*image)) s.swapchain_stale = true;

  if (screenshot_pixels) {
    const std::filesystem::path path = *std::exchange(s.screenshot, std::nullopt);
    VK_CHECK(vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX));
    WritePng(path, *screenshot_pixels, s.swapchain->extent(), s.swapchain->format());
  }
}

void Window::RequestScreenshot(const std::filesystem::path& png) {
  const Swapchain& swapchain = *state_->swapchain;
  if (!swapchain.readable()) {
    throw Error("This display does not let Vulkan read the window's images back; screenshots are unavailable.");
  }
  if (!IsBgra8(swapchain.format()) && !IsRgba8(swapchain.format())) {
    throw Error(fmt::format("Screenshots need an 8-bit RGBA or BGRA window; this display's format is {}.",
                            static_cast<int>(swapchain.format())));
  }
  state_->screenshot = png;
}

}  // namespace qvk::ui
