// Sections: names and figures / roofline / saving / reading
#include "store/bench_runs.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/sql.h"
#include "store/statement.h"
#include "store/store.h"

namespace qvk::store {

// --- names and figures -------------------------------------------------------------------------

const char* BenchSourceName(BenchSource source) {
  return source == BenchSource::Qwenvk ? "qwenvk" : "llama-bench";
}

const char* BenchKindName(BenchKind kind) {
  return kind == BenchKind::Prompt ? "pp" : "tg";
}

const char* LimiterName(Limiter limiter) {
  switch (limiter) {
    case Limiter::Bandwidth:
      return "bandwidth";
    case Limiter::Math:
      return "math";
    case Limiter::Overhead:
      return "overhead";
  }
  return "overhead";
}

std::string BenchRow::Name() const {
  const std::string name = fmt::format("{}{}", BenchKindName(kind), tokens);
  return depth == 0 ? name : fmt::format("{} @ d{}", name, depth);
}

std::string DeviceTimesLine(std::span<const double> microseconds) {
  std::string line = "GPU time by device, in layer order: ";
  for (size_t d = 0; d < microseconds.size(); ++d) {
    line += fmt::format("{}device {} {:.1f} us", d == 0 ? "" : ", ", d, microseconds[d]);
  }
  return line;
}

std::string BenchRun::DeviceName() const {
  if (stages.empty()) return device.name;
  return fmt::format("{}, split across {} devices", device.name, stages.size());
}

double BenchKernel::gigabytes_per_s() const {
  return us_per_step > 0 ? static_cast<double>(bytes) / (us_per_step * 1e3) : 0;
}

double BenchKernel::teraflops() const {
  return us_per_step > 0 ? static_cast<double>(flops) / (us_per_step * 1e6) : 0;
}

// --- roofline ----------------------------------------------------------------------------------

std::vector<RooflinePoint> Roofline(const BenchRow& row, const BenchDevice& device) {
  std::vector<RooflinePoint> points;
  if (!device.peaks || device.peaks->copy_gbps <= 0 || device.peaks->f32_tflops <= 0) return points;
  const DevicePeaks& peak = *device.peaks;
  // Where the bandwidth roof meets the FMA roof: flops per byte.
  const double ridge = peak.f32_tflops * 1e3 / peak.copy_gbps;
  for (const BenchKernel& k : row.kernels) {
    RooflinePoint p{.label = k.label, .gigabytes_per_s = k.gigabytes_per_s(), .teraflops = k.teraflops()};
    p.intensity = k.bytes > 0 ? static_cast<double>(k.flops) / static_cast<double>(k.bytes) : 0;
    p.of_copy_peak = p.gigabytes_per_s / peak.copy_gbps;
    p.of_f32_peak = p.teraflops / peak.f32_tflops;
    if (peak.f16_tflops && *peak.f16_tflops > 0) p.of_f16_peak = p.teraflops / *peak.f16_tflops;
    if (peak.coopmat_tflops && *peak.coopmat_tflops > 0) p.of_coopmat_peak = p.teraflops / *peak.coopmat_tflops;
    // A kernel without flops (a copy) sits on the bandwidth roof alone.
    const bool bandwidth_side = k.flops == 0 || p.intensity < ridge;
    p.of_roof = bandwidth_side ? p.of_copy_peak : p.of_f32_peak;
    p.limiter = p.of_roof < kOverheadBelowRoof ? Limiter::Overhead
                : bandwidth_side               ? Limiter::Bandwidth
                                               : Limiter::Math;
    points.push_back(std::move(p));
  }
  return points;
}

// --- saving ------------------------------------------------------------------------------------
namespace {

std::string JsonList(const auto& values) {
  return nlohmann::json(values).dump();
}

// Stored lists were written by JsonList; anything else is a damaged file.
template <class T>
std::vector<T> ParseList(const std::string& text, const std::filesystem::path& path, std::string_view what) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  try {
    if (json.is_array()) return json.get<std::vector<T>>();
  } catch (const nlohmann::json::exception&) {
  }
  throw StoreError(StoreErrorKind::Corrupt, fmt::format("The {} of a benchmark run in {} are damaged. Open it "
                                                        "read-only, make a backup, or move it away.",
                                                        what, path.string()));
}

void RequireFits(std::string_view what, std::string_view text) {
  if (text.size() > kMaxBenchTextBytes) {
    throw StoreError(StoreErrorKind::TooLarge, fmt::format("The benchmark's {} is {} bytes long; at most {} are kept.",
                                                           what, text.size(), kMaxBenchTextBytes));
  }
}

void RequireCount(std::string_view what, size_t count, size_t most) {
  if (count > most) {
    throw StoreError(StoreErrorKind::TooLarge,
                     fmt::format("The benchmark has {} {}; at most {} are kept.", count, what, most));
  }
}

void RequireFits(const BenchRun& run) {
  for (const auto& [what, text] : {std::pair<std::string_view, std::string_view>{"version", run.version},
                                   {"commit", run.commit},
                                   {"variant", run.variant},
                                   {"device vendor", run.device.vendor},
                                   {"device name", run.device.name},
                                   {"driver", run.device.driver},
                                   {"Vulkan version", run.device.vulkan},
                                   {"model name", run.model.name},
                                   {"model type", run.model.type}}) {
    RequireFits(what, text);
  }
  for (const std::string& type : run.model.weight_types) RequireFits("weight type", type);
  for (const std::string& stage : run.stages) RequireFits("device of a split", stage);
  for (const auto& [what, count] : {std::pair<std::string_view, size_t>{"weight types", run.model.weight_types.size()},
                                    {"prompt sizes", run.prompts.size()},
                                    {"generation lengths", run.generations.size()},
                                    {"depths", run.depths.size()},
                                    {"devices of a split", run.stages.size()}}) {
    RequireCount(what, count, kMaxBenchListItems);
  }
  RequireCount("rows", run.rows.size(), kMaxBenchRows);
  for (const BenchRow& row : run.rows) {
    RequireCount("samples in a row", row.samples_s.size(), kMaxBenchSamples);
    RequireCount("kernels in a row", row.kernels.size(), kMaxBenchKernels);
    RequireCount("device times in a row", row.device_us.size(), kMaxBenchListItems);
    for (const BenchKernel& k : row.kernels) RequireFits("kernel label", k.label);
  }
}

int64_t Signed(uint64_t value) {
  return static_cast<int64_t>(std::min<uint64_t>(value, INT64_MAX));
}

}  // namespace

