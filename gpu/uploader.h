#pragma once
// Streams host bytes (typically straight from an mmapped model file) into device buffers
// through a bounded ring of staging slots: while the GPU copies one slot, the host fills the
// next, so reading the file overlaps the transfers and host memory use stays at the ring size.
// Where device memory is host-mapped (lavapipe, UMA) bytes are written in place instead.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <vulkan/vulkan.h>

#include "gpu/memory.h"

namespace qvk {

class Device;

class Uploader {
 public:
  explicit Uploader(Device& device, VkDeviceSize slot_bytes = VkDeviceSize{16} << 20, uint32_t slots = 4);
  ~Uploader();  // waits for every copy in flight
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  void Write(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes);
  // Waits until everything written so far is in device memory.
  void Finish();
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  struct Slot {
    Buffer staging;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool in_flight = false;
  };
  void WaitFor(Slot& slot);

  Device& device_;
  std::vector<Slot> slots_;
  uint32_t next_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace qvk
