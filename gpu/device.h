#pragma once
// Physical-device discovery (what every GPU can do, and why one is unusable) and the logical
// Device that runs kernels: queue, one-shot submissions, memory, pipelines.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "gpu/instance.h"

namespace qvk {

class Allocator;
class Kernels;
class Buffer;

struct MemoryHeapInfo {
  VkDeviceSize size = 0;
  bool device_local = false;
};

// Everything `qwenvk devices` prints and device choice needs, read once per physical device.
struct DeviceInfo {
  uint32_t index = 0;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  std::string driver_name;
  std::string driver_info;
  uint32_t driver_version_raw = 0;
  uint32_t api_version = 0;
  uint8_t device_uuid[VK_UUID_SIZE] = {};
  uint8_t driver_uuid[VK_UUID_SIZE] = {};
  std::vector<MemoryHeapInfo> heaps;
  bool unified_memory = false;  // shares host memory and maps it: no staging copies (lavapipe, UMA)
  bool memory_budget = false;   // VK_EXT_memory_budget: what is free can be asked
  // What lets the devices of a split model hand data over without the host (gpu/interop.h):
  // storage buffers imported from host memory (VK_EXT_external_memory_host), whose address and
  // size must be multiples of this (its minImportedHostPointerAlignment); 0 where they cannot be.
  VkDeviceSize host_import_alignment = 0;
  bool timeline_semaphores = false;  // enabled where present: Graph::Submit waits for and signals them
  // Timeline semaphores that export and import as opaque fds (VK_KHR_external_semaphore_fd).
  bool timeline_semaphore_fd = false;
  // The driver reports what it compiled each kernel into (registers, shared memory, ...), through
  // VK_KHR_pipeline_executable_properties: `qwenvk kernels` (Kernels::Statistics).
  bool kernel_statistics = false;
  // VK_KHR_push_descriptor: the most storage buffers a kernel may have pushed into a command
  // buffer (at least 32, more than any kernel binds); 0 where the device lacks the extension.
  uint32_t max_push_descriptors = 0;

  uint32_t subgroup_size = 0;
  uint32_t min_subgroup_size = 0;
  uint32_t max_subgroup_size = 0;
  bool subgroup_arithmetic = false;  // in compute shaders

  bool fp16_arithmetic = false;  // shaderFloat16
  bool storage_16bit = false;    // storageBuffer16BitAccess
  bool int8_arithmetic = false;  // shaderInt8
  bool storage_8bit = false;     // storageBuffer8BitAccess
  bool integer_dot_product = false;
  bool bf16_arithmetic = false;             // VK_KHR_shader_bfloat16
  bool coopmat_khr = false;                 // VK_KHR_cooperative_matrix
  bool coopmat_nv = false;                  // VK_NV_cooperative_matrix
  std::vector<std::string> coopmat_shapes;  // "MxNxK A*B+C->D types", from the NV query
  // The cooperative-matrix GEMM (shaders/matmul_coopmat.comp) can run here, and a Device made
  // from this enables what it needs; ops::MatMul then uses it for prefill.
  bool coopmat_f16 = false;
  std::string coopmat_f16_problem;  // why it cannot, when coopmat_f16 is false

  uint32_t max_storage_buffer_range = 0;
  uint32_t max_compute_shared_memory = 0;
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_push_constants = 0;
  VkDeviceSize max_allocation_size = 0;
  VkDeviceSize storage_offset_alignment = 0;
  uint32_t max_allocation_count = 0;
  float timestamp_period_ns = 0;
  bool compute_timestamps = false;

  // Discovery's choice; a Device made for a window may take another family, one that presents.
  uint32_t compute_queue_family = UINT32_MAX;
  std::string unusable_reason;  // empty: usable

