#pragma once
// Benchmark runs as the store keeps them (Store::SaveBenchRun and friends, store.h): the device
// with its measured peaks, the model, the method, each test's tokens/s, each profiled kernel's
// time, and the roofline read from them. Plain values: QwenVK's own runs (chat/bench.h) and
// imported files (store/bench_exchange.h) arrive as these.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qvk::store {

using Id = int64_t;  // as in store.h

// Where a run was measured: `qwenvk bench` (or the app), or llama.cpp's llama-bench (imported).
enum class BenchSource { Qwenvk, LlamaBench };
const char* BenchSourceName(BenchSource source);  // "qwenvk", "llama-bench"

// A device's own ceilings (gpu/peak.h), measured by `qwenvk bench --device-peak`.
struct DevicePeaks {
  int64_t measured_ms = 0;               // Unix epoch milliseconds
  double copy_gbps = 0;                  // a device-to-device copy: bytes read + bytes written per second / 1e9
  double f32_tflops = 0;                 // FP32 FMA: 2 flops per FMA, per second / 1e12
  std::optional<double> f16_tflops;      // FP16 FMA the same way; none: no 16-bit float arithmetic
  std::optional<double> coopmat_tflops;  // cooperative-matrix f16 x f16 + f32; none: not available
  bool operator==(const DevicePeaks&) const = default;
};

// One GPU as its driver presents it. Devices are the same when every field but `id` and `peaks`
// is; a device keeps the most recently measured peaks.
struct BenchDevice {
  Id id = 0;
  std::string vendor;          // "NVIDIA", "AMD", "Mesa", ...; empty when unknown (llama-bench)
  std::string name;            // "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string driver;          // name and version; empty when unknown
  std::string vulkan;          // the device's Vulkan API version, "1.3.278"; empty when unknown
  uint64_t memory_bytes = 0;   // device-local memory; 0 when unknown
  uint32_t subgroup_size = 0;  // 0 when unknown
  bool coopmat = false;        // QwenVK's cooperative-matrix GEMM runs on it
  std::optional<DevicePeaks> peaks;
};

struct BenchModel {
  Id id = 0;
  std::string name;     // the file or folder name, "qwen2.5-0.5b-instruct-q4_0.gguf"
  std::string type;     // "qwen2"
  uint32_t layers = 0;  // 0 when unknown (llama-bench)
  uint32_t hidden = 0;  // 0 when unknown
  uint64_t params = 0;
  std::vector<std::string> weight_types;  // the most bytes first: "Q4_0", "F32"
  uint64_t file_bytes = 0;
  bool operator==(const BenchModel&) const = default;
};

// One kernel label's GPU time in one profiled step (a pp test: the whole prompt).
struct BenchKernel {
  std::string label;  // model/forward.cpp's: "qkv", "attention", ...
  uint32_t dispatches = 0;
  // Of those, the ones that started after a barrier (a wait for all the work before); unknown in
  // runs kept before QwenVK recorded it (schema 6) and in version 1 files.
  std::optional<uint32_t> waits;
  double share = 0;                // of the step's GPU time, 0..1
  double us_per_step = 0;          // microseconds
  uint64_t bytes = 0;              // moved per step (read + written)
  uint64_t flops = 0;              // per step
  double gigabytes_per_s() const;  // bytes / time / 1e9; 0 when no time was measured
  double teraflops() const;        // flops / time / 1e12
  bool operator==(const BenchKernel&) const = default;
};

enum class BenchKind { Prompt, Generate };  // llama-bench's pp and tg
const char* BenchKindName(BenchKind kind);  // "pp", "tg"

struct BenchRow {
  BenchKind kind = BenchKind::Prompt;
  uint32_t tokens = 0;  // prompt tokens (pp) or generated tokens (tg)
  uint32_t depth = 0;   // tokens in the KV cache before the test
  double mean_tokens_per_s = 0;
  double stddev_tokens_per_s = 0;    // sample standard deviation
  std::vector<double> samples_s;     // each timed repetition, seconds
  std::vector<BenchKernel> kernels;  // empty: not profiled (or, from ListBenchRuns, not read)
  // The profiled step's GPU time on each device of a split model (BenchRun::stages, in their
  // order), microseconds; empty where not profiled, on one device, or kept before schema 7.
  std::vector<double> device_us;
  std::string Name() const;  // "pp512", "tg128 @ d4096"
  bool operator==(const BenchRow&) const = default;
};

