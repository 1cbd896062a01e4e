// Sections: tests / runs / profile / report: description / markdown / as stored / json and csv
#include "chat/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "chat/loaded_model.h"
#include "gpu/device.h"
#include "gpu/memory.h"

namespace qvk::chat {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint32_t kContextStep = 256;

const char* KindName(BenchKind kind) {
  return kind == BenchKind::Prompt ? "pp" : "tg";
}

}  // namespace

// --- tests ---------------------------------------------------------------------------------------

std::string BenchTest::Name() const {
  const std::string name = fmt::format("{}{}", KindName(kind), tokens);
  return depth == 0 ? name : fmt::format("{} @ d{}", name, depth);
}

std::vector<BenchTest> PlanBenchTests(std::span<const uint32_t> prompts, std::span<const uint32_t> generations,
                                      std::span<const uint32_t> depths) {
  std::vector<BenchTest> tests;
  for (uint32_t depth : depths) {
    for (uint32_t p : prompts) {
      if (p != 0) tests.push_back({BenchKind::Prompt, p, depth});
    }
    for (uint32_t n : generations) {
      if (n != 0) tests.push_back({BenchKind::Generate, n, depth});
    }
  }
  return tests;
}

uint32_t BenchContext(std::span<const BenchTest> tests, uint32_t model_positions) {
  uint64_t most = 1;
  for (const BenchTest& t : tests) {
    if (uint64_t{t.depth} + t.tokens > model_positions) {
      throw Error(fmt::format("{} needs {} positions; the model has {} (its max_position_embeddings)", t.Name(),
                              uint64_t{t.depth} + t.tokens, model_positions));
    }
    most = std::max<uint64_t>(most, t.positions());
  }
  const uint64_t rounded = (most + kContextStep - 1) / kContextStep * kContextStep;
  return static_cast<uint32_t>(std::min<uint64_t>(rounded, model_positions));
}

// --- runs ----------------------------------------------------------------------------------------

