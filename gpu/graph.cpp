// Recording and replaying a Graph (graph.h says what one is). In order: the hazard tracking that
// places barriers (Overlaps), ranges and grids; the graph's command buffer, descriptor pools and
// timestamp queries; barriers and the ownership of buffers shared with another device; recording a
// dispatch (its kernel row checked, its bindings pushed or written, a barrier where data flows);
// End, Run, Submit and Wait (the fence polled before it sleeps); the per-dispatch timings.
#include "gpu/graph.h"

#include <algorithm>
#include <array>
#include <chrono>

#include <fmt/format.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/memory.h"

namespace qvk {
namespace {

constexpr uint32_t kSetsPerPool = 256;
constexpr uint32_t kMaxTimestamps = 8192;
constexpr auto kFencePollTime = std::chrono::milliseconds(20);

template <class Ranges>
bool Overlaps(const Ranges& ranges, VkBuffer buffer, VkDeviceSize begin, VkDeviceSize end) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const auto& r) { return r.buffer == buffer && r.begin < end && begin < r.end; });
}

}  // namespace

BufferRange::BufferRange(const Buffer& b) : buffer(&b), offset(0), size(b.size()) {}
BufferRange::BufferRange(const Buffer& b, VkDeviceSize off, VkDeviceSize bytes)
    : buffer(&b), offset(off), size(bytes) {}

BufferRange SubRange(const BufferRange& r, VkDeviceSize offset, VkDeviceSize size) {
  return BufferRange(*r.buffer, r.offset + offset, size);
}

bool Apart(const BufferRange& p, const BufferRange& q) {
  return p.buffer != q.buffer || p.offset + p.size <= q.offset || q.offset + q.size <= p.offset;
}

Groups GridFor(uint64_t items) {
  constexpr uint64_t kMaxX = 65535;
  if (items <= kMaxX) return {static_cast<uint32_t>(std::max<uint64_t>(items, 1)), 1, 1};
  return {static_cast<uint32_t>(kMaxX), static_cast<uint32_t>((items + kMaxX - 1) / kMaxX), 1};
}

Graph::Graph(Device& device, bool profile) : device_(device) {
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = device.command_pool();
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VK_CHECK(vkAllocateCommandBuffers(device.handle(), &alloc, &cmd_));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  VK_CHECK(vkBeginCommandBuffer(cmd_, &begin));

  if (profile && device.info().compute_timestamps) {
    VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    info.queryType = VK_QUERY_TYPE_TIMESTAMP;
    info.queryCount = kMaxTimestamps;
    VK_CHECK(vkCreateQueryPool(device.handle(), &info, nullptr, &queries_));
    vkCmdResetQueryPool(cmd_, queries_, 0, kMaxTimestamps);
    vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries_, 0);
  }
  // What the host, a transfer or the previous replay wrote is visible to this replay's kernels.
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_HOST_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(
      cmd_, VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

Graph::~Graph() {
  VkDevice dev = device_.handle();
  // Commands in flight are waited for before they are freed (unchecked: a destructor cannot throw,
  // and a lost device has nothing left to wait for).
  if (in_flight_) {
    const VkFence fence = fence_.get();
    vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX);
  }
  vkFreeCommandBuffers(dev, device_.command_pool(), 1, &cmd_);
  for (VkDescriptorPool pool : pools_) vkDestroyDescriptorPool(dev, pool, nullptr);
  if (queries_ != VK_NULL_HANDLE) vkDestroyQueryPool(dev, queries_, nullptr);
}

VkDescriptorSet Graph::AllocateSet(VkDescriptorSetLayout layout) {
  VkDescriptorSetAllocateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  info.descriptorSetCount = 1;
  info.pSetLayouts = &layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  if (!pools_.empty()) {
    info.descriptorPool = pools_.back();
    const VkResult result = vkAllocateDescriptorSets(device_.handle(), &info, &set);
    if (result == VK_SUCCESS) return set;
    if (result != VK_ERROR_OUT_OF_POOL_MEMORY && result != VK_ERROR_FRAGMENTED_POOL) VK_CHECK(result);
  }
  const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * 8};
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = kSetsPerPool;
  pool_info.poolSizeCount = 1;
  pool_info.pPoolSizes = &size;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  VK_CHECK(vkCreateDescriptorPool(device_.handle(), &pool_info, nullptr, &pool));
  pools_.push_back(pool);
  info.descriptorPool = pool;
  VK_CHECK(vkAllocateDescriptorSets(device_.handle(), &info, &set));
  return set;
}

void Graph::Barrier() {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier,
                       0, nullptr, 0, nullptr);
  pending_writes_.clear();
  pending_reads_.clear();
  ++barriers_;
}

