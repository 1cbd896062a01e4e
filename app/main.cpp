// qwenvk: the program. Without a subcommand it is the desktop app; the terminal subcommands are
// wired here too; each lives in its own file.
//
// In order: option validators (numbers in a range, device numbers, token ids, each refusing with
// a sentence); option groups several commands share (load, model, bench, sampling, thinking);
// main(), which declares every subcommand and its options, then runs the one given.
#include <charconv>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "base/error.h"
#include "chat/bundled_model.h"
#include "gpu/instance.h"
#include "model/input_limits.h"
#include "store/settings.h"

namespace {

using qvk::store::settings_limits::kMaxMinP;
using qvk::store::settings_limits::kMaxNewTokens;
using qvk::store::settings_limits::kMaxRepetitionPenalty;
using qvk::store::settings_limits::kMaxTemperature;
using qvk::store::settings_limits::kMaxTopK;
using qvk::store::settings_limits::kMaxTopP;
using qvk::store::settings_limits::kMinRepetitionPenalty;

// As shell builtins and getopt-style tools: the command line itself is wrong.
constexpr int kUsageError = 2;

// Whether `text` is a number of type T, written in full, within [low, high].
template <typename T>
bool ReadsAsNumberIn(const std::string& text, T low, T high) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, problem] = std::from_chars(text.data(), end, value);
  return problem == std::errc() && stop == end && value >= low && value <= high;
}

// Option values are checked as text before CLI11 converts them, so a bad one reads
// "--top-k: expected a whole number from 0 to 16777216, got -5" rather than "Could not convert".
CLI::Validator Expects(const std::string& what, std::function<bool(const std::string&)> accepts) {
  return CLI::Validator(
      [what, accepts = std::move(accepts)](std::string& value) {
        return accepts(value) ? std::string() : fmt::format("expected {}, got {}", what, value);
      },
      what);
}

template <typename T>
CLI::Validator WholeNumber(T low, T high) {
  return Expects(fmt::format("a whole number from {} to {}", low, high),
                 [=](const std::string& text) { return ReadsAsNumberIn<T>(text, low, high); });
}

CLI::Validator Number(float low, float high) {
  return Expects(fmt::format("a number from {} to {}", low, high),
                 [=](const std::string& text) { return ReadsAsNumberIn<float>(text, low, high); });
}

CLI::Validator DeviceNumber() {
  return Expects("a device number as `qwenvk devices` lists them (0, 1, ...)", [](const std::string& text) {
    return ReadsAsNumberIn<unsigned>(text, 0, std::numeric_limits<unsigned>::max());
  });
}

CLI::Validator TokenIds() {
  return Expects("token ids: whole numbers separated by commas", [](const std::string& text) {
    return ReadsAsNumberIn<uint32_t>(text, 0, std::numeric_limits<uint32_t>::max());
  });
}

// --model; without it a command runs the bundled demo model (UseBundledModelIfNone).
void AddModelPathOption(CLI::App* command, std::string& model,
                        const std::string& default_text = "the bundled demo model, see assets/README.md") {
  command->add_option("--model", model,
                      fmt::format("Hugging Face model folder or .gguf file (default: {})", default_text));
}

// Said on stderr, so that nobody takes the demo's dictionary replies for their own model's.
void UseBundledModelIfNone(std::string& model) {
  if (!model.empty()) return;
  model = qvk::chat::BundledModelPath().string();
  std::fprintf(stderr, "qwenvk: no --model given, using the bundled demo model %s (%s)\n", model.c_str(),
               qvk::chat::kBundledModelDescription);
}

// How a model loads: --quant, --device or --devices and --split, --gpu-mem (each device's).
void AddLoadOptions(CLI::App* command, qvk::app::ModelOptions& options) {
  command->add_option("--quant", options.quant, "Quantize float weights while loading: q8_0 or q4_0");
  command->add_option("--device", options.device, "Vulkan device number (see `qwenvk devices`); also QWENVK_DEVICE")
      ->check(DeviceNumber());
  command->add_option("--devices", options.devices,
                      "Split the model by layers across these devices, in order, e.g. 0,1 (0,0: two on one GPU)");
  command->add_option("--split", options.split,
                      "With --devices, each device's share of the layers, e.g. 3,1 (default: by free memory)");
  command->add_option("--gpu-mem", options.gpu_mem_mib, "GPU memory budget in MiB (default: what the device has)")
      ->check(Expects("a whole number of MiB, at least 1", [](const std::string& text) {
        return ReadsAsNumberIn<uint64_t>(text, 1, std::numeric_limits<uint64_t>::max());
      }));
}

