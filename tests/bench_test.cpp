// Sections: tests and statistics / profile / reports / runs on the GPU
// The benchmark's logic (chat/bench.h): which tests a command line plans, the context they need,
// the statistics, the profile summary, the three report formats, and runs on the fixture model.
#include "chat/bench.h"

#include <cmath>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/loaded_model.h"
#include "gpu/memory.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::chat {
namespace {

using nlohmann::json;

// --- tests and statistics ------------------------------------------------------------------------

TEST(Bench, NamesTestsAsLlamaBenchDoes) {
  EXPECT_EQ((BenchTest{BenchKind::Prompt, 512, 0}).Name(), "pp512");
  EXPECT_EQ((BenchTest{BenchKind::Generate, 128, 4096}).Name(), "tg128 @ d4096");
}

TEST(Bench, PlansEveryCombinationPerDepthSkippingZeros) {
  const std::vector<uint32_t> prompts = {128, 0, 512}, generations = {0, 64}, depths = {0, 4096};
  const std::vector<BenchTest> expected = {{BenchKind::Prompt, 128, 0},    {BenchKind::Prompt, 512, 0},
                                           {BenchKind::Generate, 64, 0},   {BenchKind::Prompt, 128, 4096},
                                           {BenchKind::Prompt, 512, 4096}, {BenchKind::Generate, 64, 4096}};
  EXPECT_EQ(PlanBenchTests(prompts, generations, depths), expected);
  const std::vector<uint32_t> none = {0};
  EXPECT_TRUE(PlanBenchTests(none, none, depths).empty());
}

TEST(Bench, ContextCoversTheDeepestTestRoundedUp) {
  const std::vector<BenchTest> small = {{BenchKind::Prompt, 8, 0}, {BenchKind::Generate, 4, 8}};
  EXPECT_EQ(BenchContext(small, 32768), 256u);
  const std::vector<BenchTest> deep = {{BenchKind::Prompt, 512, 4096}, {BenchKind::Generate, 128, 4096}};
  EXPECT_EQ(BenchContext(deep, 32768), 4608u);
  const std::vector<BenchTest> odd = {{BenchKind::Prompt, 300, 1}};
  EXPECT_EQ(BenchContext(odd, 32768), 512u);
  EXPECT_EQ(BenchContext(odd, 400), 400u);  // rounded up, but never past the model
  test::ExpectMentions(test::ErrorOf([&] { BenchContext(deep, 4096); }),
                       {"pp512 @ d4096", "4608 positions", "the model has 4096"});
}

TEST(Bench, SummarizesWithTheSampleStandardDeviation) {
  EXPECT_EQ(Summarize({}).mean, 0);
  const std::vector<double> one = {5};
  EXPECT_EQ(Summarize(one).mean, 5);
  EXPECT_EQ(Summarize(one).stddev, 0);
  const std::vector<double> values = {2, 4, 4, 4, 5, 5, 7, 9};
  const Summary s = Summarize(values);
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.stddev, std::sqrt(32.0 / 7));  // n - 1, not n
}

// --- profile -------------------------------------------------------------------------------------

TEST(Bench, SummarizesAProfileByLabelTheSlowestFirst) {
  const std::vector<DispatchTiming> timings = {
      {"qkv", "matvec_f16", 10, {.bytes = 1000, .flops = 4000}},
      {"attention", "attention", 40, {.bytes = 500, .flops = 100}, 0, /*waits=*/true},
      {"qkv", "matvec_q8_0", 20, {.bytes = 2000, .flops = 2000}, 0, /*waits=*/true},
  };
  const std::vector<KernelShare> shares = SummarizeProfile(timings);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].label, "attention");
  EXPECT_EQ(shares[0].dispatches, 1u);
  EXPECT_EQ(shares[0].waits, 1u);
  EXPECT_DOUBLE_EQ(shares[0].share, 40.0 / 70);
  EXPECT_EQ(shares[1].label, "qkv");
  EXPECT_EQ(shares[1].dispatches, 2u);
  EXPECT_EQ(shares[1].waits, 1u);
  EXPECT_DOUBLE_EQ(shares[1].microseconds, 30);
  EXPECT_EQ(shares[1].cost.bytes, 3000u);
  EXPECT_EQ(shares[1].cost.flops, 6000u);
  EXPECT_DOUBLE_EQ(shares[1].share, 30.0 / 70);
  EXPECT_DOUBLE_EQ(shares[1].gigabytes_per_s(), 3000 / 30e3);  // bytes per microsecond / 1e3
  EXPECT_DOUBLE_EQ(shares[1].teraflops(), 6000 / 30e6);
}

// --- reports -------------------------------------------------------------------------------------