Id Store::SaveBenchDevice(const BenchDevice& device) {
  for (const std::string_view text : {device.vendor, device.name, device.driver, device.vulkan}) {
    RequireFits("device", text);
  }
  std::lock_guard lock(mutex_);
  Id id = 0;
  Transaction([&] {
    auto bind = [&](Statement& s) {
      s.Bind(1, device.vendor).Bind(2, device.name).Bind(3, device.driver).Bind(4, device.vulkan);
      s.Bind(5, Signed(device.memory_bytes)).Bind(6, int64_t{device.subgroup_size}).Bind(7, int64_t{device.coopmat});
    };
    Statement insert(*this, sql::kInsertBenchDevice, "save the benchmark's device");
    bind(insert);
    insert.Run();
    Statement find(*this, sql::kFindBenchDevice, "save the benchmark's device");
    bind(find);
    find.Step();
    id = find.Int(0);
    if (device.peaks) {
      const DevicePeaks& p = *device.peaks;
      Statement peaks(*this, sql::kSetBenchDevicePeaks, "save the device's peaks");
      peaks.Bind(1, id).Bind(2, p.measured_ms).Bind(3, p.copy_gbps).Bind(4, p.f32_tflops).Bind(5, p.f16_tflops);
      peaks.Bind(6, p.coopmat_tflops).Run();
    }
  });
  return id;
}

Id Store::FindOrAddBenchModel(const BenchModel& model) {
  auto bind = [&](Statement& s) {
    s.Bind(1, model.name).Bind(2, model.type).Bind(3, int64_t{model.layers}).Bind(4, int64_t{model.hidden});
    s.Bind(5, Signed(model.params)).Bind(6, JsonList(model.weight_types)).Bind(7, Signed(model.file_bytes));
  };
  Statement insert(*this, sql::kInsertBenchModel, "save the benchmark's model");
  bind(insert);
  insert.Run();
  Statement find(*this, sql::kFindBenchModel, "save the benchmark's model");
  bind(find);
  find.Step();
  return find.Int(0);
}

