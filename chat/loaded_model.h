#pragma once
// A model ready to run on an existing device: its parsed files, weights on the GPU and an engine,
// with GPU memory planned first (KV cache and working memory, then as many weights as fit).
// The desktop app's chat session and the CLI's Runtime both hold one; `qwenvk serve` holds one
// with an engine per concurrent request, all reading the same weights. A model may be split by
// layers across several devices (model/engine.h's stages), each holding its layers' weights.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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
  // With several devices, each one's share of the layers (--split 3,1); empty: in proportion to
  // the memory each has free.
  std::vector<double> split;
};

// The devices a model is split across, made on `instance`: `list` as a user writes it ("0,1", the
// numbers `qwenvk devices` lists; the same number twice makes two logical devices on one GPU).
// Throws Error, naming `option`, for a list that does not read or a device that cannot be used.
std::vector<std::unique_ptr<Device>> MakeSplitDevices(const Instance& instance, std::string_view list,
                                                      std::string_view option);

class LoadedModel {
 public:
  // Plans GPU memory (KV cache and working memory first, then as many weights as the budget
  // leaves) and loads. Throws Error when the plan cannot fit or the files are unusable.
  LoadedModel(Device& device, std::unique_ptr<ModelFiles> files, const LoadedModelOptions& options,
              const LoadProgress& progress = {});
  // Split by layers across `devices`, in order (the embedding on the first, lm_head on the last);
  // gpu_mem_mib is each device's budget. Throws Error for a split that cannot be made.
  LoadedModel(std::span<Device* const> devices, std::unique_ptr<ModelFiles> files, const LoadedModelOptions& options,
              const LoadProgress& progress = {});
  LoadedModel(Device& device, const std::filesystem::path& path, const LoadedModelOptions& options,
              const LoadProgress& progress = {});
  ~LoadedModel();
  LoadedModel(const LoadedModel&) = delete;
  LoadedModel& operator=(const LoadedModel&) = delete;

  const ModelFiles& files() const { return *files_; }
  // The weights on the device of each stage (one without a split).
  const ModelWeights& weights(size_t stage = 0) const { return *weights_.at(stage); }
  size_t stage_count() const { return weights_.size(); }
  Engine& engine(size_t index = 0) { return *engines_.at(index); }
  const Engine& engine(size_t index = 0) const { return *engines_.at(index); }
  size_t engine_count() const { return engines_.size(); }

  // Logs where the weights went (all on the GPU, or how many layers stay in host memory) and, on
  // several devices, how the hidden state goes from each to the next.
  void LogPlacement() const;

 private:
  std::unique_ptr<ModelFiles> files_;
  std::vector<std::unique_ptr<ModelWeights>> weights_;
  std::vector<std::unique_ptr<Engine>> engines_;
};

}  // namespace qvk::chat
