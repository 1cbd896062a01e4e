#include "gpu/instance.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#if QWENVK_SANITIZED
#include <dlfcn.h>
#include <link.h>
#endif

#include "gpu/error.h"

namespace qvk {
namespace {

#if QWENVK_SANITIZED
// LeakSanitizer looks for leaks at exit, after the Vulkan loader has unloaded the drivers it
// opened; a block that only a driver's globals point to then looks leaked (lavapipe keeps one
// from its one-time initialization). Sanitized builds keep every library loaded until exit, so
// the drivers' memory is still scanned and no suppression is needed.
void KeepLoadedLibrariesUntilExit() {
  dl_iterate_phdr(
      [](dl_phdr_info* library, size_t, void*) {
        if (library->dlpi_name != nullptr && library->dlpi_name[0] != '\0') {
          dlopen(library->dlpi_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        }
        return 0;
      },
      nullptr);
}
#endif

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";
std::atomic<uint64_t> g_process_validation_messages{0};

bool EnvFlag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::strcmp(value, "") != 0 && std::strcmp(value, "0") != 0;
}

bool HasLayer(const char* name) {
  uint32_t count = 0;
  VK_CHECK(vkEnumerateInstanceLayerProperties(&count, nullptr));
  std::vector<VkLayerProperties> layers(count);
  VK_CHECK(vkEnumerateInstanceLayerProperties(&count, layers.data()));
  for (const auto& layer : layers) {
    if (std::strcmp(layer.layerName, name) == 0) return true;
  }
  return false;
}

VKAPI_ATTR VkBool32 VKAPI_CALL OnValidationMessage(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                   VkDebugUtilsMessageTypeFlagsEXT /*types*/,
                                                   const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                   void* user) {
  auto* counter = static_cast<std::atomic<uint64_t>*>(user);
  counter->fetch_add(1);
  g_process_validation_messages.fetch_add(1);
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    spdlog::error("vulkan validation: {}", data->pMessage);
  } else {
    spdlog::warn("vulkan validation: {}", data->pMessage);
  }
  return VK_FALSE;
}

}  // namespace

const char* VkResultName(VkResult result) {
  switch (result) {
#define QVK_RESULT(name) \
  case name:             \
    return #name;
    QVK_RESULT(VK_SUCCESS)
    QVK_RESULT(VK_NOT_READY)
    QVK_RESULT(VK_TIMEOUT)
    QVK_RESULT(VK_INCOMPLETE)
    QVK_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY)
    QVK_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    QVK_RESULT(VK_ERROR_INITIALIZATION_FAILED)
    QVK_RESULT(VK_ERROR_DEVICE_LOST)
    QVK_RESULT(VK_ERROR_MEMORY_MAP_FAILED)
    QVK_RESULT(VK_ERROR_LAYER_NOT_PRESENT)
    QVK_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT)
    QVK_RESULT(VK_ERROR_FEATURE_NOT_PRESENT)
    QVK_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER)
    QVK_RESULT(VK_ERROR_TOO_MANY_OBJECTS)
    QVK_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED)
    QVK_RESULT(VK_ERROR_FRAGMENTED_POOL)
    QVK_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY)
    QVK_RESULT(VK_ERROR_INVALID_SHADER_NV)
#undef QVK_RESULT
    default:
      return "VK_ERROR_(unknown)";
  }
}

uint64_t Instance::ProcessValidationMessageCount() { return g_process_validation_messages.load(); }

void ThrowVkFailure(const char* expr, const char* file, int line, VkResult result) {
  std::string message = fmt::format("{} failed with {} at {}:{}", expr, VkResultName(result), file, line);
  spdlog::error("{}", message);
  if (result == VK_ERROR_DEVICE_LOST) {
    message = "The GPU stopped responding (device lost). " + message;
  }
  throw VulkanError(message, result);
}

Instance::Instance(const InstanceOptions& options) {
  uint32_t loader_version = VK_API_VERSION_1_0;
  VK_CHECK(vkEnumerateInstanceVersion(&loader_version));
  if (loader_version < VK_API_VERSION_1_1) {
    throw Error("The Vulkan loader on this system supports only Vulkan 1.0; QwenVK needs 1.1 or newer.");
  }
  api_version_ = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : loader_version;

  const bool want_validation = options.validation || EnvFlag("QWENVK_VALIDATION");
  std::vector<const char*> layers;
  std::vector<const char*> extensions = options.extra_extensions;
  if (want_validation) {
    if (!HasLayer(kValidationLayer)) {
      throw Error("Validation was requested but VK_LAYER_KHRONOS_validation is not installed "
                  "(Debian package vulkan-validationlayers).");
    }
    layers.push_back(kValidationLayer);
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  // Lets the loader list portability drivers (MoltenVK-style) too; harmless where none exist.
  uint32_t ext_count = 0;
  VK_CHECK(vkEnumerateInstanceExtensionProperties(nullptr, &ext_count, nullptr));
  std::vector<VkExtensionProperties> available(ext_count);
  VK_CHECK(vkEnumerateInstanceExtensionProperties(nullptr, &ext_count, available.data()));
  VkInstanceCreateFlags flags = 0;
  for (const auto& ext : available) {
    if (std::strcmp(ext.extensionName, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME) == 0) {
      extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
      flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
  }

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "qwenvk";
  app.applicationVersion = VK_MAKE_VERSION(0, 1, 0);
  app.pEngineName = "qwenvk";
  app.apiVersion = api_version_;

  VkDebugUtilsMessengerCreateInfoEXT messenger_info{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  messenger_info.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_info.pfnUserCallback = OnValidationMessage;
  messenger_info.pUserData = validation_messages_.get();

  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.flags = flags;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  // Chained so instance creation and destruction are validated too.
  info.pNext = want_validation ? &messenger_info : nullptr;
  const VkResult result = vkCreateInstance(&info, nullptr, &instance_);
  if (result == VK_ERROR_INCOMPATIBLE_DRIVER) {
    throw Error("No Vulkan driver was found (install mesa-vulkan-drivers or your GPU vendor's driver).");
  }
  VK_CHECK(result);
#if QWENVK_SANITIZED
  KeepLoadedLibrariesUntilExit();
#endif

  if (want_validation) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
    VK_CHECK(create(instance_, &messenger_info, nullptr, &messenger_));
  }
}

Instance::~Instance() {
  if (instance_ == VK_NULL_HANDLE) return;
  if (messenger_ != VK_NULL_HANDLE) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
    destroy(instance_, messenger_, nullptr);
  }
  vkDestroyInstance(instance_, nullptr);
}

}  // namespace qvk