  bool usable() const { return unusable_reason.empty(); }
  std::string TypeName() const;
  std::string VendorName() const;
  std::string DriverVersionString() const;
  std::string ApiVersionString() const;
  VkDeviceSize DeviceLocalBytes() const;
};

// Bytes of the largest device-local heap that are free now: the driver's budget less what is in
// use, by every process, where VK_EXT_memory_budget says; else the heap's size.
VkDeviceSize FreeDeviceLocalBytes(const DeviceInfo& device);

// Every physical device the loader reports, in loader order. With a surface, a device that
// cannot present to it is unusable too, and its unusable_reason says why.
std::vector<DeviceInfo> EnumerateDevices(const Instance& instance, VkSurfaceKHR present_surface = VK_NULL_HANDLE);

// The device to use: `requested` (from --device N) or QWENVK_DEVICE, else the first usable
// discrete GPU, then integrated, virtual, CPU. With a surface, only devices that can present to
// it qualify. Throws Error explaining each rejection.
const DeviceInfo& ChooseDevice(const std::vector<DeviceInfo>& devices, std::optional<uint32_t> requested,
                               VkSurfaceKHR present_surface = VK_NULL_HANDLE);

// Why `device` cannot present to `surface` (no graphics+compute queue family that can, no
// VK_KHR_swapchain); empty when it can.
std::string PresentationProblem(const DeviceInfo& device, VkSurfaceKHR surface);

struct DeviceOptions {
  // When set, the one queue is of a graphics+compute family that presents to this surface, and
  // VK_KHR_swapchain is enabled: kernels and the UI share the queue.
  VkSurfaceKHR present_surface = VK_NULL_HANDLE;
  // Pipelines keep the driver's statistics of their compiled code, where DeviceInfo::kernel_statistics.
  bool capture_statistics = false;
  // Graphs allocate a descriptor set a dispatch even where the device could push the bindings
  // into the command buffer: the path of devices without VK_KHR_push_descriptor, for its tests.
  bool allocate_descriptor_sets = false;
};

class Device {
 public:
  Device(const Instance& instance, const DeviceInfo& info, const DeviceOptions& options = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const { return info_; }
  const Instance& instance() const { return instance_; }
  VkDevice handle() const { return device_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return info_.compute_queue_family; }
  Allocator& allocator() { return *allocator_; }
  Kernels& kernels() { return *kernels_; }
  // Made with DeviceOptions::capture_statistics on a device that has them.
  bool captures_statistics() const { return captures_statistics_; }
  // vkCmdPushDescriptorSetKHR where graphs push each dispatch's bindings (kernels' set layouts are
  // made for it); null where they allocate descriptor sets.
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_set() const { return push_descriptor_set_; }

  // Records with `record` into a fresh command buffer, submits it and waits.
  template <class Fn>
  void SubmitAndWait(Fn&& record) {
    VkCommandBuffer cmd = BeginOneShot();
    record(cmd);
    EndOneShotAndWait(cmd);
  }
  // Submits recorded command buffers and waits for them (graphs use this for replay).
  void SubmitAndWait(VkCommandBuffer cmd);
  // Submits without waiting; the queue is shared by threads, so every submit goes through here.
  void Submit(const VkSubmitInfo& submit, VkFence fence);
  // Presents on the queue, serialized with Submit. Only on a Device made with a present_surface.
  // Returns VK_SUBOPTIMAL_KHR and VK_ERROR_OUT_OF_DATE_KHR for the caller to recreate its
  // swapchain; throws on other failures.
  VkResult Present(const VkPresentInfoKHR& present);
  // Waits until the queue has finished everything submitted so far, by any thread (presentation
  // included); other threads' submissions wait meanwhile.
  void WaitQueueIdle();

  // Copies between host memory and any buffer, through a staging buffer when the buffer is
  // not host-visible.
  void Upload(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes);
  void Download(const Buffer& src, VkDeviceSize offset, std::span<std::byte> bytes);

  VkCommandPool command_pool() const { return command_pool_; }

 private:
  VkCommandBuffer BeginOneShot();
  void EndOneShotAndWait(VkCommandBuffer cmd);

  const Instance& instance_;
  DeviceInfo info_;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  bool captures_statistics_ = false;
  PFN_vkCmdPushDescriptorSetKHR push_descriptor_set_ = nullptr;
  std::mutex queue_mutex_;     // vkQueueSubmit needs external synchronization
  std::mutex one_shot_mutex_;  // fence_ and the pool serve one one-shot submission at a time
  std::unique_ptr<Allocator> allocator_;
  std::unique_ptr<Kernels> kernels_;
};

}  // namespace qvk
