#pragma once
// The Vulkan instance: one per process. With validation on (QWENVK_VALIDATION=1 or
// InstanceOptions::validation), the Khronos layer's messages are logged and counted so tests
// can fail on any of them.
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <vulkan/vulkan.h>

namespace qvk {

struct InstanceOptions {
  bool validation = false;                    // also forced on by QWENVK_VALIDATION=1
  std::vector<const char*> extra_extensions;  // e.g. what GLFW needs for a window surface
};

class Instance {
 public:
  explicit Instance(const InstanceOptions& options = {});
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  VkInstance handle() const { return instance_; }
  bool validation_enabled() const { return messenger_ != VK_NULL_HANDLE; }
  // Warnings and errors reported by the validation layer so far.
  uint64_t validation_message_count() const { return validation_messages_->load(); }
  uint32_t api_version() const { return api_version_; }
  // Validation messages reported to every instance of this process so far.
  static uint64_t ProcessValidationMessageCount();

 private:
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  uint32_t api_version_ = VK_API_VERSION_1_1;
  // On the heap: the messenger callback keeps its address.
  std::unique_ptr<std::atomic<uint64_t>> validation_messages_ = std::make_unique<std::atomic<uint64_t>>(0);
};

}  // namespace qvk
