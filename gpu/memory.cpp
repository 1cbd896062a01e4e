// Sections: Buffer / Allocator / Image
#include "gpu/memory.h"

#include <algorithm>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "gpu/device.h"
#include "gpu/error.h"

namespace qvk {

struct MemoryBlock {
  VkDeviceMemory memory = VK_NULL_HANDLE;
  uint32_t memory_type = 0;
  VkDeviceSize size = 0;
  std::byte* mapped = nullptr;
  bool coherent = true;
  bool dedicated = false;                            // holds exactly one buffer; freed with it
  std::map<VkDeviceSize, VkDeviceSize> free_ranges;  // offset -> size, coalesced
};

namespace {

std::string MiB(VkDeviceSize bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

// --- Buffer ---------------------------------------------------------------------------------

Buffer::Buffer(Allocator* allocator, VkBuffer buffer, Allocation allocation, VkDeviceSize size, std::byte* mapped,
               bool coherent)
    : allocator_(allocator),
      buffer_(buffer),
      allocation_(allocation),
      size_(size),
      mapped_(mapped),
      coherent_(coherent) {}

Buffer::~Buffer() {
  Release();
}

Buffer::Buffer(Buffer&& other) noexcept {
  *this = std::move(other);
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    allocator_ = std::exchange(other.allocator_, nullptr);
    buffer_ = std::exchange(other.buffer_, VK_NULL_HANDLE);
    allocation_ = std::exchange(other.allocation_, {});
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, nullptr);
    coherent_ = other.coherent_;
  }
  return *this;
}

void Buffer::Release() {
  if (buffer_ == VK_NULL_HANDLE) return;
  vkDestroyBuffer(allocator_->device_.handle(), buffer_, nullptr);
  allocator_->Free(allocation_);
  buffer_ = VK_NULL_HANDLE;
}

void Buffer::InvalidateMapped() const {
  if (!coherent_ && mapped_ != nullptr) allocator_->FlushOrInvalidate(allocation_, false);
}

void Buffer::FlushMapped() const {
  if (!coherent_ && mapped_ != nullptr) allocator_->FlushOrInvalidate(allocation_, true);
}

// --- Allocator ------------------------------------------------------------------------------

Allocator::Allocator(Device& device) : device_(device) {
  vkGetPhysicalDeviceMemoryProperties(device.info().physical, &properties_);
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(device.info().physical, &props);
  non_coherent_atom_ = std::max<VkDeviceSize>(1, props.limits.nonCoherentAtomSize);
  // Large enough that a whole model needs few allocations (some drivers allow only 4096),
  // small enough to fit every device's single-allocation limit.
  block_size_ = std::min<VkDeviceSize>(VkDeviceSize{256} << 20, device.info().max_allocation_size);
}

Allocator::~Allocator() {
  for (auto& block : blocks_) {
    if (block->mapped != nullptr) vkUnmapMemory(device_.handle(), block->memory);
    vkFreeMemory(device_.handle(), block->memory, nullptr);
  }
}

std::optional<uint32_t> Allocator::FindMemoryType(uint32_t type_bits, std::span<const MemoryWant> wanted) const {
  for (const MemoryWant& want : wanted) {
    for (uint32_t t = 0; t < properties_.memoryTypeCount; ++t) {
      const VkMemoryPropertyFlags flags = properties_.memoryTypes[t].propertyFlags;
      if ((type_bits & (1u << t)) != 0 && (flags & want.required) == want.required && (flags & want.excluded) == 0) {
        return t;
      }
    }
  }
  return std::nullopt;
}

uint32_t Allocator::ChooseMemoryType(uint32_t type_bits, MemoryKind kind) const {
  using F = VkMemoryPropertyFlags;
  const F local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  const F visible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
  const F coherent = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const F cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
  std::vector<MemoryWant> wanted;  // in order of preference
  switch (kind) {
    case MemoryKind::Device:
      if (device_.info().unified_memory) wanted.push_back({local | visible | coherent, 0});
      wanted.push_back({local, 0});
      wanted.push_back({0, 0});
      break;
    case MemoryKind::Upload:
      wanted = {{visible | coherent, 0}, {visible, 0}};
      break;
    case MemoryKind::Readback:
      wanted = {{visible | coherent | cached, 0}, {visible | cached, 0}, {visible | coherent, 0}, {visible, 0}};
      break;
    case MemoryKind::Host:
      wanted = {{visible | coherent, local}, {visible | coherent, 0}, {visible, 0}};
      break;
  }
  if (const std::optional<uint32_t> type = FindMemoryType(type_bits, wanted)) return *type;
  throw Error("This device has no suitable memory type for a buffer");
}

Allocation Allocator::AllocateFrom(uint32_t memory_type, VkDeviceSize size, VkDeviceSize alignment) {
  const VkMemoryPropertyFlags flags = properties_.memoryTypes[memory_type].propertyFlags;
  const bool host_visible = (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) != 0;
  if (!host_visible || (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) == 0) {
    alignment = std::max(alignment, non_coherent_atom_);
  }
  size = AlignUp(size, alignment);
  for (auto& block : blocks_) {
    if (block->memory_type != memory_type || block->dedicated) continue;
    for (auto it = block->free_ranges.begin(); it != block->free_ranges.end(); ++it) {
      const VkDeviceSize start = AlignUp(it->first, alignment);
      const VkDeviceSize end = it->first + it->second;
      if (start + size > end) continue;
      const VkDeviceSize range_start = it->first;
      block->free_ranges.erase(it);
      if (start > range_start) block->free_ranges[range_start] = start - range_start;
      if (start + size < end) block->free_ranges[start + size] = end - (start + size);
      return {block.get(), start, size};
    }
  }

  if (size > device_.info().max_allocation_size) {
    throw Error(fmt::format("A {} buffer is larger than this device's largest allocation ({})", MiB(size),
                            MiB(device_.info().max_allocation_size)));
  }
  auto block = std::make_unique<MemoryBlock>();
  block->memory_type = memory_type;
  block->dedicated = size > block_size_ / 2;
  block->size = block->dedicated ? size : block_size_;
  block->coherent = (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
  VkMemoryAllocateInfo info{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  info.allocationSize = block->size;
  info.memoryTypeIndex = memory_type;
  const VkResult result = vkAllocateMemory(device_.handle(), &info, nullptr, &block->memory);
  if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY) {
    throw Error(fmt::format("Out of {} memory: could not allocate {} ({} already in use)",
                            result == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "GPU" : "host", MiB(block->size),
                            MiB(bytes_reserved_)));
  }
  VK_CHECK(result);
  if (host_visible) {
    void* pointer = nullptr;
    VK_CHECK(vkMapMemory(device_.handle(), block->memory, 0, VK_WHOLE_SIZE, 0, &pointer));
    block->mapped = static_cast<std::byte*>(pointer);
  }
  bytes_reserved_ += block->size;
  if (!block->dedicated && size < block->size) block->free_ranges[size] = block->size - size;
  blocks_.push_back(std::move(block));
  return {blocks_.back().get(), 0, size};
}

Buffer Allocator::CreateBuffer(VkDeviceSize size, MemoryKind kind) {
  if (size == 0) throw Error("zero-sized buffer");
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = size;
  info.usage = kBufferUsage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VK_CHECK(vkCreateBuffer(device_.handle(), &info, nullptr, &buffer));
  VkMemoryRequirements requirements{};
  vkGetBufferMemoryRequirements(device_.handle(), buffer, &requirements);

  std::lock_guard lock(mutex_);
  Allocation allocation;
  try {
    const uint32_t type = ChooseMemoryType(requirements.memoryTypeBits, kind);
    allocation = AllocateFrom(type, requirements.size, requirements.alignment);
  } catch (...) {
    vkDestroyBuffer(device_.handle(), buffer, nullptr);
    throw;
  }
  VK_CHECK(vkBindBufferMemory(device_.handle(), buffer, allocation.block->memory, allocation.offset));
  bytes_in_use_ += allocation.size;
  std::byte* mapped = allocation.block->mapped != nullptr ? allocation.block->mapped + allocation.offset : nullptr;
  return Buffer(this, buffer, allocation, size, mapped, allocation.block->coherent);
}

Buffer Allocator::ImportHostAllocation(void* pointer, VkDeviceSize size) {
  const VkDevice dev = device_.handle();
  const VkExternalMemoryHandleTypeFlagBits handle_type = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
  const auto host_pointer_properties = reinterpret_cast<PFN_vkGetMemoryHostPointerPropertiesEXT>(
      vkGetDeviceProcAddr(dev, "vkGetMemoryHostPointerPropertiesEXT"));
  if (host_pointer_properties == nullptr) throw Error("VK_EXT_external_memory_host is not enabled on this device");
  VkMemoryHostPointerPropertiesEXT host{VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
  if (const VkResult result = host_pointer_properties(dev, handle_type, pointer, &host); result != VK_SUCCESS) {
    throw Error(fmt::format("the driver cannot import this host memory ({})", VkResultName(result)));
  }

  VkExternalMemoryBufferCreateInfo external{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
  external.handleTypes = handle_type;
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.pNext = &external;
  info.size = size;
  info.usage = kBufferUsage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VK_CHECK(vkCreateBuffer(dev, &info, nullptr, &buffer));
  VkMemoryRequirements requirements{};
  vkGetBufferMemoryRequirements(dev, buffer, &requirements);
  // Coherent, so what one device made available in host memory needs no flush for another (the
  // host kinds of ChooseMemoryType also settle for a non-coherent type).
  const MemoryWant coherent{VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT};
  const std::optional<uint32_t> type =
      FindMemoryType(requirements.memoryTypeBits & host.memoryTypeBits, {&coherent, 1});
  std::string problem;
  if (!type) problem = "no host-visible, coherent memory type imports host memory for a buffer";
  if (requirements.size > size) problem = fmt::format("a buffer of {} bytes needs {}", size, requirements.size);
  VkDeviceMemory memory = VK_NULL_HANDLE;
  if (problem.empty()) {
    VkImportMemoryHostPointerInfoEXT import{VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT};
    import.handleType = handle_type;
    import.pHostPointer = pointer;
    VkMemoryAllocateInfo allocate{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    allocate.pNext = &import;
    allocate.allocationSize = size;
    allocate.memoryTypeIndex = *type;
    if (const VkResult result = vkAllocateMemory(dev, &allocate, nullptr, &memory); result != VK_SUCCESS) {
      problem = fmt::format("importing host memory failed ({})", VkResultName(result));
    }
  }
  if (!problem.empty()) {
    vkDestroyBuffer(dev, buffer, nullptr);
    throw Error(problem);
  }
  VK_CHECK(vkBindBufferMemory(dev, buffer, memory, 0));

  // A dedicated block of its own, freed with the buffer like any other (never mapped: the host
  // has the pointer).
  std::lock_guard lock(mutex_);
  auto block = std::make_unique<MemoryBlock>();
  block->memory = memory;
  block->memory_type = *type;
  block->size = size;
  block->dedicated = true;
  bytes_reserved_ += size;
  bytes_in_use_ += size;
  blocks_.push_back(std::move(block));
  return Buffer(this, buffer, {blocks_.back().get(), 0, size}, size, nullptr, true);
}

void Allocator::Free(const Allocation& allocation) {
  std::lock_guard lock(mutex_);
  bytes_in_use_ -= allocation.size;
  MemoryBlock* block = allocation.block;
  if (block->dedicated) {
    if (block->mapped != nullptr) vkUnmapMemory(device_.handle(), block->memory);
    vkFreeMemory(device_.handle(), block->memory, nullptr);
    bytes_reserved_ -= block->size;
    std::erase_if(blocks_, [block](const auto& b) { return b.get() == block; });
    return;
  }
  auto& ranges = block->free_ranges;
  auto it = ranges.emplace(allocation.offset, allocation.size).first;
  // Coalesce with the following and the preceding free range.
  if (auto next = std::next(it); next != ranges.end() && it->first + it->second == next->first) {
    it->second += next->second;
    ranges.erase(next);
  }
  if (it != ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      ranges.erase(it);
    }
  }
}

void Allocator::FlushOrInvalidate(const Allocation& allocation, bool flush) const {
  VkMappedMemoryRange range{VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE};
  range.memory = allocation.block->memory;
  range.offset = allocation.offset;
  range.size = std::min(AlignUp(allocation.size, non_coherent_atom_), allocation.block->size - allocation.offset);
  if (flush) {
    VK_CHECK(vkFlushMappedMemoryRanges(device_.handle(), 1, &range));
  } else {
    VK_CHECK(vkInvalidateMappedMemoryRanges(device_.handle(), 1, &range));
  }
}

// --- Image ----------------------------------------------------------------------------------

Image::Image(VkDevice device, VkImage image, VkDeviceMemory memory, VkImageView view, uint32_t width, uint32_t height)
    : device_(device), image_(image), memory_(memory), view_(view), width_(width), height_(height) {}

Image::~Image() {
  Release();
}

Image::Image(Image&& other) noexcept {
  *this = std::move(other);
}

Image& Image::operator=(Image&& other) noexcept {
  if (this != &other) {
    Release();
    device_ = other.device_;
    image_ = std::exchange(other.image_, VK_NULL_HANDLE);
    memory_ = std::exchange(other.memory_, VK_NULL_HANDLE);
    view_ = std::exchange(other.view_, VK_NULL_HANDLE);
    width_ = std::exchange(other.width_, 0);
    height_ = std::exchange(other.height_, 0);
  }
  return *this;
}

void Image::Release() {
  if (image_ == VK_NULL_HANDLE) return;
  vkDestroyImageView(device_, view_, nullptr);
  vkDestroyImage(device_, image_, nullptr);
  vkFreeMemory(device_, memory_, nullptr);
  image_ = VK_NULL_HANDLE;
}

void RecordImageTransition(VkCommandBuffer cmd, VkImage image, const ImageTransition& t) {
  VkImageMemoryBarrier barrier{VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER};
  barrier.srcAccessMask = t.src_access;
  barrier.dstAccessMask = t.dst_access;
  barrier.oldLayout = t.from;
  barrier.newLayout = t.to;
  barrier.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  barrier.image = image;
  barrier.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  vkCmdPipelineBarrier(cmd, t.src_stage, t.dst_stage, 0, 0, nullptr, 0, nullptr, 1, &barrier);
}

Image Allocator::CreateImage(uint32_t width, uint32_t height, VkFormat format, VkImageUsageFlags usage) {
  const VkDevice dev = device_.handle();
  VkImageCreateInfo info{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
  info.imageType = VK_IMAGE_TYPE_2D;
  info.format = format;
  info.extent = {width, height, 1};
  info.mipLevels = 1;
  info.arrayLayers = 1;
  info.samples = VK_SAMPLE_COUNT_1_BIT;
  info.tiling = VK_IMAGE_TILING_OPTIMAL;
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  info.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  VkImage image = VK_NULL_HANDLE;
  VK_CHECK(vkCreateImage(dev, &info, nullptr, &image));
  VkMemoryRequirements requirements{};
  vkGetImageMemoryRequirements(dev, image, &requirements);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = requirements.size;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkResult result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  try {
    alloc.memoryTypeIndex = ChooseMemoryType(requirements.memoryTypeBits, MemoryKind::Device);
    result = vkAllocateMemory(dev, &alloc, nullptr, &memory);
  } catch (...) {
    vkDestroyImage(dev, image, nullptr);
    throw;
  }
  if (result != VK_SUCCESS) {
    vkDestroyImage(dev, image, nullptr);
    throw Error(fmt::format("the GPU has no room for a {}x{} image ({} KiB)", width, height, requirements.size >> 10));
  }
  VK_CHECK(vkBindImageMemory(dev, image, memory, 0));
  VkImageViewCreateInfo view_info{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
  view_info.image = image;
  view_info.viewType = VK_IMAGE_VIEW_TYPE_2D;
  view_info.format = format;
  view_info.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  VkImageView view = VK_NULL_HANDLE;
  VK_CHECK(vkCreateImageView(dev, &view_info, nullptr, &view));
  return Image(dev, image, memory, view, width, height);
}

}  // namespace qvk
