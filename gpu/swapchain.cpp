// Sections: surface / format and render pass choice / swapchain lifetime / acquire and present
#include "gpu/swapchain.h"

#include <algorithm>
#include <utility>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/instance.h"

namespace qvk {

Surface::Surface(const Instance& instance, VkSurfaceKHR surface) : instance_(instance.handle()), surface_(surface) {}

Surface::~Surface() {
  Release();
}

Surface::Surface(Surface&& other) noexcept
    : instance_(std::exchange(other.instance_, VK_NULL_HANDLE)),
      surface_(std::exchange(other.surface_, VK_NULL_HANDLE)) {}

Surface& Surface::operator=(Surface&& other) noexcept {
  if (this != &other) {
    Release();
    instance_ = std::exchange(other.instance_, VK_NULL_HANDLE);
    surface_ = std::exchange(other.surface_, VK_NULL_HANDLE);
  }
  return *this;
}

void Surface::Release() {
  if (surface_ != VK_NULL_HANDLE) vkDestroySurfaceKHR(instance_, surface_, nullptr);
  surface_ = VK_NULL_HANDLE;
}

namespace {

VkSurfaceFormatKHR ChooseSurfaceFormat(VkPhysicalDevice physical, VkSurfaceKHR surface) {
  uint32_t count = 0;
  VK_CHECK(vkGetPhysicalDeviceSurfaceFormatsKHR(physical, surface, &count, nullptr));
  std::vector<VkSurfaceFormatKHR> formats(count);
  VK_CHECK(vkGetPhysicalDeviceSurfaceFormatsKHR(physical, surface, &count, formats.data()));
  if (formats.empty()) throw Error("The window's Vulkan surface offers no pixel formats.");
  for (VkFormat preferred :
       {VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM, VK_FORMAT_B8G8R8A8_SRGB, VK_FORMAT_R8G8B8A8_SRGB}) {
    for (const auto& f : formats) {
      if (f.format == preferred && f.colorSpace == VK_COLOR_SPACE_SRGB_NONLINEAR_KHR) return f;
    }
  }
  return formats.front();
}

VkRenderPass CreateRenderPass(VkDevice device, VkFormat format) {
  VkAttachmentDescription color{};
  color.format = format;
  color.samples = VK_SAMPLE_COUNT_1_BIT;
  color.loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR;
  color.storeOp = VK_ATTACHMENT_STORE_OP_STORE;
  color.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE;
  color.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE;
  color.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  color.finalLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR;
  VkAttachmentReference color_ref{0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
  VkSubpassDescription subpass{};
  subpass.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS;
  subpass.colorAttachmentCount = 1;
  subpass.pColorAttachments = &color_ref;
  // The image is acquired (the semaphore waited) at the color-output stage: writes wait for it.
  VkSubpassDependency acquire{};
  acquire.srcSubpass = VK_SUBPASS_EXTERNAL;
  acquire.dstSubpass = 0;
  acquire.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  acquire.dstStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  acquire.srcAccessMask = 0;
  acquire.dstAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT;
  // Afterwards the image may be copied out (screenshots): transfers see the finished pixels.
  VkSubpassDependency release{};
  release.srcSubpass = 0;
  release.dstSubpass = VK_SUBPASS_EXTERNAL;
  release.srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  release.dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT;
  release.srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT;
  release.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
  const VkSubpassDependency dependencies[] = {acquire, release};
  VkRenderPassCreateInfo info{VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO};
  info.attachmentCount = 1;
  info.pAttachments = &color;
  info.subpassCount = 1;
  info.pSubpasses = &subpass;
  info.dependencyCount = 2;
  info.pDependencies = dependencies;
  VkRenderPass render_pass = VK_NULL_HANDLE;
  VK_CHECK(vkCreateRenderPass(device, &info, nullptr, &render_pass));
  return render_pass;
}

VkCompositeAlphaFlagBitsKHR ChooseCompositeAlpha(VkCompositeAlphaFlagsKHR supported) {
  for (VkCompositeAlphaFlagBitsKHR mode :
       {VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR, VK_COMPOSITE_ALPHA_INHERIT_BIT_KHR,
        VK_COMPOSITE_ALPHA_PRE_MULTIPLIED_BIT_KHR, VK_COMPOSITE_ALPHA_POST_MULTIPLIED_BIT_KHR}) {
    if ((supported & mode) != 0) return mode;
  }
  return VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR;
}

}  // namespace

Swapchain::Swapchain(Device& device, VkSurfaceKHR surface, VkExtent2D framebuffer_size)
    : device_(&device), surface_(surface) {
  format_ = ChooseSurfaceFormat(device.info().physical, surface);
  VkSurfaceCapabilitiesKHR caps{};
  VK_CHECK(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(device.info().physical, surface, &caps));
  readable_ = (caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_SRC_BIT) != 0;
  render_pass_ = CreateRenderPass(device.handle(), format_.format);
  try {
    Recreate(framebuffer_size);
  } catch (...) {
    Release();
    throw;
  }
}

Swapchain::~Swapchain() {
  Release();
}

Swapchain::Swapchain(Swapchain&& other) noexcept {
  *this = std::move(other);
}

Swapchain& Swapchain::operator=(Swapchain&& other) noexcept {
  if (this != &other) {
    Release();
    device_ = std::exchange(other.device_, nullptr);
    surface_ = std::exchange(other.surface_, VK_NULL_HANDLE);
    format_ = other.format_;
    readable_ = other.readable_;
    render_pass_ = std::exchange(other.render_pass_, VK_NULL_HANDLE);
    swapchain_ = std::exchange(other.swapchain_, VK_NULL_HANDLE);
    extent_ = std::exchange(other.extent_, VkExtent2D{0, 0});
    images_ = std::move(other.images_);
    views_ = std::move(other.views_);
    framebuffers_ = std::move(other.framebuffers_);
    render_finished_ = std::move(other.render_finished_);
    other.images_.clear();
    other.views_.clear();
    other.framebuffers_.clear();
    other.render_finished_.clear();
  }
  return *this;
}

void Swapchain::DestroyImages() {
  const VkDevice device = device_->handle();
  for (VkSemaphore s : render_finished_) vkDestroySemaphore(device, s, nullptr);
  for (VkFramebuffer f : framebuffers_) vkDestroyFramebuffer(device, f, nullptr);
  for (VkImageView v : views_) vkDestroyImageView(device, v, nullptr);
  render_finished_.clear();
  framebuffers_.clear();
  views_.clear();
  images_.clear();
}

void Swapchain::Release() {
  if (device_ == nullptr) return;
  DestroyImages();
  if (swapchain_ != VK_NULL_HANDLE) vkDestroySwapchainKHR(device_->handle(), swapchain_, nullptr);
  if (render_pass_ != VK_NULL_HANDLE) vkDestroyRenderPass(device_->handle(), render_pass_, nullptr);
  swapchain_ = VK_NULL_HANDLE;
  render_pass_ = VK_NULL_HANDLE;
  device_ = nullptr;
}

void Swapchain::Recreate(VkExtent2D framebuffer_size) {
  const VkDevice device = device_->handle();
  VkSurfaceCapabilitiesKHR caps{};
  VK_CHECK(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(device_->info().physical, surface_, &caps));
  // currentExtent is the window's size where the platform decides it (X11, Windows); else the
  // framebuffer size within the allowed range (Wayland).
  VkExtent2D extent = caps.currentExtent;
  if (extent.width == UINT32_MAX) {
    extent.width = std::clamp(framebuffer_size.width, caps.minImageExtent.width, caps.maxImageExtent.width);
    extent.height = std::clamp(framebuffer_size.height, caps.minImageExtent.height, caps.maxImageExtent.height);
  }

  DestroyImages();
  const VkSwapchainKHR old = std::exchange(swapchain_, VK_NULL_HANDLE);
  extent_ = {0, 0};
  if (extent.width == 0 || extent.height == 0 || framebuffer_size.width == 0 || framebuffer_size.height == 0) {
    if (old != VK_NULL_HANDLE) vkDestroySwapchainKHR(device, old, nullptr);
    return;
  }

  // One image more than the minimum, so the app never waits for the presentation engine to
  // release one while the display still shows another.
  uint32_t image_count = caps.minImageCount + 1;
  if (caps.maxImageCount > 0) image_count = std::min(image_count, caps.maxImageCount);
  VkSwapchainCreateInfoKHR info{VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR};
  info.surface = surface_;
  info.minImageCount = image_count;
  info.imageFormat = format_.format;
  info.imageColorSpace = format_.colorSpace;
  info.imageExtent = extent;
  info.imageArrayLayers = 1;
  info.imageUsage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | (readable_ ? VK_IMAGE_USAGE_TRANSFER_SRC_BIT : 0);
  info.imageSharingMode = VK_SHARING_MODE_EXCLUSIVE;
  info.preTransform = caps.currentTransform;
  info.compositeAlpha = ChooseCompositeAlpha(caps.supportedCompositeAlpha);
  info.presentMode = VK_PRESENT_MODE_FIFO_KHR;
  info.clipped = VK_TRUE;
  info.oldSwapchain = old;
  const VkResult created = vkCreateSwapchainKHR(device, &info, nullptr, &swapchain_);
  if (old != VK_NULL_HANDLE) vkDestroySwapchainKHR(device, old, nullptr);
  VK_CHECK(created);
  extent_ = extent;

  uint32_t count = 0;
  VK_CHECK(vkGetSwapchainImagesKHR(device, swapchain_, &count, nullptr));
  images_.resize(count);
  VK_CHECK(vkGetSwapchainImagesKHR(device, swapchain_, &count, images_.data()));
  for (VkImage image : images_) {
    VkImageViewCreateInfo view_info{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
    view_info.image = image;
    view_info.viewType = VK_IMAGE_VIEW_TYPE_2D;
    view_info.format = format_.format;
    view_info.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
    VkImageView view = VK_NULL_HANDLE;
    VK_CHECK(vkCreateImageView(device, &view_info, nullptr, &view));
    views_.push_back(view);

    VkFramebufferCreateInfo fb_info{VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO};
    fb_info.renderPass = render_pass_;
    fb_info.attachmentCount = 1;
    fb_info.pAttachments = &view;
    fb_info.width = extent.width;
    fb_info.height = extent.height;
    fb_info.layers = 1;
    VkFramebuffer framebuffer = VK_NULL_HANDLE;
    VK_CHECK(vkCreateFramebuffer(device, &fb_info, nullptr, &framebuffer));
    framebuffers_.push_back(framebuffer);

    VkSemaphoreCreateInfo semaphore_info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
    VkSemaphore semaphore = VK_NULL_HANDLE;
    VK_CHECK(vkCreateSemaphore(device, &semaphore_info, nullptr, &semaphore));
    render_finished_.push_back(semaphore);
  }
}

std::optional<uint32_t> Swapchain::Acquire(VkSemaphore acquired, bool& suboptimal) {
  uint32_t index = 0;
  const VkResult result =
      vkAcquireNextImageKHR(device_->handle(), swapchain_, UINT64_MAX, acquired, VK_NULL_HANDLE, &index);
  if (result == VK_ERROR_OUT_OF_DATE_KHR) return std::nullopt;
  suboptimal = result == VK_SUBOPTIMAL_KHR;
  if (!suboptimal) VK_CHECK(result);
  return index;
}

bool Swapchain::Present(uint32_t image) {
  VkPresentInfoKHR info{VK_STRUCTURE_TYPE_PRESENT_INFO_KHR};
  info.waitSemaphoreCount = 1;
  info.pWaitSemaphores = &render_finished_[image];
  info.swapchainCount = 1;
  info.pSwapchains = &swapchain_;
  info.pImageIndices = &image;
  return device_->Present(info) == VK_SUCCESS;
}

}  // namespace qvk
