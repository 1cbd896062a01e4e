#pragma once
// The CLI's Runtime: a Vulkan device of its own plus one loaded model (chat/loaded_model.h),
// built from the options every model subcommand shares.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "app/commands.h"
#include "chat/loaded_model.h"
#include "gpu/device.h"
#include "gpu/instance.h"

namespace qvk::app {

class Runtime {
 public:
  explicit Runtime(const ModelOptions& options);
  ~Runtime();

  Device& device() { return *device_; }
  const ModelFiles& files() const { return model_->files(); }
  Engine& engine() { return model_->engine(); }

 private:
  std::unique_ptr<Instance> instance_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<chat::LoadedModel> model_;
};

}  // namespace qvk::app
