#include "chat/loaded_model.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "model/layer_split.h"
#include "model/weight_source.h"

namespace qvk::chat {
namespace {

double MiB(uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

// Bytes of a matrix as the files hold it (a quantized load shrinks it; a split only needs shares).
uint64_t TensorBytes(const WeightSource& source, const std::string& name) {
  const SourceTensor t = source.Get(name);
  return RowBytes(t.dtype, static_cast<uint32_t>(t.shape[1])) * t.shape[0];
}

// Each device's share of the layers: the user's split, or the memory each has free less the
// embedding on the first and lm_head on the last, which only they hold.
std::vector<double> Shares(std::span<Device* const> devices, const ModelFiles& files, const LoadedModelOptions& o) {
  const ModelConfig& c = files.config();
  if (devices.size() > c.num_layers) {
    throw Error(fmt::format("{} devices for a model of {} layers: each device needs at least one layer", devices.size(),
                            c.num_layers));
  }
  if (!o.split.empty()) {
    if (o.split.size() != devices.size()) {
      throw Error(fmt::format("the split has {} parts for {} devices: give one part per device", o.split.size(),
                              devices.size()));
    }
    return o.split;
  }
  std::vector<double> shares;
  for (Device* device : devices) {
    const uint64_t free = o.gpu_mem_mib ? *o.gpu_mem_mib << 20 : FreeDeviceLocalBytes(device->info());
    shares.push_back(static_cast<double>(free));
  }
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const auto less = [](double share, uint64_t bytes) { return std::max(share - static_cast<double>(bytes), 1.0); };
  shares.front() = less(shares.front(), TensorBytes(files.weights(), "model.embed_tokens.weight"));
  shares.back() = less(shares.back(), TensorBytes(files.weights(), head));
  return shares;
}

}  // namespace

std::vector<std::unique_ptr<Device>> MakeSplitDevices(const Instance& instance, std::string_view list,
                                                      std::string_view option) {
  const std::vector<uint32_t> numbers = ParseNumberList(list, option);
  const std::vector<DeviceInfo> infos = EnumerateDevices(instance);
  std::vector<std::unique_ptr<Device>> devices;
  for (uint32_t number : numbers) devices.push_back(std::make_unique<Device>(instance, ChooseDevice(infos, number)));
  return devices;
}

LoadedModel::LoadedModel(Device& device, std::unique_ptr<ModelFiles> files, const LoadedModelOptions& options,
                         const LoadProgress& progress)
    : LoadedModel(std::array{&device}, std::move(files), options, progress) {}

LoadedModel::LoadedModel(std::span<Device* const> devices, std::unique_ptr<ModelFiles> files,
                         const LoadedModelOptions& options, const LoadProgress& progress)
    : files_(std::move(files)) {
  const ModelConfig& c = files_->config();
  const EngineOptions engine_options{.context = options.context != 0 ? options.context : DefaultContext(c)};

  if (options.engines == 0) throw Error("a model needs at least one engine");
  if (devices.empty()) throw Error("a model needs at least one device");
  const std::vector<double> shares = Shares(devices, *files_, options);
  const std::vector<LayerRange> ranges = SplitLayers(c.num_layers, shares);
  const uint64_t weight_bytes = files_->weights().total_bytes();
  // "4096 tokens", or with several engines "4 x 4096 tokens".
  const std::string tokens = options.engines == 1
                                 ? fmt::format("{} tokens", engine_options.context)
                                 : fmt::format("{} x {} tokens", options.engines, engine_options.context);
  uint64_t loaded = 0;  // progress of the stages before
  for (size_t d = 0; d < devices.size(); ++d) {
    const DeviceInfo& info = devices[d]->info();
    const LayerRange layers = ranges[d];
    const uint64_t kv_bytes = KvCacheBytes(c, engine_options.context) * options.engines * layers.size() / c.num_layers;
    const uint64_t budget = options.gpu_mem_mib ? *options.gpu_mem_mib << 20 : info.DeviceLocalBytes();
    if (devices.size() == 1) {
      spdlog::info("device {}: {}; weights {:.0f} MiB, KV cache {:.0f} MiB for {}, budget {:.0f} MiB", info.index,
                   info.name, MiB(weight_bytes), MiB(kv_bytes), tokens, MiB(budget));
    } else {
      spdlog::info("device {}: {}; layers {} to {} of {}, KV cache {:.0f} MiB for {}, budget {:.0f} MiB", info.index,
                   info.name, layers.begin, layers.end - 1, c.num_layers, MiB(kv_bytes), tokens, MiB(budget));
    }
    const uint64_t work_bytes = Engine::WorkingMemoryBytes(c, engine_options) * options.engines;
    if (kv_bytes + work_bytes > budget) {
      throw Error(
          fmt::format("the KV cache for {} ({:.0f} MiB) and working memory ({:.0f} MiB) do not fit the "
                      "GPU budget of {:.0f} MiB{}; {}",
                      tokens, MiB(kv_bytes), MiB(work_bytes), MiB(budget),
                      devices.size() == 1 ? "" : fmt::format(" of device {}", info.index), options.budget_hint));
    }
    const LoadOptions load{.device_budget = budget - kv_bytes - work_bytes,
                           .quantize = options.quantize,
                           .layers = devices.size() == 1 ? std::nullopt : std::optional(layers)};
    uint64_t stage_done = 0;
    const LoadProgress stage_progress = [&](uint64_t done, uint64_t total) {
      stage_done = done;
      if (progress) progress(std::min(loaded + done, total), total);
    };
    weights_.push_back(
        std::make_unique<ModelWeights>(LoadWeights(*devices[d], c, files_->weights(), load, stage_progress)));
    loaded += stage_done;
  }
  std::vector<EngineStage> stages;
  for (size_t d = 0; d < devices.size(); ++d) stages.push_back({devices[d], weights_[d].get(), ranges[d]});
  for (uint32_t i = 0; i < options.engines; ++i) {
    engines_.push_back(std::make_unique<Engine>(stages, c, engine_options));
  }
}

LoadedModel::LoadedModel(Device& device, const std::filesystem::path& path, const LoadedModelOptions& options,
                         const LoadProgress& progress)
    : LoadedModel(device, std::make_unique<ModelFiles>(path), options, progress) {}

LoadedModel::~LoadedModel() {
  // The engine reads the weights; both release device memory before the files unmap.
  engines_.clear();
  weights_.clear();
}

void LoadedModel::LogPlacement() const {
  const Engine& engine = *engines_.front();
  for (size_t d = 0; d < weights_.size(); ++d) {
    const ModelWeights& w = *weights_[d];
    const LayerRange layers = engine.stage(d).layers;
    const std::string where = weights_.size() == 1
                                  ? ""
                                  : fmt::format(" on device {} (layers {} to {})", engine.stage(d).device->info().index,
                                                layers.begin, layers.end - 1);
    if (w.host_layers == 0 && w.host_bytes == 0) {
      spdlog::info("all weights{} in GPU memory ({:.0f} MiB)", where, MiB(w.device_bytes));
    } else {
      spdlog::warn(
          "GPU budget too small for all weights{}: {} of {} layers ({:.0f} MiB) stay in host memory and are read "
          "over the bus each token (slower, same results)",
          where, w.host_layers, layers.size(), MiB(w.host_bytes));
    }
  }
  for (size_t d = 0; d + 1 < weights_.size(); ++d) {
    spdlog::info("hidden state from device {} to device {}: {}", engine.stage(d).device->info().index,
                 engine.stage(d + 1).device->info().index, engine.hand_off(d));
  }
}

}  // namespace qvk::chat