void AddModelOptions(CLI::App* command, qvk::app::ModelOptions& options) {
  AddModelPathOption(command, options.model);
  AddLoadOptions(command, options);
  command->add_option("-c,--context", options.context, "Context length in tokens (default min(32768, the model's))")
      ->check(WholeNumber<uint32_t>(1, qvk::input_limits::kMaxPositions));
}

// llama-bench's options where it has them (-p, -n, -d, -r, -o); sizes are comma-separated lists.
void AddBenchOptions(CLI::App* command, qvk::app::BenchOptions& options) {
  using qvk::input_limits::kMaxPositions;
  AddModelPathOption(command, options.model.model, "the bundled demo model; none with --device-peak alone");
  AddLoadOptions(command, options.model);
  command->add_option("-c,--context", options.model.context, "KV cache length (default: what the largest test needs)")
      ->check(WholeNumber<uint32_t>(1, kMaxPositions));
  command->add_option("-p,--n-prompt", options.prompts, "Prompt sizes, comma separated (0: no prompt test)")
      ->delimiter(',')
      ->check(WholeNumber<uint32_t>(0, kMaxPositions));
  command->add_option("-n,--n-gen", options.generations, "Tokens to generate, comma separated (0: no generation test)")
      ->delimiter(',')
      ->check(WholeNumber<uint32_t>(0, kMaxPositions));
  command->add_option("-d,--n-depth", options.depths, "KV cache depths to run each test at, comma separated")
      ->delimiter(',')
      ->check(WholeNumber<uint32_t>(0, kMaxPositions));
  command->add_option("-r,--repetitions", options.repetitions, "Timed runs of each test, after one warm-up run")
      ->check(WholeNumber<uint32_t>(1, 1000));
  command->add_option("-o,--output", options.output, "Output format: md, json or csv")
      ->check(Expects("md, json or csv",
                      [](const std::string& text) { return text == "md" || text == "json" || text == "csv"; }));
  command->add_flag("--kernels", options.kernels,
                    "Profile one more step of each test: each kernel's share of GPU time, GB/s and TFLOP/s");
  command->add_flag("--device-peak", options.device_peak,
                    "Measure the device's copy bandwidth and FP32 FMA rate (also done by --kernels)");
  command->add_flag("--save,!--no-save", options.save,
                    "Keep the run, and the device's peaks, in the database for `qwenvk bench list` and the app "
                    "(default: --save)");
  command->add_option("--db", options.database,
                      "The database runs are kept in (default: the conversations', under $XDG_DATA_HOME/qwenvk)");
  command->add_flag("--live-attention", options.live_attention,
                    "Each decode step also reduces its attention to the attention panel's first view (layer 0, "
                    "head 0) on the GPU and reads that row, as the app does while the panel follows a reply (a "
                    "prompt's last token then runs as a decode step)");
  command->add_option("--peak-mib", options.peak_mib, "Most MiB the peak's copy moves (default 1024)")
      ->check(WholeNumber<uint64_t>(1, uint64_t{1} << 20));
}

// What the attention options mean together: somewhere to write, and one map for the map files.
void CheckAttentionOptions(const qvk::app::AttentionOptions& o) {
  const bool map_file = o.png || o.csv || o.npy;
  if (!o.out && !map_file) throw CLI::ValidationError("attention", "give --out, or --png, --csv or --npy with one map");
  const bool group = o.reduce.starts_with("group");
  if (o.head && (o.reduce == "mean" || o.reduce == "max")) {
    throw CLI::ValidationError(
        "--head", "picks one head, and --reduce " + o.reduce + " reduces every head of a layer: give one or the other");
  }
  if (map_file && (!o.layer || (o.reduce.empty() && !o.head) || (group && !o.head))) {
    throw CLI::ValidationError("--png, --csv and --npy",
                               "write one map: give --layer with --head, --reduce mean or max, or --reduce "
                               "group-mean or group-max with --head (the KV head)");
  }
}

