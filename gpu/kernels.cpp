#include "gpu/kernels.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/spirv_blobs.h"
#include "shaders/push_constants.h"

namespace qvk {
namespace {

using namespace qvk::push;
constexpr uint32_t B(uint32_t binding) { return 1u << binding; }

// name, bindings, written bindings, push size, local size. Binding order is the shader's.
constexpr KernelSpec kTable[] = {
    // W, X, Y, bias, residual
    {KernelId::MatVecF32, "matvec_f32", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecF16, "matvec_f16", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecBF16, "matvec_bf16", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulF32, "matmul_f32", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulF16, "matmul_f16", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulBF16, "matmul_bf16", 5, B(2), sizeof(MatMulPush), 256},
    // X, weight, Y
    {KernelId::RmsNorm, "rmsnorm", 3, B(2), sizeof(RmsNormPush), 256},
    // QKV (rotated in place), positions, inv_freq, K cache, V cache
    {KernelId::Rope, "rope", 5, B(0) | B(3) | B(4), sizeof(RopePush), 64},
    // GU, Y
    {KernelId::SwiGlu, "swiglu", 2, B(1), sizeof(SwiGluPush), 256},
    // E, ids, Y
    {KernelId::EmbedF32, "embed_f32", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedF16, "embed_f16", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedBF16, "embed_bf16", 3, B(2), sizeof(EmbedPush), 256},
    // Q, positions, K cache, V cache, O, P
    {KernelId::Attention, "attention", 6, B(4) | B(5), sizeof(AttentionPush), 128},
    // values, candidate values out, candidate indices out
    {KernelId::TopKChunks, "topk_chunks", 3, B(1) | B(2), sizeof(TopKPush), 256},
    // candidate values, candidate indices (marked taken), values out, indices out
    {KernelId::TopKMerge, "topk_merge", 4, B(1) | B(2) | B(3), sizeof(TopKPush), 256},
    // W, X, Y, bias, residual
    {KernelId::MatVecQ8_0, "matvec_q8_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ4_0, "matvec_q4_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ4_1, "matvec_q4_1", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ5_0, "matvec_q5_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ5_1, "matvec_q5_1", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ4_K, "matvec_q4_k", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ5_K, "matvec_q5_k", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatVecQ6_K, "matvec_q6_k", 5, B(2), sizeof(MatMulPush), 256},
    // W, X, Y, bias, residual
    {KernelId::MatMulQ8_0, "matmul_q8_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ4_0, "matmul_q4_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ4_1, "matmul_q4_1", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ5_0, "matmul_q5_0", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ5_1, "matmul_q5_1", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ4_K, "matmul_q4_k", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ5_K, "matmul_q5_k", 5, B(2), sizeof(MatMulPush), 256},
    {KernelId::MatMulQ6_K, "matmul_q6_k", 5, B(2), sizeof(MatMulPush), 256},
    // E, ids, Y
    {KernelId::EmbedQ8_0, "embed_q8_0", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ4_0, "embed_q4_0", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ4_1, "embed_q4_1", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ5_0, "embed_q5_0", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ5_1, "embed_q5_1", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ4_K, "embed_q4_k", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ5_K, "embed_q5_k", 3, B(2), sizeof(EmbedPush), 256},
    {KernelId::EmbedQ6_K, "embed_q6_k", 3, B(2), sizeof(EmbedPush), 256},
    // W, X, Y, bias, residual. 128 invocations: the four 32-wide subgroups the tile is laid out for.
    {KernelId::MatMulCoopmatF32, "matmul_coopmat_f32", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatF16, "matmul_coopmat_f16", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatBF16, "matmul_coopmat_bf16", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ8_0, "matmul_coopmat_q8_0", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ4_0, "matmul_coopmat_q4_0", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ4_1, "matmul_coopmat_q4_1", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ5_0, "matmul_coopmat_q5_0", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ5_1, "matmul_coopmat_q5_1", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ4_K, "matmul_coopmat_q4_k", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ5_K, "matmul_coopmat_q5_k", 5, B(2), sizeof(MatMulPush), 128},
    {KernelId::MatMulCoopmatQ6_K, "matmul_coopmat_q6_k", 5, B(2), sizeof(MatMulPush), 128},
};
static_assert(std::size(kTable) == kKernelCount, "one table row per KernelId");

constexpr bool TableInIdOrder() {
  for (uint32_t i = 0; i < kKernelCount; ++i) {
    if (static_cast<uint32_t>(kTable[i].id) != i) return false;
  }
  return true;
}
static_assert(TableInIdOrder(), "kTable rows must follow KernelId order");

std::filesystem::path CacheDirectory() {
  if (const char* dir = std::getenv("QWENVK_CACHE_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "qwenvk";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::filesystem::path(home) / ".cache" / "qwenvk";
  }
  return {};
}

std::filesystem::path CacheFile(const DeviceInfo& info) {
  const std::filesystem::path dir = CacheDirectory();
  if (dir.empty()) return {};
  std::string uuid;
  for (uint8_t byte : info.device_uuid) uuid += fmt::format("{:02x}", byte);
  return dir / fmt::format("pipelines-{}-{:08x}.bin", uuid, info.driver_version_raw);
}

// The driver validates the blob too; checking the header ourselves keeps a blob from another
// device or driver (a copied home directory) from ever reaching it.
bool CacheBlobMatches(const std::vector<char>& blob, const DeviceInfo& info) {
  VkPipelineCacheHeaderVersionOne header{};
  if (blob.size() < sizeof(header)) return false;
  std::memcpy(&header, blob.data(), sizeof(header));
  return header.headerVersion == VK_PIPELINE_CACHE_HEADER_VERSION_ONE && header.vendorID == info.vendor_id &&
         header.deviceID == info.device_id;
}

}  // namespace

const KernelSpec& Spec(KernelId id) { return kTable[static_cast<uint32_t>(id)]; }

Kernels::Kernels(Device& device) : device_(device) {
  std::vector<char> blob;
  if (const auto path = CacheFile(device.info()); !path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (in) blob.assign(std::istreambuf_iterator<char>(in), {});
    if (!blob.empty() && !CacheBlobMatches(blob, device.info())) blob.clear();
  }
  VkPipelineCacheCreateInfo info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  info.initialDataSize = blob.size();
  info.pInitialData = blob.empty() ? nullptr : blob.data();
  VK_CHECK(vkCreatePipelineCache(device.handle(), &info, nullptr, &cache_));
}

Kernels::~Kernels() {
  VkDevice dev = device_.handle();
  // Saving is best effort: a read-only home directory must not stop the program.
  if (const auto path = CacheFile(device_.info()); !path.empty()) {
    size_t size = 0;
    if (vkGetPipelineCacheData(dev, cache_, &size, nullptr) == VK_SUCCESS && size > 0) {
      std::vector<char> data(size);
      if (vkGetPipelineCacheData(dev, cache_, &size, data.data()) == VK_SUCCESS) {
        std::error_code ec;
        std::filesystem::create_directories(path.parent_path(), ec);
        const auto tmp = path.string() + ".tmp";
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(data.data(), static_cast<std::streamsize>(size));
        out.close();
        if (out) std::filesystem::rename(tmp, path, ec);
        if (!out || ec) spdlog::debug("could not save the pipeline cache to {}", path.string());
      }
    }
  }
  for (auto& p : pipelines_) {
    if (p.pipeline != VK_NULL_HANDLE) vkDestroyPipeline(dev, p.pipeline, nullptr);
    if (p.layout != VK_NULL_HANDLE) vkDestroyPipelineLayout(dev, p.layout, nullptr);
    if (p.set_layout != VK_NULL_HANDLE) vkDestroyDescriptorSetLayout(dev, p.set_layout, nullptr);
  }
  vkDestroyPipelineCache(dev, cache_, nullptr);
}

const Pipeline& Kernels::Get(KernelId id) {
  std::lock_guard lock(mutex_);
  Pipeline& p = pipelines_[static_cast<uint32_t>(id)];
  if (p.pipeline != VK_NULL_HANDLE) return p;
  const KernelSpec& spec = Spec(id);
  const SpirvBlob* blob = nullptr;
  for (const auto& b : AllSpirv()) {
    if (b.name == spec.name) blob = &b;
  }
  if (blob == nullptr) throw Error(fmt::format("kernel {} has no embedded SPIR-V", spec.name));
  VkDevice dev = device_.handle();

  std::vector<VkDescriptorSetLayoutBinding> bindings(spec.bindings);
  for (uint32_t b = 0; b < spec.bindings; ++b) {
    bindings[b] = {b, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  }
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = spec.bindings;
  set_info.pBindings = bindings.data();
  VK_CHECK(vkCreateDescriptorSetLayout(dev, &set_info, nullptr, &p.set_layout));

  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, spec.push_size};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &p.set_layout;
  layout_info.pushConstantRangeCount = 1;
  layout_info.pPushConstantRanges = &push;
  VK_CHECK(vkCreatePipelineLayout(dev, &layout_info, nullptr, &p.layout));

  VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module_info.codeSize = blob->words.size_bytes();
  module_info.pCode = blob->words.data();
  VkShaderModule module = VK_NULL_HANDLE;
  VK_CHECK(vkCreateShaderModule(dev, &module_info, nullptr, &module));

  const VkSpecializationMapEntry entry{0, 0, sizeof(uint32_t)};
  VkSpecializationInfo specialization{1, &entry, sizeof(uint32_t), &spec.local_size_x};
  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = &specialization;
  info.layout = p.layout;
  const VkResult result = vkCreateComputePipelines(dev, cache_, 1, &info, nullptr, &p.pipeline);
  vkDestroyShaderModule(dev, module, nullptr);
  VK_CHECK(result);
  return p;
}

}  // namespace qvk
