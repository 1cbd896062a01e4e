// Sections: running / saving / list and show / export and import
// `qwenvk bench`: a model's prompt and generation speed measured as llama-bench measures it
// (chat/bench.h), the device's own peaks (gpu/peak.h), and where the GPU time of a step goes;
// the runs kept in the store (store/bench_runs.h), and shared as files (store/bench_exchange.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/runtime.h"
#include "base/error.h"
#include "chat/bench.h"
#include "gpu/memory.h"
#include "gpu/peak.h"
#include "qwenvk_version.h"
#include "store/bench_exchange.h"
#include "store/store.h"
#include "ui/actions.h"

namespace qvk::app {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::filesystem::path DatabasePath(const std::optional<std::string>& database) {
  return database ? std::filesystem::path(*database) : store::Store::DefaultPath();
}

// --- saving --------------------------------------------------------------------------------------

// After the report is out, so a store that cannot be written costs the message, not the numbers.
void Save(const BenchOptions& o, const chat::BenchReport& report) {
  const std::filesystem::path path = DatabasePath(o.database);
  store::Store db(path);
  const int64_t now = NowMs();
  if (report.model) {
    const store::Id id = db.SaveBenchRun(chat::StoredRun(report, o.prompts, o.generations, o.depths, now));
    std::fprintf(stderr, "qwenvk: saved as benchmark run %lld in %s (see `qwenvk bench show %lld`)\n",
                 static_cast<long long>(id), path.c_str(), static_cast<long long>(id));
  } else {
    db.SaveBenchDevice(chat::StoredDevice(report, now));
    std::fprintf(stderr, "qwenvk: saved the peaks of %s in %s\n", report.device.name.c_str(), path.c_str());
  }
}

}  // namespace

// --- running -------------------------------------------------------------------------------------

