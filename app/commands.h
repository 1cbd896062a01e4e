#pragma once
// Subcommands of the qwenvk program, one function each; main.cpp wires them to CLI11.
// Machine-readable results go to stdout (JSON, or the streamed text of generate/chat);
// progress and logs to stderr.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/chat_template.h"

namespace qvk::app {

// Options every subcommand that runs a model shares.
struct ModelOptions {
  std::string model;                    // Hugging Face folder or .gguf file
  std::optional<unsigned> device;       // --device N
  std::optional<std::string> devices;   // --devices 0,1: the model split by layers across these
  std::optional<std::string> split;     // --split 3,1: each device's share of the layers
  std::optional<uint64_t> gpu_mem_mib;  // --gpu-mem MiB
  uint32_t context = 0;                 // --context; 0: min(32768, max_position_embeddings)
  std::optional<std::string> quant;     // --quant q8_0|q4_0: quantize float weights while loading
  uint32_t engines = 1;                 // engines (KV caches) over the weights: serve --parallel
};

struct InfoOptions {
  std::string model;
};
int RunInfo(const InfoOptions& options);

struct DevicesOptions {
  bool json = false;
};
int RunDevices(const DevicesOptions& options, std::optional<unsigned> device);

// `qwenvk kernels` (app/kernels_command.cpp): each kernel built on a device, with the driver's
// statistics of its compiled code.
struct KernelsOptions {
  std::optional<unsigned> device;
  std::string only;  // kernels whose name contains this; empty: all
  bool json = false;
};
int RunKernels(const KernelsOptions& options);

struct TokenizeOptions {
  std::string model;
  std::optional<std::string> text, text_file, chat_file;
};
int RunTokenize(const TokenizeOptions& options);

struct LogitsOptions {
  ModelOptions model;
  std::vector<uint32_t> ids;
  uint32_t top = 20;
  uint32_t greedy = 0;
  std::optional<std::string> dump_last;
};
int RunLogits(const LogitsOptions& options);

// `qwenvk attention` (app/attention_command.cpp).
struct AttentionOptions {
  ModelOptions model;
  std::vector<uint32_t> ids;
  std::optional<std::string> out;            // raw float32 [layers, planes, T, T]
  std::optional<uint32_t> layer;             // one layer (default: every layer)
  std::optional<uint32_t> head;              // one query head, or with a group reduction one KV head
  std::string reduce;                        // "", mean, max, group-mean, group-max
  std::optional<std::string> png, csv, npy;  // one map
};
int RunAttention(const AttentionOptions& options);

struct GenerateOptions {
  ModelOptions model;
  std::string prompt;
  bool chat = false;
  std::optional<float> temperature, top_p, min_p, repeat_penalty;
  std::optional<uint32_t> top_k;
  std::optional<uint64_t> seed;
  uint32_t max_tokens = 256;
  bool greedy = false;
  TemplateOptions template_options;  // --thinking on|off: the template's enable_thinking
};
int RunGenerate(const GenerateOptions& options);
int RunChat(const GenerateOptions& options);

// `qwenvk bench` (app/bench_command.cpp): llama-bench's pp and tg tests, the device's peaks.
struct BenchOptions {
  ModelOptions model;                      // --model: none with --device-peak alone
  std::vector<uint32_t> prompts{512};      // -p: prompt sizes (0: none)
  std::vector<uint32_t> generations{128};  // -n: generation lengths (0: none)
  std::vector<uint32_t> depths{0};         // -d: KV cache depths
  uint32_t repetitions = 5;                // -r
  std::string output = "md";               // -o: md, json or csv
  bool kernels = false;                    // --kernels: one profiled step per test
  bool device_peak = false;                // --device-peak
  bool live_attention = false;             // --live-attention: as while the attention panel follows a reply
  uint64_t peak_mib = 1024;                // --peak-mib: most MiB the peak's copy moves
  bool save = true;                        // --save / --no-save: keep the run (and peaks) in the store
  std::optional<std::string> database;     // --db: the store (default: the conversations' database)
};
int RunBench(const BenchOptions& options);

// `qwenvk bench list|show|export|import` (app/bench_command.cpp): the stored runs.
struct BenchStoreOptions {
  std::optional<std::string> database;  // --db
  // list: filters (empty: any)
  std::string device, model, weight_type;
  // show: one run; export: the runs (none: all)
  std::vector<int64_t> ids;
  std::string file;  // export: --out; import: the file
};
int RunBenchList(const BenchStoreOptions& options);
int RunBenchShow(const BenchStoreOptions& options);
int RunBenchExport(const BenchStoreOptions& options);
int RunBenchImport(const BenchStoreOptions& options);

// `qwenvk serve` (app/serve_command.cpp): the OpenAI-compatible HTTP server.
struct ServeOptions {
  ModelOptions model;
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                // 0: any free port
  std::optional<std::string> api_key;  // --api-key or QWENVK_API_KEY
  uint32_t parallel = 1;               // requests generated at once, each with its own KV cache
};
int RunServe(const ServeOptions& options);

// `qwenvk` with no subcommand: the desktop app (app/desktop.cpp).
struct DesktopOptions {
  std::optional<std::string> model;     // --model: load this and remember it in the settings
  std::optional<std::string> database;  // --db: the conversation store (default under $XDG_DATA_HOME)
  std::optional<std::string> script;    // --script: drive the UI from a file of actions
  std::optional<uint32_t> device;       // --device N for this run
};
int RunDesktop(const DesktopOptions& options);

}  // namespace qvk::app