Id Store::SaveBenchRun(const BenchRun& run) {
  RequireFits(run);
  std::lock_guard lock(mutex_);
  Id id = 0;
  Transaction([&] {
    const Id device = SaveBenchDevice(run.device);
    const Id model = FindOrAddBenchModel(run.model);
    Statement insert(*this, sql::kInsertBenchRun, "save the benchmark");
    insert.Bind(1, device).Bind(2, model).Bind(3, BenchSourceName(run.source)).Bind(4, run.created_ms);
    insert.Bind(5, run.version).Bind(6, run.commit).Bind(7, run.variant).Bind(8, int64_t{run.repetitions});
    insert.Bind(9, JsonList(run.prompts)).Bind(10, JsonList(run.generations)).Bind(11, JsonList(run.depths));
    insert.Bind(12, int64_t{run.context}).Bind(13, JsonList(run.stages)).Run();
    id = sqlite3_last_insert_rowid(db_);
    for (size_t r = 0; r < run.rows.size(); ++r) {
      const BenchRow& row = run.rows[r];
      Statement add_row(*this, sql::kInsertBenchRow, "save the benchmark");
      add_row.Bind(1, id).Bind(2, static_cast<int64_t>(r)).Bind(3, BenchKindName(row.kind));
      add_row.Bind(4, int64_t{row.tokens}).Bind(5, int64_t{row.depth}).Bind(6, row.mean_tokens_per_s);
      add_row.Bind(7, row.stddev_tokens_per_s).Bind(8, JsonList(row.samples_s)).Bind(9, JsonList(row.device_us));
      add_row.Run();
      const Id row_id = sqlite3_last_insert_rowid(db_);
      for (size_t k = 0; k < row.kernels.size(); ++k) {
        const BenchKernel& kernel = row.kernels[k];
        Statement add_kernel(*this, sql::kInsertBenchKernel, "save the benchmark's kernel times");
        add_kernel.Bind(1, row_id).Bind(2, static_cast<int64_t>(k)).Bind(3, kernel.label);
        add_kernel.Bind(4, int64_t{kernel.dispatches}).Bind(5, kernel.share).Bind(6, kernel.us_per_step);
        add_kernel.Bind(7, Signed(kernel.bytes)).Bind(8, Signed(kernel.flops)).Bind(9, kernel.waits).Run();
      }
    }
  });
  return id;
}

Id Store::FindBenchRun(const BenchRun& run) {
  std::lock_guard lock(mutex_);
  Id device = 0, model = 0;
  {
    Statement find(*this, sql::kFindBenchDevice, "read the benchmarks");
    find.Bind(1, run.device.vendor).Bind(2, run.device.name).Bind(3, run.device.driver).Bind(4, run.device.vulkan);
    find.Bind(5, Signed(run.device.memory_bytes)).Bind(6, int64_t{run.device.subgroup_size});
    if (!find.Bind(7, int64_t{run.device.coopmat}).Step()) return 0;
    device = find.Int(0);
  }
  {
    Statement find(*this, sql::kFindBenchModel, "read the benchmarks");
    find.Bind(1, run.model.name).Bind(2, run.model.type).Bind(3, int64_t{run.model.layers});
    find.Bind(4, int64_t{run.model.hidden}).Bind(5, Signed(run.model.params));
    find.Bind(6, JsonList(run.model.weight_types)).Bind(7, Signed(run.model.file_bytes));
    if (!find.Step()) return 0;
    model = find.Int(0);
  }
  Statement find(*this, sql::kFindBenchRun, "read the benchmarks");
  find.Bind(1, device).Bind(2, model).Bind(3, BenchSourceName(run.source)).Bind(4, run.created_ms);
  find.Bind(5, run.commit).Bind(6, run.variant);
  return find.Step() ? find.Int(0) : 0;
}

void Store::DeleteBenchRun(Id id) {
  std::lock_guard lock(mutex_);
  Transaction([&] {
    Statement remove(*this, sql::kDeleteBenchRun, "delete the benchmark");
    if (remove.Bind(1, id).Run() == 0) throw Error(fmt::format("Benchmark run {} does not exist.", id));
  });
}

// --- reading -----------------------------------------------------------------------------------
namespace {

// Columns from `at` in sql.h's device order.
BenchDevice ReadBenchDevice(const auto& s, int at) {
  BenchDevice d{.id = s.Int(at),
                .vendor = s.Text(at + 1),
                .name = s.Text(at + 2),
                .driver = s.Text(at + 3),
                .vulkan = s.Text(at + 4),
                .memory_bytes = static_cast<uint64_t>(s.Int(at + 5)),
                .subgroup_size = static_cast<uint32_t>(s.Int(at + 6)),
                .coopmat = s.Int(at + 7) != 0};
  if (s.OptionalReal(at + 8)) {
    d.peaks = DevicePeaks{.measured_ms = s.Int(at + 8),
                          .copy_gbps = s.Real(at + 9),
                          .f32_tflops = s.Real(at + 10),
                          .f16_tflops = s.OptionalReal(at + 11),
                          .coopmat_tflops = s.OptionalReal(at + 12)};
  }
  return d;
}

constexpr int kDeviceColumns = 13;
constexpr int kRunColumns = 12;

bool Matches(const BenchRun& run, const BenchFilter& filter) {
  if (!filter.device.empty() && run.device.name != filter.device) return false;
  if (!filter.model.empty() && run.model.name != filter.model) return false;
  if (filter.weight_type.empty()) return true;
  auto lower = [](std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
  };
  const std::string wanted = lower(filter.weight_type);
  return std::any_of(run.model.weight_types.begin(), run.model.weight_types.end(),
                     [&](const std::string& type) { return lower(type) == wanted; });
}

}  // namespace

