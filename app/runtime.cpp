#include "app/runtime.h"

#include <cstdio>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "base/error.h"
#include "model/layer_split.h"

namespace qvk::app {
namespace {

double MiB(uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

// Resident memory after loading, split as the kernel counts it: the model file's pages are page
// cache (RssFile), our own allocations are RssAnon, which streaming keeps far below the model size.
void LogHostMemory() {
  std::ifstream status("/proc/self/status");
  std::string line, summary;
  while (std::getline(status, line)) {
    if (line.starts_with("RssAnon:") || line.starts_with("RssFile:")) summary += (summary.empty() ? "" : ", ") + line;
  }
  if (!summary.empty()) spdlog::debug("host memory after loading: {}", summary);
}

DType ParseQuant(const std::string& name) {
  if (name == "q8_0") return DType::Q8_0;
  if (name == "q4_0") return DType::Q4_0;
  throw Error(fmt::format("--quant {}: choose q8_0 or q4_0", name));
}

}  // namespace

// The model is parsed before any device is touched, so a bad path fails fast and plainly.
Runtime::Runtime(const ModelOptions& options) : Runtime(std::make_unique<ModelFiles>(options.model), options) {}

Runtime::Runtime(std::unique_ptr<ModelFiles> files, const ModelOptions& options, const BeforeLoad& before_load) {
  instance_ = std::make_unique<Instance>();
  if (options.device && options.devices) throw Error("give --device or --devices, not both");
  if (options.split && !options.devices) throw Error("--split needs --devices: the devices to split the model across");
  const std::vector<double> split = options.split ? ParseSplit(*options.split, "--split") : std::vector<double>{};
  if (options.devices) {
    devices_ = chat::MakeSplitDevices(*instance_, *options.devices, "--devices");
  } else {
    devices_.push_back(
        std::make_unique<Device>(*instance_, ChooseDevice(EnumerateDevices(*instance_), options.device)));
  }
  if (before_load) before_load(*devices_.front());
  if (!files) return;

  chat::LoadedModelOptions load{
      .context = options.context, .gpu_mem_mib = options.gpu_mem_mib, .engines = options.engines, .split = split};
  if (options.quant) load.quantize = ParseQuant(*options.quant);
  const bool tty = isatty(fileno(stderr)) != 0;
  int last_percent = -1;
  auto progress = [&](uint64_t done, uint64_t total) {
    const int percent = total == 0 ? 100 : static_cast<int>(100 * done / total);
    if (percent == last_percent) return;
    last_percent = percent;
    if (tty) std::fprintf(stderr, "\rloading weights %3d%% (%.0f / %.0f MiB)", percent, MiB(done), MiB(total));
  };
  std::vector<Device*> model_devices;
  for (const auto& device : devices_) model_devices.push_back(device.get());
  model_ = std::make_unique<chat::LoadedModel>(model_devices, std::move(files), load, progress);
  if (tty) std::fprintf(stderr, "\n");
  model_->LogPlacement();
  LogHostMemory();
}

Runtime::~Runtime() {
  // The model releases its device memory before the device goes.
  model_.reset();
}

}  // namespace qvk::app