BenchReport ExampleReport() {
  BenchReport report{
      .version = "0.1.0",
      .commit = "abc1234-dirty",
      .device = {.name = "GPU, the big one", .driver = "vendor \"x\" 1.2.3", .vulkan = "1.3.280"},
      .model = BenchModel{.path = "/models/q.gguf",
                          .type = "qwen2",
                          .layers = 24,
                          .hidden = 896,
                          .params = 494032768,
                          .weight_types = {"Q4_K", "Q6_K", "F32"},
                          .file_bytes = 400 << 20,
                          .context = 768,
                          .weights_bytes = 380 << 20,
                          .kv_cache_bytes = 9 << 20,
                          .working_bytes = 60 << 20,
                          .allocated_bytes = 449 << 20,
                          .reserved_bytes = 512 << 20},
      .peak =
          DevicePeak{
              .copy_bytes = 1 << 30, .copy_gbps = 4000, .copy_buffer_gbps = 3900, .fma_tflops = 60, .fma_count = 1000},
      .repetitions = 2};
  report.results.push_back({.test = {BenchKind::Prompt, 512, 0},
                            .seconds = {0.05, 0.06},
                            .tokens_per_s = {.mean = 9333.5, .stddev = 12.25},
                            .mean_seconds = 0.055});
  report.results.push_back({.test = {BenchKind::Generate, 128, 4096},
                            .seconds = {0.5, 0.52},
                            .tokens_per_s = {.mean = 251, .stddev = 5},
                            .mean_seconds = 0.51,
                            .kernels = {{.label = "gate_up",
                                         .dispatches = 24,
                                         .waits = 24,
                                         .microseconds = 800,
                                         .cost = {.bytes = 2400000000, .flops = 100},
                                         .share = 0.75},
                                        {.label = "attention",
                                         .dispatches = 24,
                                         .microseconds = 266,
                                         .cost = {.bytes = 100, .flops = 100},
                                         .share = 0.25}}});
  return report;
}

TEST(Bench, MarkdownIsLlamaBenchsTableWithTheBuildDeviceAndMemory) {
  const std::string md = FormatMarkdown(ExampleReport());
  test::ExpectMentions(
      md, {"qwenvk 0.1.0 (commit abc1234-dirty)", "device: GPU, the big one; driver vendor", "Vulkan 1.3.280",
           "24 layers, hidden 896, 494.03 M params, weights Q4_K, Q6_K, F32", "copy 4000.0 GB/s",
           "FP32 FMA 60.000 TFLOP/s", "| model | size | params | test | t/s | ms |",
           "| qwen2 494.03 M Q4_K | 400.00 MiB | 494.03 M | pp512 | 9333.50 ± 12.25 | 55.00 |",
           "| tg128 @ d4096 | 251.00 ± 5.00 | 510.00 |", "KV cache 9.00 MiB", "449.00 MiB in use", "context 768 tokens",
           "kernels of tg128 @ d4096", "| gate_up | 24 | 24 | 75.0% | 800.0 | 3000.0 | 75.0% |"});
  EXPECT_EQ(md.find("kernels of pp512"), std::string::npos);  // not profiled
}

TEST(Bench, JsonHasOneObjectPerTestWithEveryField) {
  const json doc = json::parse(FormatJson(ExampleReport()));
  EXPECT_EQ(doc["qwenvk"]["commit"], "abc1234-dirty");
  EXPECT_EQ(doc["device"]["name"], "GPU, the big one");
  EXPECT_EQ(doc["device_peak"]["copy_gbps"], 4000.0);
  ASSERT_EQ(doc["results"].size(), 2u);
  const json& pp = doc["results"][0];
  EXPECT_EQ(pp["test"], "pp512");
  EXPECT_EQ(pp["kind"], "pp");
  EXPECT_EQ(pp["avg_ts"], 9333.5);
  EXPECT_EQ(pp["stddev_ts"], 12.25);
  EXPECT_EQ(pp["samples_s"], json({0.05, 0.06}));
  EXPECT_EQ(pp["weight_types"], json({"Q4_K", "Q6_K", "F32"}));
  for (const char* field : {"device", "driver", "vulkan", "commit", "model_path", "params", "layers", "hidden",
                            "weights_bytes", "kv_cache_bytes", "working_bytes", "allocated_bytes", "copy_gbps"}) {
    EXPECT_TRUE(pp.contains(field)) << field;
  }
  EXPECT_FALSE(pp.contains("kernels"));
  const json& tg = doc["results"][1];
  EXPECT_EQ(tg["depth"], 4096);
  ASSERT_EQ(tg["kernels"].size(), 2u);
  EXPECT_EQ(tg["kernels"][0]["kernel"], "gate_up");
  EXPECT_DOUBLE_EQ(tg["kernels"][0]["of_copy_peak"].get<double>(), 0.75);
}

