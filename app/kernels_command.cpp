// `qwenvk kernels`: every kernel of the table built on one device, with what the driver compiled
// it into (registers, shared memory, spills, ... as the driver names them) where the device
// reports that (VK_KHR_pipeline_executable_properties). Registers an invocation are what decide
// how many workgroups an SM holds at once, which no timing shows directly (docs/speed.md).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "base/error.h"
#include "gpu/device.h"
#include "gpu/instance.h"
#include "gpu/kernels.h"

namespace qvk::app {
namespace {

struct KernelRow {
  const KernelSpec* spec;
  std::string missing;  // what the device lacks to build it; empty: built
  std::vector<KernelStatistic> statistics;
};

std::string Value(const KernelStatistic& s) {
  return s.is_integer ? fmt::format("{:.0f}", s.value) : fmt::format("{:.3g}", s.value);
}

void PrintText(const DeviceInfo& device, bool statistics, const std::vector<KernelRow>& rows) {
  std::printf("Device %u: %s (%s %s)\n", device.index, device.name.c_str(), device.driver_name.c_str(),
              device.DriverVersionString().c_str());
  if (!statistics) {
    std::printf(
        "Its driver reports nothing about compiled kernels (VK_KHR_pipeline_executable_properties), "
        "so this lists which kernels build.\n");
  }
  // Columns: every statistic any kernel has, in the order the driver first gives them.
  std::vector<std::string> columns;
  for (const KernelRow& row : rows) {
    for (const KernelStatistic& s : row.statistics) {
      if (std::find(columns.begin(), columns.end(), s.name) == columns.end()) columns.push_back(s.name);
    }
  }
  std::string header = "\n| kernel | workgroup |";
  std::string rule = "| --- | ---: |";
  for (const std::string& c : columns) {
    header += fmt::format(" {} |", c);
    rule += " ---: |";
  }
  if (columns.empty()) {
    header += " built |";
    rule += " --- |";
  }
  std::printf("%s\n%s\n", header.c_str(), rule.c_str());
  for (const KernelRow& row : rows) {
    std::string line = fmt::format("| {} | {} |", row.spec->name, row.spec->local_size_x);
    if (!row.missing.empty()) {
      line += fmt::format(" not built: needs {} |", row.missing);
    } else if (columns.empty()) {
      line += " yes |";
    } else {
      for (const std::string& c : columns) {
        const auto it = std::find_if(row.statistics.begin(), row.statistics.end(),
                                     [&](const KernelStatistic& s) { return s.name == c; });
        line += it == row.statistics.end() ? " - |" : fmt::format(" {} |", Value(*it));
      }
    }
    std::printf("%s\n", line.c_str());
  }
}

nlohmann::json ToJson(const DeviceInfo& device, bool statistics, const std::vector<KernelRow>& rows) {
  nlohmann::json kernels = nlohmann::json::array();
  for (const KernelRow& row : rows) {
    nlohmann::json k = {
        {"name", row.spec->name}, {"workgroup", row.spec->local_size_x}, {"built", row.missing.empty()}};
    if (!row.missing.empty()) k["missing"] = row.missing;
    nlohmann::json stats = nlohmann::json::array();
    for (const KernelStatistic& s : row.statistics) {
      stats.push_back({{"name", s.name}, {"description", s.description}, {"value", s.value}});
    }
    k["statistics"] = stats;
    kernels.push_back(k);
  }
  return {{"device", device.name},
          {"driver", device.driver_name},
          {"driver_version", device.DriverVersionString()},
          {"statistics", statistics},
          {"kernels", kernels}};
}

}  // namespace

int RunKernels(const KernelsOptions& options) {
  Instance instance;
  const std::vector<DeviceInfo> devices = EnumerateDevices(instance);
  const DeviceInfo& info = ChooseDevice(devices, options.device);
  Device device(instance, info, {.capture_statistics = true});
  std::vector<KernelRow> rows;
  for (uint32_t i = 0; i < kKernelCount; ++i) {
    const KernelSpec& spec = Spec(static_cast<KernelId>(i));
    if (spec.name.find(options.only) == std::string_view::npos) continue;
    KernelRow row{.spec = &spec, .missing = MissingFeatures(info, spec)};
    if (row.missing.empty()) {
      if (device.captures_statistics()) {
        row.statistics = device.kernels().Statistics(spec.id);
      } else {
        device.kernels().Get(spec.id);
      }
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw Error(fmt::format("no kernel's name contains \"{}\"", options.only));
  if (options.json) {
    std::printf("%s\n", ToJson(info, device.captures_statistics(), rows).dump(2).c_str());
  } else {
    PrintText(info, device.captures_statistics(), rows);
  }
  return 0;
}

}  // namespace qvk::app
