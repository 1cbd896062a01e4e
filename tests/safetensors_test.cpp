// Safetensors files and model folders: the qwen2-tiny fixture across its two shards, crafted
// valid files, and hostile ones (truncated, lying, overflowing, overlapping, escaping the folder)
// that must each end in an Error naming the file and the tensor.
// Sections: helpers / the fixture / crafted files / hostile files / folders and indexes
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/weight_source.h"
#include "tests/test_util.h"

namespace qvk {
namespace {

using test::ErrorOf;
using test::TempDir;
using test::ExpectMentions;

namespace fs = std::filesystem;

const fs::path kTiny = test::TestDataDir() / "qwen2-tiny";

// --- helpers -------------------------------------------------------------------------------------

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string LengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

std::string Safetensors(const std::string& header, const std::string& data) {
  return LengthPrefix(header.size()) + header + data;
}

std::string ReadBytes(const fs::path& path, uint64_t offset, size_t n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out(n, '\0');
  in.read(out.data(), static_cast<std::streamsize>(n));
  return out;
}

std::string AsString(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// --- the fixture -------------------------------------------------------------------------------

TEST(SafetensorsModelTest, LoadsQwen2TinyAcrossBothShards) {
  const SafetensorsModel model(kTiny);
  const auto names = model.names();
  ASSERT_EQ(names.size(), 1u + 2u * 12u + 1u);
  EXPECT_EQ(model.Find("lm_head.weight"), nullptr);  // tied to the embedding
  for (const auto& name : names) EXPECT_EQ(model.Get(name).dtype, DType::BF16) << name;

  const TensorView& embed = model.Get("model.embed_tokens.weight");
  EXPECT_EQ(embed.shape, (std::vector<uint64_t>{151936, 64}));
  EXPECT_EQ(embed.elements(), 151936u * 64u);
  EXPECT_TRUE(embed.file.ends_with("model-00001-of-00002.safetensors")) << embed.file;
  const TensorView& q = model.Get("model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(q.shape, (std::vector<uint64_t>{64, 64}));
  EXPECT_TRUE(q.file.ends_with("model-00002-of-00002.safetensors")) << q.file;
  EXPECT_EQ(model.Get("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<uint64_t>{32, 64}));
  EXPECT_EQ(model.Get("model.layers.0.self_attn.v_proj.bias").shape, (std::vector<uint64_t>{32}));
  EXPECT_EQ(model.Get("model.layers.0.mlp.down_proj.weight").shape, (std::vector<uint64_t>{64, 160}));
  EXPECT_EQ(model.Get("model.norm.weight").shape, (std::vector<uint64_t>{64}));
  EXPECT_EQ(model.total_bytes(), 19620992u);  // the index's metadata.total_size

  // The views point at the right bytes: shard 1's data starts after its 128-byte header;
  // model.norm.weight is the last 128 bytes of shard 2's data.
  const fs::path shard1 = kTiny / "model-00001-of-00002.safetensors";
  EXPECT_EQ(AsString(embed.data.first(256)), ReadBytes(shard1, 8 + 128, 256));
  EXPECT_EQ(AsString(embed.data.last(256)), ReadBytes(shard1, 8 + 128 + embed.data.size() - 256, 256));
  const fs::path shard2 = kTiny / "model-00002-of-00002.safetensors";
  EXPECT_EQ(AsString(model.Get("model.norm.weight").data), ReadBytes(shard2, fs::file_size(shard2) - 128, 128));

  ValidateQwen2Tensors(ModelConfig::FromJsonFile(kTiny / "config.json"), *SafetensorsSource(model, kTiny));
}

TEST(SafetensorsModelTest, MissingTensorNamesTensorAndFolder) {
  const SafetensorsModel model(kTiny);
  ExpectMentions(ErrorOf([&] { model.Get("lm_head.weight"); }), {"missing tensor lm_head.weight in", kTiny.string()});
}

TEST(SafetensorsModelTest, ValidateRefusesConfigTheTensorsDoNotFit) {
  const SafetensorsModel model(kTiny);
  ModelConfig config = ModelConfig::FromJsonFile(kTiny / "config.json");
  config.tie_word_embeddings = false;
  ExpectMentions(ErrorOf([&] { ValidateQwen2Tensors(config, *SafetensorsSource(model, kTiny)); }), {"missing tensor lm_head.weight"});

  config = ModelConfig::FromJsonFile(kTiny / "config.json");
  config.intermediate_size = 128;
  ExpectMentions(ErrorOf([&] { ValidateQwen2Tensors(config, *SafetensorsSource(model, kTiny)); }),
                 {"model.layers.0.mlp.gate_proj.weight", "[160, 64]", "expected [128, 64]"});

  config = ModelConfig::FromJsonFile(kTiny / "config.json");
  config.num_kv_heads = 4;
  ExpectMentions(ErrorOf([&] { ValidateQwen2Tensors(config, *SafetensorsSource(model, kTiny)); }),
                 {"model.layers.0.self_attn.k_proj.weight", "expected [64, 64]"});

  config = ModelConfig::FromJsonFile(kTiny / "config.json");
  config.num_layers = 1;
  config.layer_window.resize(1);
  ExpectMentions(ErrorOf([&] { ValidateQwen2Tensors(config, *SafetensorsSource(model, kTiny)); }),
                 {"unexpected tensor model.layers.1.", "model-00002-of-00002.safetensors"});
}

// --- crafted files -------------------------------------------------------------------------------

TEST(SafetensorsFileTest, ReadsCraftedFile) {
  const TempDir dir;
  const fs::path path = dir.path() / "ok.safetensors";
  // An empty tensor inside another's bytes shares none of them, so it is no overlap.
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
                             R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
                             R"("empty":{"dtype":"BF16","shape":[0,3],"data_offsets":[4,4]}})";
  WriteFile(path, Safetensors(header, "AAAAaaaaBBbb"));
  const SafetensorsFile file = SafetensorsFile::Open(path);
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const TensorView* a = file.Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(AsString(a->data), "AAAAaaaa");
  EXPECT_EQ(a->file, path.string());
  const TensorView* b = file.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::F16);
  EXPECT_EQ(AsString(b->data), "BBbb");
  EXPECT_EQ(file.Find("empty")->elements(), 0u);
  EXPECT_EQ(file.Find("c"), nullptr);
}

TEST(SafetensorsFileTest, MetadataDefaultsToEmptyObject) {
  const TempDir dir;
  WriteFile(dir.path() / "m.safetensors", Safetensors("{}", ""));
  const SafetensorsFile file = SafetensorsFile::Open(dir.path() / "m.safetensors");
  EXPECT_TRUE(file.metadata().is_object());
  EXPECT_TRUE(file.metadata().empty());
  EXPECT_TRUE(file.tensors().empty());
}

TEST(SafetensorsFileTest, MissingFileNamesPathAndReason) {
  const TempDir dir;
  ExpectMentions(ErrorOf([&] { SafetensorsFile::Open(dir.path() / "nope.safetensors"); }),
                 {"nope.safetensors", "No such file or directory"});
  ExpectMentions(ErrorOf([&] { SafetensorsFile::Open(dir.path()); }), {dir.path().string(), "not a regular file"});
}

// --- hostile files -------------------------------------------------------------------------------

struct HostileCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> mentions;  // besides the file name
};

void PrintTo(const HostileCase& c, std::ostream* os) {
  *os << c.name;
}

std::string Tensor(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

std::vector<HostileCase> HostileCases() {
  const auto one = [](const std::string& entry, const std::string& data) {
    return Safetensors(R"({"victim":)" + entry + "}", data);
  };
  return {
      {"Empty", "", {"0 bytes is too short"}},
      {"SevenBytes", std::string(7, '\x01'), {"7 bytes is too short"}},
      {"HeaderPastEnd", LengthPrefix(1000) + "{}", {"header length 1000 runs past the end of the file (10 bytes)"}},
      {"HeaderLength2Pow63", LengthPrefix(uint64_t{1} << 63) + "{}", {"header length 9223372036854775808 is over"}},
      {"HeaderNotJson", Safetensors("{not json", ""), {"header: not valid JSON"}},
      {"HeaderIsArray", Safetensors("[1,2]", ""), {"header is a JSON array, not an object"}},
      {"MetadataNotObject", Safetensors(R"({"__metadata__":"pt"})", ""), {"__metadata__ is not an object of strings"}},
      {"MetadataNested",
       Safetensors(R"({"__metadata__":{"format":{"nested":"pt"}}})", ""),
       {"__metadata__ is not an object of strings"}},
      {"EntryNotObject", one("5", ""), {"'victim'", "not an object"}},
      {"MissingDtype", one(R"({"shape":[1],"data_offsets":[0,4]})", "abcd"), {"'victim'", "\"dtype\" is missing"}},
      {"OffsetsPastEnd", one(Tensor("F32", "[2]", "[0,8]"), "abcd"), {"'victim'", "[0, 8] run past the end"}},
      {"BeginAfterEnd", one(Tensor("F32", "[0]", "[8,0]"), "abcdefgh"), {"'victim'", "end before they begin"}},
      {"OffsetsNotPair", one(Tensor("F32", "[1]", "[0,4,8]"), "abcdefgh"), {"'victim'", "not [begin, end]"}},
      {"SizeNotDtypeTimesShape",
       one(Tensor("F32", "[3]", "[0,8]"), "abcdefgh"),
       {"'victim'", "hold 8 bytes but F32 [3] needs 12"}},
      {"ShapeProductOverflows",
       one(Tensor("F32", "[4294967296,4294967296,2]", "[0,8]"), "abcdefgh"),
       {"'victim'", "more elements than fit in 64 bits"}},
      {"ByteSizeOverflows",
       one(Tensor("F32", "[4611686018427387904]", "[0,8]"), "abcdefgh"),
       {"'victim'", "more bytes than fit in 64 bits"}},
      {"NegativeDim",
       one(Tensor("F32", "[-1,2]", "[0,8]"), "abcdefgh"),
       {"'victim'", "shape[0] is -1, not a non-negative integer"}},
      {"FractionalDim", one(Tensor("F32", "[2,1.5]", "[0,8]"), "abcdefgh"), {"'victim'", "shape[1] is 1.5"}},
      {"NestedDim",
       one(Tensor("F32", std::string(50, '[') + std::string(50, ']'), "[0,8]"), "abcdefgh"),
       {"'victim'", "shape[0] is a JSON array"}},
      {"DeeplyNestedDim",
       one(Tensor("F32", std::string(100000, '[') + std::string(100000, ']'), "[0,8]"), "abcdefgh"),
       {"header: the JSON nests deeper than 64 levels"}},
      {"UnknownDtypeF64", one(Tensor("F64", "[1]", "[0,8]"), "abcdefgh"), {"'victim'", "dtype F64 is not supported"}},
      {"UnknownDtypeI8", one(Tensor("I8", "[8]", "[0,8]"), "abcdefgh"), {"'victim'", "dtype I8 is not supported"}},
      {"OverlappingTensors",
       Safetensors(
           R"({"first":)" + Tensor("F32", "[2]", "[0,8]") + R"(,"victim":)" + Tensor("F32", "[2]", "[4,12]") + "}",
           "abcdefghijkl"),
       {"'first' [0, 8] and 'victim' [4, 12] overlap"}},
      {"TruncatedData",
       one(Tensor("F32", "[4]", "[0,16]"), "abcdefghij"),
       {"'victim'", "run past the end of the data (10 bytes"}},
  };
}

class SafetensorsHostileTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(SafetensorsHostileTest, RefusedNamingFileAndTensor) {
  const TempDir dir;
  const fs::path path = dir.path() / (std::string(GetParam().name) + ".safetensors");
  WriteFile(path, GetParam().bytes);
  const std::string message = ErrorOf([&] { SafetensorsFile::Open(path); });
  ExpectMentions(message, {path.string()});
  ExpectMentions(message, GetParam().mentions);
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsHostileTest, ::testing::ValuesIn(HostileCases()),
                         [](const ::testing::TestParamInfo<HostileCase>& test) {
                           return std::string(test.param.name);
                         });

// --- folders and indexes -------------------------------------------------------------------------

std::string SmallShard(const std::string& name) {
  return Safetensors(R"({")" + name + R"(":)" + Tensor("F32", "[1]", "[0,4]") + "}", "abcd");
}

TEST(SafetensorsModelTest, ReadsSingleFileFolder) {
  const TempDir dir;
  WriteFile(dir.path() / "model.safetensors", SmallShard("x"));
  const SafetensorsModel model(dir.path());
  EXPECT_EQ(model.names(), (std::vector<std::string>{"x"}));
  EXPECT_EQ(model.total_bytes(), 4u);
  EXPECT_EQ(AsString(model.Get("x").data), "abcd");
}

TEST(SafetensorsModelTest, RefusesFolderWithoutWeights) {
  const TempDir dir;
  ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }),
                 {dir.path().string(), "neither model.safetensors nor model.safetensors.index.json"});
}

TEST(SafetensorsModelTest, IndexWithMissingShard) {
  const TempDir dir;
  WriteFile(dir.path() / "a.safetensors", SmallShard("x"));
  WriteFile(dir.path() / "model.safetensors.index.json",
            R"({"weight_map":{"x":"a.safetensors","y":"gone.safetensors"}})");
  ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }),
                 {(dir.path() / "gone.safetensors").string(), "cannot open"});
}

