// Sections: helpers / migration / save, list, show, delete / roofline / export and import /
// invalid imports / llama-bench's JSON
// Benchmark runs in the store (store/bench_runs.h) and in shared files (store/bench_exchange.h).
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/bench_exchange.h"
#include "store/sql.h"
#include "store/store.h"
#include "test_util.h"

namespace qvk::store {
namespace {

using Json = nlohmann::ordered_json;
using test::ExpectMentions;

// --- helpers -------------------------------------------------------------------------------------

// Every row of every table, as text, read through a connection of its own: what "unchanged"
// means for a refused import.
std::string DumpTables(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::string dump;
  for (const char* table : {"conversations", "messages", "settings", "bench_devices", "bench_models", "bench_runs",
                            "bench_rows", "bench_kernels"}) {
    const std::string sql = std::string("SELECT * FROM ") + table + " ORDER BY 1, 2";
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sql;
    dump += std::string(table) + ":\n";
    while (sqlite3_step(statement) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(statement); ++c) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, c));
        dump += text == nullptr ? "NULL" : text;
        dump += '|';
      }
      dump += '\n';
    }
    sqlite3_finalize(statement);
  }
  sqlite3_close(db);
  return dump;
}

BenchDevice Gpu(std::string name = "Radeon RX 7900 XTX", std::optional<DevicePeaks> peaks = std::nullopt) {
  return {.vendor = "AMD",
          .name = std::move(name),
          .driver = "radv 24.0.1",
          .vulkan = "1.3.274",
          .memory_bytes = uint64_t{24} << 30,
          .subgroup_size = 64,
          .coopmat = false,
          .peaks = peaks};
}

DevicePeaks Peaks(int64_t measured_ms, double copy_gbps = 800, double f32_tflops = 50) {
  return {.measured_ms = measured_ms,
          .copy_gbps = copy_gbps,
          .f32_tflops = f32_tflops,
          .f16_tflops = 100,
          .coopmat_tflops = std::nullopt};
}

BenchModel Qwen(std::string weight_type = "Q4_0") {
  return {.name = "qwen2.5-0.5b-" + weight_type + ".gguf",
          .type = "qwen2",
          .layers = 24,
          .hidden = 896,
          .params = 494032768,
          .weight_types = {weight_type, "F32"},
          .file_bytes = 346206720};
}

BenchRun SampleRun(int64_t created_ms, BenchDevice device, BenchModel model) {
  BenchRun run{.source = BenchSource::Qwenvk,
               .created_ms = created_ms,
               .version = "0.9.0",
               .commit = "abc1234",
               .variant = "",
               .repetitions = 2,
               .prompts = {512},
               .generations = {128},
               .depths = {0},
               .context = 768,
               .device = std::move(device),
               .model = std::move(model)};
  run.rows.push_back({.kind = BenchKind::Prompt,
                      .tokens = 512,
                      .mean_tokens_per_s = 4000.5,
                      .stddev_tokens_per_s = 12.25,
                      .samples_s = {0.128, 0.1279},
                      // gate_up's waits known, rmsnorm's not (a run kept before schema 6)
                      .kernels = {{.label = "gate_up",
                                   .dispatches = 24,
                                   .waits = 20,
                                   .share = 0.75,
                                   .us_per_step = 300,
                                   .bytes = 120'000'000,
                                   .flops = 3'000'000'000},
                                  {.label = "rmsnorm",
                                   .dispatches = 48,
                                   .share = 0.25,
                                   .us_per_step = 100,
                                   .bytes = 1'000'000,
                                   .flops = 2'000'000}}});
  run.rows.push_back({.kind = BenchKind::Generate,
                      .tokens = 128,
                      .depth = 0,
                      .mean_tokens_per_s = 210.75,
                      .stddev_tokens_per_s = 1.5,
                      .samples_s = {0.61, 0.605}});
  return run;
}

// The sample as a model split across two devices measures it: each device's layers, and the
// profiled pp row's time on each.
BenchRun Split(BenchRun run) {
  run.stages = {"device 0 (A): layers 0-11; hand-off: host copy", "device 1 (A): layers 12-23"};
  run.rows[0].device_us = {250.5, 149.5};
  return run;
}

// A run as it reads back, ids aside (the store gives its own).
void ExpectSameRun(BenchRun got, BenchRun expected) {
  EXPECT_EQ(got.source, expected.source);
  EXPECT_EQ(got.created_ms, expected.created_ms);
  EXPECT_EQ(got.version, expected.version);
  EXPECT_EQ(got.commit, expected.commit);
  EXPECT_EQ(got.variant, expected.variant);
  EXPECT_EQ(got.repetitions, expected.repetitions);
  EXPECT_EQ(got.prompts, expected.prompts);
  EXPECT_EQ(got.generations, expected.generations);
  EXPECT_EQ(got.depths, expected.depths);
  EXPECT_EQ(got.context, expected.context);
  EXPECT_EQ(got.stages, expected.stages);
  got.model.id = expected.model.id = 0;
  EXPECT_EQ(got.model, expected.model);
  EXPECT_EQ(got.device.name, expected.device.name);
  EXPECT_EQ(got.device.vendor, expected.device.vendor);
  EXPECT_EQ(got.device.driver, expected.device.driver);
  EXPECT_EQ(got.device.vulkan, expected.device.vulkan);
  EXPECT_EQ(got.device.memory_bytes, expected.device.memory_bytes);
  EXPECT_EQ(got.device.subgroup_size, expected.device.subgroup_size);
  EXPECT_EQ(got.device.coopmat, expected.device.coopmat);
  EXPECT_EQ(got.device.peaks, expected.device.peaks);
  EXPECT_EQ(got.rows, expected.rows);
}

class BenchStoreTest : public ::testing::Test {
 protected:
  std::filesystem::path DbPath() const { return dir_.path() / "conversations.db"; }
  // Saves `run` in a new database, then takes the schema back by `sql`: a database an older QwenVK
  // kept the run in.
  void SaveThenDowngrade(const BenchRun& run, const char* sql) {
    {
      Store store(DbPath());
      store.SaveBenchRun(run);
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &message), SQLITE_OK) << message;
    sqlite3_free(message);
    sqlite3_close(db);
  }
  test::TempDir dir_;
};