// A split model's GPU time on each device, in layer order, as every report writes it: "GPU time
// by device, in layer order: device 0 5947.7 us, device 1 38566.7 us".
std::string DeviceTimesLine(std::span<const double> microseconds);

struct BenchRun {
  Id id = 0;
  BenchSource source = BenchSource::Qwenvk;
  int64_t created_ms = 0;  // Unix epoch milliseconds
  std::string version;     // QwenVK's, or llama.cpp's build number
  std::string commit;      // the git commit of the program that measured
  // What else shaped the numbers, for people comparing: "live attention", "llama.cpp Vulkan,
  // flash_attn 1"; empty for a plain run.
  std::string variant;
  uint32_t repetitions = 0;                            // timed runs per test
  std::vector<uint32_t> prompts, generations, depths;  // the method: -p, -n and -d
  uint32_t context = 0;                                // KV cache rows; 0 when unknown
  // A model split by layers across devices: each device, its layers and its hand-off, in layer
  // order ("device 0 (NVIDIA H200): layers 0-13; hand-off: host copy"); `device` is the first of them.
  // Empty on one device (and in runs kept before schema 7 or files before version 3).
  std::vector<std::string> stages;
  BenchDevice device;
  BenchModel model;
  std::vector<BenchRow> rows;
  std::string DeviceName() const;  // "NVIDIA H200", or with a split "NVIDIA H200, split across 2 devices"
};

// What one run holds at most, far beyond any real one: the store refuses more (TooLarge) and an
// import accepts exactly this, so every stored run can be exported and imported back.
inline constexpr size_t kMaxBenchTextBytes = 4096;  // each name, version, commit, variant, label
inline constexpr size_t kMaxBenchRows = 10'000;
inline constexpr size_t kMaxBenchKernels = 1'000;    // per row
inline constexpr size_t kMaxBenchSamples = 10'000;   // per row
inline constexpr size_t kMaxBenchListItems = 1'000;  // p, n, d, weight types and stages

// ListBenchRuns' filter: an empty field matches everything.
struct BenchFilter {
  std::string device;       // the device's name, exactly
  std::string model;        // the model's name, exactly
  std::string weight_type;  // one of the model's weight types, as "Q4_0" (case-insensitive)
};

// --- roofline --------------------------------------------------------------------------------

// What held a kernel back, judged against the device's measured peaks.
enum class Limiter {
  Bandwidth,  // left of the ridge point, and within reach of the bandwidth roof
  Math,       // right of it, within reach of the FP32 FMA roof
  Overhead,   // below a quarter of the roof above it: launches, barriers, too little work
};
const char* LimiterName(Limiter limiter);  // "bandwidth", "math", "overhead"

struct RooflinePoint {
  std::string label;
  double intensity = 0;                                // flops per byte moved
  double gigabytes_per_s = 0;                          // attained
  double teraflops = 0;                                // attained
  double of_copy_peak = 0;                             // gigabytes_per_s / the copy peak
  double of_f32_peak = 0;                              // teraflops / the FP32 FMA peak
  std::optional<double> of_f16_peak, of_coopmat_peak;  // when the device has that peak
  double of_roof = 0;  // the attained rate / min(f32 peak, intensity x copy peak): 1 is the roof
  Limiter limiter = Limiter::Overhead;
};

// The fraction of the roof under which a kernel counts as held back by overhead.
inline constexpr double kOverheadBelowRoof = 0.25;

// One point per kernel of `row`, in its order; empty when the device has no peaks.
std::vector<RooflinePoint> Roofline(const BenchRow& row, const BenchDevice& device);

}  // namespace qvk::store
