// Sections: export / import: QwenVK's format / import: llama-bench's JSON / import: writing
#include "store/bench_exchange.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "store/json_fields.h"

namespace qvk::store {
namespace {

using Json = nlohmann::ordered_json;
using namespace json_fields;

constexpr int64_t kMaxTimeMs = int64_t{1} << 53;  // beyond any date; exact in a double
constexpr int64_t kMaxCount = int64_t{1} << 53;   // bytes, flops, params: exact in a double
constexpr uint32_t kMaxTokens = std::numeric_limits<uint32_t>::max();
constexpr double kMaxRate = 1e18;  // tokens/s, GB/s, TFLOP/s, us: far beyond any device
constexpr size_t kMaxTypeBytes = 64;

}  // namespace

// --- export ------------------------------------------------------------------------------------
namespace {

Json PeaksJson(const std::optional<DevicePeaks>& peaks) {
  if (!peaks) return nullptr;
  auto optional = [](const std::optional<double>& value) { return value ? Json(*value) : Json(nullptr); };
  return {{"measured_ms", peaks->measured_ms},
          {"copy_gbps", peaks->copy_gbps},
          {"f32_tflops", peaks->f32_tflops},
          {"f16_tflops", optional(peaks->f16_tflops)},
          {"coopmat_tflops", optional(peaks->coopmat_tflops)}};
}

Json DeviceJson(const BenchDevice& d) {
  return {{"id", d.id},
          {"vendor", d.vendor},
          {"name", d.name},
          {"driver", d.driver},
          {"vulkan", d.vulkan},
          {"memory_bytes", d.memory_bytes},
          {"subgroup_size", d.subgroup_size},
          {"coopmat", d.coopmat},
          {"peaks", PeaksJson(d.peaks)}};
}

Json ModelJson(const BenchModel& m) {
  return {{"id", m.id},
          {"name", m.name},
          {"type", m.type},
          {"layers", m.layers},
          {"hidden", m.hidden},
          {"params", m.params},
          {"weight_types", m.weight_types},
          {"file_bytes", m.file_bytes}};
}

Json RowJson(const BenchRow& r) {
  Json kernels = Json::array();
  for (const BenchKernel& k : r.kernels) {
    kernels.push_back({{"label", k.label},
                       {"dispatches", k.dispatches},
                       {"waits", k.waits ? Json(*k.waits) : Json(nullptr)},
                       {"share", k.share},
                       {"us_per_step", k.us_per_step},
                       {"bytes", k.bytes},
                       {"flops", k.flops}});
  }
  return {{"kind", BenchKindName(r.kind)},
          {"tokens", r.tokens},
          {"depth", r.depth},
          {"mean_tokens_per_s", r.mean_tokens_per_s},
          {"stddev_tokens_per_s", r.stddev_tokens_per_s},
          {"samples_s", r.samples_s},
          {"kernels", kernels},
          {"device_us", r.device_us}};
}

Json RunJson(const BenchRun& r) {
  Json rows = Json::array();
  for (const BenchRow& row : r.rows) rows.push_back(RowJson(row));
  return {{"id", r.id},
          {"device", r.device.id},
          {"model", r.model.id},
          {"source", BenchSourceName(r.source)},
          {"created_ms", r.created_ms},
          {"version", r.version},
          {"commit", r.commit},
          {"variant", r.variant},
          {"repetitions", r.repetitions},
          {"prompts", r.prompts},
          {"generations", r.generations},
          {"depths", r.depths},
          {"context", r.context},
          {"stages", r.stages},
          {"rows", rows}};
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string ExportBenchJson(Store& store, std::span<const Id> ids) {
  std::vector<BenchRun> runs;
  if (ids.empty()) {
    std::vector<Id> all;
    for (const BenchRun& listed : store.ListBenchRuns()) all.push_back(listed.id);
    std::reverse(all.begin(), all.end());  // oldest first, as they were measured
    for (const Id id : all) runs.push_back(*store.GetBenchRun(id));
  } else {
    for (const Id id : ids) {
      std::optional<BenchRun> run = store.GetBenchRun(id);
      if (!run) throw Error(fmt::format("Benchmark run {} does not exist (see `qwenvk bench list`).", id));
      runs.push_back(std::move(*run));
    }
  }
  // Every device once, with its peaks, and each model once; a whole export also carries the
  // devices measured without a run.
  std::map<Id, BenchDevice> devices;
  std::map<Id, BenchModel> models;
  if (ids.empty()) {
    for (const BenchDevice& d : store.ListBenchDevices()) devices.emplace(d.id, d);
  }
  for (const BenchRun& r : runs) {
    devices.emplace(r.device.id, r.device);
    models.emplace(r.model.id, r.model);
  }
  Json doc = {{"format", kBenchFormat},   {"version", kBenchFormatVersion}, {"exported_ms", NowMs()},
              {"devices", Json::array()}, {"models", Json::array()},        {"runs", Json::array()}};
  for (const auto& [id, d] : devices) doc["devices"].push_back(DeviceJson(d));
  for (const auto& [id, m] : models) doc["models"].push_back(ModelJson(m));
  for (const BenchRun& r : runs) doc["runs"].push_back(RunJson(r));
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// --- import: QwenVK's format -------------------------------------------------------------------
namespace {

uint32_t Uint32(const Json& object, std::string_view key, const std::string& where) {
  return static_cast<uint32_t>(Integer(Require(object, key, where), where + "." + std::string(key), 0, kMaxTokens));
}

uint64_t Count(const Json& object, std::string_view key, const std::string& where) {
  return static_cast<uint64_t>(Integer(Require(object, key, where), where + "." + std::string(key), 0, kMaxCount));
}

double Rate(const Json& object, std::string_view key, const std::string& where) {
  return Number(Require(object, key, where), where + "." + std::string(key), 0, kMaxRate);
}

std::string Text(const Json& object, std::string_view key, const std::string& where) {
  return String(Require(object, key, where), where + "." + std::string(key), kMaxBenchTextBytes);
}

const Json& Array(const Json& object, std::string_view key, const std::string& where, size_t most) {
  const Json& value = Require(object, key, where);
  const std::string field = where + "." + std::string(key);
  if (!value.is_array()) Reject(fmt::format("{} must be a list, not {}", field, Quoted(value)));
  if (value.size() > most) Reject(fmt::format("{} has {} items; at most {} are accepted", field, value.size(), most));
  return value;
}

const Json& Object(const Json& value, const std::string& where) {
  if (!value.is_object()) Reject(fmt::format("{} must be an object, not {}", where, Quoted(value)));
  return value;
}

std::vector<uint32_t> Sizes(const Json& object, std::string_view key, const std::string& where) {
  std::vector<uint32_t> sizes;
  const Json& list = Array(object, key, where, kMaxBenchListItems);
  for (size_t i = 0; i < list.size(); ++i) {
    sizes.push_back(static_cast<uint32_t>(Integer(list[i], fmt::format("{}.{}[{}]", where, key, i), 0, kMaxTokens)));
  }
  return sizes;
}

std::optional<double> OptionalRate(const Json& object, std::string_view key, const std::string& where) {
  const Json& value = Require(object, key, where);
  if (value.is_null()) return std::nullopt;
  return Number(value, where + "." + std::string(key), 0, kMaxRate);
}

BenchDevice CheckDevice(const Json& json, const std::string& where) {
  Object(json, where);
  RejectUnknownFields(
      json, where, {"id", "vendor", "name", "driver", "vulkan", "memory_bytes", "subgroup_size", "coopmat", "peaks"});
  BenchDevice d{.vendor = Text(json, "vendor", where),
                .name = Text(json, "name", where),
                .driver = Text(json, "driver", where),
                .vulkan = Text(json, "vulkan", where),
                .memory_bytes = Count(json, "memory_bytes", where),
                .subgroup_size = Uint32(json, "subgroup_size", where),
                .coopmat = Boolean(Require(json, "coopmat", where), where + ".coopmat")};
  if (d.name.empty()) Reject(fmt::format("{}.name is empty", where));
  const Json& peaks = Require(json, "peaks", where);
  if (!peaks.is_null()) {
    const std::string at = where + ".peaks";
    Object(peaks, at);
    RejectUnknownFields(peaks, at, {"measured_ms", "copy_gbps", "f32_tflops", "f16_tflops", "coopmat_tflops"});
    d.peaks = DevicePeaks{.measured_ms = Integer(Require(peaks, "measured_ms", at), at + ".measured_ms", 0, kMaxTimeMs),
                          .copy_gbps = Rate(peaks, "copy_gbps", at),
                          .f32_tflops = Rate(peaks, "f32_tflops", at),
                          .f16_tflops = OptionalRate(peaks, "f16_tflops", at),
                          .coopmat_tflops = OptionalRate(peaks, "coopmat_tflops", at)};
  }
  return d;
}

BenchModel CheckModel(const Json& json, const std::string& where) {
  Object(json, where);
  RejectUnknownFields(json, where, {"id", "name", "type", "layers", "hidden", "params", "weight_types", "file_bytes"});
  BenchModel m{.name = Text(json, "name", where),
               .type = Text(json, "type", where),
               .layers = Uint32(json, "layers", where),
               .hidden = Uint32(json, "hidden", where),
               .params = Count(json, "params", where),
               .file_bytes = Count(json, "file_bytes", where)};
  if (m.name.empty()) Reject(fmt::format("{}.name is empty", where));
  const Json& types = Array(json, "weight_types", where, kMaxBenchListItems);
  for (size_t i = 0; i < types.size(); ++i) {
    m.weight_types.push_back(String(types[i], fmt::format("{}.weight_types[{}]", where, i), kMaxTypeBytes));
  }
  return m;
}

// A field a later version of the format added: required from that version on, refused in a file
// of an earlier one (which never wrote it). Whether the file's version has it.
bool HasSince(const Json& object, const std::string& where, std::string_view key, int64_t added, int64_t version) {
  if (version < added) {
    if (Find(object, key)) {
      Reject(fmt::format("{} has \"{}\", which version {} of the format added; the file says version {}", where, key,
                         added, version));
    }
    return false;
  }
  Require(object, key, where);
  return true;
}

// "waits" is null where unknown; a version 1 file's kernels leave it unknown.
BenchKernel CheckKernel(const Json& json, const std::string& where, int64_t version) {
  Object(json, where);
  RejectUnknownFields(json, where, {"label", "dispatches", "waits", "share", "us_per_step", "bytes", "flops"});
  BenchKernel k{.label = Text(json, "label", where),
                .dispatches = Uint32(json, "dispatches", where),
                .share = Number(Require(json, "share", where), where + ".share", 0, 1),
                .us_per_step = Rate(json, "us_per_step", where),
                .bytes = Count(json, "bytes", where),
                .flops = Count(json, "flops", where)};
  if (k.label.empty()) Reject(fmt::format("{}.label is empty", where));
  if (HasSince(json, where, "waits", 2, version) && !json["waits"].is_null()) {
    k.waits = Uint32(json, "waits", where);
    if (*k.waits > k.dispatches) {
      Reject(fmt::format("{}.waits is {}, more than its {} dispatches", where, *k.waits, k.dispatches));
    }
  }
  return k;
}

BenchRow CheckRow(const Json& json, const std::string& where, int64_t version) {
  Object(json, where);
  RejectUnknownFields(
      json, where,
      {"kind", "tokens", "depth", "mean_tokens_per_s", "stddev_tokens_per_s", "samples_s", "kernels", "device_us"});
  BenchRow row;
  const std::string kind = String(Require(json, "kind", where), where + ".kind", 8);
  if (kind != "pp" && kind != "tg") Reject(fmt::format("{}.kind is \"{}\", not \"pp\" or \"tg\"", where, kind));
  row.kind = kind == "pp" ? BenchKind::Prompt : BenchKind::Generate;
  row.tokens = Uint32(json, "tokens", where);
  if (row.tokens == 0) Reject(fmt::format("{}.tokens is 0: a test runs at least one token", where));
  row.depth = Uint32(json, "depth", where);
  row.mean_tokens_per_s = Rate(json, "mean_tokens_per_s", where);
  row.stddev_tokens_per_s = Rate(json, "stddev_tokens_per_s", where);
  const Json& samples = Array(json, "samples_s", where, kMaxBenchSamples);
  for (size_t i = 0; i < samples.size(); ++i) {
    row.samples_s.push_back(Number(samples[i], fmt::format("{}.samples_s[{}]", where, i), 0, kMaxRate));
  }
  const Json& kernels = Array(json, "kernels", where, kMaxBenchKernels);
  for (size_t i = 0; i < kernels.size(); ++i) {
    row.kernels.push_back(CheckKernel(kernels[i], fmt::format("{}.kernels[{}]", where, i), version));
  }
  if (HasSince(json, where, "device_us", 3, version)) {
    const Json& times = Array(json, "device_us", where, kMaxBenchListItems);
    for (size_t i = 0; i < times.size(); ++i) {
      row.device_us.push_back(Number(times[i], fmt::format("{}.device_us[{}]", where, i), 0, kMaxRate));
    }
  }
  return row;
}

// A list of objects with unique positive "id"s, checked by `check`, by id.
template <class T, class Check>
std::map<int64_t, T> CheckListed(const Json& doc, std::string_view key, Check check) {
  std::map<int64_t, T> items;
  const Json& list = Array(doc, key, "the file", kMaxBenchImportRuns);
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = fmt::format("{}[{}]", key, i);
    Object(list[i], where);
    const int64_t id = Integer(Require(list[i], "id", where), where + ".id", 1, std::numeric_limits<int64_t>::max());
    T item = check(list[i], where);
    if (!items.emplace(id, std::move(item)).second) {
      Reject(fmt::format("{}: another entry of \"{}\" has the same id {}", where, key, id));
    }
  }
  return items;
}

BenchFile CheckQwenvkFile(const Json& doc) {
  RejectUnknownFields(doc, "the file", {"format", "version", "exported_ms", "devices", "models", "runs"});
  const Json& format = Require(doc, "format", "the file");
  if (!format.is_string() || format.get<std::string>() != kBenchFormat) {
    Reject(
        fmt::format("\"format\" is {}, not \"{}\": this is not a QwenVK benchmark file", Quoted(format), kBenchFormat));
  }
  const Json& version_field = Require(doc, "version", "the file");
  const int64_t version = version_field.is_number_integer() ? version_field.get<int64_t>() : 0;  // 0: not one
  if (version < 1 || version > kBenchFormatVersion) {
    Reject(fmt::format("\"version\" is {}; this QwenVK reads versions 1 to {} of the benchmark format",
                       Quoted(version_field), kBenchFormatVersion));
  }
  Integer(Require(doc, "exported_ms", "the file"), "exported_ms", 0, kMaxTimeMs);
  const auto devices = CheckListed<BenchDevice>(doc, "devices", CheckDevice);
  const auto models = CheckListed<BenchModel>(doc, "models", CheckModel);
  std::set<int64_t> devices_used;
  BenchFile file;
  const Json& runs = Array(doc, "runs", "the file", kMaxBenchImportRuns);
  std::set<int64_t> run_ids;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Json& json = runs[i];
    std::string where = fmt::format("runs[{}]", i);
    Object(json, where);
    RejectUnknownFields(json, where,
                        {"id", "device", "model", "source", "created_ms", "version", "commit", "variant", "repetitions",
                         "prompts", "generations", "depths", "context", "stages", "rows"});
    const int64_t id = Integer(Require(json, "id", where), where + ".id", 1, std::numeric_limits<int64_t>::max());
    if (!run_ids.insert(id).second) Reject(fmt::format("{}: another run has the same id {}", where, id));
    where = fmt::format("runs[{}] (id {})", i, id);
    BenchRun run;
    const int64_t device =
        Integer(Require(json, "device", where), where + ".device", 1, std::numeric_limits<int64_t>::max());
    const int64_t model =
        Integer(Require(json, "model", where), where + ".model", 1, std::numeric_limits<int64_t>::max());
    if (!devices.contains(device)) Reject(fmt::format("{}: device {} is not in \"devices\"", where, device));
    if (!models.contains(model)) Reject(fmt::format("{}: model {} is not in \"models\"", where, model));
    devices_used.insert(device);
    run.device = devices.at(device);
    run.model = models.at(model);
    const std::string source = String(Require(json, "source", where), where + ".source", 16);
    if (source != "qwenvk" && source != "llama-bench") {
      Reject(fmt::format("{}.source is \"{}\", not \"qwenvk\" or \"llama-bench\"", where, source));
    }
    run.source = source == "qwenvk" ? BenchSource::Qwenvk : BenchSource::LlamaBench;
    run.created_ms = Integer(Require(json, "created_ms", where), where + ".created_ms", 0, kMaxTimeMs);
    run.version = Text(json, "version", where);
    run.commit = Text(json, "commit", where);
    run.variant = Text(json, "variant", where);
    run.repetitions = Uint32(json, "repetitions", where);
    run.prompts = Sizes(json, "prompts", where);
    run.generations = Sizes(json, "generations", where);
    run.depths = Sizes(json, "depths", where);
    run.context = Uint32(json, "context", where);
    if (HasSince(json, where, "stages", 3, version)) {
      const Json& stages = Array(json, "stages", where, kMaxBenchListItems);
      for (size_t s = 0; s < stages.size(); ++s) {
        run.stages.push_back(String(stages[s], fmt::format("{}.stages[{}]", where, s), kMaxBenchTextBytes));
      }
      if (run.stages.size() == 1) {
        Reject(fmt::format("{}.stages has one device: a split has at least two, a run on one device none", where));
      }
    }
    const Json& rows = Array(json, "rows", where, kMaxBenchRows);
    if (rows.empty()) Reject(fmt::format("{}.rows is empty: a run has at least one test", where));
    for (size_t r = 0; r < rows.size(); ++r) {
      const std::string at = fmt::format("{}.rows[{}]", where, r);
      run.rows.push_back(CheckRow(rows[r], at, version));
      const size_t times = run.rows.back().device_us.size();
      if (times != 0 && times != run.stages.size()) {
        Reject(fmt::format("{}.device_us has {} times for the run's {} devices (\"stages\")", at, times,
                           run.stages.size()));
      }
    }
    file.runs.push_back(std::move(run));
  }
  for (const auto& [id, device] : devices) {
    if (!devices_used.contains(id)) file.devices.push_back(device);
  }
  return file;
}

// --- import: llama-bench's JSON ----------------------------------------------------------------

// llama-bench's test_time, "2026-12-01T19:58:44Z" (UTC), in Unix milliseconds.
int64_t IsoTimeMs(const std::string& text, const std::string& where) {
  std::tm tm{};
  char zone = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &zone, &consumed) != 7 ||
      zone != 'Z' || static_cast<size_t>(consumed) != text.size() || tm.tm_mon < 1 || tm.tm_mon > 12 ||
      tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    Reject(fmt::format("{} is \"{}\", not a UTC time as llama-bench writes it (2026-12-01T19:58:44Z)", where, text));
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  // A run's time is kept as QwenVK's own files hold it, from 1970 on; an earlier one would be
  // written into an export that no import reads back.
  const int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (ms < 0) Reject(fmt::format("{} is \"{}\", before 1970: not a time llama-bench wrote", where, text));
  return ms;
}

// The first word of llama-bench's gpu_info when it names a vendor.
std::string VendorOf(const std::string& gpu) {
  const std::string first = gpu.substr(0, gpu.find(' '));
  for (const char* vendor : {"NVIDIA", "AMD", "Intel", "Apple", "Qualcomm", "ARM", "Mali"}) {
    if (first == vendor) return first;
  }
  return "";
}

// A llama-bench object's field, or `otherwise` when this llama-bench version does not write it.
const Json& Optional(const Json& object, std::string_view key) {
  static const Json kAbsent = nullptr;
  const Json* value = Find(object, key);
  return value != nullptr ? *value : kAbsent;
}

// One llama-bench setting as text for grouping and the run's variant ("" when absent).
std::string Setting(const Json& object, std::string_view key, const std::string& where) {
  const Json& value = Optional(object, key);
  if (value.is_null()) return "";
  if (value.is_string()) return String(value, where + "." + std::string(key), kMaxTypeBytes);
  if (value.is_boolean()) return value.get<bool>() ? "1" : "0";
  return std::to_string(Integer(value, where + "." + std::string(key), 0, kMaxCount));
}

constexpr std::string_view kLlamaSettings[] = {"flash_attn", "n_gpu_layers", "type_k",   "type_v",
                                               "n_batch",    "n_ubatch",     "n_threads"};

BenchFile CheckLlamaBenchFile(const Json& doc) {
  if (doc.empty()) Reject("the file is an empty list: llama-bench wrote no test");
  if (doc.size() > kMaxBenchRows) {
    Reject(fmt::format("the file has {} llama-bench tests; at most {} are accepted", doc.size(), kMaxBenchRows));
  }
  // One run per model, build, device and settings, in the order first seen.
  std::map<std::vector<std::string>, size_t> run_of;
  BenchFile file;
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string where = fmt::format("llama-bench test [{}]", i);
    const Json& test = Object(doc[i], where);
    const std::string gpu = Text(test, "gpu_info", where);
    const std::string backends = Text(test, "backends", where);
    const std::string commit = Text(test, "build_commit", where);
    const int64_t build = Integer(Require(test, "build_number", where), where + ".build_number", 0, kMaxCount);
    const std::string path = Text(test, "model_filename", where);
    const std::string type = Text(test, "model_type", where);
    std::vector<std::string> key = {gpu, backends, commit, std::to_string(build), path, type};
    std::string variant = "llama.cpp " + backends;
    for (const std::string_view setting : kLlamaSettings) {
      key.push_back(Setting(test, setting, where));
      if (!key.back().empty()) variant += fmt::format(", {} {}", setting, key.back());
    }
    const uint32_t prompt = Uint32(test, "n_prompt", where);
    const uint32_t gen = Uint32(test, "n_gen", where);
    const Json& depth_json = Optional(test, "n_depth");
    const uint32_t depth = depth_json.is_null() ? 0 : Uint32(test, "n_depth", where);
    if ((prompt == 0) == (gen == 0)) {
      Reject(
          fmt::format("{} has n_prompt {} and n_gen {}: only pp tests (n_gen 0) and tg tests (n_prompt 0) are "
                      "read, not llama-bench's combined -pg tests",
                      where, prompt, gen));
    }
    BenchRow row{.kind = prompt > 0 ? BenchKind::Prompt : BenchKind::Generate,
                 .tokens = prompt > 0 ? prompt : gen,
                 .depth = depth,
                 .mean_tokens_per_s = Rate(test, "avg_ts", where),
                 .stddev_tokens_per_s = Rate(test, "stddev_ts", where)};
    const Json& samples = Array(test, "samples_ns", where, kMaxBenchSamples);
    for (size_t s = 0; s < samples.size(); ++s) {
      row.samples_s.push_back(
          static_cast<double>(Integer(samples[s], fmt::format("{}.samples_ns[{}]", where, s), 0, kMaxCount)) / 1e9);
    }
    const int64_t time = IsoTimeMs(Text(test, "test_time", where), where + ".test_time");

    const auto [at, added] = run_of.try_emplace(key, file.runs.size());
    if (added) {
      BenchRun run{.source = BenchSource::LlamaBench,
                   .created_ms = time,
                   .version = fmt::format("llama.cpp build {}", build),
                   .commit = commit,
                   .variant = variant,
                   .device = {.vendor = VendorOf(gpu), .name = gpu}};
      // model_type is "<architecture> <size> <file type>": "qwen2 1B Q4_K - Medium".
      const size_t arch_end = std::min(type.find(' '), type.size());
      const size_t size_end = std::min(type.find(' ', arch_end + 1), type.size());
      run.model = {.name = path.substr(path.find_last_of('/') + 1),
                   .type = type.substr(0, arch_end),
                   .params = Count(test, "model_n_params", where),
                   .file_bytes = Count(test, "model_size", where)};
      if (size_end < type.size()) run.model.weight_types.push_back(type.substr(size_end + 1));
      if (run.model.name.empty()) Reject(fmt::format("{}.model_filename names no file", where));
      // What QwenVK's own format holds of these, so that the runs export to a file that imports.
      if (!run.model.weight_types.empty() && run.model.weight_types[0].size() > kMaxTypeBytes) {
        Reject(fmt::format("{}.model_type's file type is {} bytes long; at most {} are accepted", where,
                           run.model.weight_types[0].size(), kMaxTypeBytes));
      }
      if (run.variant.size() > kMaxBenchTextBytes) {
        Reject(fmt::format("{}: its backends and settings are {} bytes long; at most {} are accepted", where,
                           run.variant.size(), kMaxBenchTextBytes));
      }
      file.runs.push_back(std::move(run));
    }
    BenchRun& run = file.runs[at->second];
    run.created_ms = std::min(run.created_ms, time);
    run.repetitions = std::max(run.repetitions, static_cast<uint32_t>(row.samples_s.size()));
    auto note = [](std::vector<uint32_t>& sizes, uint32_t size) {
      if (size != 0 && std::find(sizes.begin(), sizes.end(), size) == sizes.end()) sizes.push_back(size);
    };
    note(row.kind == BenchKind::Prompt ? run.prompts : run.generations, row.tokens);
    if (std::find(run.depths.begin(), run.depths.end(), depth) == run.depths.end()) run.depths.push_back(depth);
    run.rows.push_back(std::move(row));
  }
  return file;
}

}  // namespace

BenchFile ParseBenchFile(std::string_view text) {
  RequireUtf8(text);
  const Json doc = ParseFile(text, kMaxBenchImportBytes);
  if (doc.is_array()) return CheckLlamaBenchFile(doc);
  if (!doc.is_object()) {
    Reject("the file must hold a QwenVK benchmark object or llama-bench's list of tests, not " + Quoted(doc));
  }
  return CheckQwenvkFile(doc);
}

// --- import: writing ---------------------------------------------------------------------------

BenchImport ImportBenchJson(Store& store, std::string_view text) {
  const BenchFile file = ParseBenchFile(text);
  BenchImport imported;
  store.Transaction([&] {
    for (const BenchDevice& device : file.devices) store.SaveBenchDevice(device);
    for (const BenchRun& run : file.runs) {
      if (store.FindBenchRun(run) != 0) {
        ++imported.already_held;
        continue;
      }
      imported.runs.push_back(store.SaveBenchRun(run));
    }
  });
  return imported;
}

}  // namespace qvk::store