Summary Summarize(std::span<const double> values) {
  Summary s;
  if (values.empty()) return s;
  for (double v : values) s.mean += v;
  s.mean /= static_cast<double>(values.size());
  if (values.size() < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.stddev = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return s;
}

BenchRunner::BenchRunner(Engine& engine, uint32_t seed)
    : engine_(engine), depth_ids_{std::mt19937(seed), {}}, prompt_ids_{std::mt19937(seed + 1), {}} {}

std::span<const uint32_t> BenchRunner::Take(TokenStream& stream, uint32_t count) {
  std::uniform_int_distribution<uint32_t> id(0, engine_.config().vocab_size - 1);
  while (stream.ids.size() < count) stream.ids.push_back(id(stream.random));
  return std::span<const uint32_t>(stream.ids).first(count);
}

void BenchRunner::FillDepth(uint32_t depth) {
  // A cache that already holds the depth's ids keeps them (Prefill reuses the common prefix).
  if (depth == 0) {
    engine_.Truncate(0);
  } else {
    engine_.Prefill(Take(depth_ids_, depth), LastLogits{});
  }
}

std::vector<uint32_t> BenchRunner::PromptIds(const BenchTest& test) {
  const std::span<const uint32_t> depth = Take(depth_ids_, test.depth);
  const std::span<const uint32_t> prompt = Take(prompt_ids_, test.tokens);
  std::vector<uint32_t> ids(depth.begin(), depth.end());
  ids.insert(ids.end(), prompt.begin(), prompt.end());
  return ids;
}

double BenchRunner::TimedRun(const BenchTest& test) {
  using Clock = std::chrono::steady_clock;
  FillDepth(test.depth);
  if (test.kind == BenchKind::Prompt) {
    const std::vector<uint32_t> ids = PromptIds(test);
    const auto start = Clock::now();
    engine_.Prefill(ids, LastLogits{});
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  uint32_t token = Take(prompt_ids_, 1)[0];
  const bool live = engine_.live_attention();
  if (live) live_feed_.SetViews({engine_.live_views().begin(), engine_.live_views().end()});
  const uint64_t choice = live_feed_.views().choice;
  const auto start = Clock::now();
  for (uint32_t i = 0; i < test.tokens; ++i) {
    engine_.Decode(token, {.ranked = 1});
    token = engine_.argmax();
    if (live) live_feed_.Push(engine_.attention_row(), choice, {.id = token}, 0);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  live_feed_.Take();  // the rows the attention panel would have drawn
  return seconds;
}

BenchResult BenchRunner::Run(const BenchTest& test, uint32_t repetitions, const std::function<void()>& after_each) {
  BenchResult result{.test = test};
  TimedRun(test);  // warm-up: pipelines built, clocks up, the decode step recorded
  if (after_each) after_each();
  std::vector<double> rates;
  for (uint32_t r = 0; r < std::max<uint32_t>(1, repetitions); ++r) {
    const double seconds = TimedRun(test);
    if (after_each) after_each();
    result.seconds.push_back(seconds);
    rates.push_back(test.tokens / seconds);
  }
  result.tokens_per_s = Summarize(rates);
  result.mean_seconds = Summarize(result.seconds).mean;
  return result;
}

// --- profile -------------------------------------------------------------------------------------

double KernelShare::gigabytes_per_s() const {
  return microseconds > 0 ? static_cast<double>(cost.bytes) / (microseconds * 1e3) : 0;
}

double KernelShare::teraflops() const {
  return microseconds > 0 ? static_cast<double>(cost.flops) / (microseconds * 1e6) : 0;
}

std::vector<KernelShare> SummarizeProfile(std::span<const DispatchTiming> timings) {
  std::vector<KernelShare> shares;
  std::map<std::string, size_t> index;
  double total = 0;
  for (const DispatchTiming& t : timings) {
    const auto [at, added] = index.try_emplace(t.label, shares.size());
    if (added) shares.push_back({.label = t.label});
    KernelShare& s = shares[at->second];
    ++s.dispatches;
    if (t.waits) ++s.waits;
    s.microseconds += t.microseconds;
    s.cost.bytes += t.cost.bytes;
    s.cost.flops += t.cost.flops;
    total += t.microseconds;
  }
  for (KernelShare& s : shares) s.share = total > 0 ? s.microseconds / total : 0;
  std::stable_sort(shares.begin(), shares.end(),
                   [](const KernelShare& a, const KernelShare& b) { return a.microseconds > b.microseconds; });
  return shares;
}

std::vector<double> DeviceTimes(std::span<const DispatchTiming> timings) {
  std::vector<double> devices(1, 0.0);
  for (const DispatchTiming& t : timings) {
    if (t.stage >= devices.size()) devices.resize(t.stage + 1, 0.0);
    devices[t.stage] += t.microseconds;
  }
  return devices;
}

std::vector<KernelShare> BenchRunner::Profile(const BenchTest& test) {
  FillDepth(test.depth);
  engine_.set_profiling(true);
  try {
    if (test.kind == BenchKind::Prompt) {
      engine_.Prefill(PromptIds(test), LastLogits{});
    } else {
      engine_.Decode(Take(prompt_ids_, 1)[0], {.ranked = 1});
    }
  } catch (...) {
    engine_.set_profiling(false);
    throw;
  }
  engine_.set_profiling(false);
  return SummarizeProfile(engine_.last_profile());
}

// --- report: description -------------------------------------------------------------------------

namespace {

// The .gguf file, or the .safetensors files of a folder.
uint64_t ModelFileBytes(const std::filesystem::path& path) {
  if (!std::filesystem::is_directory(path)) return std::filesystem::file_size(path);
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") total += entry.file_size();
  }
  return total;
}

// Each weight type on the GPU with its bytes: the matrices as loaded, and the norms and biases,
// which are always F32.
std::vector<std::string> WeightTypes(const LoadedModel& model, const ModelConfig& c) {
  std::map<DType, uint64_t> bytes;
  // A split model's stages hold a matrix each; the others stay empty (no rows) and count nothing.
  auto add = [&](const Matrix& m) {
    if (m.rows > 0) bytes[m.dtype] += RowBytes(m.dtype, m.cols) * m.rows;
  };
  for (size_t stage = 0; stage < model.stage_count(); ++stage) {
    const ModelWeights& w = model.weights(stage);
    add(w.embed);
    // A tied lm_head is the embedding, unless a split put it on another device than the embedding.
    if (!c.tie_word_embeddings || w.embed.rows == 0) add(w.lm_head);
    for (const LayerWeights& layer : w.layers) {
      for (const Projection& p : layer.qkv) add(p.w);
      add(layer.o);
      for (const Projection& p : layer.gate_up) add(p.w);
      if (!layer.moe) add(layer.down);
      if (const auto& moe = layer.moe) {
        for (const Matrix* m : {&moe->router, &moe->down}) add(*m);
        for (const Projection& p : moe->gate_up) add(p.w);
        for (const Projection& p : moe->shared_gate_up) add(p.w);
        if (!moe->shared_gate_up.empty()) {
          add(moe->shared_down);
          add(moe->shared_gate);
        }
      }
    }
  }
  bytes[DType::F32] += uint64_t{4} * c.hidden_size * (2 * c.num_layers + 1);
  std::vector<std::pair<DType, uint64_t>> ordered(bytes.begin(), bytes.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> names;
  for (const auto& [type, size] : ordered) names.emplace_back(DTypeName(type));
  return names;
}

}  // namespace

BenchDevice DescribeDevice(const DeviceInfo& info) {
  std::string driver = fmt::format("{} {}", info.driver_name, info.DriverVersionString());
  if (!info.driver_info.empty()) driver += fmt::format(" ({})", info.driver_info);
  return {.vendor = info.VendorName(),
          .name = info.name,
          .driver = driver,
          .vulkan = info.ApiVersionString(),
          .memory_bytes = info.DeviceLocalBytes(),
          .subgroup_size = info.subgroup_size,
          .coopmat = info.coopmat_f16};
}

std::string ViewName(const AttentionRequest& v) {
  std::string name = v.plane_heads == 1
                         ? fmt::format("layer {} head {}", v.layer, v.first_head)
                         : fmt::format("layer {} heads {}-{} {}", v.layer, v.first_head,
                                       v.first_head + v.plane_heads - 1, v.reduce == HeadReduce::Max ? "max" : "mean");
  return v.mute_sink ? name + ", sink muted" : name;
}

namespace {

std::vector<std::string> LiveViewNames(std::span<const AttentionRequest> views) {
  std::vector<std::string> names;
  for (const AttentionRequest& view : views) names.push_back(ViewName(view));
  return names;
}

}  // namespace

BenchModel DescribeModel(const LoadedModel& model) {
  const ModelConfig& c = model.files().config();
  const WeightSource& source = model.files().weights();
  uint64_t params = 0;
  for (const std::string& name : source.names()) {
    if (const auto tensor = source.Find(name)) {
      uint64_t elements = 1;
      for (uint64_t d : tensor->shape) elements *= d;
      params += elements;
    }
  }
  const Engine& engine = model.engine();
  uint64_t weights_bytes = 0, allocated = 0, reserved = 0;
  for (size_t stage = 0; stage < model.stage_count(); ++stage) {
    weights_bytes += model.weights(stage).device_bytes;
    const Allocator& allocator = engine.stage(stage).device->allocator();
    allocated += allocator.bytes_in_use();
    reserved += allocator.bytes_reserved();
  }
  return {.path = model.files().path().string(),
          .type = c.model_type,
          .layers = c.num_layers,
          .hidden = c.hidden_size,
          .params = params,
          .weight_types = WeightTypes(model, c),
          .file_bytes = ModelFileBytes(model.files().path()),
          .context = engine.context(),
          .weights_bytes = weights_bytes,
          .kv_cache_bytes = engine.kv_cache_bytes(),
          .working_bytes = engine.working_bytes(),
          .allocated_bytes = allocated,
          .reserved_bytes = reserved,
          .live_attention_views = LiveViewNames(engine.live_views()),
          .devices = StageNames(engine)};
}

std::vector<std::string> StageNames(const Engine& engine) {
  std::vector<std::string> names;
  if (engine.stage_count() == 1) return names;
  for (size_t i = 0; i < engine.stage_count(); ++i) {
    const EngineStage stage = engine.stage(i);
    std::string name = fmt::format("device {} ({}): layers {}-{}", stage.device->info().index,
                                   stage.device->info().name, stage.layers.begin, stage.layers.end - 1);
    if (i + 1 < engine.stage_count()) name += "; hand-off: " + engine.hand_off(i);
    names.push_back(std::move(name));
  }
  return names;
}

// --- report: markdown ----------------------------------------------------------------------------

namespace {

std::string MiB(uint64_t bytes) {
  return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20));
}

std::string Joined(const std::vector<std::string>& parts) {
  std::string text;
  for (const std::string& part : parts) text += (text.empty() ? "" : ", ") + part;
  return text;
}

std::string Rate(const std::optional<double>& tflops) {
  return tflops ? fmt::format("{:.3f} TFLOP/s", *tflops) : "not available";
}

std::string Percent(double fraction) {
  return fmt::format("{:.1f}%", 100 * fraction);
}

void AppendKernels(std::string& out, const BenchResult& r, const std::optional<DevicePeak>& peak) {
  double total = 0;
  uint32_t dispatches = 0, waits = 0;
  for (const KernelShare& k : r.kernels) {
    total += k.microseconds;
    dispatches += k.dispatches;
    waits += k.waits;
  }
  out += fmt::format(
      "\nkernels of {}: one profiled {} took {:.1f} us of GPU time in {} dispatches, {} of them after a barrier "
      "(a wait for all the work before)\n",
      r.test.Name(), r.test.kind == BenchKind::Prompt ? "prompt" : "step", total, dispatches, waits);
  if (r.device_microseconds.size() > 1) out += store::DeviceTimesLine(r.device_microseconds) + "\n";
  out += "\n";
  out += "| kernel | dispatches | after a barrier | share | us/step | GB/s | of copy peak | TFLOP/s | of FMA peak |\n";
  out += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const KernelShare& k : r.kernels) {
    const std::string of_copy = peak ? Percent(k.gigabytes_per_s() / peak->copy_gbps) : "-";
    const std::string of_fma = peak ? Percent(k.teraflops() / peak->fma_tflops) : "-";
    out += fmt::format("| {} | {} | {} | {} | {:.1f} | {:.1f} | {} | {:.3f} | {} |\n", k.label, k.dispatches, k.waits,
                       Percent(k.share), k.microseconds, k.gigabytes_per_s(), of_copy, k.teraflops(), of_fma);
  }
}

}  // namespace

