#include "gpu/kernels.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/spirv_blobs.h"
#include "shaders/push_constants.h"

namespace qvk {
namespace {

using namespace qvk::push;

constexpr KernelSpec kTable[] = {
#include "kernel_table.inc"
};
static_assert(std::size(kTable) == kKernelCount, "one table row per KernelId");
constexpr bool BindingsFit() {
  for (const KernelSpec& k : kTable) {
    if (k.bindings > kMaxBindings) return false;
  }
  return true;
}
static_assert(BindingsFit(), "a kernel binds more storage buffers than kMaxBindings");

constexpr bool TableInIdOrder() {
  for (uint32_t i = 0; i < kKernelCount; ++i) {
    if (static_cast<uint32_t>(kTable[i].id) != i) return false;
  }
  return true;
}
static_assert(TableInIdOrder(), "kTable rows must follow KernelId order");

constexpr bool SpecConstantsFit() {
  for (const KernelSpec& k : kTable) {
    if (k.spec_count == 0 || k.spec_count > kMaxSpecConstants || k.spec[0].value != k.local_size_x) return false;
  }
  return true;
}
static_assert(SpecConstantsFit(), "at most kMaxSpecConstants specialization constants, the first the local size");

// The Vulkan version a SPIR-V target environment needs.
uint32_t ApiVersionFor(std::string_view target) {
  if (target == "vulkan1.3") return VK_API_VERSION_1_3;
  if (target == "vulkan1.2") return VK_API_VERSION_1_2;
  if (target == "vulkan1.1") return VK_API_VERSION_1_1;
  return VK_API_VERSION_1_0;
}

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

const KernelSpec& Spec(KernelId id) {
  return kTable[static_cast<uint32_t>(id)];
}

KernelId KernelFor(KernelOp op, DType type) {
  for (const KernelSpec& k : kTable) {
    if (k.op == op && k.weight_type == type) return k.id;
  }
  throw Error(fmt::format("no kernel for {} weights of op {}", DTypeName(type), static_cast<uint32_t>(op)));
}

std::string MissingFeatures(const DeviceInfo& device, const KernelSpec& spec) {
  std::vector<std::string> missing;
  if (device.api_version < ApiVersionFor(spec.target)) missing.push_back(fmt::format("SPIR-V for {}", spec.target));
  if ((spec.features & kernel_feature::storage_8bit) && !device.storage_8bit)
    missing.push_back("8-bit storage buffers");
  if ((spec.features & kernel_feature::float16) && !device.fp16_arithmetic)
    missing.push_back("16-bit float arithmetic");
  if ((spec.features & kernel_feature::coopmat_nv) && !device.coopmat_f16) {
    missing.push_back(fmt::format("NV cooperative matrices ({})", device.coopmat_f16_problem));
  }
  return fmt::format("{}", fmt::join(missing, ", "));
}

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
  if (const std::string missing = MissingFeatures(device_.info(), spec); !missing.empty()) {
    throw Error(fmt::format("kernel {} needs {}, which {} lacks", spec.name, missing, device_.info().name));
  }
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
  p.pushes_bindings = device_.push_descriptor_set() != nullptr && spec.bindings <= device_.info().max_push_descriptors;
  if (p.pushes_bindings) set_info.flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR;
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

  std::array<VkSpecializationMapEntry, kMaxSpecConstants> entries{};
  std::array<uint32_t, kMaxSpecConstants> values{};
  for (uint32_t i = 0; i < spec.spec_count; ++i) {
    entries[i] = {i, static_cast<uint32_t>(i * sizeof(uint32_t)), sizeof(uint32_t)};
    values[i] = spec.spec[i].value;
  }
  VkSpecializationInfo specialization{spec.spec_count, entries.data(), spec.spec_count * sizeof(uint32_t),
                                      values.data()};
  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = &specialization;
  info.layout = p.layout;
  // Statistics come from a compilation: a pipeline the cache returns may carry none, so a device
  // that captures them builds without it.
  const bool capture = device_.captures_statistics();
  if (capture) info.flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
  const VkResult result =
      vkCreateComputePipelines(dev, capture ? VK_NULL_HANDLE : cache_, 1, &info, nullptr, &p.pipeline);
  vkDestroyShaderModule(dev, module, nullptr);
  VK_CHECK(result);
  return p;
}

std::vector<KernelStatistic> Kernels::Statistics(KernelId id) {
  if (!device_.captures_statistics()) {
    throw Error(fmt::format("{} reports no statistics of compiled kernels here", device_.info().name));
  }
  const VkPipeline pipeline = Get(id).pipeline;
  VkDevice dev = device_.handle();
  const auto properties = reinterpret_cast<PFN_vkGetPipelineExecutablePropertiesKHR>(
      vkGetDeviceProcAddr(dev, "vkGetPipelineExecutablePropertiesKHR"));
  const auto statistics = reinterpret_cast<PFN_vkGetPipelineExecutableStatisticsKHR>(
      vkGetDeviceProcAddr(dev, "vkGetPipelineExecutableStatisticsKHR"));
  if (properties == nullptr || statistics == nullptr) throw Error("the driver lacks the statistics functions");

  VkPipelineInfoKHR pipeline_info{VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR};
  pipeline_info.pipeline = pipeline;
  uint32_t executables = 0;
  VK_CHECK(properties(dev, &pipeline_info, &executables, nullptr));
  std::vector<VkPipelineExecutablePropertiesKHR> executable(executables,
                                                            {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR});
  VK_CHECK(properties(dev, &pipeline_info, &executables, executable.data()));

  std::vector<KernelStatistic> out;
  for (uint32_t e = 0; e < executables; ++e) {
    if ((executable[e].stages & VK_SHADER_STAGE_COMPUTE_BIT) == 0) continue;
    VkPipelineExecutableInfoKHR executable_info{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR};
    executable_info.pipeline = pipeline;
    executable_info.executableIndex = e;
    uint32_t count = 0;
    VK_CHECK(statistics(dev, &executable_info, &count, nullptr));
    std::vector<VkPipelineExecutableStatisticKHR> stats(count, {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR});
    VK_CHECK(statistics(dev, &executable_info, &count, stats.data()));
    for (const VkPipelineExecutableStatisticKHR& s : stats) {
      KernelStatistic k{.name = s.name, .description = s.description};
      switch (s.format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
          k.value = s.value.b32 ? 1 : 0;
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
          k.value = static_cast<double>(s.value.i64);
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
          k.value = static_cast<double>(s.value.u64);
          break;
        default:
          k.value = s.value.f64;
          k.is_integer = false;
      }
      out.push_back(std::move(k));
    }
  }
  return out;
}

}  // namespace qvk
