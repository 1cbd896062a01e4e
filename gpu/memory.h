#pragma once
// Device memory: large blocks sub-allocated into buffers. One VkBuffer per Buffer, bound to a
// range of a block, so descriptor ranges never see a neighbour's bytes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include <vulkan/vulkan.h>

namespace qvk {

class Device;
struct MemoryBlock;

// `value` rounded up to a multiple of `alignment` (a binding offset, a block's start, an atom).
constexpr VkDeviceSize AlignUp(VkDeviceSize value, VkDeviceSize alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Every Buffer's usage: bound to kernels, copied to and from.
constexpr VkBufferUsageFlags kBufferUsage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

enum class MemoryKind {
  Device,    // kernels' working memory; host-mapped too where memory is unified (no staging then)
  Upload,    // host-visible, write-combined: staging and per-step parameters
  Readback,  // host-visible, cached where possible: results read by the host
  Host,      // system memory the GPU reads over the bus: weights that do not fit the GPU budget
};

struct Allocation {
  MemoryBlock* block = nullptr;
  VkDeviceSize offset = 0;
  VkDeviceSize size = 0;
};

class Allocator;

// Move-only owner of a VkBuffer and its piece of device memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Allocator* allocator, VkBuffer buffer, Allocation allocation, VkDeviceSize size, std::byte* mapped,
         bool coherent);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  VkBuffer handle() const { return buffer_; }
  VkDeviceSize size() const { return size_; }
  // Host pointer to the contents, or nullptr when the memory is not host-visible.
  std::byte* mapped() const { return mapped_; }
  // Makes device writes visible to the host on non-coherent memory (no-op on coherent).
  void InvalidateMapped() const;
  // Makes host writes visible to the device on non-coherent memory.
  void FlushMapped() const;
  explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }

 private:
  void Release();
  Allocator* allocator_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  Allocation allocation_;
  VkDeviceSize size_ = 0;
  std::byte* mapped_ = nullptr;
  bool coherent_ = true;
};

// Move-only owner of a 2D VkImage (one mip level, one layer, optimal tiling), its own device
// memory and a colour view of it: the few images the window draws (an attention map's texture)
// get dedicated memory rather than share blocks with buffers, so no image ever neighbours a
// buffer within bufferImageGranularity.
class Image {
 public:
  Image() = default;
  Image(VkDevice device, VkImage image, VkDeviceMemory memory, VkImageView view, uint32_t width, uint32_t height);
  ~Image();
  Image(Image&& other) noexcept;
  Image& operator=(Image&& other) noexcept;
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  VkImage handle() const { return image_; }
  VkImageView view() const { return view_; }
  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }
  explicit operator bool() const { return image_ != VK_NULL_HANDLE; }

 private:
  void Release();
  VkDevice device_ = VK_NULL_HANDLE;
  VkImage image_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  VkImageView view_ = VK_NULL_HANDLE;
  uint32_t width_ = 0, height_ = 0;
};

// One whole-image layout change of a single-level colour image (an Image's, or a swapchain's),
// recorded as a pipeline barrier from (src_stage, src_access) to (dst_stage, dst_access).
struct ImageTransition {
  VkImageLayout from, to;
  VkPipelineStageFlags src_stage;
  VkAccessFlags src_access;
  VkPipelineStageFlags dst_stage;
  VkAccessFlags dst_access;
};
void RecordImageTransition(VkCommandBuffer cmd, VkImage image, const ImageTransition& t);

class Allocator {
 public:
  explicit Allocator(Device& device);
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Throws Error (not VK_CHECK) when the device is out of memory: the caller can tell the user.
  Buffer CreateBuffer(VkDeviceSize size, MemoryKind kind);
  // A buffer over `size` bytes of host memory at `pointer`, imported (VK_EXT_external_memory_host)
  // into a host-visible, coherent memory type; both multiples of the device's
  // host_import_alignment, the memory kept alive by the caller while the buffer lives. Not
  // mapped: the host reaches the bytes through `pointer`. Throws Error saying why when the driver
  // cannot import them.
  Buffer ImportHostAllocation(void* pointer, VkDeviceSize size);
  // A device-local image of `format` for `usage`, in VK_IMAGE_LAYOUT_UNDEFINED; Error when the
  // device is out of memory.
  Image CreateImage(uint32_t width, uint32_t height, VkFormat format, VkImageUsageFlags usage);

  VkDeviceSize bytes_in_use() const { return bytes_in_use_; }
  VkDeviceSize bytes_reserved() const { return bytes_reserved_; }

 private:
  friend class Buffer;
  void Free(const Allocation& allocation);
  // Flags a memory type must have and flags it must not.
  struct MemoryWant {
    VkMemoryPropertyFlags required = 0;
    VkMemoryPropertyFlags excluded = 0;
  };
  // The first type among type_bits that meets a want, the wants tried in order; none if none does.
  std::optional<uint32_t> FindMemoryType(uint32_t type_bits, std::span<const MemoryWant> wanted) const;
  // FindMemoryType with `kind`'s wants; Error when no type meets them.
  uint32_t ChooseMemoryType(uint32_t type_bits, MemoryKind kind) const;
  Allocation AllocateFrom(uint32_t memory_type, VkDeviceSize size, VkDeviceSize alignment);
  void FlushOrInvalidate(const Allocation& allocation, bool flush) const;

  Device& device_;
  VkPhysicalDeviceMemoryProperties properties_{};
  VkDeviceSize block_size_ = 0;
  VkDeviceSize non_coherent_atom_ = 1;
  std::vector<std::unique_ptr<MemoryBlock>> blocks_;
  std::mutex mutex_;
  VkDeviceSize bytes_in_use_ = 0;
  VkDeviceSize bytes_reserved_ = 0;
};

}  // namespace qvk
