#pragma once
// The two error channels of the project:
//  - VK_CHECK for Vulkan calls that cannot fail short of a driver bug or a lost device. It logs
//    the expression, file, line and VkResult, then throws VulkanError so the app can still tell
//    the user (a lost device is "impossible" until it happens).
//  - qvk::Error (base/error.h) for recoverable failures with a message meant for the user (bad
//    setting, unsupported device, file too large for the device).
#include <string>

#include <vulkan/vulkan.h>

#include "base/error.h"

namespace qvk {

class VulkanError : public Error {
 public:
  VulkanError(const std::string& what, VkResult result) : Error(what), result_(result) {}
  VkResult result() const { return result_; }

 private:
  VkResult result_;
};

const char* VkResultName(VkResult result);
[[noreturn]] void ThrowVkFailure(const char* expr, const char* file, int line, VkResult result);

}  // namespace qvk

#define VK_CHECK(expr)                                                      \
  do {                                                                      \
    const VkResult vk_check_result_ = (expr);                               \
    if (vk_check_result_ != VK_SUCCESS) {                                   \
      ::qvk::ThrowVkFailure(#expr, __FILE__, __LINE__, vk_check_result_);   \
    }                                                                       \
  } while (false)
