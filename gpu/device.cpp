// Sections: device discovery / choice / logical device / one-shot submissions and transfers
#include "gpu/device.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gpu/error.h"
#include "gpu/kernels.h"
#include "gpu/memory.h"

namespace qvk {
namespace {

bool HasExtension(const std::vector<VkExtensionProperties>& extensions, const char* name) {
  return std::any_of(extensions.begin(), extensions.end(),
                     [name](const VkExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

const char* ComponentTypeName(VkComponentTypeNV type) {
  switch (type) {
    case VK_COMPONENT_TYPE_FLOAT16_NV:
      return "f16";
    case VK_COMPONENT_TYPE_FLOAT32_NV:
      return "f32";
    case VK_COMPONENT_TYPE_FLOAT64_NV:
      return "f64";
    case VK_COMPONENT_TYPE_SINT8_NV:
      return "s8";
    case VK_COMPONENT_TYPE_UINT8_NV:
      return "u8";
    case VK_COMPONENT_TYPE_SINT32_NV:
      return "s32";
    case VK_COMPONENT_TYPE_UINT32_NV:
      return "u32";
    default:
      return "?";
  }
}

// Fills coopmat_shapes; returns whether the subgroup shape the coopmat GEMM multiplies with
// (16x16x16, f16 A and B, f32 C and D) is among them.
bool QueryCooperativeMatrixShapes(VkInstance instance, DeviceInfo& info) {
  auto query = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
      vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
  if (query == nullptr) return false;
  uint32_t count = 0;
  if (query(info.physical, &count, nullptr) != VK_SUCCESS) return false;
  std::vector<VkCooperativeMatrixPropertiesNV> props(count, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
  if (query(info.physical, &count, props.data()) != VK_SUCCESS) return false;
  bool gemm_shape = false;
  for (const auto& p : props) {
    if (p.scope != VK_SCOPE_SUBGROUP_NV) continue;
    info.coopmat_shapes.push_back(fmt::format("{}x{}x{} {}*{}+{}", p.MSize, p.NSize, p.KSize,
                                              ComponentTypeName(p.AType), ComponentTypeName(p.BType),
                                              ComponentTypeName(p.CType)));
    gemm_shape = gemm_shape || (p.MSize == 16 && p.NSize == 16 && p.KSize == 16 &&
                                p.AType == VK_COMPONENT_TYPE_FLOAT16_NV && p.BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                                p.CType == VK_COMPONENT_TYPE_FLOAT32_NV && p.DType == VK_COMPONENT_TYPE_FLOAT32_NV);
  }
  return gemm_shape;
}

// What the cooperative-matrix GEMM (shaders/matmul_coopmat.comp) needs that the device lacks;
// empty when it can run. Its SPIR-V declares CooperativeMatrixNV, Float16 and the Vulkan memory
// model, multiplies 16x16x16 f16 fragments into f32, lays its tile out for four 32-wide subgroups
// and stages it in shared memory: two 20 KiB stage buffers for the wide tile, and the 512 bytes of
// common.glsl's reduction scratch.
constexpr uint32_t kCoopmatSharedMemory = 40 * 1024 + 512;

struct CoopmatFacts {
  bool feature = false;        // VkPhysicalDeviceCooperativeMatrixFeaturesNV::cooperativeMatrix
  bool compute_stage = false;  // cooperativeMatrixSupportedStages has compute
  bool gemm_shape = false;     // 16x16x16 f16*f16+f32 at subgroup scope
  bool memory_model = false;   // vulkanMemoryModel and vulkanMemoryModelDeviceScope
};

std::string CoopmatGemmProblem(const DeviceInfo& d, const CoopmatFacts& f) {
  if (!d.coopmat_nv) {
    return d.coopmat_khr ? "VK_KHR_cooperative_matrix only; the GEMM is built for VK_NV_cooperative_matrix"
                         : "no cooperative matrices (VK_NV_cooperative_matrix)";
  }
  std::vector<std::string> missing;
  if (!f.feature) missing.push_back("the cooperativeMatrix feature");
  if (!f.compute_stage) missing.push_back("cooperative matrices in compute shaders");
  if (!f.gemm_shape) missing.push_back("the 16x16x16 f16*f16+f32 subgroup shape");
  if (!d.fp16_arithmetic) missing.push_back("f16 arithmetic (shaderFloat16)");
  if (!f.memory_model) missing.push_back("the Vulkan memory model at device scope");
  if (d.subgroup_size != 32) missing.push_back("32-wide subgroups");
  if (d.max_compute_shared_memory < kCoopmatSharedMemory) missing.push_back("40.5 KiB of shared memory per workgroup");
  std::string joined;
  for (const auto& m : missing) joined += (joined.empty() ? "" : ", ") + m;
  return joined.empty() ? "" : "VK_NV_cooperative_matrix without " + joined;
}

// Whether storage buffers can be bound to memory imported from a host allocation, without a
// dedicated allocation each (gpu/memory.h's ImportHostAllocation makes plain ones).
bool CanImportHostBuffers(VkPhysicalDevice physical) {
  VkPhysicalDeviceExternalBufferInfo buffer{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO};
  buffer.usage = kBufferUsage;
  buffer.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
  VkExternalBufferProperties properties{VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
  vkGetPhysicalDeviceExternalBufferProperties(physical, &buffer, &properties);
  const VkExternalMemoryFeatureFlags features = properties.externalMemoryProperties.externalMemoryFeatures;
  return (features & VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT) != 0 &&
         (features & VK_EXTERNAL_MEMORY_FEATURE_DEDICATED_ONLY_BIT) == 0;
}

// Whether a timeline semaphore exports as an opaque fd and one imports from it: the driver may
// allow it for binary semaphores only, so the query names the timeline type.
bool CanShareTimelineFds(VkPhysicalDevice physical) {
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  VkPhysicalDeviceExternalSemaphoreInfo semaphore{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_SEMAPHORE_INFO};
  semaphore.pNext = &type;
  semaphore.handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  VkExternalSemaphoreProperties properties{VK_STRUCTURE_TYPE_EXTERNAL_SEMAPHORE_PROPERTIES};
  vkGetPhysicalDeviceExternalSemaphoreProperties(physical, &semaphore, &properties);
  const VkExternalSemaphoreFeatureFlags both =
      VK_EXTERNAL_SEMAPHORE_FEATURE_EXPORTABLE_BIT | VK_EXTERNAL_SEMAPHORE_FEATURE_IMPORTABLE_BIT;
  return (properties.externalSemaphoreFeatures & both) == both;
}

// The reasons a device cannot run QwenVK's kernels; empty when it can.
std::string UnusableReason(const DeviceInfo& d) {
  std::vector<std::string> reasons;
  if (d.api_version < VK_API_VERSION_1_1) reasons.push_back("supports only Vulkan 1.0 (1.1 needed for subgroups)");
  if (d.compute_queue_family == UINT32_MAX) reasons.push_back("has no compute queue");
  if (!d.storage_16bit) reasons.push_back("cannot read 16-bit values from storage buffers (storageBuffer16BitAccess)");
  if (!d.subgroup_arithmetic) reasons.push_back("has no subgroup arithmetic in compute shaders");
  if (d.max_workgroup_invocations < 256) reasons.push_back("allows fewer than 256 invocations per workgroup");
  if (d.max_compute_shared_memory < 16384) reasons.push_back("has less than 16 KiB of shared memory per workgroup");
  std::string joined;
  for (const auto& r : reasons) joined += (joined.empty() ? "" : "; ") + r;
  return joined;
}

DeviceInfo DescribeDevice(VkInstance instance, VkPhysicalDevice physical, uint32_t index) {
  DeviceInfo info;
  info.index = index;
  info.physical = physical;

  uint32_t ext_count = 0;
  VK_CHECK(vkEnumerateDeviceExtensionProperties(physical, nullptr, &ext_count, nullptr));
  std::vector<VkExtensionProperties> extensions(ext_count);
  VK_CHECK(vkEnumerateDeviceExtensionProperties(physical, nullptr, &ext_count, extensions.data()));

  VkPhysicalDeviceProperties basic{};
  vkGetPhysicalDeviceProperties(physical, &basic);
  info.api_version = basic.apiVersion;
  const bool v11 = basic.apiVersion >= VK_API_VERSION_1_1;

  VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceSubgroupSizeControlProperties size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties maintenance3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceIDProperties ids{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES};
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &subgroup;
  subgroup.pNext = &maintenance3;
  maintenance3.pNext = &ids;
  void** tail = &ids.pNext;
  const bool has_driver_props =
      basic.apiVersion >= VK_API_VERSION_1_2 || HasExtension(extensions, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
  if (has_driver_props) {
    *tail = &driver;
    tail = &driver.pNext;
  }
  const bool has_size_control =
      basic.apiVersion >= VK_API_VERSION_1_3 || HasExtension(extensions, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  if (has_size_control) {
    *tail = &size_control;
    tail = &size_control.pNext;
  }
  // Extension structures go in the chains only where the device has the extension.
  const bool host_import = HasExtension(extensions, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
  VkPhysicalDeviceExternalMemoryHostPropertiesEXT host_import_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
  if (host_import) {
    *tail = &host_import_props;
    tail = &host_import_props.pNext;
  }
  const bool push_descriptor = HasExtension(extensions, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  VkPhysicalDevicePushDescriptorPropertiesKHR push_descriptor_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PUSH_DESCRIPTOR_PROPERTIES_KHR};
  if (push_descriptor) {
    *tail = &push_descriptor_props;
    tail = &push_descriptor_props.pNext;
  }
  const bool coopmat_nv = HasExtension(extensions, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  VkPhysicalDeviceCooperativeMatrixPropertiesNV coopmat_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
  if (coopmat_nv) *tail = &coopmat_props;
  if (v11) vkGetPhysicalDeviceProperties2(physical, &props2);

  VkPhysicalDevice16BitStorageFeatures storage16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDevice8BitStorageFeatures storage8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16i8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDeviceFeatures2 features2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features2.pNext = &storage16;
  storage16.pNext = &storage8;
  storage8.pNext = &f16i8;
  void** feature_tail = &f16i8.pNext;
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat_features{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  if (coopmat_nv) {
    *feature_tail = &coopmat_features;
    feature_tail = &coopmat_features.pNext;
  }
  VkPhysicalDeviceVulkanMemoryModelFeatures memory_model{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
  if (basic.apiVersion >= VK_API_VERSION_1_2 || HasExtension(extensions, VK_KHR_VULKAN_MEMORY_MODEL_EXTENSION_NAME)) {
    *feature_tail = &memory_model;
    feature_tail = &memory_model.pNext;
  }
  const bool has_timeline =
      basic.apiVersion >= VK_API_VERSION_1_2 || HasExtension(extensions, VK_KHR_TIMELINE_SEMAPHORE_EXTENSION_NAME);
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  if (has_timeline) {
    *feature_tail = &timeline;
    feature_tail = &timeline.pNext;
  }
  const bool has_executable_properties = HasExtension(extensions, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable_properties{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  if (has_executable_properties) *feature_tail = &executable_properties;
  if (v11) vkGetPhysicalDeviceFeatures2(physical, &features2);

  info.name = basic.deviceName;
  info.type = basic.deviceType;
  info.vendor_id = basic.vendorID;
  info.device_id = basic.deviceID;
  info.driver_version_raw = basic.driverVersion;
  std::memcpy(info.device_uuid, ids.deviceUUID, VK_UUID_SIZE);
  std::memcpy(info.driver_uuid, ids.driverUUID, VK_UUID_SIZE);
  if (has_driver_props) {
    info.driver_name = driver.driverName;
    info.driver_info = driver.driverInfo;
  }
  info.subgroup_size = subgroup.subgroupSize;
  info.min_subgroup_size = has_size_control ? size_control.minSubgroupSize : subgroup.subgroupSize;
  info.max_subgroup_size = has_size_control ? size_control.maxSubgroupSize : subgroup.subgroupSize;
  info.subgroup_arithmetic = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
                             (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) != 0 &&
                             (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;
  info.storage_16bit = storage16.storageBuffer16BitAccess == VK_TRUE;
  info.storage_8bit = storage8.storageBuffer8BitAccess == VK_TRUE;
  info.fp16_arithmetic = f16i8.shaderFloat16 == VK_TRUE;
  info.int8_arithmetic = f16i8.shaderInt8 == VK_TRUE;
  info.integer_dot_product = basic.apiVersion >= VK_API_VERSION_1_3 ||
                             HasExtension(extensions, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
  info.bf16_arithmetic = HasExtension(extensions, "VK_KHR_shader_bfloat16");
  info.coopmat_khr = HasExtension(extensions, "VK_KHR_cooperative_matrix");
  info.coopmat_nv = coopmat_nv;
  CoopmatFacts coopmat;
  if (coopmat_nv) {
    coopmat.gemm_shape = QueryCooperativeMatrixShapes(instance, info);
    coopmat.feature = coopmat_features.cooperativeMatrix == VK_TRUE;
    coopmat.compute_stage = (coopmat_props.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
  }
  // Device scope too: with the memory model on, topk.comp's memoryBarrierBuffer is a device-scope
  // barrier, which the validation layer refuses unless vulkanMemoryModelDeviceScope is enabled.
  coopmat.memory_model =
      memory_model.vulkanMemoryModel == VK_TRUE && memory_model.vulkanMemoryModelDeviceScope == VK_TRUE;

  const VkPhysicalDeviceLimits& limits = basic.limits;
  info.max_storage_buffer_range = limits.maxStorageBufferRange;
  info.max_compute_shared_memory = limits.maxComputeSharedMemorySize;
  info.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
  info.max_push_constants = limits.maxPushConstantsSize;
  info.storage_offset_alignment = limits.minStorageBufferOffsetAlignment;
  info.max_allocation_count = limits.maxMemoryAllocationCount;
  info.max_allocation_size = v11 ? maintenance3.maxMemoryAllocationSize : VkDeviceSize{1} << 30;
  info.timestamp_period_ns = limits.timestampPeriod;

  info.memory_budget = v11 && HasExtension(extensions, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  if (v11 && host_import && CanImportHostBuffers(physical)) {
    info.host_import_alignment = host_import_props.minImportedHostPointerAlignment;
  }
  info.timeline_semaphores = v11 && timeline.timelineSemaphore == VK_TRUE;
  info.kernel_statistics = v11 && executable_properties.pipelineExecutableInfo == VK_TRUE;
  info.max_push_descriptors = v11 && push_descriptor ? push_descriptor_props.maxPushDescriptors : 0;
  info.timeline_semaphore_fd = info.timeline_semaphores &&
                               HasExtension(extensions, VK_KHR_EXTERNAL_SEMAPHORE_FD_EXTENSION_NAME) &&
                               CanShareTimelineFds(physical);
  VkPhysicalDeviceMemoryProperties memory{};
  vkGetPhysicalDeviceMemoryProperties(physical, &memory);
  for (uint32_t h = 0; h < memory.memoryHeapCount; ++h) {
    info.heaps.push_back(
        {memory.memoryHeaps[h].size, (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
  }
  // Unified when the device shares the host's memory (CPU devices, integrated GPUs) and exposes
  // it host-visible: then buffers are written in place, with no staging copy. A discrete GPU
  // whose VRAM is mappable through a resizable BAR still gets staging: host reads over PCIe are
  // slow and DMA uploads are faster.
  const bool shares_host_memory =
      basic.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU || basic.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
  uint32_t largest_heap = 0;
  for (uint32_t h = 0; h < memory.memoryHeapCount; ++h) {
    if (info.heaps[h].device_local && info.heaps[h].size > info.heaps[largest_heap].size) largest_heap = h;
  }
  for (uint32_t t = 0; t < memory.memoryTypeCount; ++t) {
    const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    if (shares_host_memory && (memory.memoryTypes[t].propertyFlags & want) == want &&
        memory.memoryTypes[t].heapIndex == largest_heap) {
      info.unified_memory = true;
    }
  }

  uint32_t family_count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &family_count, nullptr);
  std::vector<VkQueueFamilyProperties> families(family_count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &family_count, families.data());
  // Prefer a family that also does graphics: the app's ImGui renders on the same queue.
  for (uint32_t f = 0; f < family_count; ++f) {
    if ((families[f].queueFlags & VK_QUEUE_COMPUTE_BIT) == 0) continue;
    const bool graphics = (families[f].queueFlags & VK_QUEUE_GRAPHICS_BIT) != 0;
    if (info.compute_queue_family == UINT32_MAX || graphics) {
      const bool had_graphics = info.compute_queue_family != UINT32_MAX &&
                                (families[info.compute_queue_family].queueFlags & VK_QUEUE_GRAPHICS_BIT) != 0;
      if (!had_graphics) {
        info.compute_queue_family = f;
        info.compute_timestamps = families[f].timestampValidBits > 0 && limits.timestampPeriod > 0;
      }
    }
  }
  info.unusable_reason = UnusableReason(info);
  info.coopmat_f16_problem = CoopmatGemmProblem(info, coopmat);
  info.coopmat_f16 = info.coopmat_f16_problem.empty();
  return info;
}

std::vector<VkQueueFamilyProperties> QueueFamilies(VkPhysicalDevice physical) {
  uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, families.data());
  return families;
}

// The graphics+compute family that can present to `surface`, preferring the one discovery chose;
// UINT32_MAX when there is none.
uint32_t PresentQueueFamily(const DeviceInfo& d, VkSurfaceKHR surface) {
  const std::vector<VkQueueFamilyProperties> families = QueueFamilies(d.physical);
  const auto presents = [&](uint32_t f) {
    const VkQueueFlags both = VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT;
    VkBool32 supported = VK_FALSE;
    return (families[f].queueFlags & both) == both &&
           vkGetPhysicalDeviceSurfaceSupportKHR(d.physical, f, surface, &supported) == VK_SUCCESS &&
           supported == VK_TRUE;
  };
  if (d.compute_queue_family < families.size() && presents(d.compute_queue_family)) return d.compute_queue_family;
  for (uint32_t f = 0; f < families.size(); ++f) {
    if (presents(f)) return f;
  }
  return UINT32_MAX;
}

bool HasSwapchainExtension(VkPhysicalDevice physical) {
  uint32_t count = 0;
  VK_CHECK(vkEnumerateDeviceExtensionProperties(physical, nullptr, &count, nullptr));
  std::vector<VkExtensionProperties> extensions(count);
  VK_CHECK(vkEnumerateDeviceExtensionProperties(physical, nullptr, &count, extensions.data()));
  return HasExtension(extensions, VK_KHR_SWAPCHAIN_EXTENSION_NAME);
}

int TypePreference(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 3;
    default:
      return 4;
  }
}

}  // namespace

std::string DeviceInfo::TypeName() const {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "CPU";
    default:
      return "other";
  }
}

std::string DeviceInfo::VendorName() const {
  switch (vendor_id) {
    case 0x10DE:
      return "NVIDIA";
    case 0x1002:
      return "AMD";
    case 0x8086:
      return "Intel";
    case 0x13B5:
      return "ARM";
    case 0x5143:
      return "Qualcomm";
    case 0x1010:
      return "Imagination";
    case 0x106B:
      return "Apple";
    case 0x10005:
      return "Mesa";
    default:
      return fmt::format("0x{:04x}", vendor_id);
  }
}

std::string DeviceInfo::DriverVersionString() const {
  const uint32_t v = driver_version_raw;
  if (vendor_id == 0x10DE) {  // NVIDIA packs 10.8.8.6 bits
    return fmt::format("{}.{}.{}.{}", v >> 22, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
  }
  return fmt::format("{}.{}.{}", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

std::string DeviceInfo::ApiVersionString() const {
  return fmt::format("{}.{}.{}", VK_API_VERSION_MAJOR(api_version), VK_API_VERSION_MINOR(api_version),
                     VK_API_VERSION_PATCH(api_version));
}

VkDeviceSize DeviceInfo::DeviceLocalBytes() const {
  VkDeviceSize largest = 0;
  for (const auto& heap : heaps) {
    if (heap.device_local) largest = std::max(largest, heap.size);
  }
  return largest;
}

VkDeviceSize FreeDeviceLocalBytes(const DeviceInfo& device) {
  if (!device.memory_budget) return device.DeviceLocalBytes();
  VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
  VkPhysicalDeviceMemoryProperties2 memory{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
  memory.pNext = &budget;
  vkGetPhysicalDeviceMemoryProperties2(device.physical, &memory);
  VkDeviceSize largest = 0, free = 0;
  for (uint32_t h = 0; h < memory.memoryProperties.memoryHeapCount; ++h) {
    const VkMemoryHeap& heap = memory.memoryProperties.memoryHeaps[h];
    if ((heap.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) == 0 || heap.size <= largest) continue;
    largest = heap.size;
    free = budget.heapBudget[h] > budget.heapUsage[h] ? budget.heapBudget[h] - budget.heapUsage[h] : 0;
  }
  return free;
}

std::string PresentationProblem(const DeviceInfo& device, VkSurfaceKHR surface) {
  std::string problem;
  if (!HasSwapchainExtension(device.physical)) problem = "cannot show windows (no VK_KHR_swapchain)";
  if (PresentQueueFamily(device, surface) == UINT32_MAX) {
    problem += std::string(problem.empty() ? "" : "; ") +
               "has no graphics and compute queue family that can present to the window";
  }
  return problem;
}

std::vector<DeviceInfo> EnumerateDevices(const Instance& instance, VkSurfaceKHR present_surface) {
  uint32_t count = 0;
  VK_CHECK(vkEnumeratePhysicalDevices(instance.handle(), &count, nullptr));
  std::vector<VkPhysicalDevice> physical(count);
  VK_CHECK(vkEnumeratePhysicalDevices(instance.handle(), &count, physical.data()));
  std::vector<DeviceInfo> devices;
  for (uint32_t i = 0; i < count; ++i) {
    DeviceInfo info = DescribeDevice(instance.handle(), physical[i], i);
    if (present_surface != VK_NULL_HANDLE) {
      if (std::string problem = PresentationProblem(info, present_surface); !problem.empty()) {
        info.unusable_reason += (info.unusable_reason.empty() ? "" : "; ") + problem;
      }
    }
    devices.push_back(std::move(info));
  }
  return devices;
}

const DeviceInfo& ChooseDevice(const std::vector<DeviceInfo>& devices, std::optional<uint32_t> requested,
                               VkSurfaceKHR present_surface) {
  // Devices enumerated without the surface are checked for it here.
  const auto rejection = [present_surface](const DeviceInfo& d) {
    if (!d.usable()) return d.unusable_reason;
    return present_surface != VK_NULL_HANDLE ? PresentationProblem(d, present_surface) : std::string();
  };
  if (devices.empty()) {
    throw Error("No Vulkan device found. Install your GPU's Vulkan driver, or mesa-vulkan-drivers for the CPU device.");
  }
  if (!requested) {
    if (const char* env = std::getenv("QWENVK_DEVICE"); env != nullptr && *env != '\0') {
      char* end = nullptr;
      const unsigned long value = std::strtoul(env, &end, 10);
      if (*end != '\0') throw Error(fmt::format("QWENVK_DEVICE='{}' is not a device number", env));
      requested = static_cast<uint32_t>(value);
    }
  }
  if (requested) {
    if (*requested >= devices.size()) {
      throw Error(fmt::format("Device {} does not exist: this machine has {} Vulkan device{} (see `qwenvk devices`).",
                              *requested, devices.size(), devices.size() == 1 ? "" : "s"));
    }
    const DeviceInfo& d = devices[*requested];
    if (const std::string why = rejection(d); !why.empty()) {
      throw Error(fmt::format("Device {} ({}) cannot be used: {}.", d.index, d.name, why));
    }
    return d;
  }
  const DeviceInfo* best = nullptr;
  for (const auto& d : devices) {
    if (rejection(d).empty() && (best == nullptr || TypePreference(d.type) < TypePreference(best->type))) best = &d;
  }
  if (best == nullptr) {
    std::string why;
    for (const auto& d : devices) why += fmt::format("\n  {} ({}): {}", d.index, d.name, rejection(d));
    throw Error("No usable Vulkan device:" + why);
  }
  return *best;
}

Device::Device(const Instance& instance, const DeviceInfo& info, const DeviceOptions& options)
    : instance_(instance), info_(info) {
  if (!info.usable())
    throw Error(fmt::format("Device {} ({}) cannot be used: {}.", info.index, info.name, info.unusable_reason));
  if (options.present_surface != VK_NULL_HANDLE) {
    if (const std::string problem = PresentationProblem(info, options.present_surface); !problem.empty()) {
      throw Error(fmt::format("Device {} ({}) cannot be used: {}.", info.index, info.name, problem));
    }
    info_.compute_queue_family = PresentQueueFamily(info, options.present_surface);
    const std::vector<VkQueueFamilyProperties> families = QueueFamilies(info.physical);
    info_.compute_timestamps =
        families[info_.compute_queue_family].timestampValidBits > 0 && info.timestamp_period_ns > 0;
  }

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = info_.compute_queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;

  VkPhysicalDevice16BitStorageFeatures storage16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  storage16.storageBuffer16BitAccess = VK_TRUE;
  VkPhysicalDevice8BitStorageFeatures storage8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  storage8.storageBuffer8BitAccess = info.storage_8bit ? VK_TRUE : VK_FALSE;
  VkPhysicalDeviceShaderFloat16Int8Features f16i8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  f16i8.shaderFloat16 = info.fp16_arithmetic ? VK_TRUE : VK_FALSE;
  f16i8.shaderInt8 = info.int8_arithmetic ? VK_TRUE : VK_FALSE;
  VkPhysicalDeviceFeatures2 features2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features2.pNext = &storage16;
  storage16.pNext = &storage8;
  storage8.pNext = &f16i8;

  std::vector<const char*> extensions;
  if (info.api_version < VK_API_VERSION_1_2) {
    // 1.1 devices expose these as extensions; 1.2 made them core.
    if (info.storage_8bit) extensions.push_back(VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
    if (info.fp16_arithmetic || info.int8_arithmetic) extensions.push_back(VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
  }
  // The coopmat GEMM's SPIR-V: cooperative matrices and the Vulkan memory model they require.
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  coopmat.cooperativeMatrix = VK_TRUE;
  VkPhysicalDeviceVulkanMemoryModelFeatures memory_model{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
  memory_model.vulkanMemoryModel = VK_TRUE;
  memory_model.vulkanMemoryModelDeviceScope = VK_TRUE;
  void** feature_tail = &f16i8.pNext;
  if (info.coopmat_f16) {
    *feature_tail = &coopmat;
    coopmat.pNext = &memory_model;
    feature_tail = &memory_model.pNext;
    extensions.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    if (info.api_version < VK_API_VERSION_1_2) extensions.push_back(VK_KHR_VULKAN_MEMORY_MODEL_EXTENSION_NAME);
  }
  // What a split model's devices share where they can (gpu/interop.h); VK_KHR_external_memory and
  // VK_KHR_external_semaphore, which these extend, are Vulkan 1.1.
  if (info.host_import_alignment != 0) extensions.push_back(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  timeline.timelineSemaphore = VK_TRUE;
  if (info.timeline_semaphores) {
    *feature_tail = &timeline;
    feature_tail = &timeline.pNext;
    if (info.api_version < VK_API_VERSION_1_2) extensions.push_back(VK_KHR_TIMELINE_SEMAPHORE_EXTENSION_NAME);
  }
  // Asked for only (`qwenvk kernels`): pipelines that capture statistics are compiled without the
  // pipeline cache (Kernels::Get).
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executable_properties{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  executable_properties.pipelineExecutableInfo = VK_TRUE;
  captures_statistics_ = options.capture_statistics && info.kernel_statistics;
  if (captures_statistics_) {
    *feature_tail = &executable_properties;
    extensions.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  }
  if (info.timeline_semaphore_fd) extensions.push_back(VK_KHR_EXTERNAL_SEMAPHORE_FD_EXTENSION_NAME);
  const bool push_descriptors = info.max_push_descriptors > 0 && !options.allocate_descriptor_sets;
  if (push_descriptors) extensions.push_back(VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  if (options.present_surface != VK_NULL_HANDLE) extensions.push_back(VK_KHR_SWAPCHAIN_EXTENSION_NAME);

  VkDeviceCreateInfo create{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  create.pNext = &features2;
  create.queueCreateInfoCount = 1;
  create.pQueueCreateInfos = &queue_info;
  create.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  create.ppEnabledExtensionNames = extensions.data();
  VK_CHECK(vkCreateDevice(info.physical, &create, nullptr, &device_));
  vkGetDeviceQueue(device_, info_.compute_queue_family, 0, &queue_);
  if (push_descriptors) {
    push_descriptor_set_ =
        reinterpret_cast<PFN_vkCmdPushDescriptorSetKHR>(vkGetDeviceProcAddr(device_, "vkCmdPushDescriptorSetKHR"));
  }

  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = info_.compute_queue_family;
  VK_CHECK(vkCreateCommandPool(device_, &pool_info, nullptr, &command_pool_));
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VK_CHECK(vkCreateFence(device_, &fence_info, nullptr, &fence_));

  allocator_ = std::make_unique<Allocator>(*this);
  kernels_ = std::make_unique<Kernels>(*this);
  spdlog::debug("using device {} ({}, {})", info.index, info.name, info.TypeName());
}

Device::~Device() {
  if (device_ == VK_NULL_HANDLE) return;
  vkDeviceWaitIdle(device_);
  kernels_.reset();
  allocator_.reset();
  vkDestroyFence(device_, fence_, nullptr);
  vkDestroyCommandPool(device_, command_pool_, nullptr);
  vkDestroyDevice(device_, nullptr);
}

VkCommandBuffer Device::BeginOneShot() {
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = command_pool_;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VK_CHECK(vkAllocateCommandBuffers(device_, &alloc, &cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  VK_CHECK(vkBeginCommandBuffer(cmd, &begin));
  return cmd;
}

void Device::EndOneShotAndWait(VkCommandBuffer cmd) {
  VK_CHECK(vkEndCommandBuffer(cmd));
  SubmitAndWait(cmd);
  vkFreeCommandBuffers(device_, command_pool_, 1, &cmd);
}

void Device::SubmitAndWait(VkCommandBuffer cmd) {
  std::lock_guard lock(one_shot_mutex_);
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  VK_CHECK(vkResetFences(device_, 1, &fence_));
  Submit(submit, fence_);
  VK_CHECK(vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX));
}

void Device::Submit(const VkSubmitInfo& submit, VkFence fence) {
  std::lock_guard lock(queue_mutex_);
  VK_CHECK(vkQueueSubmit(queue_, 1, &submit, fence));
}

VkResult Device::Present(const VkPresentInfoKHR& present) {
  std::lock_guard lock(queue_mutex_);
  const VkResult result = vkQueuePresentKHR(queue_, &present);
  if (result != VK_SUBOPTIMAL_KHR && result != VK_ERROR_OUT_OF_DATE_KHR) VK_CHECK(result);
  return result;
}

void Device::WaitQueueIdle() {
  std::lock_guard lock(queue_mutex_);
  VK_CHECK(vkQueueWaitIdle(queue_));
}

void Device::Upload(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes) {
  if (offset + bytes.size() > dst.size()) throw Error("upload past the end of a buffer");
  if (dst.mapped() != nullptr) {
    std::memcpy(dst.mapped() + offset, bytes.data(), bytes.size());
    return;
  }
  // Through a bounded staging buffer, so a large tensor never needs a second full-size copy.
  const VkDeviceSize chunk = std::min<VkDeviceSize>(bytes.size(), VkDeviceSize{64} << 20);
  Buffer staging = allocator_->CreateBuffer(std::max<VkDeviceSize>(chunk, 4), MemoryKind::Upload);
  for (VkDeviceSize done = 0; done < bytes.size(); done += chunk) {
    const VkDeviceSize n = std::min<VkDeviceSize>(chunk, bytes.size() - done);
    std::memcpy(staging.mapped(), bytes.data() + done, n);
    SubmitAndWait([&](VkCommandBuffer cmd) {
      VkBufferCopy region{0, offset + done, n};
      vkCmdCopyBuffer(cmd, staging.handle(), dst.handle(), 1, &region);
    });
  }
}

void Device::Download(const Buffer& src, VkDeviceSize offset, std::span<std::byte> bytes) {
  if (offset + bytes.size() > src.size()) throw Error("download past the end of a buffer");
  if (src.mapped() != nullptr) {
    src.InvalidateMapped();
    std::memcpy(bytes.data(), src.mapped() + offset, bytes.size());
    return;
  }
  const VkDeviceSize chunk = std::min<VkDeviceSize>(bytes.size(), VkDeviceSize{64} << 20);
  Buffer staging = allocator_->CreateBuffer(std::max<VkDeviceSize>(chunk, 4), MemoryKind::Readback);
  for (VkDeviceSize done = 0; done < bytes.size(); done += chunk) {
    const VkDeviceSize n = std::min<VkDeviceSize>(chunk, bytes.size() - done);
    SubmitAndWait([&](VkCommandBuffer cmd) {
      VkMemoryBarrier shader_writes{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      shader_writes.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
      shader_writes.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                           &shader_writes, 0, nullptr, 0, nullptr);
      VkBufferCopy region{offset + done, 0, n};
      vkCmdCopyBuffer(cmd, src.handle(), staging.handle(), 1, &region);
      VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0, nullptr,
                           0, nullptr);
    });
    staging.InvalidateMapped();
    std::memcpy(bytes.data() + done, staging.mapped(), n);
  }
}

}  // namespace qvk
