#pragma once
// The kernel table: every compute kernel with its SPIR-V variant, bindings, push-constant size
// and workgroup size, and the pipelines built from it (lazily, through a VkPipelineCache kept
// in the user's cache directory between runs).
#include <array>
#include <cstdint>
#include <mutex>
#include <string_view>

#include <vulkan/vulkan.h>

namespace qvk {

class Device;

enum class KernelId : uint32_t {
  MatVecF32,
  MatVecF16,
  MatVecBF16,
  MatMulF32,
  MatMulF16,
  MatMulBF16,
  RmsNorm,
  Rope,
  SwiGlu,
  EmbedF32,
  EmbedF16,
  EmbedBF16,
  Attention,
  TopKChunks,
  TopKMerge,
  // ggml block types (DType::Q8_0 ... Q6_K)
  MatVecQ8_0,
  MatVecQ4_0,
  MatVecQ4_1,
  MatVecQ5_0,
  MatVecQ5_1,
  MatVecQ4_K,
  MatVecQ5_K,
  MatVecQ6_K,
  MatMulQ8_0,
  MatMulQ4_0,
  MatMulQ4_1,
  MatMulQ5_0,
  MatMulQ5_1,
  MatMulQ4_K,
  MatMulQ5_K,
  MatMulQ6_K,
  EmbedQ8_0,
  EmbedQ4_0,
  EmbedQ4_1,
  EmbedQ5_0,
  EmbedQ5_1,
  EmbedQ4_K,
  EmbedQ5_K,
  EmbedQ6_K,
  // The cooperative-matrix GEMM (matmul_coopmat.comp) for every weight type, in DType order;
  // only on devices with DeviceInfo::coopmat_f16.
  MatMulCoopmatF32,
  MatMulCoopmatF16,
  MatMulCoopmatBF16,
  MatMulCoopmatQ8_0,
  MatMulCoopmatQ4_0,
  MatMulCoopmatQ4_1,
  MatMulCoopmatQ5_0,
  MatMulCoopmatQ5_1,
  MatMulCoopmatQ4_K,
  MatMulCoopmatQ5_K,
  MatMulCoopmatQ6_K,
  Count
};
constexpr uint32_t kKernelCount = static_cast<uint32_t>(KernelId::Count);

struct KernelSpec {
  KernelId id;
  std::string_view name;   // also the SPIR-V variant name
  uint32_t bindings;       // storage buffers at set 0, bindings 0..n-1
  uint32_t written;        // bit b set: binding b is written (hazard tracking)
  uint32_t push_size;      // bytes; must equal sizeof the push struct passed at dispatch
  uint32_t local_size_x;   // specialization constant 0
};

const KernelSpec& Spec(KernelId id);

struct Pipeline {
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

class Kernels {
 public:
  explicit Kernels(Device& device);
  ~Kernels();  // writes the pipeline cache back to disk
  Kernels(const Kernels&) = delete;
  Kernels& operator=(const Kernels&) = delete;

  const Pipeline& Get(KernelId id);

 private:
  Device& device_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::mutex mutex_;  // the UI and generation threads may both record
  std::array<Pipeline, kKernelCount> pipelines_{};
};

}  // namespace qvk