TEST(Bench, CsvHasAHeaderAndQuotesWhatNeedsIt) {
  const auto tables = test::Split(FormatCsv(ExampleReport()), "\n\n");
  ASSERT_EQ(tables.size(), 2u);  // results, then kernels
  const auto rows = test::ParseCsv(tables[0]);
  ASSERT_EQ(rows.size(), 3u);
  const std::vector<std::string>& header = rows[0];
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i) column[header[i]] = i;
  for (const auto& row : rows) ASSERT_EQ(row.size(), header.size());
  EXPECT_EQ(rows[1][column.at("device")], "GPU, the big one");
  EXPECT_EQ(rows[1][column.at("driver")], "vendor \"x\" 1.2.3");
  EXPECT_EQ(rows[1][column.at("weight_types")], "Q4_K, Q6_K, F32");
  EXPECT_EQ(rows[1][column.at("test")], "pp512");
  EXPECT_EQ(std::stod(rows[2][column.at("avg_ts")]), 251);
  const auto kernels = test::ParseCsv(tables[1]);
  ASSERT_EQ(kernels.size(), 3u);
  EXPECT_EQ(kernels[0][0], "test");
  EXPECT_EQ(kernels[1][0], "tg128 @ d4096");
  EXPECT_EQ(kernels[1][1], "gate_up");
}

TEST(Bench, ThePeakAloneReportsWithoutAModel) {
  BenchReport report = ExampleReport();
  report.model.reset();
  report.results.clear();
  const std::string md = FormatMarkdown(report);
  test::ExpectMentions(md, {"device: GPU, the big one", "device peak: copy 4000.0 GB/s"});
  EXPECT_EQ(md.find("| model |"), std::string::npos);
  EXPECT_TRUE(json::parse(FormatJson(report))["results"].empty());
  const auto rows = test::ParseCsv(FormatCsv(report));
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[1].size(), rows[0].size());
  EXPECT_EQ(rows[0].back(), "fma_tflops");
  EXPECT_EQ(std::stod(rows[1].back()), 60);
}

// --- runs on the GPU -----------------------------------------------------------------------------

class BenchRunTest : public test::GpuTest {};

TEST_F(BenchRunTest, RunsAndProfilesTestsOnTheFixtureModel) {
  LoadedModel model(device(), test::TestDataDir() / "qwen2-tiny", LoadedModelOptions{.context = 256});
  BenchRunner runner(model.engine());
  const BenchTest pp{BenchKind::Prompt, 6, 5}, tg{BenchKind::Generate, 3, 5};
  for (const BenchTest& t : {pp, tg}) {
    const BenchResult r = runner.Run(t, 2);
    EXPECT_EQ(r.test, t);
    ASSERT_EQ(r.seconds.size(), 2u);
    for (double s : r.seconds) EXPECT_GT(s, 0);
    EXPECT_GT(r.tokens_per_s.mean, 0);
    EXPECT_DOUBLE_EQ(r.mean_seconds, (r.seconds[0] + r.seconds[1]) / 2);
    // Each run starts from exactly the depth.
    EXPECT_EQ(model.engine().cached_tokens().size(), t.positions());
  }
  // The same seed gives the same depth, and the depth is what a pp run continues.
  const std::vector<uint32_t> depth(model.engine().cached_tokens().begin(), model.engine().cached_tokens().begin() + 5);
  BenchRunner again(model.engine());
  again.Run(pp, 1);
  EXPECT_TRUE(std::equal(depth.begin(), depth.end(), model.engine().cached_tokens().begin()));

  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const std::vector<KernelShare> kernels = runner.Profile(tg);
  std::map<std::string, uint32_t> dispatches;
  double shares = 0;
  for (const KernelShare& k : kernels) {
    dispatches[k.label] = k.dispatches;
    shares += k.share;
  }
  EXPECT_NEAR(shares, 1, 1e-9);
  const uint32_t layers = model.files().config().num_layers;
  for (const char* label : {"qkv", "attention", "o_proj", "gate_up", "down"}) EXPECT_EQ(dispatches[label], layers);
  EXPECT_EQ(dispatches["lm_head"], 1u);
  EXPECT_FALSE(runner.Profile(pp).empty());
}