void Graph::ExternalOwnership(const Buffer& buffer, bool acquire) {
  if (ended_) throw Error("graph already ended");
  // An acquire waits for what came before it at the compute stage, where a submission waits for
  // its semaphore, and makes the other device's writes visible to this graph's kernels; a release
  // makes this graph's writes available to the other device.
  VkBufferMemoryBarrier barrier{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
  barrier.srcAccessMask = acquire ? 0 : VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = acquire ? VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT : 0;
  barrier.srcQueueFamilyIndex = acquire ? VK_QUEUE_FAMILY_EXTERNAL : device_.queue_family();
  barrier.dstQueueFamilyIndex = acquire ? device_.queue_family() : VK_QUEUE_FAMILY_EXTERNAL;
  barrier.buffer = buffer.handle();
  barrier.offset = 0;
  barrier.size = VK_WHOLE_SIZE;
  vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       acquire ? VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT : VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0,
                       nullptr, 1, &barrier, 0, nullptr);
}

void Graph::AcquireExternal(const Buffer& buffer) {
  ExternalOwnership(buffer, /*acquire=*/true);
}

void Graph::ReleaseExternal(const Buffer& buffer) {
  ExternalOwnership(buffer, /*acquire=*/false);
}

void Graph::DispatchRaw(KernelId id, std::initializer_list<BufferRange> bindings, const void* push, uint32_t push_size,
                        Groups groups, std::string_view label, DispatchCost cost) {
  const KernelSpec& spec = Spec(id);
  const DeviceInfo& info = device_.info();
  if (ended_) throw Error(fmt::format("{}: graph already ended", spec.name));
  if (bindings.size() != spec.bindings) {
    throw Error(fmt::format("{}: {} bindings given, the kernel has {}", spec.name, bindings.size(), spec.bindings));
  }
  if (push_size != spec.push_size) {
    throw Error(
        fmt::format("{}: push constants of {} bytes, the kernel takes {}", spec.name, push_size, spec.push_size));
  }
  if (groups.x == 0 || groups.y == 0 || groups.z == 0 || groups.x > 65535 || groups.y > 65535 || groups.z > 65535) {
    throw Error(fmt::format("{}: workgroup count {}x{}x{} outside 1..65535", spec.name, groups.x, groups.y, groups.z));
  }
  uint32_t binding_index = 0;
  for (const BufferRange& r : bindings) {
    if (r.buffer == nullptr || !*r.buffer || r.size == 0 || r.offset + r.size > r.buffer->size() ||
        r.offset % info.storage_offset_alignment != 0 || r.size > info.max_storage_buffer_range) {
      throw Error(
          fmt::format("{}: binding {} range [{}, +{}) is not a valid storage range of a {}-byte buffer "
                      "(alignment {}, max range {})",
                      spec.name, binding_index, r.offset, r.size, r.buffer ? r.buffer->size() : 0,
                      info.storage_offset_alignment, info.max_storage_buffer_range));
    }
    ++binding_index;
  }

  // Barrier when this dispatch reads or writes what an unsynchronized dispatch wrote, or writes
  // what one read.
  bool hazard = false;
  binding_index = 0;
  for (const BufferRange& r : bindings) {
    const bool writes = (spec.written >> binding_index++) & 1u;
    const VkBuffer b = r.buffer->handle();
    hazard = hazard || Overlaps(pending_writes_, b, r.offset, r.offset + r.size) ||
             (writes && Overlaps(pending_reads_, b, r.offset, r.offset + r.size));
  }
  if (hazard) Barrier();
  binding_index = 0;
  for (const BufferRange& r : bindings) {
    const bool writes = (spec.written >> binding_index++) & 1u;
    (writes ? pending_writes_ : pending_reads_).push_back({r.buffer->handle(), r.offset, r.offset + r.size});
  }

  const Pipeline& pipeline = device_.kernels().Get(id);
  std::array<VkDescriptorBufferInfo, kMaxBindings> buffer_infos;
  std::array<VkWriteDescriptorSet, kMaxBindings> writes;
  const VkDescriptorSet set = pipeline.pushes_bindings ? VK_NULL_HANDLE : AllocateSet(pipeline.set_layout);
  binding_index = 0;
  for (const BufferRange& r : bindings) {
    buffer_infos[binding_index] = {r.buffer->handle(), r.offset, r.size};
    VkWriteDescriptorSet& w = writes[binding_index];
    w = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    w.dstSet = set;
    w.dstBinding = binding_index;
    w.descriptorCount = 1;
    w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w.pBufferInfo = &buffer_infos[binding_index];
    ++binding_index;
  }
  vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.pipeline);
  if (pipeline.pushes_bindings) {
    device_.push_descriptor_set()(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, binding_index,
                                  writes.data());
  } else {
    vkUpdateDescriptorSets(device_.handle(), binding_index, writes.data(), 0, nullptr);
    vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &set, 0, nullptr);
  }
  vkCmdPushConstants(cmd_, pipeline.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
  vkCmdDispatch(cmd_, groups.x, groups.y, groups.z);
  dispatches_.push_back({std::string(label.empty() ? spec.name : label), id, cost, hazard});
  if (queries_ != VK_NULL_HANDLE) {
    if (dispatches_.size() + 1 > kMaxTimestamps) throw Error("too many dispatches to profile in one graph");
    vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, queries_,
                        static_cast<uint32_t>(dispatches_.size()));
  }
}

