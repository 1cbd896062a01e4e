#pragma once
// A Graph is a recorded sequence of kernel dispatches that can be replayed any number of times:
// a dispatch's buffers are bound once, when it is recorded (pushed into the command buffer where
// the device has VK_KHR_push_descriptor, else through a descriptor set from the graph's pools,
// which a driver may take longer to allocate and write than to record the dispatch); what
// changes between replays (positions, token ids) lives in buffers the host writes before each
// Run. Barriers are inserted only where a dispatch touches memory that an earlier dispatch since
// the last barrier wrote (or writes memory one read).
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

#include "gpu/device_handle.h"
#include "gpu/kernels.h"

namespace qvk {

class Buffer;
class Device;

// A byte range of a buffer, as bound to one kernel binding.
struct BufferRange {
  BufferRange(const Buffer& buffer);  // NOLINT(google-explicit-constructor): the whole buffer
  BufferRange(const Buffer& buffer, VkDeviceSize offset, VkDeviceSize size);
  const Buffer* buffer;
  VkDeviceSize offset;
  VkDeviceSize size;
};

// `size` bytes of r from `offset` (relative to r's start): a part of r for a kernel to see.
BufferRange SubRange(const BufferRange& r, VkDeviceSize offset, VkDeviceSize size);
// Whether two ranges share no byte.
bool Apart(const BufferRange& p, const BufferRange& q);

struct Groups {
  uint32_t x = 1, y = 1, z = 1;
};

// Workgroups for n independent items: x at most 65535 (the smallest limit Vulkan allows), the
// rest in y. Kernels read their item as gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x.
Groups GridFor(uint64_t items);

// What a dispatch must at least move and compute: every input read once, every output written
// once, and the arithmetic of its math. A profile divides these by the dispatch's time to show
// how close a kernel comes to the device's bandwidth and FLOP rate.
struct DispatchCost {
  uint64_t bytes = 0;
  uint64_t flops = 0;
};

struct DispatchTiming {
  std::string label;
  std::string_view kernel;  // the kernel table's name
  double microseconds = 0;
  DispatchCost cost;
  uint32_t stage = 0;  // the device that ran it, of a model split across devices (model/engine.h)
  // A barrier stood before it: it started only once every dispatch recorded before it had finished
  // (a wait that costs decode more than most kernels do: docs/speed.md, session 36).
  bool waits = false;
};

// A value of a timeline semaphore, which a submission waits for or signals.
struct TimelinePoint {
  VkSemaphore semaphore = VK_NULL_HANDLE;  // none: nothing to wait for, or to signal
  uint64_t value = 0;
};

class Graph {
 public:
  // profile: write a GPU timestamp after each dispatch, readable after Run with Timings().
  explicit Graph(Device& device, bool profile = false);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records one dispatch after checking it against the kernel table's contract: number of
  // bindings, push-constant size, binding ranges inside their buffers, aligned and within the
  // device's maxStorageBufferRange. `cost` is what Timings() reports beside the dispatch's time.
  template <class Push>
  void Dispatch(KernelId id, std::initializer_list<BufferRange> bindings, const Push& push, Groups groups,
                std::string_view label = {}, DispatchCost cost = {}) {
    DispatchRaw(id, bindings, &push, sizeof(Push), groups, label, cost);
  }

  // Queue family ownership of a buffer whose memory another device shares (SharedHostBuffer,
  // gpu/interop.h): acquired from VK_QUEUE_FAMILY_EXTERNAL before this graph's first access and
  // released back after its last, as the spec asks for memory shared between devices, so that what
  // one device wrote is what the other reads. Each device's graph does both.
  void AcquireExternal(const Buffer& buffer);
  void ReleaseExternal(const Buffer& buffer);

  void End();
  // Submits the recorded commands and waits for them: Submit(), then Wait().
  void Run();
  // Submits the recorded commands and returns at once: they start once `wait` is reached and
  // reach `signal` when done (each where it names a semaphore). Wait() before the graph is
  // submitted again; the destructor waits for it too.
  void Submit(TimelinePoint wait = {}, TimelinePoint signal = {});
  // Waits until the commands of the last Submit have finished; returns at once when none is.
  void Wait();

  // Each dispatch's label, kernel, GPU time (from the timestamps written after it and the one
  // before) and cost, in recording order; empty unless the graph profiles and the device has
  // compute timestamps.
  std::vector<DispatchTiming> Timings() const;
  bool profiled() const { return queries_ != VK_NULL_HANDLE; }
  Device& device() const { return device_; }
  uint32_t dispatch_count() const { return static_cast<uint32_t>(dispatches_.size()); }
  uint32_t barrier_count() const { return barriers_; }

 private:
  struct Touched {
    VkBuffer buffer;
    VkDeviceSize begin, end;
  };
  void DispatchRaw(KernelId id, std::initializer_list<BufferRange> bindings, const void* push, uint32_t push_size,
                   Groups groups, std::string_view label, DispatchCost cost);
  VkDescriptorSet AllocateSet(VkDescriptorSetLayout layout);
  void Barrier();
  void ExternalOwnership(const Buffer& buffer, bool acquire);

  Device& device_;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  FenceHandle fence_;  // Submit's; made at the first
  bool in_flight_ = false;
  std::vector<VkDescriptorPool> pools_;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  bool ended_ = false;
  std::vector<Touched> pending_writes_, pending_reads_;
  struct Recorded {
    std::string label;
    KernelId kernel;
    DispatchCost cost;
    bool waits;
  };
  std::vector<Recorded> dispatches_;
  uint32_t barriers_ = 0;
};

}  // namespace qvk
