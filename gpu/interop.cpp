#include "gpu/interop.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "gpu/device.h"
#include "gpu/error.h"

namespace qvk {
namespace {

std::string Named(const DeviceInfo& d) {
  return fmt::format("device {} ({})", d.index, d.name);
}

std::string SameDeviceAndDriverProblem(const DeviceInfo& a, const DeviceInfo& b) {
  if (std::memcmp(a.device_uuid, b.device_uuid, VK_UUID_SIZE) != 0 ||
      std::memcmp(a.driver_uuid, b.driver_uuid, VK_UUID_SIZE) != 0) {
    return fmt::format("{} and {} are not one GPU under one driver (their device or driver UUIDs differ)", Named(a),
                       Named(b));
  }
  return "";
}

SemaphoreHandle CreateTimeline(const Device& device, bool exported) {
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  VkExportSemaphoreCreateInfo export_info{VK_STRUCTURE_TYPE_EXPORT_SEMAPHORE_CREATE_INFO};
  export_info.handleTypes = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  if (exported) type.pNext = &export_info;
  VkSemaphoreCreateInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  info.pNext = &type;
  VkSemaphore semaphore = VK_NULL_HANDLE;
  VK_CHECK(vkCreateSemaphore(device.handle(), &info, nullptr, &semaphore));
  return SemaphoreHandle(device.handle(), semaphore);
}

}  // namespace

std::string HostMemorySharingProblem(const DeviceInfo& a, const DeviceInfo& b) {
  for (const DeviceInfo* d : {&a, &b}) {
    if (d->host_import_alignment == 0) {
      return fmt::format("{} cannot import host memory as a buffer (VK_EXT_external_memory_host)", Named(*d));
    }
  }
  return SameDeviceAndDriverProblem(a, b);
}

std::string TimelineSharingProblem(const DeviceInfo& a, const DeviceInfo& b) {
  for (const DeviceInfo* d : {&a, &b}) {
    if (!d->timeline_semaphore_fd) {
      return fmt::format("{} cannot share timeline semaphores (VK_KHR_external_semaphore_fd)", Named(*d));
    }
  }
  return SameDeviceAndDriverProblem(a, b);
}

// --- SharedHostBuffer -------------------------------------------------------------------------

SharedHostBuffer::SharedHostBuffer(std::span<Device* const> devices, VkDeviceSize size) {
  VkDeviceSize alignment = 1;
  for (const Device* device : devices) {
    if (const std::string problem = HostMemorySharingProblem(devices.front()->info(), device->info());
        !problem.empty()) {
      throw Error(problem);
    }
    // Powers of two each, so the largest is a multiple of all.
    alignment = std::max(alignment, device->info().host_import_alignment);
  }
  const VkDeviceSize bytes = AlignUp(std::max<VkDeviceSize>(size, 1), alignment);
  host_.reset(static_cast<std::byte*>(std::aligned_alloc(alignment, bytes)));
  if (!host_) throw Error(fmt::format("out of host memory for a shared buffer of {} bytes", bytes));
  for (Device* device : devices) buffers_.push_back(device->allocator().ImportHostAllocation(host_.get(), bytes));
}

// --- SharedTimeline ---------------------------------------------------------------------------

SharedTimeline::SharedTimeline(Device& signaller, Device& waiter) {
  if (const std::string problem = TimelineSharingProblem(signaller.info(), waiter.info()); !problem.empty()) {
    throw Error(problem);
  }
  on_signaller_ = CreateTimeline(signaller, /*exported=*/true);
  on_waiter_ = CreateTimeline(waiter, /*exported=*/false);

  const auto get_fd =
      reinterpret_cast<PFN_vkGetSemaphoreFdKHR>(vkGetDeviceProcAddr(signaller.handle(), "vkGetSemaphoreFdKHR"));
  const auto import_fd =
      reinterpret_cast<PFN_vkImportSemaphoreFdKHR>(vkGetDeviceProcAddr(waiter.handle(), "vkImportSemaphoreFdKHR"));
  if (get_fd == nullptr || import_fd == nullptr) {
    throw Error("VK_KHR_external_semaphore_fd is not enabled on both devices");
  }
  VkSemaphoreGetFdInfoKHR get{VK_STRUCTURE_TYPE_SEMAPHORE_GET_FD_INFO_KHR};
  get.semaphore = on_signaller_.get();
  get.handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  int fd = -1;
  if (const VkResult result = get_fd(signaller.handle(), &get, &fd); result != VK_SUCCESS) {
    throw Error(fmt::format("exporting a timeline semaphore failed ({})", VkResultName(result)));
  }
  VkImportSemaphoreFdInfoKHR import{VK_STRUCTURE_TYPE_IMPORT_SEMAPHORE_FD_INFO_KHR};
  import.semaphore = on_waiter_.get();
  import.handleType = VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT;
  import.fd = fd;
  // A successful import takes the fd; a failed one leaves it to be closed here.
  if (const VkResult result = import_fd(waiter.handle(), &import); result != VK_SUCCESS) {
    close(fd);
    throw Error(fmt::format("importing a timeline semaphore failed ({})", VkResultName(result)));
  }
}

SharedTimeline::Step SharedTimeline::Next() {
  ++value_;
  return {.signal = {on_signaller_.get(), value_}, .wait = {on_waiter_.get(), value_}};
}

}  // namespace qvk