void Graph::End() {
  if (ended_) return;
  // Results the host reads after Run are visible to it.
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT;
  vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, nullptr, 0,
                       nullptr);
  VK_CHECK(vkEndCommandBuffer(cmd_));
  ended_ = true;
}

void Graph::Run() {
  Submit();
  Wait();
}

void Graph::Submit(TimelinePoint wait, TimelinePoint signal) {
  End();
  if (in_flight_) throw Error("a graph is submitted again before its last submission was waited for");
  if (fence_.get() == VK_NULL_HANDLE) {
    VkFenceCreateInfo info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence = VK_NULL_HANDLE;
    VK_CHECK(vkCreateFence(device_.handle(), &info, nullptr, &fence));
    fence_ = FenceHandle(device_.handle(), fence);
  } else {
    const VkFence fence = fence_.get();
    VK_CHECK(vkResetFences(device_.handle(), 1, &fence));
  }
  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
  VkTimelineSemaphoreSubmitInfo values{VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO};
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd_;
  if (wait.semaphore != VK_NULL_HANDLE) {
    submit.waitSemaphoreCount = 1;
    submit.pWaitSemaphores = &wait.semaphore;
    submit.pWaitDstStageMask = &wait_stage;
    values.waitSemaphoreValueCount = 1;
    values.pWaitSemaphoreValues = &wait.value;
  }
  if (signal.semaphore != VK_NULL_HANDLE) {
    submit.signalSemaphoreCount = 1;
    submit.pSignalSemaphores = &signal.semaphore;
    values.signalSemaphoreValueCount = 1;
    values.pSignalSemaphoreValues = &signal.value;
  }
  if (wait.semaphore != VK_NULL_HANDLE || signal.semaphore != VK_NULL_HANDLE) submit.pNext = &values;
  device_.Submit(submit, fence_.get());
  in_flight_ = true;
}

void Graph::Wait() {
  if (!in_flight_) return;
  const VkFence fence = fence_.get();
  // A GPU's decode step ends a millisecond or so after it starts, and the next cannot be submitted
  // before the host sees it end: asking the fence sees that sooner than sleeping in the driver
  // until it wakes the thread. Past kFencePollTime (a long prefill) the thread sleeps. Not on a CPU
  // device, whose kernels need the core this would keep busy.
  if (device_.info().type != VK_PHYSICAL_DEVICE_TYPE_CPU) {
    const auto until = std::chrono::steady_clock::now() + kFencePollTime;
    do {
      const VkResult status = vkGetFenceStatus(device_.handle(), fence);
      if (status == VK_SUCCESS) {
        in_flight_ = false;
        return;
      }
      if (status != VK_NOT_READY) VK_CHECK(status);
    } while (std::chrono::steady_clock::now() < until);
  }
  VK_CHECK(vkWaitForFences(device_.handle(), 1, &fence, VK_TRUE, UINT64_MAX));
  in_flight_ = false;
}

std::vector<DispatchTiming> Graph::Timings() const {
  std::vector<DispatchTiming> timings;
  if (queries_ == VK_NULL_HANDLE || dispatches_.empty()) return timings;
  std::vector<uint64_t> stamps(dispatches_.size() + 1);
  VK_CHECK(vkGetQueryPoolResults(device_.handle(), queries_, 0, static_cast<uint32_t>(stamps.size()),
                                 stamps.size() * sizeof(uint64_t), stamps.data(), sizeof(uint64_t),
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
  const double ns_per_tick = device_.info().timestamp_period_ns;
  for (size_t i = 0; i < dispatches_.size(); ++i) {
    const Recorded& d = dispatches_[i];
    timings.push_back({.label = d.label,
                       .kernel = Spec(d.kernel).name,
                       .microseconds = static_cast<double>(stamps[i + 1] - stamps[i]) * ns_per_tick / 1000.0,
                       .cost = d.cost,
                       .waits = d.waits});
  }
  return timings;
}

}  // namespace qvk
