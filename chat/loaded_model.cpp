#include "chat/loaded_model.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"

namespace qvk::chat {
namespace {

double MiB(uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

}  // namespace

LoadedModel::LoadedModel(Device& device, std::unique_ptr<ModelFiles> files, const LoadedModelOptions& options,
                         const LoadProgress& progress)
    : files_(std::move(files)) {
  const DeviceInfo& info = device.info();
  const ModelConfig& c = files_->config();
  const EngineOptions engine_options{.context = options.context != 0 ? options.context : DefaultContext(c)};

  if (options.engines == 0) throw Error("a model needs at least one engine");
  const uint64_t kv_bytes = KvCacheBytes(c, engine_options.context) * options.engines;
  const uint64_t weight_bytes = files_->weights().total_bytes();
  const uint64_t budget = options.gpu_mem_mib ? *options.gpu_mem_mib << 20 : info.DeviceLocalBytes();
  // "4096 tokens", or with several engines "4 x 4096 tokens".
  const std::string tokens = options.engines == 1
                                 ? fmt::format("{} tokens", engine_options.context)
                                 : fmt::format("{} x {} tokens", options.engines, engine_options.context);
  spdlog::info("device {}: {}; weights {:.0f} MiB, KV cache {:.0f} MiB for {}, budget {:.0f} MiB", info.index,
               info.name, MiB(weight_bytes), MiB(kv_bytes), tokens, MiB(budget));
  const uint64_t work_bytes = Engine::WorkingMemoryBytes(c, engine_options) * options.engines;
  if (kv_bytes + work_bytes > budget) {
    throw Error(
        fmt::format("the KV cache for {} ({:.0f} MiB) and working memory ({:.0f} MiB) do not fit the "
                    "GPU budget of {:.0f} MiB; {}",
                    tokens, MiB(kv_bytes), MiB(work_bytes), MiB(budget), options.budget_hint));
  }
  const LoadOptions load{.device_budget = budget - kv_bytes - work_bytes, .quantize = options.quantize};
  weights_ = std::make_unique<ModelWeights>(LoadWeights(device, c, files_->weights(), load, progress));
  for (uint32_t i = 0; i < options.engines; ++i) {
    engines_.push_back(std::make_unique<Engine>(device, c, *weights_, engine_options));
  }
}

LoadedModel::LoadedModel(Device& device, const std::filesystem::path& path, const LoadedModelOptions& options,
                         const LoadProgress& progress)
    : LoadedModel(device, std::make_unique<ModelFiles>(path), options, progress) {}

LoadedModel::~LoadedModel() {
  // The engine reads the weights; both release device memory before the files unmap.
  engines_.clear();
  weights_.reset();
}

void LoadedModel::LogWeightPlacement() const {
  if (weights_->host_layers == 0 && weights_->host_bytes == 0) {
    spdlog::info("all weights in GPU memory ({:.0f} MiB)", MiB(weights_->device_bytes));
  } else {
    spdlog::warn(
        "GPU budget too small for all weights: {} of {} layers ({:.0f} MiB) stay in host memory and are read "
        "over the bus each token (slower, same results)",
        weights_->host_layers, files_->config().num_layers, MiB(weights_->host_bytes));
  }
}

}  // namespace qvk::chat
