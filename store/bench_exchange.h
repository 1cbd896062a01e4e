#pragma once
// Benchmark runs in and out of the store as files people share between machines and vendors:
// QwenVK's own format (docs/bench-format.md, "qwenvk-bench" version 3) out and in, and
// llama.cpp's `llama-bench -o json` in, so its runs sit beside QwenVK's.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/bench_runs.h"
#include "store/store.h"

namespace qvk::store {

inline constexpr std::string_view kBenchFormat = "qwenvk-bench";
// The version this QwenVK writes; it reads every version from 1 to this one.
inline constexpr int kBenchFormatVersion = 3;
// The largest file an import reads: far beyond any real set of runs.
inline constexpr size_t kMaxBenchImportBytes = size_t{64} << 20;
inline constexpr size_t kMaxBenchImportRuns = 10'000;

// The runs named (all of them when `runs` is empty), each device and model once, as
// docs/bench-format.md describes. Throws Error naming a run that does not exist.
std::string ExportBenchJson(Store& store, std::span<const Id> runs);

// What a file holds, checked completely: QwenVK's format or llama-bench's JSON (a top-level
// array). llama-bench's rows become one run per model and set of llama-bench parameters
// (flash_attn, n_gpu_layers, type_k, type_v, n_batch, n_ubatch, n_threads), each row a pp or tg
// test. Devices listed without a run (a measured peak alone) are in `devices`. Throws
// StoreError(InvalidImport) naming what is wrong and where.
struct BenchFile {
  std::vector<BenchRun> runs;
  std::vector<BenchDevice> devices;  // listed without a run
};
BenchFile ParseBenchFile(std::string_view text);

struct BenchImport {
  std::vector<Id> runs;     // the new runs, in the file's order
  size_t already_held = 0;  // runs the store already had (Store::FindBenchRun), not added again
};
// ParseBenchFile, then one transaction that writes everything or, on any failure, nothing.
BenchImport ImportBenchJson(Store& store, std::string_view text);

}  // namespace qvk::store
