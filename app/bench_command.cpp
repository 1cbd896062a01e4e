// `qwenvk bench`: a model's prompt and generation speed measured as llama-bench measures it
// (chat/bench.h), the device's own peaks (gpu/peak.h), and where the GPU time of a step goes.
#include <algorithm>
#include <cstdio>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/runtime.h"
#include "base/error.h"
#include "chat/bench.h"
#include "gpu/memory.h"
#include "gpu/peak.h"
#include "qwenvk_version.h"

namespace qvk::app {

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
    spdlog::info("measuring the device's copy bandwidth and FMA rate");
    peak = MeasureDevicePeak(device, {.max_copy_bytes = o.peak_mib << 20});
  });

  chat::BenchReport report{.version = QWENVK_VERSION,
                           .commit = QWENVK_GIT_COMMIT,
                           .device = chat::DescribeDevice(runtime.device().info()),
                           .peak = peak,
                           .repetitions = o.repetitions};
  if (!o.model.model.empty()) {
    runtime.engine().set_live_attention(o.live_attention);
    chat::BenchRunner runner(runtime.engine());
    for (const chat::BenchTest& test : tests) {
      spdlog::info("running {}", test.Name());
      chat::BenchResult result = runner.Run(test, o.repetitions);
      if (o.kernels) result.kernels = runner.Profile(test);
      report.results.push_back(std::move(result));
    }
    report.model = chat::DescribeModel(runtime.model(), runtime.device().allocator());
  }

  const std::string text = o.output == "json"  ? chat::FormatJson(report)
                           : o.output == "csv" ? chat::FormatCsv(report)
                                               : chat::FormatMarkdown(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace qvk::app