TEST(SafetensorsModelTest, IndexShardOutsideFolder) {
  for (const std::string shard : {"../evil.safetensors", "/etc/passwd", "sub/a.safetensors", ".."}) {
    const TempDir dir;
    WriteFile(dir.path() / "model.safetensors.index.json", R"({"weight_map":{"x":")" + shard + R"("}})");
    ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }),
                   {"model.safetensors.index.json", "'x'", "'" + shard + "' is not a plain file name"});
  }
}

TEST(SafetensorsModelTest, IndexTensorNotInItsShard) {
  const TempDir dir;
  WriteFile(dir.path() / "a.safetensors", SmallShard("x"));
  WriteFile(dir.path() / "b.safetensors", SmallShard("y"));
  WriteFile(dir.path() / "model.safetensors.index.json", R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors"}})");
  ExpectMentions(
      ErrorOf([&] { SafetensorsModel model(dir.path()); }),
      {"model.safetensors.index.json", "tensor 'y' is listed in a.safetensors but that file does not hold it"});
}

TEST(SafetensorsModelTest, IndexWithoutWeightMap) {
  const TempDir dir;
  WriteFile(dir.path() / "model.safetensors.index.json", R"({"metadata":{}})");
  ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }),
                 {"model.safetensors.index.json", "\"weight_map\""});
}

}  // namespace
}  // namespace qvk
