// `qwenvk devices`: every Vulkan device with what QwenVK cares about, and why one is unusable.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "base/error.h"
#include "gpu/device.h"

namespace qvk::app {
namespace {

std::string Bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30));
  return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1 << 20));
}

const char* YesNo(bool value) {
  return value ? "yes" : "no";
}

nlohmann::json ToJson(const DeviceInfo& d, bool chosen) {
  nlohmann::json heaps = nlohmann::json::array();
  for (const auto& h : d.heaps) heaps.push_back({{"bytes", h.size}, {"device_local", h.device_local}});
  return {{"index", d.index},
          {"name", d.name},
          {"type", d.TypeName()},
          {"vendor", d.VendorName()},
          {"vendor_id", d.vendor_id},
          {"device_id", d.device_id},
          {"driver_name", d.driver_name},
          {"driver_info", d.driver_info},
          {"driver_version", d.DriverVersionString()},
          {"vulkan_version", d.ApiVersionString()},
          {"memory_heaps", heaps},
          {"unified_memory", d.unified_memory},
          {"subgroup_size", d.subgroup_size},
          {"subgroup_size_range", {d.min_subgroup_size, d.max_subgroup_size}},
          {"fp16_arithmetic", d.fp16_arithmetic},
          {"fp16_storage", d.storage_16bit},
          {"bf16_arithmetic", d.bf16_arithmetic},
          {"bf16_storage", d.storage_16bit},
          {"int8_arithmetic", d.int8_arithmetic},
          {"int8_storage", d.storage_8bit},
          {"integer_dot_product", d.integer_dot_product},
          {"cooperative_matrix_khr", d.coopmat_khr},
          {"cooperative_matrix_nv", d.coopmat_nv},
          {"cooperative_matrix_shapes", d.coopmat_shapes},
          {"cooperative_matrix_gemm", d.coopmat_f16},
          {"cooperative_matrix_gemm_problem", d.coopmat_f16_problem},
          {"max_storage_buffer_range", d.max_storage_buffer_range},
          {"max_compute_shared_memory", d.max_compute_shared_memory},
          {"max_memory_allocation", d.max_allocation_size},
          {"timestamps", d.compute_timestamps},
          {"host_memory_import_alignment", d.host_import_alignment},
          {"timeline_semaphore_fd", d.timeline_semaphore_fd},
          {"kernel_statistics", d.kernel_statistics},
          {"max_push_descriptors", d.max_push_descriptors},
          {"usable", d.usable()},
          {"unusable_reason", d.unusable_reason},
          {"chosen", chosen}};
}

void PrintText(const DeviceInfo& d, bool chosen) {
  std::printf("Device %u: %s%s\n", d.index, d.name.c_str(), chosen ? "  [chosen]" : "");
  std::printf("  type             %s, vendor %s (0x%04x), device 0x%04x\n", d.TypeName().c_str(),
              d.VendorName().c_str(), d.vendor_id, d.device_id);
  std::printf("  driver           %s %s (%s)\n", d.driver_name.c_str(), d.DriverVersionString().c_str(),
              d.driver_info.c_str());
  std::printf("  Vulkan           %s\n", d.ApiVersionString().c_str());
  for (size_t h = 0; h < d.heaps.size(); ++h) {
    std::printf("  memory heap %zu    %s%s\n", h, Bytes(d.heaps[h].size).c_str(),
                d.heaps[h].device_local ? " device-local" : "");
  }
  std::printf("  unified memory   %s\n", YesNo(d.unified_memory));
  std::printf("  subgroup size    %u (range %u..%u), arithmetic %s\n", d.subgroup_size, d.min_subgroup_size,
              d.max_subgroup_size, YesNo(d.subgroup_arithmetic));
  std::printf("  fp16             arithmetic %s, storage %s\n", YesNo(d.fp16_arithmetic), YesNo(d.storage_16bit));
  std::printf("  bf16             arithmetic %s, storage %s (as 16-bit words)\n", YesNo(d.bf16_arithmetic),
              YesNo(d.storage_16bit));
  std::printf("  int8             arithmetic %s, storage %s, dot product %s\n", YesNo(d.int8_arithmetic),
              YesNo(d.storage_8bit), YesNo(d.integer_dot_product));
  std::string shapes;
  for (const auto& s : d.coopmat_shapes) shapes += (shapes.empty() ? "" : ", ") + s;
  std::printf("  coopmat          KHR %s, NV %s%s%s\n", YesNo(d.coopmat_khr), YesNo(d.coopmat_nv),
              shapes.empty() ? "" : ": ", shapes.c_str());
  std::printf("  coopmat GEMM     %s\n", d.coopmat_f16 ? "yes" : ("no: " + d.coopmat_f16_problem).c_str());
  std::printf("  maxStorageBufferRange       %s (%u bytes)\n", Bytes(d.max_storage_buffer_range).c_str(),
              d.max_storage_buffer_range);
  std::printf("  maxComputeSharedMemorySize  %u bytes\n", d.max_compute_shared_memory);
  std::printf("  maxMemoryAllocationSize     %s\n", Bytes(d.max_allocation_size).c_str());
  std::printf("  timestamps       %s\n", YesNo(d.compute_timestamps));
  // What a model split across this and another logical device of the same GPU hands x through.
  const std::string host_import =
      d.host_import_alignment == 0 ? "no" : fmt::format("yes (aligned to {} bytes)", d.host_import_alignment);
  std::printf("  sharing          host memory import %s, timeline semaphore fds %s\n", host_import.c_str(),
              YesNo(d.timeline_semaphore_fd));
  std::printf("  kernel statistics %s\n", d.kernel_statistics ? "yes (registers and more: qwenvk kernels)"
                                                              : "no (VK_KHR_pipeline_executable_properties)");
  std::printf("  push descriptors %s\n", d.max_push_descriptors > 0
                                             ? "yes (graphs record each dispatch's bindings in place)"
                                             : "no (graphs allocate a descriptor set a dispatch)");
  std::printf("  usable           %s\n", d.usable() ? "yes" : ("no: " + d.unusable_reason).c_str());
}

}  // namespace

int RunDevices(const DevicesOptions& options, std::optional<unsigned> chosen_device) {
  Instance instance;
  const std::vector<DeviceInfo> devices = EnumerateDevices(instance);
  std::optional<uint32_t> chosen;
  std::string choice_error;
  try {
    chosen = ChooseDevice(devices, chosen_device).index;
  } catch (const Error& e) {
    choice_error = e.what();
  }
  if (options.json) {
    nlohmann::json out = {{"devices", nlohmann::json::array()}};
    for (const auto& d : devices) out["devices"].push_back(ToJson(d, chosen == d.index));
    if (!choice_error.empty()) out["error"] = choice_error;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    if (devices.empty()) std::printf("No Vulkan devices.\n");
    for (const auto& d : devices) PrintText(d, chosen == d.index);
    if (!choice_error.empty()) std::printf("\n%s\n", choice_error.c_str());
  }
  return chosen ? 0 : 1;
}

}  // namespace qvk::app
