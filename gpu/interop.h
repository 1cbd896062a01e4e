#pragma once
// What two devices can share so that one hands data to the other without the host: a host
// allocation both import as a buffer, and a timeline semaphore one signals and the other waits
// for. Both need the devices to be one physical device under one driver (equal deviceUUID and
// driverUUID): opaque fds import only there, and VK_QUEUE_FAMILY_EXTERNAL, the queue family a
// shared buffer's ownership passes through, stands only for queues of such devices. Two logical
// devices on one GPU qualify; two GPUs do not.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "gpu/device_handle.h"
#include "gpu/graph.h"
#include "gpu/memory.h"

namespace qvk {

class Device;
struct DeviceInfo;

// Why `a` and `b` cannot share a SharedHostBuffer, or a SharedTimeline; empty when they can.
std::string HostMemorySharingProblem(const DeviceInfo& a, const DeviceInfo& b);
std::string TimelineSharingProblem(const DeviceInfo& a, const DeviceInfo& b);

// One host allocation of at least `size` bytes that each device imports as a storage buffer
// (VK_EXT_external_memory_host): what one device's kernels write there, another's read, no copy
// between. Its address and size are multiples of every device's import alignment. A graph that
// touches it takes and gives back its ownership (Graph::AcquireExternal, ReleaseExternal), and
// the devices' accesses are ordered by a semaphore or by the host waiting between them.
class SharedHostBuffer {
 public:
  // Throws Error saying why when the devices cannot share it or a device cannot import it.
  SharedHostBuffer(std::span<Device* const> devices, VkDeviceSize size);

  // The buffer as devices[device] sees it.
  const Buffer& on(size_t device) const { return buffers_.at(device); }

 private:
  struct FreeHost {
    void operator()(std::byte* bytes) const { std::free(bytes); }
  };
  std::unique_ptr<std::byte, FreeHost> host_;  // outlives the imports, which are released first
  std::vector<Buffer> buffers_;
};

// A timeline semaphore made on `signaller`, exported as an opaque fd and imported into `waiter`
// (VK_KHR_external_semaphore_fd): a submission on `waiter` waits for one on `signaller` on the
// GPU, with no host wait between.
class SharedTimeline {
 public:
  // Throws Error saying why when the devices cannot share it or the export or import fails.
  SharedTimeline(Device& signaller, Device& waiter);

  // The point the signaller's next submission signals, and the same point as the waiter's
  // submission waits for it. Each call gives a new, greater value, since a timeline only grows.
  struct Step {
    TimelinePoint signal;
    TimelinePoint wait;
  };
  Step Next();

 private:
  SemaphoreHandle on_signaller_, on_waiter_;
  uint64_t value_ = 0;
};

}  // namespace qvk