// A model split across two logical devices on the test's GPU: the description names each
// device's layers and counts both devices' memory; a profile gives each device's GPU time.
TEST_F(BenchRunTest, SplitModelReportsEachDevice) {
  Device second(instance(), info());
  Device* devices[] = {&device(), &second};
  LoadedModel whole(device(), test::TestDataDir() / "qwen2-tiny", LoadedModelOptions{.context = 256});
  LoadedModel model(devices, std::make_unique<ModelFiles>(test::TestDataDir() / "qwen2-tiny"),
                    LoadedModelOptions{.context = 256});
  ASSERT_EQ(model.stage_count(), 2u);
  const BenchModel m = DescribeModel(model), one = DescribeModel(whole);
  ASSERT_EQ(m.devices.size(), 2u);
  EXPECT_NE(m.devices[0].find("layers 0-0"), std::string::npos) << m.devices[0];
  EXPECT_NE(m.devices[0].find("; hand-off: " + model.engine().hand_off(0)), std::string::npos) << m.devices[0];
  EXPECT_NE(m.devices[1].find("layers 1-1"), std::string::npos) << m.devices[1];
  EXPECT_EQ(m.devices[1].find("hand-off"), std::string::npos) << m.devices[1];
  EXPECT_TRUE(one.devices.empty());
  EXPECT_EQ(m.weight_types, one.weight_types);
  EXPECT_EQ(m.kv_cache_bytes, one.kv_cache_bytes);
  EXPECT_EQ(m.weights_bytes, model.weights(0).device_bytes + model.weights(1).device_bytes);
  EXPECT_GE(m.allocated_bytes, m.weights_bytes + m.kv_cache_bytes + m.working_bytes);

  BenchRunner runner(model.engine());
  BenchResult r = runner.Run({BenchKind::Generate, 2, 3}, 1);
  r.kernels = runner.Profile(r.test);
  r.device_microseconds = DeviceTimes(model.engine().last_profile());
  if (!info().compute_timestamps) GTEST_SKIP() << "no compute timestamps on this device";
  ASSERT_EQ(r.device_microseconds.size(), 2u);
  for (double us : r.device_microseconds) EXPECT_GT(us, 0);
  const BenchReport report{.device = DescribeDevice(info()), .model = m, .repetitions = 1, .results = {r}};
  EXPECT_NE(FormatMarkdown(report).find("GPU time by device, in layer order: device 0 "), std::string::npos);
  const auto doc = nlohmann::json::parse(FormatJson(report));
  EXPECT_EQ(doc["results"][0]["device_us"].size(), 2u);
  EXPECT_EQ(doc["results"][0]["split_devices"].size(), 2u);
  EXPECT_NE(FormatCsv(report).find("device_us"), std::string::npos);
}

// A split that cannot be made says why, before anything loads.
TEST_F(BenchRunTest, RefusesSplitsThatCannotBeMade) {
  Device second(instance(), info()), third(instance(), info());
  const auto load = [&](std::vector<Device*> devices, std::vector<double> split) {
    LoadedModel(devices, std::make_unique<ModelFiles>(test::TestDataDir() / "qwen2-tiny"),
                LoadedModelOptions{.context = 64, .split = split});
  };
  test::ExpectMentions(test::ErrorOf([&] {
                         load({&device(), &second, &third}, {});
                       }),
                       {"3 devices for a model of 2 layers"});
  test::ExpectMentions(test::ErrorOf([&] {
                         load({&device(), &second}, {1, 1, 1});
                       }),
                       {"the split has 3 parts for 2 devices"});
}

TEST_F(BenchRunTest, DescribesTheModelAndItsGpuMemory) {
  LoadedModel model(device(), test::TestDataDir() / "qwen2-tiny", LoadedModelOptions{.context = 256});
  const BenchModel m = DescribeModel(model);
  const ModelConfig& c = model.files().config();
  EXPECT_EQ(m.type, "qwen2");
  EXPECT_EQ(m.layers, c.num_layers);
  EXPECT_EQ(m.hidden, c.hidden_size);
  EXPECT_EQ(m.weight_types, (std::vector<std::string>{"BF16", "F32"}));
  EXPECT_GT(m.params, uint64_t{c.vocab_size} * c.hidden_size);
  EXPECT_GT(m.file_bytes, m.params);  // two bytes a BF16 weight
  EXPECT_EQ(m.context, 256u);
  EXPECT_EQ(m.kv_cache_bytes, KvCacheBytes(c, 256));
  EXPECT_EQ(m.weights_bytes, model.weights().device_bytes);
  EXPECT_GE(m.allocated_bytes, m.weights_bytes + m.kv_cache_bytes + m.working_bytes);
  EXPECT_GE(m.reserved_bytes, m.allocated_bytes);

  const BenchDevice d = DescribeDevice(info());
  EXPECT_EQ(d.name, info().name);
  EXPECT_NE(d.driver.find(info().driver_name), std::string::npos);
  EXPECT_EQ(d.vulkan, info().ApiVersionString());
}

}  // namespace
}  // namespace qvk::chat
