#pragma once
// The kernel table: every compute kernel with its SPIR-V variant, bindings, push-constant size,
// specialization constants and the device features it needs, generated from the one list in
// shaders/kernels.cmake; and the pipelines built from it (lazily, through a VkPipelineCache kept
// in the user's cache directory between runs).
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

#include "base/dtype.h"
#include "kernel_registry.h"  // generated: KernelOp, KernelId

namespace qvk {

class Device;
struct DeviceInfo;

// Device features a kernel may need beyond the baseline every usable device has (Vulkan 1.1,
// subgroup arithmetic, 16-bit storage); shaders/kernels.cmake names them by these names.
namespace kernel_feature {
inline constexpr uint32_t storage_8bit = 1u << 0;  // storageBuffer8BitAccess
inline constexpr uint32_t float16 = 1u << 1;       // shaderFloat16
inline constexpr uint32_t coopmat_nv = 1u << 2;    // VK_NV_cooperative_matrix enabled (DeviceInfo::coopmat_f16)
}  // namespace kernel_feature

struct SpecConstant {
  std::string_view name;
  uint32_t value;
};
inline constexpr uint32_t kMaxSpecConstants = 4;
// The most storage buffers a kernel binds: fewer than the 32 a pushed descriptor set may hold on
// any device with VK_KHR_push_descriptor, and what a dispatch's bindings are staged in.
inline constexpr uint32_t kMaxBindings = 16;

// One row of the kernel table, generated from shaders/kernels.cmake.
struct KernelSpec {
  KernelId id;
  KernelOp op;
  std::string_view name;                             // also the SPIR-V variant name
  std::optional<DType> weight_type;                  // for ops with one kernel per weight type
  uint32_t bindings;                                 // storage buffers at set 0, bindings 0..n-1
  uint32_t written;                                  // bit b set: binding b is written (hazard tracking)
  uint32_t push_size;                                // bytes; must equal sizeof the push struct passed at dispatch
  uint32_t local_size_x;                             // specialization constant 0 (also spec[0])
  std::array<SpecConstant, kMaxSpecConstants> spec;  // constant i is spec[i]
  uint32_t spec_count;
  uint32_t features;        // kernel_feature bits
  std::string_view target;  // glslc --target-env
};

constexpr uint32_t kKernelCount = static_cast<uint32_t>(KernelId::Count);

const KernelSpec& Spec(KernelId id);
// The kernel of `op` for weights of `type`; throws Error when the op has none for that type.
KernelId KernelFor(KernelOp op, DType type);
// What `device` lacks to run the kernel, as a phrase ("8-bit storage buffers"); empty: nothing.
std::string MissingFeatures(const DeviceInfo& device, const KernelSpec& spec);

// One figure the driver reports about a compiled kernel (VK_KHR_pipeline_executable_properties):
// its register count, shared memory, spilled bytes, ... as the driver names them.
struct KernelStatistic {
  std::string name;
  std::string description;
  double value = 0;
  bool is_integer = true;  // else a float (a driver's ratio or occupancy)
};

struct Pipeline {
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  // A dispatch pushes its bindings into the command buffer (VK_KHR_push_descriptor) rather than
  // allocating and writing a descriptor set: less host time a dispatch when a graph is recorded.
  bool pushes_bindings = false;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

class Kernels {
 public:
  explicit Kernels(Device& device);
  ~Kernels();  // writes the pipeline cache back to disk
  Kernels(const Kernels&) = delete;
  Kernels& operator=(const Kernels&) = delete;

  // Builds the kernel's pipeline on first use; throws Error when the device lacks a feature it needs.
  const Pipeline& Get(KernelId id);
  // The driver's figures for the kernel's compute code, building it first. Only on a Device made
  // with DeviceOptions::capture_statistics on a device that has them (Device::captures_statistics);
  // a driver may report none.
  std::vector<KernelStatistic> Statistics(KernelId id);

 private:
  Device& device_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::mutex mutex_;  // the UI and generation threads may both record
  std::array<Pipeline, kKernelCount> pipelines_{};
};

}  // namespace qvk