std::string FormatParams(uint64_t params) {
  const auto p = static_cast<double>(params);
  if (p >= 1e9) return fmt::format("{:.2f} B", p / 1e9);
  if (p >= 1e6) return fmt::format("{:.2f} M", p / 1e6);
  return fmt::format("{:.2f} K", p / 1e3);
}

std::string FormatMarkdown(const BenchReport& report) {
  const BenchDevice& d = report.device;
  std::string out = fmt::format("qwenvk {} (commit {})\ndevice: {}; driver {}; Vulkan {}\n", report.version,
                                report.commit, d.name, d.driver, d.vulkan);
  if (report.model) {
    const BenchModel& m = *report.model;
    out += fmt::format("model: {}: {}, {} layers, hidden {}, {} params, weights {}, files {}\n", m.path, m.type,
                       m.layers, m.hidden, FormatParams(m.params), Joined(m.weight_types), MiB(m.file_bytes));
  }
  if (report.peak) {
    const DevicePeak& p = *report.peak;
    out += fmt::format(
        "device peak: copy {:.1f} GB/s over 2 x {} (vkCmdCopyBuffer {:.1f} GB/s); FP32 FMA {:.3f} TFLOP/s; FP16 FMA "
        "{}; "
        "cooperative matrix {}\n",
        p.copy_gbps, MiB(p.copy_bytes), p.copy_buffer_gbps, p.fma_tflops, Rate(p.f16_tflops), Rate(p.coopmat_tflops));
  }
  if (!report.model) return out;

  const BenchModel& m = *report.model;
  const std::string model = fmt::format("{} {} {}", m.type, FormatParams(m.params), m.weight_types.front());
  out += "\n| model | size | params | test | t/s | ms |\n| --- | ---: | ---: | ---: | ---: | ---: |\n";
  for (const BenchResult& r : report.results) {
    out += fmt::format("| {} | {} | {} | {} | {:.2f} ± {:.2f} | {:.2f} |\n", model, MiB(m.file_bytes),
                       FormatParams(m.params), r.test.Name(), r.tokens_per_s.mean, r.tokens_per_s.stddev,
                       1e3 * r.mean_seconds);
  }
  const uint64_t planned = m.weights_bytes + m.kv_cache_bytes;
  out += fmt::format(
      "\nGPU memory: weights {} + KV cache {} + engine working {}; allocator: {} in use ({} over weights + KV), {} "
      "reserved\ncontext {} tokens; {} timed runs per test after a warm-up\n",
      MiB(m.weights_bytes), MiB(m.kv_cache_bytes), MiB(m.working_bytes), MiB(m.allocated_bytes),
      Percent(planned > 0 ? static_cast<double>(m.allocated_bytes) / static_cast<double>(planned) - 1 : 0),
      MiB(m.reserved_bytes), m.context, report.repetitions);
  if (!m.devices.empty()) out += fmt::format("split by layers across devices: {}\n", Joined(m.devices));
  if (!m.live_attention_views.empty()) {
    out += fmt::format(
        "live attention: every decode step also reduced its attention to {} on the GPU and handed the row to a "
        "live feed, as the chat does while the attention panel is open\n",
        Joined(m.live_attention_views));
  }
  for (const BenchResult& r : report.results) {
    if (!r.kernels.empty()) AppendKernels(out, r, report.peak);
  }
  return out;
}

