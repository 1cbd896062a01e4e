#include "gpu/uploader.h"

#include <algorithm>
#include <cstring>

#include "gpu/device.h"
#include "gpu/error.h"

namespace qvk {

Uploader::Uploader(Device& device, VkDeviceSize slot_bytes, uint32_t slots) : device_(device), slots_(slots) {
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = device.command_pool();
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  for (Slot& slot : slots_) {
    slot.staging = device.allocator().CreateBuffer(slot_bytes, MemoryKind::Upload);
    VK_CHECK(vkAllocateCommandBuffers(device.handle(), &alloc, &slot.cmd));
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_CHECK(vkCreateFence(device.handle(), &fence_info, nullptr, &slot.fence));
  }
}

Uploader::~Uploader() {
  for (Slot& slot : slots_) {
    if (slot.in_flight) vkWaitForFences(device_.handle(), 1, &slot.fence, VK_TRUE, UINT64_MAX);
    vkDestroyFence(device_.handle(), slot.fence, nullptr);
    vkFreeCommandBuffers(device_.handle(), device_.command_pool(), 1, &slot.cmd);
  }
}

void Uploader::WaitFor(Slot& slot) {
  if (!slot.in_flight) return;
  VK_CHECK(vkWaitForFences(device_.handle(), 1, &slot.fence, VK_TRUE, UINT64_MAX));
  slot.in_flight = false;
}

void Uploader::Write(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes) {
  if (offset + bytes.size() > dst.size()) throw Error("upload past the end of a buffer");
  bytes_written_ += bytes.size();
  if (dst.mapped() != nullptr) {
    std::memcpy(dst.mapped() + offset, bytes.data(), bytes.size());
    dst.FlushMapped();
    return;
  }
  for (size_t done = 0; done < bytes.size();) {
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    WaitFor(slot);
    const size_t n = std::min<size_t>(slot.staging.size(), bytes.size() - done);
    std::memcpy(slot.staging.mapped(), bytes.data() + done, n);
    slot.staging.FlushMapped();

    VK_CHECK(vkResetCommandBuffer(slot.cmd, 0));
    VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VK_CHECK(vkBeginCommandBuffer(slot.cmd, &begin));
    const VkBufferCopy region{0, offset + done, n};
    vkCmdCopyBuffer(slot.cmd, slot.staging.handle(), dst.handle(), 1, &region);
    VK_CHECK(vkEndCommandBuffer(slot.cmd));
    VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &slot.cmd;
    VK_CHECK(vkResetFences(device_.handle(), 1, &slot.fence));
    device_.Submit(submit, slot.fence);
    slot.in_flight = true;
    done += n;
  }
}

void Uploader::Finish() {
  for (Slot& slot : slots_) WaitFor(slot);
}

}  // namespace qvk