// --- migration -----------------------------------------------------------------------------------

// A database the previous QwenVK made (version 2) gains the benchmark tables and keeps every
// conversation, message, setting and search hit.
TEST_F(BenchStoreTest, MigratesAVersion2DatabaseKeepingEveryConversation) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    for (const char* step : {sql::kMigrations[0], sql::kMigrations[1],
                             "INSERT INTO conversations (id, title, created_ms, updated_ms, current_leaf, settings,"
                             " pinned) VALUES (1, 'Squid facts', 1000, 2000, 2, '{}', 1),"
                             " (2, 'Empty one', 3000, 3000, 0, '{}', 0);"
                             "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_ms,"
                             " tokens, tokens_per_s) VALUES (1, 1, NULL, 'user', 'tell me about squid', 'complete',"
                             " 1000, 0, 0), (2, 1, 1, 'assistant', 'Squid have three hearts', 'complete', 1500, 6,"
                             " 42.5);"
                             "INSERT INTO settings (key, value) VALUES ('theme', 'dark');"}) {
      char* message = nullptr;
      ASSERT_EQ(sqlite3_exec(db, step, nullptr, nullptr, &message), SQLITE_OK) << message;
    }
    sqlite3_close(db);
  }
  Store store(DbPath());
  EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
  EXPECT_EQ(Store::kSchemaVersion, 7);
  const std::vector<Conversation> conversations = store.ListConversations();
  ASSERT_EQ(conversations.size(), 2u);
  EXPECT_EQ(conversations[0].title, "Squid facts");
  EXPECT_TRUE(conversations[0].pinned);
  EXPECT_EQ(conversations[1].title, "Empty one");
  const std::vector<Message> thread = store.Thread(2);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, "Squid have three hearts");
  EXPECT_EQ(thread[1].tokens, 6u);
  EXPECT_EQ(thread[1].tokens_per_s, 42.5);
  EXPECT_EQ(store.GetSetting("theme"), "dark");
  ASSERT_EQ(store.Search("hearts").size(), 1u);
  EXPECT_TRUE(store.ListBenchRuns().empty());
  EXPECT_TRUE(store.ListBenchDevices().empty());
  const Id run = store.SaveBenchRun(SampleRun(5000, Gpu(), Qwen()));
  EXPECT_TRUE(store.GetBenchRun(run));
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// A version 5 database's kept kernel times read back with their waits unknown (schema 6 added
// them), and a run saved after the migration keeps its own.
TEST_F(BenchStoreTest, MigratesAVersion5DatabaseLeavingItsKernelsWaitsUnknown) {
  BenchRun old = SampleRun(1000, Gpu(), Qwen());
  SaveThenDowngrade(old,
                    "ALTER TABLE bench_kernels DROP COLUMN waits; ALTER TABLE bench_runs DROP COLUMN stages;"
                    " ALTER TABLE bench_rows DROP COLUMN device_us; PRAGMA user_version = 5;");
  Store store(DbPath());
  EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
  const std::vector<BenchRun> runs = store.ListBenchRuns();
  ASSERT_EQ(runs.size(), 1u);
  for (BenchKernel& k : old.rows[0].kernels) k.waits.reset();
  ExpectSameRun(*store.GetBenchRun(runs[0].id), old);
  const BenchRun now = SampleRun(2000, Gpu(), Qwen());
  ExpectSameRun(*store.GetBenchRun(store.SaveBenchRun(now)), now);
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// A version 6 database's runs read back as runs on one device (schema 7 added a split's devices
// and their times), and a split run saved after the migration keeps both.
TEST_F(BenchStoreTest, MigratesAVersion6DatabaseItsRunsOnOneDevice) {
  const BenchRun old = SampleRun(1000, Gpu(), Qwen());
  SaveThenDowngrade(old,
                    "ALTER TABLE bench_runs DROP COLUMN stages; ALTER TABLE bench_rows DROP COLUMN device_us;"
                    " PRAGMA user_version = 6;");
  Store store(DbPath());
  EXPECT_EQ(store.schema_version(), 7);
  const std::vector<BenchRun> runs = store.ListBenchRuns();
  ASSERT_EQ(runs.size(), 1u);
  ExpectSameRun(*store.GetBenchRun(runs[0].id), old);
  EXPECT_EQ(runs[0].DeviceName(), old.device.name);
  const BenchRun split = Split(SampleRun(2000, Gpu(), Qwen()));
  const Id id = store.SaveBenchRun(split);
  ExpectSameRun(*store.GetBenchRun(id), split);
  EXPECT_EQ(store.GetBenchRun(id)->DeviceName(), old.device.name + ", split across 2 devices");
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// --- save, list, show, delete --------------------------------------------------------------------

TEST_F(BenchStoreTest, SavedRunsReadBackWholeNewestFirstAndFiltered) {
  Store store(DbPath());
  const BenchRun amd = SampleRun(1000, Gpu("Radeon RX 7900 XTX", Peaks(900)), Qwen("Q4_0"));
  BenchRun nvidia = SampleRun(2000, Gpu("NVIDIA H200"), Qwen("F16"));
  nvidia.device.vendor = "NVIDIA";
  nvidia.variant = "live attention";
  const Id first = store.SaveBenchRun(amd);
  const Id second = store.SaveBenchRun(nvidia);
  const Id third = store.SaveBenchRun(SampleRun(3000, Gpu(), Qwen("Q4_0")));  // same device and model as `amd`
  EXPECT_EQ(store.ListBenchDevices().size(), 2u);

  const std::optional<BenchRun> read = store.GetBenchRun(first);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->id, first);
  ExpectSameRun(*read, amd);
  ExpectSameRun(*store.GetBenchRun(second), nvidia);
  EXPECT_FALSE(store.GetBenchRun(9999));

  const std::vector<BenchRun> all = store.ListBenchRuns();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, third);
  EXPECT_EQ(all[1].id, second);
  EXPECT_EQ(all[2].id, first);
  ASSERT_EQ(all[2].rows.size(), 2u);
  EXPECT_EQ(all[2].rows[0].mean_tokens_per_s, 4000.5);
  EXPECT_TRUE(all[2].rows[0].kernels.empty());  // listing leaves kernel times to GetBenchRun
  EXPECT_EQ(all[2].device.id, all[0].device.id);
  EXPECT_EQ(all[2].model.id, all[0].model.id);

  auto ids = [&](const BenchFilter& filter) {
    std::vector<Id> result;
    for (const BenchRun& r : store.ListBenchRuns(filter)) result.push_back(r.id);
    return result;
  };
  EXPECT_EQ(ids({.device = "NVIDIA H200"}), std::vector<Id>{second});
  EXPECT_EQ(ids({.model = Qwen("Q4_0").name}), (std::vector<Id>{third, first}));
  EXPECT_EQ(ids({.weight_type = "f16"}), std::vector<Id>{second});
  EXPECT_EQ(ids({.weight_type = "F32"}), (std::vector<Id>{third, second, first}));
  EXPECT_EQ(ids({.device = "NVIDIA H200", .weight_type = "Q4_0"}), std::vector<Id>{});

  store.DeleteBenchRun(second);
  EXPECT_FALSE(store.GetBenchRun(second));
  EXPECT_EQ(ids({}), (std::vector<Id>{third, first}));
  EXPECT_THROW(store.DeleteBenchRun(second), Error);
  EXPECT_EQ(store.ListBenchDevices().size(), 2u);  // a device keeps its peaks without runs
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// A device keeps the newest peaks, whichever order they arrive in; a run without peaks leaves
// them; a peak alone (no model) is stored too.
TEST_F(BenchStoreTest, DevicesKeepTheNewestPeaks) {
  Store store(DbPath());
  store.SaveBenchRun(SampleRun(1000, Gpu("A", Peaks(500, 700)), Qwen()));
  store.SaveBenchRun(SampleRun(2000, Gpu("A", Peaks(400, 100)), Qwen()));  // older: ignored
  store.SaveBenchRun(SampleRun(3000, Gpu("A"), Qwen()));                   // none: ignored
  ASSERT_EQ(store.ListBenchDevices().size(), 1u);
  EXPECT_EQ(store.ListBenchDevices()[0].peaks, Peaks(500, 700));
  const Id id = store.SaveBenchDevice(Gpu("A", Peaks(600, 650)));
  EXPECT_EQ(id, store.ListBenchDevices()[0].id);
  EXPECT_EQ(store.ListBenchDevices()[0].peaks, Peaks(600, 650));
  store.SaveBenchDevice(Gpu("B", Peaks(100)));
  EXPECT_EQ(store.ListBenchDevices().size(), 2u);
  EXPECT_TRUE(store.ListBenchRuns({.device = "B"}).empty());
}

TEST_F(BenchStoreTest, RefusesRunsBeyondTheLimitsAndWritesNothing) {
  Store store(DbPath());
  store.SaveBenchRun(SampleRun(1000, Gpu(), Qwen()));
  const std::string before = DumpTables(DbPath());
  BenchRun long_name = SampleRun(2000, Gpu(std::string(kMaxBenchTextBytes + 1, 'x')), Qwen());
  BenchRun many_kernels = SampleRun(2000, Gpu(), Qwen());
  many_kernels.rows[0].kernels.resize(kMaxBenchKernels + 1, many_kernels.rows[0].kernels[0]);
  for (const BenchRun& run : {long_name, many_kernels}) {
    try {
      store.SaveBenchRun(run);
      ADD_FAILURE() << "saved";
    } catch (const StoreError& e) {
      EXPECT_EQ(e.kind(), StoreErrorKind::TooLarge);
    }
  }
  EXPECT_EQ(DumpTables(DbPath()), before);
}

// --- roofline ------------------------------------------------------------------------------------

TEST(BenchRoofline, PlacesEachKernelAgainstTheDevicesPeaks) {
  // Ridge: 50 TFLOP/s / 800 GB/s = 62.5 flops per byte.
  BenchDevice device = Gpu("A", Peaks(1, 800, 50));
  device.peaks->coopmat_tflops = 200;
  BenchRow row;
  row.kernels = {
      {.label = "matvec", .us_per_step = 1000, .bytes = 600'000'000, .flops = 1'200'000'000},   // 600 GB/s, 2 f/B
      {.label = "matmul", .us_per_step = 1000, .bytes = 100'000'000, .flops = 40'000'000'000},  // 40 TFLOP/s
      {.label = "norm", .us_per_step = 1000, .bytes = 1'000'000, .flops = 1'000'000},           // 1 GB/s
      {.label = "copy", .us_per_step = 0, .bytes = 0, .flops = 0}};
  const std::vector<RooflinePoint> points = Roofline(row, device);
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].label, "matvec");
  EXPECT_DOUBLE_EQ(points[0].intensity, 2);
  EXPECT_DOUBLE_EQ(points[0].gigabytes_per_s, 600);
  EXPECT_DOUBLE_EQ(points[0].of_copy_peak, 0.75);
  EXPECT_DOUBLE_EQ(points[0].of_roof, 0.75);
  EXPECT_EQ(points[0].limiter, Limiter::Bandwidth);
  EXPECT_DOUBLE_EQ(points[1].intensity, 400);
  EXPECT_DOUBLE_EQ(points[1].teraflops, 40);
  EXPECT_DOUBLE_EQ(points[1].of_f32_peak, 0.8);
  EXPECT_DOUBLE_EQ(*points[1].of_f16_peak, 0.4);
  EXPECT_DOUBLE_EQ(*points[1].of_coopmat_peak, 0.2);
  EXPECT_EQ(points[1].limiter, Limiter::Math);
  EXPECT_EQ(points[2].limiter, Limiter::Overhead);
  EXPECT_EQ(points[3].limiter, Limiter::Overhead);
  EXPECT_EQ(std::string(LimiterName(points[1].limiter)), "math");
  EXPECT_TRUE(Roofline(row, Gpu("no peaks")).empty());
}

// --- export and import ---------------------------------------------------------------------------

TEST_F(BenchStoreTest, ExportImportRoundTripsEveryField) {
  Store source(DbPath());
  BenchRun with_peaks = SampleRun(1000, Gpu("A", Peaks(900)), Qwen("Q4_0"));
  with_peaks.device.peaks->coopmat_tflops = 321.5;
  const Id a = source.SaveBenchRun(with_peaks);
  const Id b = source.SaveBenchRun(Split(SampleRun(2000, Gpu("B"), Qwen("Q8_0"))));
  source.SaveBenchDevice(Gpu("peak only", Peaks(50)));
  const std::string everything = ExportBenchJson(source, {});
  const Json doc = Json::parse(everything);
  EXPECT_EQ(doc["format"], "qwenvk-bench");
  EXPECT_EQ(doc["version"], 3);
  EXPECT_EQ(doc["runs"][0]["rows"][0]["kernels"][0]["waits"], 20);
  EXPECT_EQ(doc["runs"][0]["stages"], Json::array());  // one device
  EXPECT_EQ(doc["runs"][1]["stages"].size(), 2u);
  EXPECT_EQ(doc["runs"][1]["rows"][0]["device_us"], Json::parse("[250.5, 149.5]"));
  EXPECT_EQ(doc["runs"][1]["rows"][1]["device_us"], Json::array());         // not profiled
  EXPECT_TRUE(doc["runs"][0]["rows"][0]["kernels"][1]["waits"].is_null());  // unknown stays unknown
  EXPECT_EQ(doc["devices"].size(), 3u);
  EXPECT_EQ(doc["runs"].size(), 2u);

  Store target(dir_.path() / "other.db");
  const BenchImport imported = ImportBenchJson(target, everything);
  ASSERT_EQ(imported.runs.size(), 2u);
  EXPECT_EQ(imported.already_held, 0u);
  ExpectSameRun(*target.GetBenchRun(imported.runs[0]), with_peaks);
  ExpectSameRun(*target.GetBenchRun(imported.runs[1]), Split(SampleRun(2000, Gpu("B"), Qwen("Q8_0"))));
  const std::vector<BenchDevice> devices = target.ListBenchDevices();
  ASSERT_EQ(devices.size(), 3u);
  const auto peak_only = std::find_if(devices.begin(), devices.end(), [](auto& d) { return d.name == "peak only"; });
  ASSERT_NE(peak_only, devices.end());
  EXPECT_EQ(peak_only->peaks, Peaks(50));

  // The same file again adds nothing; one run exported alone carries only its device and model.
  const std::string before = DumpTables(dir_.path() / "other.db");
  const BenchImport again = ImportBenchJson(target, everything);
  EXPECT_TRUE(again.runs.empty());
  EXPECT_EQ(again.already_held, 2u);
  EXPECT_EQ(DumpTables(dir_.path() / "other.db"), before);
  const Id one[] = {b};
  const Json alone = Json::parse(ExportBenchJson(source, one));
  EXPECT_EQ(alone["devices"].size(), 1u);
  EXPECT_EQ(alone["devices"][0]["name"], "B");
  EXPECT_EQ(alone["runs"].size(), 1u);
  const Id missing[] = {a, 9999};
  ExpectMentions(test::ErrorOf([&] { ExportBenchJson(source, missing); }), {"Benchmark run 9999 does not exist"});
}

// A version 2 file (QwenVK before schema 7) has no split devices or their times: its runs import
// as runs on one device.
TEST_F(BenchStoreTest, ImportsAVersion2FileAsRunsOnOneDevice) {
  Store source(DbPath());
  source.SaveBenchRun(SampleRun(1000, Gpu("A"), Qwen()));
  Json doc = Json::parse(ExportBenchJson(source, {}));
  doc["version"] = 2;
  doc["runs"][0].erase("stages");
  for (Json& row : doc["runs"][0]["rows"]) row.erase("device_us");
  Store target(dir_.path() / "other.db");
  const BenchImport imported = ImportBenchJson(target, doc.dump());
  ASSERT_EQ(imported.runs.size(), 1u);
  ExpectSameRun(*target.GetBenchRun(imported.runs[0]), SampleRun(1000, Gpu("A"), Qwen()));
}

// --- invalid imports -----------------------------------------------------------------------------

struct InvalidFile {
  std::string name;
  std::string text;
  std::string says;  // part of the message
};

std::string Mutated(const std::string& valid, const std::function<void(Json&)>& change) {
  Json doc = Json::parse(valid);
  change(doc);
  return doc.dump();
}

std::vector<InvalidFile> InvalidFiles(const std::string& valid, const std::string& llama) {
  auto edit = [&](std::string name, const std::function<void(Json&)>& change, std::string says) {
    return InvalidFile{std::move(name), Mutated(valid, change), std::move(says)};
  };
  auto edit_llama = [&](std::string name, const std::function<void(Json&)>& change, std::string says) {
    return InvalidFile{std::move(name), Mutated(llama, change), std::move(says)};
  };
  std::string deep = "1";
  for (int i = 0; i < 40; ++i) deep = "[" + deep + "]";
  return {
      {"empty", "", "not valid JSON"},
      {"truncated", valid.substr(0, valid.size() / 2), "not valid JSON"},
      {"not UTF-8", "{\"format\": \"qwenvk-bench\xff\"}", "not valid UTF-8"},
      {"a number", "42", "must hold a QwenVK benchmark object or llama-bench's list"},
      {"nested too deep", deep, "nests deeper than 16 levels"},
      {"a number beyond double", std::string(valid).replace(valid.find("\"context\": 768"), 14, "\"context\": 1e999"),
       "not valid JSON"},
      edit(
          "no format", [](Json& d) { d.erase("format"); }, "the file has no \"format\""),
      edit(
          "other format", [](Json& d) { d["format"] = "qwenvk-conversation"; }, "not a QwenVK benchmark file"),
      edit(
          "version 4", [](Json& d) { d["version"] = 4; }, "reads versions 1 to 3"),
      edit(
          "version 0", [](Json& d) { d["version"] = 0; }, "\"version\" is 0"),
      edit(
          "version as text", [](Json& d) { d["version"] = "1"; }, "\"version\" is \"1\""),
      edit(
          "unknown field", [](Json& d) { d["extra"] = true; }, "unknown field \"extra\""),
      edit(
          "devices not a list", [](Json& d) { d["devices"] = Json::object(); }, "devices must be a list"),
      edit(
          "no runs", [](Json& d) { d.erase("runs"); }, "the file has no \"runs\""),
      edit(
          "device without a name", [](Json& d) { d["devices"][0].erase("name"); }, "devices[0] has no \"name\""),
      edit(
          "device with an empty name", [](Json& d) { d["devices"][0]["name"] = ""; }, "devices[0].name is empty"),
      edit(
          "negative memory", [](Json& d) { d["devices"][0]["memory_bytes"] = -1; }, "devices[0].memory_bytes"),
      edit(
          "fractional memory", [](Json& d) { d["devices"][0]["memory_bytes"] = 1.5; }, "must be a whole number"),
      edit(
          "coopmat as text", [](Json& d) { d["devices"][0]["coopmat"] = "yes"; }, "must be true or false"),
      edit(
          "negative peak", [](Json& d) { d["devices"][0]["peaks"]["copy_gbps"] = -5; }, "peaks.copy_gbps"),
      edit(
          "absurd peak", [](Json& d) { d["devices"][0]["peaks"]["f32_tflops"] = 1e300; }, "peaks.f32_tflops"),
      edit(
          "unknown peak", [](Json& d) { d["devices"][0]["peaks"]["int8_tops"] = 3; }, "unknown field \"int8_tops\""),
      edit(
          "duplicate device id", [](Json& d) { d["devices"].push_back(d["devices"][0]); }, "the same id"),
      edit(
          "duplicate model id", [](Json& d) { d["models"].push_back(d["models"][0]); }, "the same id"),
      edit(
          "duplicate run id", [](Json& d) { d["runs"].push_back(d["runs"][0]); }, "another run has the same id"),
      edit(
          "run id 0", [](Json& d) { d["runs"][0]["id"] = 0; }, "runs[0].id"),
      edit(
          "unknown device", [](Json& d) { d["runs"][0]["device"] = 77; }, "device 77 is not in \"devices\""),
      edit(
          "unknown model", [](Json& d) { d["runs"][0]["model"] = 78; }, "model 78 is not in \"models\""),
      edit(
          "unknown source", [](Json& d) { d["runs"][0]["source"] = "llama.cpp"; }, "not \"qwenvk\" or"),
      edit(
          "negative time", [](Json& d) { d["runs"][0]["created_ms"] = -1; }, "created_ms"),
      edit(
          "no rows", [](Json& d) { d["runs"][0]["rows"] = Json::array(); }, "rows is empty"),
      edit(
          "unknown kind", [](Json& d) { d["runs"][0]["rows"][0]["kind"] = "pg"; }, "kind is \"pg\""),
      edit(
          "zero tokens", [](Json& d) { d["runs"][0]["rows"][0]["tokens"] = 0; }, "tokens is 0"),
      edit(
          "negative rate", [](Json& d) { d["runs"][0]["rows"][0]["mean_tokens_per_s"] = -3.5; },
          "rows[0].mean_tokens_per_s"),
      edit(
          "rate as text", [](Json& d) { d["runs"][0]["rows"][0]["mean_tokens_per_s"] = "fast"; }, "must be a number"),
      edit(
          "null sample", [](Json& d) { d["runs"][0]["rows"][0]["samples_s"][1] = nullptr; }, "samples_s[1]"),
      edit(
          "waits over dispatches", [](Json& d) { d["runs"][0]["rows"][0]["kernels"][0]["waits"] = 25; },
          "waits is 25, more than its 24 dispatches"),
      edit(
          "waits as text", [](Json& d) { d["runs"][0]["rows"][0]["kernels"][0]["waits"] = "some"; }, "waits"),
      edit(
          "no waits", [](Json& d) { d["runs"][0]["rows"][0]["kernels"][1].erase("waits"); }, "has no \"waits\""),
      edit(
          "waits in version 1",
          [](Json& d) {
            d["version"] = 1;
            for (Json& run : d["runs"]) {
              run.erase("stages");
              for (Json& row : run["rows"]) row.erase("device_us");
            }
          },
          "has \"waits\", which version 2 of the format added; the file says version 1"),
      edit(
          "stages in version 2", [](Json& d) { d["version"] = 2; },
          "runs[0] (id 1) has \"stages\", which version 3 of the format added; the file says version 2"),
      edit(
          "no stages", [](Json& d) { d["runs"][0].erase("stages"); }, "has no \"stages\""),
      edit(
          "one stage", [](Json& d) { d["runs"][1]["stages"].erase(1); },
          "stages has one device: a split has at least two"),
      edit(
          "stage not text", [](Json& d) { d["runs"][1]["stages"][0] = 0; }, "stages[0]"),
      edit(
          "no device times", [](Json& d) { d["runs"][1]["rows"][0].erase("device_us"); }, "has no \"device_us\""),
      edit(
          "device times without a split",
          [](Json& d) {
            d["runs"][0]["rows"][0]["device_us"] = {1.5, 2.5};
          },
          "rows[0].device_us has 2 times for the run's 0 devices"),
      edit(
          "device times short", [](Json& d) { d["runs"][1]["rows"][0]["device_us"].erase(1); },
          "device_us has 1 times for the run's 2 devices"),
      edit(
          "negative device time", [](Json& d) { d["runs"][1]["rows"][0]["device_us"][1] = -4; }, "device_us[1]"),
      edit(
          "share over 1", [](Json& d) { d["runs"][0]["rows"][0]["kernels"][0]["share"] = 1.5; }, "share"),
      edit(
          "huge label", [](Json& d) { d["runs"][0]["rows"][0]["kernels"][0]["label"] = std::string(5000, 'k'); },
          "5000 bytes long"),
      edit(
          "huge model name", [](Json& d) { d["models"][0]["name"] = std::string(kMaxBenchTextBytes + 1, 'm'); },
          "models[0].name is 4097 bytes long"),
      edit(
          "weight type not text", [](Json& d) { d["models"][0]["weight_types"][0] = 4; }, "weight_types[0]"),
      edit(
          "negative prompt size", [](Json& d) { d["runs"][0]["prompts"][0] = -512; }, "prompts[0]"),
      edit(
          "missing rows field", [](Json& d) { d["runs"][1]["rows"][0].erase("depth"); }, "has no \"depth\""),
      edit(
          "second run bad", [](Json& d) { d["runs"][1]["commit"] = 5; }, "runs[1] (id"),
      {"llama: empty list", "[]", "empty list"},
      {"llama: not objects", "[1, 2]", "llama-bench test [0] must be an object"},
      edit_llama(
          "llama: no avg_ts", [](Json& d) { d[2].erase("avg_ts"); }, "llama-bench test [2] has no \"avg_ts\""),
      edit_llama(
          "llama: bad time", [](Json& d) { d[1]["test_time"] = "yesterday"; }, "not a UTC time"),
      edit_llama(
          "llama: long file type", [](Json& d) { d[0]["model_type"] = "qwen2 1B " + std::string(65, 'Q'); },
          "file type is 65 bytes long"),
      edit_llama(
          "llama: long backends", [](Json& d) { d[0]["backends"] = std::string(4090, 'V'); },
          "backends and settings are"),
      edit_llama(
          "llama: time before 1970", [](Json& d) { d[2]["test_time"] = "1948-12-01T19:58:44Z"; }, "before 1970"),
      edit_llama(
          "llama: negative rate", [](Json& d) { d[0]["stddev_ts"] = -1; }, "stddev_ts"),
      edit_llama(
          "llama: combined test", [](Json& d) { d[3]["n_prompt"] = 512; }, "combined -pg tests"),
      edit_llama(
          "llama: fractional samples", [](Json& d) { d[0]["samples_ns"][0] = 0.5; }, "samples_ns[0]"),
  };
}

// Each file is refused with a sentence naming the problem; the store is the same row for row
// afterwards, whatever came before the problem in the file.
TEST_F(BenchStoreTest, InvalidImportsChangeNothing) {
  Store store(DbPath());
  store.CreateConversation("Kept", {});
  store.SaveBenchRun(SampleRun(1000, Gpu("A", Peaks(10)), Qwen()));
  store.SaveBenchRun(Split(SampleRun(2000, Gpu("B"), Qwen("F16"))));
  const std::string valid = ExportBenchJson(store, {});
  const std::string llama = test::ReadFile(test::TestDataDir() / "bench" / "llama-bench-h200-qwen2.5-0.5B-Q4_0.json");
  Store empty_store(dir_.path() / "empty.db");
  ASSERT_EQ(ImportBenchJson(empty_store, valid).runs.size(), 2u);  // the files below differ only where broken
  ASSERT_EQ(ImportBenchJson(empty_store, llama).runs.size(), 2u);

  const std::string before = DumpTables(DbPath());
  const uint64_t revision = store.revision();
  const std::vector<InvalidFile> files = InvalidFiles(valid, llama);
  EXPECT_GE(files.size(), 30u);
  for (const InvalidFile& file : files) {
    try {
      ImportBenchJson(store, file.text);
      ADD_FAILURE() << file.name << ": imported";
    } catch (const StoreError& e) {
      EXPECT_EQ(e.kind(), StoreErrorKind::InvalidImport) << file.name;
      EXPECT_NE(std::string(e.what()).find(file.says), std::string::npos) << file.name << ": " << e.what();
    }
    EXPECT_EQ(store.revision(), revision) << file.name;
  }
  EXPECT_EQ(DumpTables(DbPath()), before);
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// --- llama-bench's JSON --------------------------------------------------------------------------

// Files llama-bench wrote on an H200 (build 0ad4a86, Vulkan): each file's four tests become two
// runs, flash_attn 0 and 1, each with its pp512 and tg128 row.
TEST_F(BenchStoreTest, ImportsWhatLlamaBenchWrote) {
  Store store(DbPath());
  const BenchImport q4_0 =
      ImportBenchJson(store, test::ReadFile(test::TestDataDir() / "bench" / "llama-bench-h200-qwen2.5-0.5B-Q4_0.json"));
  ASSERT_EQ(q4_0.runs.size(), 2u);
  const BenchRun plain = *store.GetBenchRun(q4_0.runs[0]);
  EXPECT_EQ(plain.source, BenchSource::LlamaBench);
  EXPECT_EQ(plain.device.name, "NVIDIA H200");
  EXPECT_EQ(plain.device.vendor, "NVIDIA");
  EXPECT_FALSE(plain.device.peaks);
  EXPECT_EQ(plain.model.name, "qwen2.5-0.5B-Q4_0.gguf");
  EXPECT_EQ(plain.model.type, "qwen2");
  EXPECT_EQ(plain.model.weight_types, std::vector<std::string>{"Q4_0"});
  EXPECT_EQ(plain.model.file_bytes, 346206720u);
  EXPECT_EQ(plain.model.params, 494032768u);
  EXPECT_EQ(plain.commit, "0ad4a86");
  EXPECT_EQ(plain.version, "llama.cpp build 1");
  ExpectMentions(plain.variant, {"llama.cpp Vulkan", "flash_attn 0", "n_gpu_layers 99"});
  EXPECT_EQ(plain.created_ms, 1796155124000);  // 2026-12-01T19:58:44Z
  EXPECT_EQ(plain.repetitions, 2u);
  EXPECT_EQ(plain.prompts, std::vector<uint32_t>{512});
  EXPECT_EQ(plain.generations, std::vector<uint32_t>{128});
  EXPECT_EQ(plain.depths, std::vector<uint32_t>{0});
  ASSERT_EQ(plain.rows.size(), 2u);
  EXPECT_EQ(plain.rows[0].Name(), "pp512");
  EXPECT_DOUBLE_EQ(plain.rows[0].mean_tokens_per_s, 12169.396661);
  EXPECT_DOUBLE_EQ(plain.rows[0].stddev_tokens_per_s, 128.786836);
  EXPECT_EQ(plain.rows[0].samples_s, (std::vector<double>{0.042389964, 0.041760251}));
  EXPECT_EQ(plain.rows[1].Name(), "tg128");
  EXPECT_DOUBLE_EQ(plain.rows[1].mean_tokens_per_s, 414.561986);
  EXPECT_DOUBLE_EQ(plain.rows[1].stddev_tokens_per_s, 125.737005);
  const BenchRun flash = *store.GetBenchRun(q4_0.runs[1]);
  ExpectMentions(flash.variant, {"flash_attn 1"});
  EXPECT_DOUBLE_EQ(flash.rows[0].mean_tokens_per_s, 43574.679596);
  EXPECT_DOUBLE_EQ(flash.rows[1].mean_tokens_per_s, 596.345011);

  const BenchImport q4_k = ImportBenchJson(
      store, test::ReadFile(test::TestDataDir() / "bench" / "llama-bench-h200-qwen2.5-0.5B-Q4_K_M.json"));
  ASSERT_EQ(q4_k.runs.size(), 2u);
  EXPECT_EQ(store.GetBenchRun(q4_k.runs[0])->model.weight_types, std::vector<std::string>{"Q4_K - Medium"});
  // Both files ran on one device; filters find them by its name and by weight type.
  EXPECT_EQ(store.ListBenchDevices().size(), 1u);
  EXPECT_EQ(store.ListBenchRuns({.device = "NVIDIA H200"}).size(), 4u);
  EXPECT_EQ(store.ListBenchRuns({.weight_type = "q4_0"}).size(), 2u);

  // A llama-bench run exports to QwenVK's format and imports from it unchanged.
  Store other(dir_.path() / "other.db");
  const Id one[] = {q4_0.runs[1]};
  const BenchImport moved = ImportBenchJson(other, ExportBenchJson(store, one));
  ASSERT_EQ(moved.runs.size(), 1u);
  ExpectSameRun(*other.GetBenchRun(moved.runs[0]), flash);
}

// A file `qwenvk bench --kernels --db F` then `qwenvk bench export` wrote on an H200 (F16 and Q4_K_M
// Qwen2.5-0.5B, depths 0 and 4096): its device peaks, both runs, every test and kernel read back.
TEST_F(BenchStoreTest, ImportsWhatQwenvkExportedOnAnH200) {
  Store store(DbPath());
  const BenchImport h200 =
      ImportBenchJson(store, test::ReadFile(test::TestDataDir() / "bench" / "qwenvk-h200-qwen2.5-0.5B.json"));
  ASSERT_EQ(h200.runs.size(), 2u);
  ASSERT_EQ(store.ListBenchDevices().size(), 1u);
  const BenchDevice device = store.ListBenchDevices()[0];
  EXPECT_EQ(device.name, "NVIDIA H200");
  EXPECT_TRUE(device.coopmat);
  ASSERT_TRUE(device.peaks);
  EXPECT_NEAR(device.peaks->copy_gbps, 3850.86, 0.01);
  ASSERT_TRUE(device.peaks->coopmat_tflops);
  EXPECT_NEAR(*device.peaks->coopmat_tflops, 476.16, 0.01);
  const BenchRun f16 = *store.GetBenchRun(h200.runs[0]);
  EXPECT_EQ(f16.source, BenchSource::Qwenvk);
  EXPECT_EQ(f16.model.name, "qwen2.5-0.5B-F16.gguf");
  EXPECT_EQ(f16.depths, (std::vector<uint32_t>{0, 4096}));
  ASSERT_EQ(f16.rows.size(), 4u);
  EXPECT_EQ(f16.rows[1].Name(), "tg128");
  EXPECT_NEAR(f16.rows[1].mean_tokens_per_s, 668.66, 0.01);
  EXPECT_EQ(f16.rows[1].kernels.size(), 9u);
  EXPECT_FALSE(f16.rows[1].kernels[0].waits);  // a version 1 file: not recorded then
  // Every kernel sits under the device's roofs.
  for (const RooflinePoint& point : Roofline(f16.rows[1], device)) EXPECT_LE(point.of_roof, 1.0) << point.label;
  EXPECT_EQ(store.GetBenchRun(h200.runs[1])->model.name, "qwen2.5-0.5B-Q4_K_M.gguf");
}

}  // namespace
}  // namespace qvk::store