int RunBench(const BenchOptions& o) {
  // Everything about the model is checked before a device is touched.
  std::vector<chat::BenchTest> tests;
  std::unique_ptr<ModelFiles> files;
  ModelOptions model = o.model;
  if (!o.model.model.empty()) {
    tests = chat::PlanBenchTests(o.prompts, o.generations, o.depths);
    if (tests.empty() && !o.device_peak) throw Error("-p and -n are all 0: there is no test to run");
    files = std::make_unique<ModelFiles>(o.model.model);
    const uint32_t needed = chat::BenchContext(tests, files->config().max_position_embeddings);
    uint32_t most = 0;
    for (const chat::BenchTest& t : tests) most = std::max(most, t.positions());
    if (model.context == 0) {
      model.context = needed;
    } else if (model.context < most) {
      throw Error(fmt::format("the tests need a context of {} tokens; --context {} is too small", most, model.context));
    }
  }

  std::optional<DevicePeak> peak;
  Runtime runtime(std::move(files), model, [&](Device& device) {
    // Before the model takes its memory, and without the model's work in the way.
    if (!o.device_peak && !o.kernels) return;
    spdlog::info("measuring the device's copy bandwidth, FMA rates and cooperative-matrix rate");
    peak = MeasureDevicePeak(device, {.max_copy_bytes = o.peak_mib << 20});
  });

  chat::BenchReport report{.version = QWENVK_VERSION,
                           .commit = QWENVK_GIT_COMMIT,
                           .device = chat::DescribeDevice(runtime.device().info()),
                           .peak = peak,
                           .repetitions = o.repetitions};
  if (!o.model.model.empty()) {
    if (o.live_attention) {
      // What the attention panel follows a reply with when it opens: its first view.
      const AttentionRequest view = ui::AttentionViewHeads(runtime.engine().config(), ui::AttentionView{});
      runtime.engine().set_live_attention(std::span(&view, 1));
    }
    chat::BenchRunner runner(runtime.engine());
    for (const chat::BenchTest& test : tests) {
      spdlog::info("running {}", test.Name());
      chat::BenchResult result = runner.Run(test, o.repetitions);
      if (o.kernels) {
        result.kernels = runner.Profile(test);
        result.device_microseconds = chat::DeviceTimes(runtime.engine().last_profile());
      }
      report.results.push_back(std::move(result));
    }
    report.model = chat::DescribeModel(runtime.model());
  }

  const std::string text = o.output == "json"  ? chat::FormatJson(report)
                           : o.output == "csv" ? chat::FormatCsv(report)
                                               : chat::FormatMarkdown(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  if (o.save) Save(o, report);
  return 0;
}

// --- list and show -------------------------------------------------------------------------------
namespace {

std::string UtcTime(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(text) + " UTC";
}

std::string Joined(const std::vector<std::string>& parts, const char* between = ", ") {
  std::string text;
  for (const std::string& part : parts) text += (text.empty() ? "" : between) + part;
  return text;
}

std::string Sizes(const std::vector<uint32_t>& sizes) {
  std::vector<std::string> parts;
  for (uint32_t size : sizes) parts.push_back(std::to_string(size));
  return parts.empty() ? "-" : Joined(parts, ",");
}

std::string MiB(uint64_t bytes) {
  return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string Rate(const std::optional<double>& tflops) {
  return tflops ? fmt::format("{:.3f} TFLOP/s", *tflops) : "not available";
}

std::string Percent(double fraction) {
  return fmt::format("{:.1f}%", 100 * fraction);
}

// Markdown tables hold no line breaks or pipes; names from an imported file may.
std::string Cell(std::string text) {
  for (char& c : text) {
    if (c == '|' || c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

store::Store OpenStore(const BenchStoreOptions& o) {
  const std::filesystem::path path = DatabasePath(o.database);
  if (!std::filesystem::exists(path)) {
    throw Error(fmt::format("{} does not exist: no benchmark has been saved there yet", path.string()));
  }
  return store::Store(path);
}

}  // namespace

int RunBenchList(const BenchStoreOptions& o) {
  store::Store db = OpenStore(o);
  const std::vector<store::BenchRun> runs =
      db.ListBenchRuns({.device = o.device, .model = o.model, .weight_type = o.weight_type});
  std::string out =
      "| id | measured | source | device | model | weights | variant | tests (tokens/s) |\n"
      "| ---: | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const store::BenchRun& r : runs) {
    std::vector<std::string> tests;
    for (const store::BenchRow& row : r.rows) {
      tests.push_back(fmt::format("{} {:.2f} ± {:.2f}", row.Name(), row.mean_tokens_per_s, row.stddev_tokens_per_s));
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", r.id, UtcTime(r.created_ms),
                       store::BenchSourceName(r.source), Cell(r.DeviceName()), Cell(r.model.name),
                       Cell(Joined(r.model.weight_types)), Cell(r.variant), Joined(tests, "; "));
  }
  out += fmt::format("\n{} runs\n", runs.size());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int RunBenchShow(const BenchStoreOptions& o) {
  store::Store db = OpenStore(o);
  const std::optional<store::BenchRun> found = db.GetBenchRun(o.ids.at(0));
  if (!found) throw Error(fmt::format("benchmark run {} does not exist (see `qwenvk bench list`)", o.ids.at(0)));
  const store::BenchRun& r = *found;
  const store::BenchDevice& d = r.device;
  const store::BenchModel& m = r.model;
  std::string out = fmt::format("run {}: {}, measured {}, {} (commit {}){}\n", r.id, store::BenchSourceName(r.source),
                                UtcTime(r.created_ms), r.version, r.commit, r.variant.empty() ? "" : "; " + r.variant);
  out += fmt::format("device: {}; vendor {}; driver {}; Vulkan {}; memory {}; subgroup {}; cooperative matrix {}\n",
                     d.name, d.vendor.empty() ? "unknown" : d.vendor, d.driver.empty() ? "unknown" : d.driver,
                     d.vulkan.empty() ? "unknown" : d.vulkan, d.memory_bytes ? MiB(d.memory_bytes) : "unknown",
                     d.subgroup_size ? std::to_string(d.subgroup_size) : "unknown", d.coopmat ? "yes" : "no");
  if (!r.stages.empty()) out += fmt::format("split by layers across devices: {}\n", Joined(r.stages));
  if (d.peaks) {
    const store::DevicePeaks& p = *d.peaks;
    out += fmt::format(
        "device peak (measured {}): copy {:.1f} GB/s; FP32 FMA {:.3f} TFLOP/s; FP16 FMA {}; cooperative matrix {}\n",
        UtcTime(p.measured_ms), p.copy_gbps, p.f32_tflops, Rate(p.f16_tflops), Rate(p.coopmat_tflops));
  } else {
    out += "device peak: not measured (`qwenvk bench --device-peak` on that machine measures it)\n";
  }
  out += fmt::format("model: {}: {}, {} layers, hidden {}, {} params, weights {}, file {}\n", m.name, m.type,
                     m.layers ? std::to_string(m.layers) : "?", m.hidden ? std::to_string(m.hidden) : "?", m.params,
                     Joined(m.weight_types), MiB(m.file_bytes));
  out += fmt::format("method: -p {} -n {} -d {} -r {}; context {}\n\n", Sizes(r.prompts), Sizes(r.generations),
                     Sizes(r.depths), r.repetitions, r.context ? std::to_string(r.context) : "unknown");
  out += "| test | t/s | samples (s) |\n| --- | ---: | --- |\n";
  for (const store::BenchRow& row : r.rows) {
    std::vector<std::string> samples;
    for (double s : row.samples_s) samples.push_back(fmt::format("{:.4f}", s));
    out += fmt::format("| {} | {:.2f} ± {:.2f} | {} |\n", row.Name(), row.mean_tokens_per_s, row.stddev_tokens_per_s,
                       Joined(samples));
  }
  for (const store::BenchRow& row : r.rows) {
    if (row.kernels.empty()) continue;
    const std::vector<store::RooflinePoint> roofline = store::Roofline(row, d);
    out += fmt::format("\nkernels of {}{}\n", row.Name(),
                       roofline.empty() ? " (no device peak: no roofline)" : ", against the device's peaks");
    if (!row.device_us.empty()) out += store::DeviceTimesLine(row.device_us) + "\n";
    out += "\n";
    out +=
        "| kernel | dispatches | after a barrier | share | us/step | GB/s | TFLOP/s | flops/byte | of copy peak | "
        "of FP32 peak | of roof | limited by |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
    for (size_t i = 0; i < row.kernels.size(); ++i) {
      const store::BenchKernel& k = row.kernels[i];
      const double intensity = k.bytes > 0 ? static_cast<double>(k.flops) / static_cast<double>(k.bytes) : 0;
      std::string against = "| - | - | - | - |";
      if (!roofline.empty()) {
        const store::RooflinePoint& p = roofline[i];
        against = fmt::format("| {} | {} | {} | {} |", Percent(p.of_copy_peak), Percent(p.of_f32_peak),
                              Percent(p.of_roof), store::LimiterName(p.limiter));
      }
      // A run kept before QwenVK recorded the waits shows "-" there.
      const std::string waits = k.waits ? std::to_string(*k.waits) : "-";
      out +=
          fmt::format("| {} | {} | {} | {} | {:.1f} | {:.1f} | {:.3f} | {:.2f} {}\n", Cell(k.label), k.dispatches,
                      waits, Percent(k.share), k.us_per_step, k.gigabytes_per_s(), k.teraflops(), intensity, against);
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// --- export and import ---------------------------------------------------------------------------

int RunBenchExport(const BenchStoreOptions& o) {
  store::Store db = OpenStore(o);
  const std::string text = store::ExportBenchJson(db, o.ids);
  std::ofstream out(o.file, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw Error(fmt::format("could not write {}", o.file));
  std::fprintf(stderr, "qwenvk: wrote %s\n", o.file.c_str());
  return 0;
}

int RunBenchImport(const BenchStoreOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) throw Error(fmt::format("could not read {}", o.file));
  std::ostringstream text;
  text << in.rdbuf();
  const std::filesystem::path path = DatabasePath(o.database);
  store::Store db(path);
  store::BenchImport imported;
  try {
    imported = store::ImportBenchJson(db, text.str());
  } catch (const store::StoreError& e) {
    if (e.kind() != store::StoreErrorKind::InvalidImport) throw;
    throw Error(fmt::format("{} was not imported, nothing changed: {}", o.file, e.what()));
  }
  std::vector<std::string> ids;
  for (const store::Id id : imported.runs) ids.push_back(std::to_string(id));
  std::printf("imported %zu runs from %s%s%s\n", imported.runs.size(), o.file.c_str(),
              ids.empty() ? "" : fmt::format(" (ids {})", Joined(ids)).c_str(),
              imported.already_held ? fmt::format("; {} already stored", imported.already_held).c_str() : "");
  return 0;
}

}  // namespace qvk::app
