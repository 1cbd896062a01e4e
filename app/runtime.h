#pragma once
// The CLI's Runtime: a Vulkan device of its own plus one loaded model (chat/loaded_model.h),
// built from the options every model subcommand shares.
#include <cstdint>
#include <filesystem>
#include <functional>
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
  // Given the device before a model loads on it (`qwenvk bench` measures the device there).
  using BeforeLoad = std::function<void(Device&)>;

  explicit Runtime(const ModelOptions& options);
  // With `files` parsed already (options.model is not read), or none: the device alone.
  Runtime(std::unique_ptr<ModelFiles> files, const ModelOptions& options, const BeforeLoad& before_load = {});
  ~Runtime();

  Device& device() { return *device_; }
  // The model's parts, with a model only:
  const ModelFiles& files() const { return model_->files(); }
  Engine& engine() { return model_->engine(); }
  const chat::LoadedModel& model() const { return *model_; }
  chat::LoadedModel& model() { return *model_; }

 private:
  std::unique_ptr<Instance> instance_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<chat::LoadedModel> model_;
};

}  // namespace qvk::app