void AddSamplingOptions(CLI::App* command, qvk::app::GenerateOptions& options) {
  command->add_option("--temperature", options.temperature, "Sampling temperature (0: greedy)")
      ->check(Number(0, kMaxTemperature));
  command->add_option("--top-k", options.top_k, "Keep the k most likely tokens (0: off)")
      ->check(WholeNumber<uint32_t>(0, kMaxTopK));
  command->add_option("--top-p", options.top_p, "Keep the smallest set of tokens with this probability mass")
      ->check(Number(0, kMaxTopP));
  command->add_option("--min-p", options.min_p, "Drop tokens below this fraction of the top probability")
      ->check(Number(0, kMaxMinP));
  command->add_option("--repeat-penalty", options.repeat_penalty, "Repetition penalty (1: off)")
      ->check(Number(kMinRepetitionPenalty, kMaxRepetitionPenalty));
  command->add_option("--seed", options.seed, "Random seed for reproducible sampling")
      ->check(WholeNumber<uint64_t>(0, std::numeric_limits<uint64_t>::max()));
  command->add_option("--max-tokens", options.max_tokens, "Most tokens to generate per reply")
      ->check(WholeNumber<uint32_t>(1, kMaxNewTokens));
  command->add_flag("--greedy", options.greedy, "Always take the most likely token (also --temperature 0)");
}

