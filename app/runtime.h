#pragma once
// The CLI's Runtime: a Vulkan device of its own (or several, --devices, for a model split by
// layers) plus one loaded model (chat/loaded_model.h), built from the options every model
// subcommand shares.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

  // The first device (the only one without --devices).
  Device& device() { return *devices_.front(); }
  // The model's parts, with a model only:
  const ModelFiles& files() const { return model_->files(); }
  Engine& engine() { return model_->engine(); }
  const chat::LoadedModel& model() const { return *model_; }
  chat::LoadedModel& model() { return *model_; }

 private:
  std::unique_ptr<Instance> instance_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::unique_ptr<chat::LoadedModel> model_;
};

}  // namespace qvk::app
