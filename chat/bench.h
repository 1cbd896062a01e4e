#pragma once
// Benchmarks of a loaded model, measured as llama-bench measures them, for `qwenvk bench` and any
// view that shows the same numbers: the tests (pp: one prompt of N tokens; tg: N single-token
// steps; each over a KV cache of some depth), their timed runs and statistics, a per-kernel
// profile of one step, and the report as Markdown, JSON or CSV.
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "chat/live_attention.h"
#include "gpu/graph.h"
#include "gpu/peak.h"
#include "model/engine.h"
#include "store/bench_runs.h"

namespace qvk {
class Allocator;
struct DeviceInfo;
}  // namespace qvk

namespace qvk::chat {

class LoadedModel;

// --- tests ---------------------------------------------------------------------------------------

enum class BenchKind { Prompt, Generate };  // llama-bench's pp and tg

struct BenchTest {
  BenchKind kind = BenchKind::Prompt;
  uint32_t tokens = 0;       // prompt tokens (pp) or generated tokens (tg)
  uint32_t depth = 0;        // tokens the KV cache holds before the test
  std::string Name() const;  // llama-bench's names: "pp512", "tg128 @ d4096"
  uint32_t positions() const { return depth + tokens; }
  bool operator==(const BenchTest&) const = default;
};

// For each depth, every prompt size and then every generation length; sizes of 0 are skipped.
std::vector<BenchTest> PlanBenchTests(std::span<const uint32_t> prompts, std::span<const uint32_t> generations,
                                      std::span<const uint32_t> depths);

// KV cache rows for the tests: the most positions one reaches, rounded up to a multiple of 256,
// at most `model_positions`. Throws Error when a test needs more than the model has.
uint32_t BenchContext(std::span<const BenchTest> tests, uint32_t model_positions);

// --- runs ----------------------------------------------------------------------------------------

struct Summary {
  double mean = 0;
  double stddev = 0;  // sample standard deviation (n - 1); 0 for fewer than two values
};
Summary Summarize(std::span<const double> values);

// One label's dispatches (model/forward.cpp's qkv, attention, ...) in one profiled step.
struct KernelShare {
  std::string label;
  uint32_t dispatches = 0;
  uint32_t waits = 0;       // of those, the ones after a barrier (DispatchTiming::waits)
  double microseconds = 0;  // GPU time per step
  DispatchCost cost;        // bytes moved and flops per step
  double share = 0;         // of the step's GPU time, 0..1
  double gigabytes_per_s() const;
  double teraflops() const;
};
// The timings grouped by label, the most time first.
std::vector<KernelShare> SummarizeProfile(std::span<const DispatchTiming> timings);
// The timings' GPU time on each device of a model split across devices (DispatchTiming::stage),
// in layer order; one entry for a model on one device.
std::vector<double> DeviceTimes(std::span<const DispatchTiming> timings);

struct BenchResult {
  BenchTest test;
  std::vector<double> seconds;  // each timed repetition
  Summary tokens_per_s;
  double mean_seconds = 0;
  std::vector<KernelShare> kernels;         // one profiled step (pp: the whole prompt), when asked for
  std::vector<double> device_microseconds;  // that step's GPU time on each device (DeviceTimes)
};

// Runs tests on an engine, whose cache it resets as each run needs. Prompts and depths are
// random token ids from a fixed seed, so runs compare from one program run to the next.
class BenchRunner {
 public:
  explicit BenchRunner(Engine& engine, uint32_t seed = 20240611);

  // One warm-up run, then `repetitions` timed runs (at least 1), each from a cache holding
  // exactly test.depth tokens (filled untimed). The clock runs around the whole prompt (pp) or
  // all the steps (tg), each a call that waits for the GPU; a tg step reads the argmax back and
  // feeds it to the next one, and with the engine's live attention on, hands its rows to a live
  // feed as the chat's worker does. `after_each` is called after the warm-up and each timed run
  // (the app's progress bar; it may throw to cancel).
  BenchResult Run(const BenchTest& test, uint32_t repetitions, const std::function<void()>& after_each = {});
  // The test's step once more with GPU timestamps (the whole prompt for pp, one token for tg),
  // summarized by label. Empty on a device without compute timestamps.
  std::vector<KernelShare> Profile(const BenchTest& test);

