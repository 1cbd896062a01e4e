#pragma once
// Presentation to a window: the surface (made by the windowing library, owned here) and the
// swapchain with its image views, render pass, framebuffers and per-image semaphores, rebuilt
// when the window's size changes.
#include <cstdint>
#include <optional>
#include <vector>

#include <vulkan/vulkan.h>

namespace qvk {

class Device;
class Instance;

// Move-only owner of a VkSurfaceKHR.
class Surface {
 public:
  Surface() = default;
  Surface(const Instance& instance, VkSurfaceKHR surface);
  ~Surface();
  Surface(Surface&& other) noexcept;
  Surface& operator=(Surface&& other) noexcept;
  Surface(const Surface&) = delete;
  Surface& operator=(const Surface&) = delete;

  VkSurfaceKHR handle() const { return surface_; }

 private:
  void Release();
  VkInstance instance_ = VK_NULL_HANDLE;
  VkSurfaceKHR surface_ = VK_NULL_HANDLE;
};

// Move-only owner of the swapchain and what renders into it. FIFO presentation (every device has
// it, and it never draws faster than the display). A window with a zero-sized framebuffer
// (minimized) gets an empty swapchain: no images until Recreate with a real size.
class Swapchain {
 public:
  // Chooses the surface format once (8-bit UNORM BGRA or RGBA first: ImGui's colors are meant to
  // be stored as they are) and builds the swapchain for `framebuffer_size` in pixels.
  Swapchain(Device& device, VkSurfaceKHR surface, VkExtent2D framebuffer_size);
  ~Swapchain();
  Swapchain(Swapchain&& other) noexcept;
  Swapchain& operator=(Swapchain&& other) noexcept;
  Swapchain(const Swapchain&) = delete;
  Swapchain& operator=(const Swapchain&) = delete;

  // Rebuilds images, views, framebuffers and semaphores for the new size; the render pass and
  // format stay. The caller makes sure the GPU is done with the old ones (Device::WaitQueueIdle).
  void Recreate(VkExtent2D framebuffer_size);

  // The next image to render into; `acquired` is signalled when it is ready. nullopt when the
  // swapchain is out of date (nothing signalled: Recreate, then try again). `suboptimal` is set
  // when the image is usable but the swapchain should be recreated after presenting it.
  std::optional<uint32_t> Acquire(VkSemaphore acquired, bool& suboptimal);
  // Presents `image` once render_finished(image) is signalled; false when the swapchain must be
  // recreated.
  bool Present(uint32_t image);

  bool empty() const { return swapchain_ == VK_NULL_HANDLE; }
  VkExtent2D extent() const { return extent_; }
  VkFormat format() const { return format_.format; }
  VkRenderPass render_pass() const { return render_pass_; }
  uint32_t image_count() const { return static_cast<uint32_t>(images_.size()); }
  VkImage image(uint32_t index) const { return images_[index]; }
  VkFramebuffer framebuffer(uint32_t index) const { return framebuffers_[index]; }
  // Signalled by the submission that renders an image, waited by its presentation. One per image:
  // a presentation may still wait on it while the next frames render.
  VkSemaphore render_finished(uint32_t index) const { return render_finished_[index]; }
  // Whether images can be copied from (VK_IMAGE_USAGE_TRANSFER_SRC_BIT), for screenshots.
  bool readable() const { return readable_; }

 private:
  void DestroyImages();
  void Release();

  Device* device_ = nullptr;
  VkSurfaceKHR surface_ = VK_NULL_HANDLE;
  VkSurfaceFormatKHR format_{};
  bool readable_ = false;
  VkRenderPass render_pass_ = VK_NULL_HANDLE;
  VkSwapchainKHR swapchain_ = VK_NULL_HANDLE;
  VkExtent2D extent_{0, 0};
  std::vector<VkImage> images_;
  std::vector<VkImageView> views_;
  std::vector<VkFramebuffer> framebuffers_;
  std::vector<VkSemaphore> render_finished_;
};

}  // namespace qvk