// --thinking on|off: the chat template's enable_thinking (Qwen3's); left out, the template's default.
CLI::Option* AddThinkingOption(CLI::App* command, qvk::app::GenerateOptions& options) {
  return command
      ->add_option_function<std::string>(
          "--thinking",
          [&options](const std::string& value) { options.template_options.enable_thinking = value == "on"; },
          "on or off: whether a model whose chat template has the switch (Qwen3) thinks before it answers "
          "(default: the template's, on for Qwen3)")
      ->check(Expects("on or off", [](const std::string& text) { return text == "on" || text == "off"; }));
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr so stdout stays machine-readable; SPDLOG_LEVEL=debug for more.
  spdlog::set_default_logger(spdlog::stderr_color_mt("qwenvk"));
  spdlog::set_pattern("[%l] %v");
  spdlog::cfg::load_env_levels();

  CLI::App app{"QwenVK: Qwen2-family language models on any GPU through Vulkan compute"};
  // Without a subcommand: the desktop app.
  app.require_subcommand(0, 1);
  qvk::app::DesktopOptions desktop_options;
  app.add_option("--model", desktop_options.model,
                 "Hugging Face model folder or .gguf file to chat with (default: the one chosen in the app, else the "
                 "bundled demo model)");
  app.add_option("--db", desktop_options.database,
                 "Conversation database (default $XDG_DATA_HOME/qwenvk/conversations.db)");
  app.add_option("--script", desktop_options.script, "Drive the app from a file of UI actions (tests, demos)");
  app.add_option("--device", desktop_options.device, "Vulkan device number for this run (see `qwenvk devices`)")
      ->check(DeviceNumber());

  qvk::app::DevicesOptions devices_options;
  std::optional<unsigned> devices_device;
  CLI::App* devices = app.add_subcommand("devices", "List every Vulkan device, what it supports, and which is chosen");
  devices->add_flag("--json", devices_options.json, "Print JSON instead of text");
  devices->add_option("--device", devices_device, "Mark this device as chosen (as QWENVK_DEVICE)")
      ->check(DeviceNumber());

  qvk::app::KernelsOptions kernels_options;
  CLI::App* kernels = app.add_subcommand(
      "kernels", "Build every kernel on a device and list what the driver compiled each into (registers, ...)");
  kernels
      ->add_option("--device", kernels_options.device,
                   "Vulkan device number (see `qwenvk devices`); also QWENVK_DEVICE")
      ->check(DeviceNumber());
  kernels->add_option("--only", kernels_options.only, "Only kernels whose name contains this text");
  kernels->add_flag("--json", kernels_options.json, "Print JSON instead of a table");

  qvk::app::TokenizeOptions tokenize_options;
  CLI::App* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text or a chat, and their decoding");
  AddModelPathOption(tokenize, tokenize_options.model);
  CLI::Option_group* tokenize_input = tokenize->add_option_group("input", "What to tokenize: one of");
  tokenize_input->add_option("--text", tokenize_options.text, "Text to tokenize");
  tokenize_input->add_option("--text-file", tokenize_options.text_file, "File whose text to tokenize");
  tokenize_input->add_option("--chat", tokenize_options.chat_file,
                             "JSON file [{\"role\":..,\"content\":..},...] to format with the chat template");
  tokenize_input->require_option(1);

  qvk::app::InfoOptions info_options;
  CLI::App* info =
      app.add_subcommand("info", "Describe a model: sizes, tensor types, tokenizer, KV cache per 1k tokens");
  AddModelPathOption(info, info_options.model);

  qvk::app::LogitsOptions logits_options;
  CLI::App* logits = app.add_subcommand("logits", "Top logits at every prompt position, then greedy steps");
  AddModelOptions(logits, logits_options.model);
  logits->add_option("--ids", logits_options.ids, "Prompt token ids, comma separated")
      ->required()
      ->delimiter(',')
      ->check(TokenIds());
  logits->add_option("--top", logits_options.top, "Logits per position (top K)")
      ->check(WholeNumber<uint32_t>(1, std::numeric_limits<uint32_t>::max()));
  logits->add_option("--greedy", logits_options.greedy, "Greedy single-token steps after the prompt")
      ->check(WholeNumber<uint32_t>(0, std::numeric_limits<uint32_t>::max()));
  logits->add_option("--dump-last", logits_options.dump_last, "Write every logit of the last position (float32 LE)");

  qvk::app::AttentionOptions attention_options;
  CLI::App* attention = app.add_subcommand(
      "attention",
      "Write the prefill's attention probabilities: raw [layers, heads, T, T] f32, or one map as PNG/CSV/NPY");
  AddModelOptions(attention, attention_options.model);
  attention->add_option("--ids", attention_options.ids, "Prompt token ids")
      ->required()
      ->delimiter(',')
      ->check(TokenIds());
  attention->add_option("--out", attention_options.out, "Raw float32 maps of the chosen layers and heads");
  attention->add_option("--layer", attention_options.layer, "One layer (default: every layer)")
      ->check(WholeNumber<uint32_t>(0, std::numeric_limits<uint32_t>::max()));
  attention
      ->add_option("--head", attention_options.head,
                   "One query head; with --reduce group-mean or group-max, the KV head whose query heads to reduce")
      ->check(WholeNumber<uint32_t>(0, std::numeric_limits<uint32_t>::max()));
  attention
      ->add_option("--reduce", attention_options.reduce,
                   "Reduce a layer's heads: mean, max, or group-mean, group-max (over each KV head's query heads)")
      ->check(Expects("mean, max, group-mean or group-max", [](const std::string& value) {
        return value == "mean" || value == "max" || value == "group-mean" || value == "group-max";
      }));
  attention->add_option("--png", attention_options.png, "One map as a PNG heatmap (viridis; the causal mask grey)");
  attention->add_option("--csv", attention_options.csv, "One map as CSV, a line per query row");
  attention->add_option("--npy", attention_options.npy, "One map as a NumPy .npy array (float32, rows x keys)");

  qvk::app::GenerateOptions generate_options;
  CLI::App* generate = app.add_subcommand("generate", "Stream a continuation of a prompt");
  AddModelOptions(generate, generate_options.model);
  generate->add_option("--prompt", generate_options.prompt, "Prompt text")->required();
  CLI::Option* generate_chat =
      generate->add_flag("--chat", generate_options.chat, "Wrap the prompt as a user turn in the chat template");
  AddSamplingOptions(generate, generate_options);
  AddThinkingOption(generate, generate_options)->needs(generate_chat);

  qvk::app::GenerateOptions chat_options;
  CLI::App* chat = app.add_subcommand("chat", "Chat in the terminal (history kept; /reset, /exit)");
  AddModelOptions(chat, chat_options.model);
  chat->add_option("--system", chat_options.prompt, "System prompt (default: the template's)");
  AddSamplingOptions(chat, chat_options);
  AddThinkingOption(chat, chat_options);

  qvk::app::ServeOptions serve_options;
  CLI::App* serve = app.add_subcommand(
      "serve", "Serve the model over OpenAI's HTTP API (/v1/chat/completions, /v1/completions, /v1/models)");
  AddModelOptions(serve, serve_options.model);
  serve->add_option("--host", serve_options.host, "Address to listen on (default 127.0.0.1: this machine only)");
  serve->add_option("--port", serve_options.port, "Port to listen on (default 8080; 0: any free port)")
      ->check(WholeNumber<uint16_t>(0, std::numeric_limits<uint16_t>::max()));
  serve
      ->add_option("--api-key", serve_options.api_key,
                   "Require 'Authorization: Bearer KEY' on every request (also QWENVK_API_KEY)")
      ->envname("QWENVK_API_KEY")
      ->check(Expects("a key of at least one character", [](const std::string& text) { return !text.empty(); }));
  serve
      ->add_option("--parallel", serve_options.parallel,
                   "Requests generated at once, each with its own KV cache of --context tokens (default 1)")
      ->check(WholeNumber<uint32_t>(1, 64));

  qvk::app::BenchOptions bench_options;
  CLI::App* bench = app.add_subcommand(
      "bench", "Measure prompt (pp) and generation (tg) speed as llama-bench does, and the device's peaks");
  AddBenchOptions(bench, bench_options);
  bench->require_subcommand(0, 1);
  qvk::app::BenchStoreOptions stored;
  auto add_db = [&](CLI::App* command) {
    command->add_option("--db", stored.database, "The database the runs are kept in (default: the conversations')");
  };
  CLI::App* bench_list = bench->add_subcommand("list", "List the stored benchmark runs, newest first");
  add_db(bench_list);
  bench_list->add_option("--device", stored.device, "Only runs on this device (its name, as listed)");
  bench_list->add_option("--model", stored.model, "Only runs of this model (its file or folder name)");
  bench_list->add_option("--weight-type", stored.weight_type, "Only models with this weight type (Q4_0, F16, ...)");
  CLI::App* bench_show =
      bench->add_subcommand("show", "One stored run: device and peaks, every test, and each kernel's roofline");
  add_db(bench_show);
  bench_show->add_option("id", stored.ids, "The run's id (see `qwenvk bench list`)")->required()->expected(1);
  CLI::App* bench_export = bench->add_subcommand(
      "export", "Write stored runs to a JSON file to share (docs/bench-format.md); all runs unless ids are given");
  add_db(bench_export);
  bench_export->add_option("--out", stored.file, "The file to write")->required();
  bench_export->add_option("ids", stored.ids, "Runs to export (default: all)");
  CLI::App* bench_import = bench->add_subcommand(
      "import", "Add the runs of a file: QwenVK's benchmark JSON or llama-bench's `-o json` output");
  add_db(bench_import);
  bench_import->add_option("file", stored.file, "The file to read")->required();

  try {
    app.parse(argc, argv);
    if (attention->parsed()) CheckAttentionOptions(attention_options);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    std::fprintf(stderr, "qwenvk: %s\nRun with --help for the options.\n", e.what());
    return kUsageError;
  }
  // Where each command that runs a model keeps its --model; `bench --device-peak` alone measures
  // the device without one.
  const std::pair<CLI::App*, std::string*> model_paths[] = {
      {info, &info_options.model},
      {tokenize, &tokenize_options.model},
      {logits, &logits_options.model.model},
      {attention, &attention_options.model.model},
      {generate, &generate_options.model.model},
      {chat, &chat_options.model.model},
      {serve, &serve_options.model.model},
      {bench_options.device_peak && !bench_options.kernels ? nullptr : bench, &bench_options.model.model}};
  const bool bench_stored =
      bench_list->parsed() || bench_show->parsed() || bench_export->parsed() || bench_import->parsed();
  int status = 0;
  try {
    for (const auto& [command, model] : model_paths) {
      if (command != nullptr && command->parsed() && !(command == bench && bench_stored)) UseBundledModelIfNone(*model);
    }
    if (devices->parsed()) status = qvk::app::RunDevices(devices_options, devices_device);
    if (kernels->parsed()) status = qvk::app::RunKernels(kernels_options);
    if (info->parsed()) status = qvk::app::RunInfo(info_options);
    if (tokenize->parsed()) status = qvk::app::RunTokenize(tokenize_options);
    if (logits->parsed()) status = qvk::app::RunLogits(logits_options);
    if (attention->parsed()) status = qvk::app::RunAttention(attention_options);
    if (generate->parsed()) status = qvk::app::RunGenerate(generate_options);
    if (chat->parsed()) status = qvk::app::RunChat(chat_options);
    if (bench_list->parsed()) status = qvk::app::RunBenchList(stored);
    if (bench_show->parsed()) status = qvk::app::RunBenchShow(stored);
    if (bench_export->parsed()) status = qvk::app::RunBenchExport(stored);
    if (bench_import->parsed()) status = qvk::app::RunBenchImport(stored);
    if (bench->parsed() && !bench_stored) status = qvk::app::RunBench(bench_options);
    if (serve->parsed()) {
      serve_options.model.engines = serve_options.parallel;
      status = qvk::app::RunServe(serve_options);
    }
    if (app.get_subcommands().empty()) status = qvk::app::RunDesktop(desktop_options);
  } catch (const qvk::Error& e) {
    std::fprintf(stderr, "qwenvk: %s\n", e.what());
    status = 1;
  } catch (const std::exception& e) {  // out of memory, a file system failure: said, not a crash
    std::fprintf(stderr, "qwenvk: %s\n", e.what());
    status = 1;
  }
  // With QWENVK_VALIDATION=1 a validation message is a failure, whatever the command did.
  if (const uint64_t messages = qvk::Instance::ProcessValidationMessageCount(); messages > 0) {
    std::fprintf(stderr, "qwenvk: the Vulkan validation layer reported %llu messages\n",
                 static_cast<unsigned long long>(messages));
    return 3;
  }
  return status;
}
