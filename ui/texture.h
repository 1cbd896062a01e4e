#pragma once
// An RGBA image that ImGui draws, on the window's device. ImGui 1.86's Vulkan backend binds one
// descriptor set, its font atlas's, and ignores a draw command's texture id (user textures came in
// 1.87): a texture is drawn between two draw-list callbacks, the first binding its own descriptor
// set (allocated with the backend's descriptor set layout) for the backend's pipeline, the second
// putting the backend's state back. The backend's layout samples through its font sampler, which
// filters linearly: an image drawn one texel per framebuffer pixel shows its texels as they are.
#include <cstdint>
#include <span>

#include <imgui.h>

#include "gpu/device_handle.h"
#include "gpu/memory.h"

namespace qvk::ui {

class Window;

class Texture {
 public:
  // Throws Error when the ImGui backend is not the 1.86 one this reads its layouts from.
  explicit Texture(Window& window);
  ~Texture();  // waits for the frames in flight that draw it
  Texture(const Texture&) = delete;
  Texture& operator=(const Texture&) = delete;

  // Replaces the image with `rgba` (width x height pixels, rows top down, R G B A bytes in each
  // uint32 as ImGui packs colours), uploaded before the next frame draws. Waits for the frames in
  // flight, which may still read the old image.
  void Update(std::span<const uint32_t> rgba, uint32_t width, uint32_t height);
  // Adds the image over the screen rectangle p0..p1 of `draw`; nothing before the first Update.
  void Draw(ImDrawList* draw, ImVec2 p0, ImVec2 p1);
  uint32_t width() const { return image_.width(); }
  uint32_t height() const { return image_.height(); }
  uint64_t uploads() const { return uploads_; }

 private:
  static void BindCallback(const ImDrawList* list, const ImDrawCmd* command);
  // Allocates the set again when the backend restarted since it was made.
  void FollowBackend();
  void WriteDescriptor();  // the image into the set

  Window& window_;
  // The backend's, owned by it (and made again when it restarts).
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout backend_layout_ = VK_NULL_HANDLE;
  uint64_t renderer_starts_ = 0;  // Window::renderer_starts() when the set was made
  DescriptorPoolHandle pool_;
  VkDescriptorSet set_ = VK_NULL_HANDLE;  // freed with the pool
  Image image_;
  Buffer staging_;
  uint64_t uploads_ = 0;
};

}  // namespace qvk::ui