 private:
  void FillDepth(uint32_t depth);
  std::vector<uint32_t> PromptIds(const BenchTest& test);  // a pp test's: the depth's ids, then the prompt's
  double TimedRun(const BenchTest& test);                  // seconds
  // The first `count` ids of a seeded sequence.
  struct TokenStream {
    std::mt19937 random;
    std::vector<uint32_t> ids;
  };
  std::span<const uint32_t> Take(TokenStream& stream, uint32_t count);

  Engine& engine_;
  TokenStream depth_ids_, prompt_ids_;
  LiveAttention live_feed_;  // where a tg step's live rows go, as the chat's go to the attention panel
};

// --- report --------------------------------------------------------------------------------------

struct BenchDevice {
  std::string vendor;  // DeviceInfo::VendorName()
  std::string name;
  std::string driver;         // name and version
  std::string vulkan;         // the device's Vulkan API version
  uint64_t memory_bytes = 0;  // device-local
  uint32_t subgroup_size = 0;
  bool coopmat = false;  // the cooperative-matrix GEMM runs here (DeviceInfo::coopmat_f16)
};
BenchDevice DescribeDevice(const DeviceInfo& info);

struct BenchModel {
  std::string path;
  std::string type;  // config's model_type ("qwen2")
  uint32_t layers = 0;
  uint32_t hidden = 0;
  uint64_t params = 0;                    // elements of every stored tensor
  std::vector<std::string> weight_types;  // on the GPU, the most bytes first ("Q4_K", "Q6_K", "F32")
  uint64_t file_bytes = 0;                // the .gguf file, or the folder's .safetensors files
  uint32_t context = 0;                   // KV cache rows
  // GPU memory:
  uint64_t weights_bytes = 0;  // weights in GPU memory
  uint64_t kv_cache_bytes = 0;
  uint64_t working_bytes = 0;    // the engine's activations, logits and ranking
  uint64_t allocated_bytes = 0;  // every buffer the allocator holds
  uint64_t reserved_bytes = 0;   // the blocks it took from the driver
  // Each decode step also reduced its attention to these views (Engine::set_live_attention), named
  // as ViewName names them; empty: live attention was off.
  std::vector<std::string> live_attention_views;
  // A model split across devices: each device, its layers and its hand-off to the next, in layer
  // order (StageNames);
  // empty on one device.
  std::vector<std::string> devices;
};
// The model and GPU memory as they stand now (the allocators of every device it is on).
BenchModel DescribeModel(const LoadedModel& model);
// A live attention view in words: "layer 0 head 3", "layer 2 heads 0-13 mean, sink muted".
std::string ViewName(const AttentionRequest& view);
// Each device of a split model, the layers it holds and how the hidden state goes on to the next
// device (Engine::hand_off): "device 0 (llvmpipe): layers 0-11; hand-off: host copy", the last
// "device 1 (llvmpipe): layers 12-23"; empty for a model on one device.
std::vector<std::string> StageNames(const Engine& engine);

struct BenchReport {
  std::string version;  // QwenVK's
  std::string commit;   // the git commit it was built from ("-dirty" with local changes, or "unknown")
  BenchDevice device;
  std::optional<BenchModel> model;  // none: the device peak alone
  std::optional<DevicePeak> peak;
  uint32_t repetitions = 0;
  std::vector<BenchResult> results;
};

// The report as the store keeps it (store/bench_runs.h), measured at `now_ms`: its device with
// the peaks, if measured; and, with a model, the whole run.
store::BenchDevice StoredDevice(const BenchReport& report, int64_t now_ms);
store::BenchRun StoredRun(const BenchReport& report, std::span<const uint32_t> prompts,
                          std::span<const uint32_t> generations, std::span<const uint32_t> depths, int64_t now_ms);

// A parameter count as llama-bench's params column writes it: "494.03 M", "7.62 B".
std::string FormatParams(uint64_t params);
// llama-bench's table (model | size | params | test | t/s, and the mean time) between lines
// naming the build, device, model, peaks and GPU memory; then each profiled test's kernels.
std::string FormatMarkdown(const BenchReport& report);
// One object: build, device, model, peak, and "results": one object per test with every field.
std::string FormatJson(const BenchReport& report);
// A header row and one row per test with every field; with profiles, a blank line and the
// kernel table, with its own header row.
std::string FormatCsv(const BenchReport& report);

}  // namespace qvk::chat
