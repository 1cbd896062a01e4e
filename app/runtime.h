#pragma once
// What a model-running subcommand needs: the Vulkan device, the parsed model folder, its
// weights on the GPU and an engine, built from the shared command-line options.
#include <memory>

#include "app/commands.h"
#include "gpu/device.h"
#include "gpu/instance.h"
#include "model/engine.h"
#include "model/model_files.h"
#include "model/weights.h"

namespace qvk::app {

class Runtime {
 public:
  explicit Runtime(const ModelOptions& options);
  ~Runtime();

  Device& device() { return *device_; }
  const ModelFiles& files() const { return *files_; }
  Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<Instance> instance_;
  std::unique_ptr<Device> device_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace qvk::app