// --- report: as stored ---------------------------------------------------------------------------

store::BenchDevice StoredDevice(const BenchReport& report, int64_t now_ms) {
  const BenchDevice& d = report.device;
  store::BenchDevice device{.vendor = d.vendor,
                            .name = d.name,
                            .driver = d.driver,
                            .vulkan = d.vulkan,
                            .memory_bytes = d.memory_bytes,
                            .subgroup_size = d.subgroup_size,
                            .coopmat = d.coopmat};
  if (report.peak) {
    device.peaks = store::DevicePeaks{.measured_ms = now_ms,
                                      .copy_gbps = report.peak->copy_gbps,
                                      .f32_tflops = report.peak->fma_tflops,
                                      .f16_tflops = report.peak->f16_tflops,
                                      .coopmat_tflops = report.peak->coopmat_tflops};
  }
  return device;
}

store::BenchRun StoredRun(const BenchReport& report, std::span<const uint32_t> prompts,
                          std::span<const uint32_t> generations, std::span<const uint32_t> depths, int64_t now_ms) {
  if (!report.model) throw Error("a benchmark without a model has no run to store, only the device's peaks");
  const BenchModel& m = *report.model;
  // A folder given with a trailing slash has an empty file name; its own name is the model's.
  std::filesystem::path path(m.path);
  if (!path.has_filename()) path = path.parent_path();
  store::BenchRun run{.source = store::BenchSource::Qwenvk,
                      .created_ms = now_ms,
                      .version = report.version,
                      .commit = report.commit,
                      .variant = m.live_attention_views.empty() ? "" : "live attention",
                      .repetitions = report.repetitions,
                      .prompts = {prompts.begin(), prompts.end()},
                      .generations = {generations.begin(), generations.end()},
                      .depths = {depths.begin(), depths.end()},
                      .context = m.context,
                      .stages = m.devices,
                      .device = StoredDevice(report, now_ms),
                      .model = {.name = path.filename().string(),
                                .type = m.type,
                                .layers = m.layers,
                                .hidden = m.hidden,
                                .params = m.params,
                                .weight_types = m.weight_types,
                                .file_bytes = m.file_bytes}};
  for (const BenchResult& r : report.results) {
    store::BenchRow row{
        .kind = r.test.kind == BenchKind::Prompt ? store::BenchKind::Prompt : store::BenchKind::Generate,
        .tokens = r.test.tokens,
        .depth = r.test.depth,
        .mean_tokens_per_s = r.tokens_per_s.mean,
        .stddev_tokens_per_s = r.tokens_per_s.stddev,
        .samples_s = r.seconds};
    // DeviceTimes has one entry on one device: the stored row keeps them only for a split.
    if (!m.devices.empty() && r.device_microseconds.size() == m.devices.size()) row.device_us = r.device_microseconds;
    for (const KernelShare& k : r.kernels) {
      row.kernels.push_back({.label = k.label,
                             .dispatches = k.dispatches,
                             .waits = k.waits,
                             .share = k.share,
                             .us_per_step = k.microseconds,
                             .bytes = k.cost.bytes,
                             .flops = k.cost.flops});
    }
    run.rows.push_back(std::move(row));
  }
  return run;
}