std::vector<BenchDevice> Store::ListBenchDevices() {
  std::lock_guard lock(mutex_);
  Statement list(*this, sql::kListBenchDevices, "read the benchmark devices");
  std::vector<BenchDevice> devices;
  while (list.Step()) devices.push_back(ReadBenchDevice(list, 0));
  return devices;
}

std::vector<BenchRow> Store::ReadBenchRows(Id run, bool with_kernels) {
  Statement rows(*this, sql::kBenchRows, "read the benchmark");
  rows.Bind(1, run);
  std::vector<BenchRow> result;
  while (rows.Step()) {
    BenchRow row{.kind = rows.Text(1) == "tg" ? BenchKind::Generate : BenchKind::Prompt,
                 .tokens = static_cast<uint32_t>(rows.Int(2)),
                 .depth = static_cast<uint32_t>(rows.Int(3)),
                 .mean_tokens_per_s = rows.Real(4),
                 .stddev_tokens_per_s = rows.Real(5),
                 .samples_s = ParseList<double>(rows.Text(6), path_, "samples"),
                 .device_us = ParseList<double>(rows.Text(7), path_, "device times")};
    if (with_kernels) {
      Statement kernels(*this, sql::kBenchKernels, "read the benchmark's kernel times");
      kernels.Bind(1, rows.Int(0));
      while (kernels.Step()) {
        row.kernels.push_back({.label = kernels.Text(0),
                               .dispatches = static_cast<uint32_t>(kernels.Int(1)),
                               .waits = kernels.OptionalCount(6),
                               .share = kernels.Real(2),
                               .us_per_step = kernels.Real(3),
                               .bytes = static_cast<uint64_t>(kernels.Int(4)),
                               .flops = static_cast<uint64_t>(kernels.Int(5))});
      }
    }
    result.push_back(std::move(row));
  }
  return result;
}

namespace {

BenchRun ReadBenchRun(const auto& s, const std::filesystem::path& path) {
  BenchRun run{.id = s.Int(0),
               .source = s.Text(1) == "llama-bench" ? BenchSource::LlamaBench : BenchSource::Qwenvk,
               .created_ms = s.Int(2),
               .version = s.Text(3),
               .commit = s.Text(4),
               .variant = s.Text(5),
               .repetitions = static_cast<uint32_t>(s.Int(6)),
               .prompts = ParseList<uint32_t>(s.Text(7), path, "prompt sizes"),
               .generations = ParseList<uint32_t>(s.Text(8), path, "generation lengths"),
               .depths = ParseList<uint32_t>(s.Text(9), path, "depths"),
               .context = static_cast<uint32_t>(s.Int(10)),
               .stages = ParseList<std::string>(s.Text(11), path, "devices of a split"),
               .device = ReadBenchDevice(s, kRunColumns)};
  constexpr int m = kRunColumns + kDeviceColumns;
  run.model = {.id = s.Int(m),
               .name = s.Text(m + 1),
               .type = s.Text(m + 2),
               .layers = static_cast<uint32_t>(s.Int(m + 3)),
               .hidden = static_cast<uint32_t>(s.Int(m + 4)),
               .params = static_cast<uint64_t>(s.Int(m + 5)),
               .weight_types = ParseList<std::string>(s.Text(m + 6), path, "weight types"),
               .file_bytes = static_cast<uint64_t>(s.Int(m + 7))};
  return run;
}

}  // namespace

std::vector<BenchRun> Store::ListBenchRuns(const BenchFilter& filter) {
  std::lock_guard lock(mutex_);
  std::vector<BenchRun> runs;
  {
    Statement list(*this, sql::kListBenchRuns, "read the benchmarks");
    while (list.Step()) {
      BenchRun run = ReadBenchRun(list, path_);
      if (Matches(run, filter)) runs.push_back(std::move(run));
    }
  }
  for (BenchRun& run : runs) run.rows = ReadBenchRows(run.id, /*with_kernels=*/false);
  return runs;
}

std::optional<BenchRun> Store::GetBenchRun(Id id) {
  std::lock_guard lock(mutex_);
  std::optional<BenchRun> run;
  {
    Statement get(*this, sql::kGetBenchRun, "read the benchmark");
    if (!get.Bind(1, id).Step()) return std::nullopt;
    run = ReadBenchRun(get, path_);
  }
  run->rows = ReadBenchRows(id, /*with_kernels=*/true);
  return run;
}

}  // namespace qvk::store
