#pragma once
// A model ready to run on an existing device: its parsed files, weights on the GPU and an engine,
// with GPU memory planned first (KV cache and working memory, then as many weights as fit).
// The desktop app's chat session and the CLI's Runtime both hold one; `qwenvk serve` holds one
// with an engine per concurrent request, all reading the same weights.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "gpu/device.h"
#include "model/engine.h"
#include "model/model_files.h"
#include "model/weights.h"

namespace qvk::chat {

struct LoadedModelOptions {
  uint32_t context = 0;                 // KV cache tokens; 0: min(32768, the model's)
  std::optional<uint64_t> gpu_mem_mib;  // GPU memory budget; none: all the device has
  std::optional<DType> quantize;        // Q8_0 or Q4_0: quantize float weights while loading
  uint32_t engines = 1;                 // engines over the weights, each with its own KV cache
  // Ends the error when the KV cache and working memory alone exceed the budget: how the user
  // changes those two, in the words of the program they use.
  std::string budget_hint = "lower --context or raise --gpu-mem";
};

class LoadedModel {
 public:
  // Plans GPU memory (KV cache and working memory first, then as many weights as the budget
  // leaves) and loads. Throws Error when the plan cannot fit or the files are unusable.
  LoadedModel(Device& device, std::unique_ptr<ModelFiles> files, const LoadedModelOptions& options,
              const LoadProgress& progress = {});
  LoadedModel(Device& device, const std::filesystem::path& path, const LoadedModelOptions& options,
              const LoadProgress& progress = {});
  ~LoadedModel();
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  const ModelFiles& files() const { return *files_; }
  const ModelWeights& weights() const { return *weights_; }
  Engine& engine(size_t index = 0) { return *engines_.at(index); }
  const Engine& engine(size_t index = 0) const { return *engines_.at(index); }
  size_t engine_count() const { return engines_.size(); }

  // Logs where the weights went (all on the GPU, or how many layers stay in host memory).
  void LogWeightPlacement() const;

 private:
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::vector<std::unique_ptr<Engine>> engines_;
};

}  // namespace qvk::chat