// --- report: json and csv ------------------------------------------------------------------------

namespace {

Json PeakJson(const DevicePeak& p) {
  return {{"copy_bytes", p.copy_bytes},
          {"copy_gbps", p.copy_gbps},
          {"copy_buffer_gbps", p.copy_buffer_gbps},
          {"fma_tflops", p.fma_tflops},
          {"fma_count", p.fma_count},
          {"f16_tflops", p.f16_tflops ? Json(*p.f16_tflops) : Json(nullptr)},
          {"coopmat_tflops", p.coopmat_tflops ? Json(*p.coopmat_tflops) : Json(nullptr)}};
}

// Every field of one test row (or, without a result, of the build, device and peak alone), flat,
// in the order CSV columns take.
Json RowFields(const BenchReport& report, const BenchResult* r) {
  Json row = {{"qwenvk_version", report.version},
              {"commit", report.commit},
              {"device", report.device.name},
              {"driver", report.device.driver},
              {"vulkan", report.device.vulkan}};
  if (report.model) {
    const BenchModel& m = *report.model;
    row.update(Json{{"model_path", m.path},
                    {"model_type", m.type},
                    {"layers", m.layers},
                    {"hidden", m.hidden},
                    {"params", m.params},
                    {"weight_types", m.weight_types},
                    {"file_bytes", m.file_bytes},
                    {"context", m.context},
                    {"weights_bytes", m.weights_bytes},
                    {"kv_cache_bytes", m.kv_cache_bytes},
                    {"working_bytes", m.working_bytes},
                    {"allocated_bytes", m.allocated_bytes},
                    {"reserved_bytes", m.reserved_bytes},
                    {"live_attention", !m.live_attention_views.empty()},
                    {"live_attention_views", m.live_attention_views}});
    if (!m.devices.empty()) row["split_devices"] = m.devices;
  }
  const Json none = nullptr;
  row.update(Json{{"copy_gbps", report.peak ? Json(report.peak->copy_gbps) : none},
                  {"copy_buffer_gbps", report.peak ? Json(report.peak->copy_buffer_gbps) : none},
                  {"fma_tflops", report.peak ? Json(report.peak->fma_tflops) : none}});
  if (r != nullptr) {
    row.update(Json{{"test", r->test.Name()},
                    {"kind", KindName(r->test.kind)},
                    {"tokens", r->test.tokens},
                    {"depth", r->test.depth},
                    {"repetitions", r->seconds.size()},
                    {"avg_ts", r->tokens_per_s.mean},
                    {"stddev_ts", r->tokens_per_s.stddev},
                    {"avg_s", r->mean_seconds}});
    if (r->device_microseconds.size() > 1) row["device_us"] = r->device_microseconds;
  }
  return row;
}

Json KernelFields(const KernelShare& k, const std::optional<DevicePeak>& peak) {
  const Json none = nullptr;
  return {{"kernel", k.label},
          {"dispatches", k.dispatches},
          {"waits", k.waits},
          {"share", k.share},
          {"us_per_step", k.microseconds},
          {"bytes", k.cost.bytes},
          {"flops", k.cost.flops},
          {"gbps", k.gigabytes_per_s()},
          {"tflops", k.teraflops()},
          {"of_copy_peak", peak ? Json(k.gigabytes_per_s() / peak->copy_gbps) : none},
          {"of_fma_peak", peak ? Json(k.teraflops() / peak->fma_tflops) : none}};
}

// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
std::string CsvField(const Json& value) {
  std::string text;
  if (value.is_null()) return text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_array()) {
    for (const Json& item : value) {
      text += (text.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
    }
  } else {
    text = value.dump();
  }
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void AppendCsvTable(std::string& out, const std::vector<Json>& rows) {
  std::string header;
  for (const auto& [key, value] : rows.front().items()) header += (header.empty() ? "" : ",") + key;
  out += header + "\n";
  for (const Json& row : rows) {
    std::string line;
    bool first = true;
    for (const auto& [key, value] : row.items()) {
      line += (first ? "" : ",") + CsvField(value);
      first = false;
    }
    out += line + "\n";
  }
}

}  // namespace

std::string FormatJson(const BenchReport& report) {
  Json doc = {
      {"qwenvk", {{"version", report.version}, {"commit", report.commit}}},
      {"device", {{"name", report.device.name}, {"driver", report.device.driver}, {"vulkan", report.device.vulkan}}},
      {"device_peak", report.peak ? PeakJson(*report.peak) : Json(nullptr)},
      {"results", Json::array()}};
  for (const BenchResult& r : report.results) {
    Json row = RowFields(report, &r);
    row["samples_s"] = r.seconds;
    if (!r.kernels.empty()) {
      Json kernels = Json::array();
      for (const KernelShare& k : r.kernels) kernels.push_back(KernelFields(k, report.peak));
      row["kernels"] = kernels;
    }
    doc["results"].push_back(row);
  }
  return doc.dump(2) + "\n";
}

std::string FormatCsv(const BenchReport& report) {
  std::vector<Json> rows;
  for (const BenchResult& r : report.results) rows.push_back(RowFields(report, &r));
  if (rows.empty()) rows.push_back(RowFields(report, nullptr));
  std::string out;
  AppendCsvTable(out, rows);
  std::vector<Json> kernels;
  for (const BenchResult& r : report.results) {
    for (const KernelShare& k : r.kernels) {
      Json row = {{"test", r.test.Name()}};
      row.update(KernelFields(k, report.peak));
      kernels.push_back(row);
    }
  }
  if (!kernels.empty()) {
    out += "\n";
    AppendCsvTable(out, kernels);
  }
  return out;
}

}  // namespace qvk::chat
