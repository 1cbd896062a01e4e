#include "ui/texture.h"

#include <cstring>

#include <backends/imgui_impl_vulkan.h>
#include <fmt/format.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/error.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

// The first members of the 1.86 backend's ImGui_ImplVulkan_Data (imgui_impl_vulkan.cpp), which its
// header does not declare, behind io.BackendRendererUserData: the layouts a texture binds with.
static_assert(IMGUI_VERSION_NUM == 18600, "Texture reads the Vulkan backend of Dear ImGui 1.86");
struct BackendHead {
  ImGui_ImplVulkan_InitInfo init;
  VkRenderPass render_pass;
  VkDeviceSize buffer_memory_alignment;
  VkPipelineCreateFlags pipeline_create_flags;
  VkDescriptorSetLayout descriptor_set_layout;
  VkPipelineLayout pipeline_layout;
  VkDescriptorSet font_descriptor_set;
};

const BackendHead& Backend(Window& window) {
  const auto* backend = static_cast<const BackendHead*>(ImGui::GetIO().BackendRendererUserData);
  // What the backend was started with (Window::StartRenderer) must read back: else the members
  // are not where 1.86 has them.
  if (backend == nullptr || backend->init.Device != window.device().handle() ||
      backend->init.Instance != window.instance().handle() || backend->descriptor_set_layout == VK_NULL_HANDLE ||
      backend->pipeline_layout == VK_NULL_HANDLE) {
    throw Error("Dear ImGui's Vulkan backend is not the 1.86 one QwenVK draws images with.");
  }
  return *backend;
}

}  // namespace

Texture::Texture(Window& window) : window_(window) {
  Backend(window);
  VkDescriptorPoolSize pool_size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &pool_size;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VK_CHECK(vkCreateDescriptorPool(window.device().handle(), &pool_info, nullptr, &pool));
  pool_ = {window.device().handle(), pool};
  FollowBackend();
}

void Texture::FollowBackend() {
  const BackendHead& backend = Backend(window_);
  if (renderer_starts_ == window_.renderer_starts()) return;
  // The backend was restarted (Window::RebuildFonts, after waiting for every frame): its layouts
  // and font sampler are new, and the old set refers to what it destroyed.
  const VkDevice dev = window_.device().handle();
  VK_CHECK(vkResetDescriptorPool(dev, pool_.get(), 0));
  renderer_starts_ = window_.renderer_starts();
  set_layout_ = backend.descriptor_set_layout;
  backend_layout_ = backend.pipeline_layout;
  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = pool_.get();
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &set_layout_;
  VK_CHECK(vkAllocateDescriptorSets(dev, &alloc, &set_));
  if (image_) WriteDescriptor();
}

void Texture::WriteDescriptor() {
  VkDescriptorImageInfo image_info{};
  image_info.imageView = image_.view();
  image_info.imageLayout = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL;  // the sampler is the layout's
  VkWriteDescriptorSet write{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
  write.dstSet = set_;
  write.descriptorCount = 1;
  write.descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
  write.pImageInfo = &image_info;
  vkUpdateDescriptorSets(window_.device().handle(), 1, &write, 0, nullptr);
}

Texture::~Texture() {
  window_.ForgetRecording(this);
  window_.WaitForFrames();
}

void Texture::Update(std::span<const uint32_t> rgba, uint32_t width, uint32_t height) {
  if (width == 0 || height == 0 || rgba.size() != size_t{width} * height) {
    throw Error(fmt::format("an image of {}x{} pixels needs {} values, not {}", width, height, size_t{width} * height,
                            rgba.size()));
  }
  window_.WaitForFrames();
  FollowBackend();
  Device& device = window_.device();
  if (!image_ || image_.width() != width || image_.height() != height) {
    image_ = device.allocator().CreateImage(width, height, VK_FORMAT_R8G8B8A8_UNORM,
                                            VK_IMAGE_USAGE_TRANSFER_DST_BIT | VK_IMAGE_USAGE_SAMPLED_BIT);
    WriteDescriptor();
  }
  const VkDeviceSize bytes = rgba.size_bytes();
  if (!staging_ || staging_.size() < bytes) staging_ = device.allocator().CreateBuffer(bytes, MemoryKind::Upload);
  std::memcpy(staging_.mapped(), rgba.data(), bytes);
  staging_.FlushMapped();
  ++uploads_;
  window_.RecordBeforeDrawing(
      this, [image = image_.handle(), staging = staging_.handle(), width, height](VkCommandBuffer cmd) {
        // The frames that read the old contents are done (Update waited for them): they are discarded.
        RecordImageTransition(cmd, image,
                              {.from = VK_IMAGE_LAYOUT_UNDEFINED,
                               .to = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
                               .src_stage = VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
                               .src_access = 0,
                               .dst_stage = VK_PIPELINE_STAGE_TRANSFER_BIT,
                               .dst_access = VK_ACCESS_TRANSFER_WRITE_BIT});
        VkBufferImageCopy region{};
        region.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
        region.imageExtent = {width, height, 1};
        vkCmdCopyBufferToImage(cmd, staging, image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &region);
        RecordImageTransition(cmd, image,
                              {.from = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
                               .to = VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL,
                               .src_stage = VK_PIPELINE_STAGE_TRANSFER_BIT,
                               .src_access = VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dst_stage = VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT,
                               .dst_access = VK_ACCESS_SHADER_READ_BIT});
      });
}

void Texture::BindCallback(const ImDrawList*, const ImDrawCmd* command) {
  const auto* texture = static_cast<const Texture*>(command->UserCallbackData);
  vkCmdBindDescriptorSets(texture->window_.drawing_commands(), VK_PIPELINE_BIND_POINT_GRAPHICS,
                          texture->backend_layout_, 0, 1, &texture->set_, 0, nullptr);
}

void Texture::Draw(ImDrawList* draw, ImVec2 p0, ImVec2 p1) {
  if (!image_) return;
  FollowBackend();
  draw->AddCallback(&Texture::BindCallback, this);
  // The id only keeps this quad out of the font's draw command; the callback chose the image.
  draw->AddImage(reinterpret_cast<ImTextureID>(set_), p0, p1);
  draw->AddCallback(ImDrawCallback_ResetRenderState, nullptr);
}

}  // namespace qvk::ui
