// GGUF files: the three llama.cpp fixtures (names, types, dims, values against the safetensors
// checkpoint they were converted from), their config, tokenizer and chat template against the
// Hugging Face files, and hostile copies of a fixture (truncated everywhere, lying counts,
// impossible shapes, misplaced data, duplicates) that must each end in an Error saying what is wrong.
// Sections: helpers / the fixtures / typed metadata / ModelConfig / tokenizer and chat template /
// crafted valid files / truncated files / hostile headers / hostile tensor infos / hostile tokenizer
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/numeric.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

namespace qvk {
namespace {

using test::ErrorOf;
using test::TempDir;
using test::ExpectMentions;
using test::LlamaCppVectors;
using test::ReadFile;

namespace fs = std::filesystem;

const fs::path kData = test::TestDataDir();
const fs::path kQ8 = kData / "gguf/qwen2-tiny-q8_0.gguf";
const fs::path kQ4KM = kData / "gguf/qwen2-tiny-Q4_K_M.gguf";
const fs::path kKq = kData / "gguf/qwen2-kq-Q4_K_M.gguf";

// --- helpers -------------------------------------------------------------------------------------

uint32_t Get32(const std::string& b, uint64_t at) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint64_t Get64(const std::string& b, uint64_t at) {
  uint64_t v = 0;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
void Put32(std::string& b, uint64_t at, uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
}
void Put64(std::string& b, uint64_t at, uint64_t v) {
  std::memcpy(b.data() + at, &v, 8);
}

std::string Bytes32(uint32_t v) {
  std::string b(4, '\0');
  Put32(b, 0, v);
  return b;
}
std::string Bytes64(uint64_t v) {
  std::string b(8, '\0');
  Put64(b, 0, v);
  return b;
}
// A file parsed from memory views the bytes, so they must outlive it: no temporaries.
std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span(s));
}
void AsBytes(std::string&&) = delete;

std::string GgufString(const std::string& s) {
  return Bytes64(s.size()) + s;
}
// One metadata entry: key, value type, encoded value.
std::string Kv(const std::string& key, uint32_t type, const std::string& value) {
  return GgufString(key) + Bytes32(type) + value;
}

// Where each field of a GGUF header is, found by a walk written apart from the parser under test.
struct Layout {
  struct Entry {
    std::string key;
    uint64_t at;  // the key's length field
    uint64_t type_at;
    uint64_t value_at;
  };
  struct Info {
    std::string name;
    uint64_t at;  // the name's length field
    uint64_t n_dims_at, dims_at, type_at, offset_at;
  };
  std::vector<Entry> entries;
  uint64_t entries_end = 0;
  std::vector<Info> tensors;
  uint64_t header_end = 0;
  uint64_t data_start = 0;  // at the default alignment, which the fixtures use

  const Entry& entry(const std::string& key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return e;
    }
    throw std::runtime_error("no key " + key);
  }
  const Info& tensor(const std::string& name) const {
    for (const Info& t : tensors) {
      if (t.name == name) return t;
    }
    throw std::runtime_error("no tensor " + name);
  }
};

uint64_t SkipValue(const std::string& b, uint64_t at, uint32_t type) {
  static constexpr uint64_t kSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (type == 8) return at + 8 + Get64(b, at);
  if (type != 9) return at + kSizes[type];
  const uint32_t element = Get32(b, at);
  const uint64_t count = Get64(b, at + 4);
  at += 12;
  if (element != 8 && element != 9) return at + count * kSizes[element];
  for (uint64_t i = 0; i < count; ++i) at = SkipValue(b, at, element);
  return at;
}

Layout Walk(const std::string& b) {
  Layout layout;
  uint64_t at = 24;
  for (uint64_t i = 0; i < Get64(b, 16); ++i) {
    Layout::Entry e;
    e.at = at;
    e.key = b.substr(at + 8, Get64(b, at));
    e.type_at = at + 8 + e.key.size();
    e.value_at = e.type_at + 4;
    at = SkipValue(b, e.value_at, Get32(b, e.type_at));
    layout.entries.push_back(e);
  }
  layout.entries_end = at;
  for (uint64_t i = 0; i < Get64(b, 8); ++i) {
    Layout::Info t;
    t.at = at;
    t.name = b.substr(at + 8, Get64(b, at));
    t.n_dims_at = at + 8 + t.name.size();
    t.dims_at = t.n_dims_at + 4;
    t.type_at = t.dims_at + 8 * Get32(b, t.n_dims_at);
    t.offset_at = t.type_at + 4;
    at = t.offset_at + 8;
    layout.tensors.push_back(t);
  }
  layout.header_end = at;
  layout.data_start = (at + 31) / 32 * 32;
  return layout;
}

const std::string& Q8Bytes() {
  static const std::string bytes = ReadFile(kQ8);
  return bytes;
}
const Layout& Q8Layout() {
  static const Layout layout = Walk(Q8Bytes());
  return layout;
}

// `file` with `kvs` (`count` entries) added after its metadata, the data section re-placed at
// `alignment` after the tensor infos: a valid file again when the tensor offsets suit `alignment`.
std::string WithEntries(const std::string& file, const std::string& kvs, uint64_t count, uint64_t alignment = 32) {
  const Layout layout = Walk(file);
  std::string out = file.substr(0, layout.entries_end) + kvs +
                    file.substr(layout.entries_end, layout.header_end - layout.entries_end);
  Put64(out, 16, Get64(file, 16) + count);
  out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
  return out + file.substr(layout.data_start);
}

// A metadata-only file: header, `kvs` (`count` entries) and nothing after them.
std::string MetadataOnly(const std::string& kvs, uint64_t count) {
  return "GGUF" + Bytes32(3) + Bytes64(0) + Bytes64(count) + kvs;
}

// The Error that opening `bytes` written to a file gives, with the file named in it.
std::string ErrorOfBytes(const std::string& bytes) {
  const TempDir dir;
  const fs::path path = dir.Write("bad.gguf", bytes);
  const std::string message = ErrorOf([&] { GgufFile::Open(path); });
  ExpectMentions(message, {path.string()});
  return message;
}

std::vector<std::string> ExpectedTensorNames(uint32_t layers) {
  std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
  for (uint32_t l = 0; l < layers; ++l) {
    for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight", "attn_k.bias",
                          "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
                          "ffn_up.weight", "ffn_down.weight"}) {
      names.push_back("blk." + std::to_string(l) + "." + n);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> SortedNames(const GgufFile& file) {
  std::vector<std::string> names;
  for (const GgufTensor& t : file.tensors()) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::set<GgmlType> TypesOf(const GgufFile& file) {
  std::set<GgmlType> types;
  for (const GgufTensor& t : file.tensors()) types.insert(t.type);
  return types;
}

void ExpectTensor(const GgufFile& file, const std::string& name, std::vector<uint64_t> dims, GgmlType type) {
  SCOPED_TRACE(name);
  const GgufTensor* t = file.FindTensor(name);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, dims);
  EXPECT_EQ(t->type, type) << GgmlTypeName(t->type);
  const GgmlTypeTraits traits = *TraitsOf(type);
  EXPECT_EQ(t->data.size(), t->elements() / traits.block_elements * traits.block_bytes);
  EXPECT_EQ(t->offset % file.alignment(), 0u);
}

// --- the fixtures --------------------------------------------------------------------------------

TEST(GgufTest, OpensQwen2TinyQ8_0) {
  const GgufFile file = GgufFile::Open(kQ8);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  ASSERT_EQ(file.tensors().size(), 26u);
  EXPECT_EQ(file.tensors().front().name, "token_embd.weight");
  EXPECT_EQ(SortedNames(file), ExpectedTensorNames(2));
  EXPECT_EQ(TypesOf(file), (std::set<GgmlType>{GgmlType::F32, GgmlType::Q8_0}));
  ExpectTensor(file, "token_embd.weight", {64, 151936}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.0.attn_q.weight", {64, 64}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.0.attn_q.bias", {64}, GgmlType::F32);
  ExpectTensor(file, "blk.0.attn_k.weight", {64, 32}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.1.ffn_down.weight", {160, 64}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.1.ffn_up.weight", {64, 160}, GgmlType::Q8_0);
  ExpectTensor(file, "output_norm.weight", {64}, GgmlType::F32);
  EXPECT_EQ(file.FindTensor("token_embd.weight")->rows(), 151936u);
  EXPECT_EQ(file.FindTensor("token_embd.weight")->elements(), 151936u * 64);
  EXPECT_EQ(file.FindTensor("output.weight"), nullptr);
  EXPECT_EQ(file.FindTensor("blk.0.attn_q"), nullptr);
}

TEST(GgufTest, OpensQwen2TinyQ4KM) {
  const GgufFile file = GgufFile::Open(kQ4KM);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  ASSERT_EQ(file.tensors().size(), 26u);
  EXPECT_EQ(file.tensors().front().name, "output_norm.weight");
  EXPECT_EQ(SortedNames(file), ExpectedTensorNames(2));
  // 64-wide rows are not a multiple of the K-quants' 256, so llama-quantize fell back.
  EXPECT_EQ(TypesOf(file), (std::set<GgmlType>{GgmlType::F32, GgmlType::Q5_0, GgmlType::Q8_0}));
  ExpectTensor(file, "token_embd.weight", {64, 151936}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.0.attn_q.weight", {64, 64}, GgmlType::Q5_0);
  ExpectTensor(file, "blk.0.attn_q.bias", {64}, GgmlType::F32);
  ExpectTensor(file, "blk.0.ffn_down.weight", {160, 64}, GgmlType::Q5_0);
  ExpectTensor(file, "blk.1.attn_v.weight", {64, 32}, GgmlType::Q8_0);
  ExpectTensor(file, "blk.1.ffn_down.weight", {160, 64}, GgmlType::Q8_0);
  ExpectTensor(file, "output_norm.weight", {64}, GgmlType::F32);
}

TEST(GgufTest, OpensQwen2KqQ4KM) {
  const GgufFile file = GgufFile::Open(kKq);
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), 32u);
  ASSERT_EQ(file.tensors().size(), 14u);
  EXPECT_EQ(SortedNames(file), ExpectedTensorNames(1));
  EXPECT_EQ(TypesOf(file), (std::set<GgmlType>{GgmlType::F32, GgmlType::Q4_K, GgmlType::Q6_K}));
  ExpectTensor(file, "token_embd.weight", {256, 151936}, GgmlType::Q6_K);
  ExpectTensor(file, "blk.0.attn_q.weight", {256, 256}, GgmlType::Q4_K);
  ExpectTensor(file, "blk.0.attn_k.weight", {256, 128}, GgmlType::Q4_K);
  ExpectTensor(file, "blk.0.attn_v.weight", {256, 128}, GgmlType::Q6_K);
  ExpectTensor(file, "blk.0.ffn_down.weight", {768, 256}, GgmlType::Q6_K);
  ExpectTensor(file, "blk.0.ffn_gate.weight", {256, 768}, GgmlType::Q4_K);
  ExpectTensor(file, "blk.0.attn_k.bias", {128}, GgmlType::F32);
}

// The F32 tensors are the checkpoint's bf16 values widened, so they must match exactly: this pins
// the data section's start and every offset, not just the header.
TEST(GgufTest, F32TensorsHoldTheCheckpointValues) {
  const SafetensorsModel checkpoint(kData / "qwen2-tiny");
  for (const fs::path& path : {kQ8, kQ4KM}) {
    const GgufFile file = GgufFile::Open(path);
    for (const auto& [gguf_name, hf_name] : std::vector<std::pair<std::string, std::string>>{
             {"output_norm.weight", "model.norm.weight"},
             {"blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"},
             {"blk.1.attn_k.bias", "model.layers.1.self_attn.k_proj.bias"},
             {"blk.1.ffn_norm.weight", "model.layers.1.post_attention_layernorm.weight"}}) {
      SCOPED_TRACE(path.filename().string() + " " + gguf_name);
      const GgufTensor& t = *file.FindTensor(gguf_name);
      const TensorView& ref = checkpoint.Get(hf_name);
      ASSERT_EQ(ref.dtype, DType::BF16);
      ASSERT_EQ(t.data.size(), ref.elements() * 4);
      for (uint64_t i = 0; i < ref.elements(); ++i) {
        float value = 0;
        uint16_t bits = 0;
        std::memcpy(&value, t.data.data() + 4 * i, 4);
        std::memcpy(&bits, ref.data.data() + 2 * i, 2);
        ASSERT_EQ(value, Bf16ToFloat(bits)) << "element " << i;
      }
    }
  }
}

TEST(GgufTest, FromBytesParsesMemoryAndNamesIt) {
  const std::string& bytes = Q8Bytes();
  const GgufFile file = GgufFile::FromBytes(AsBytes(bytes), "in-memory copy");
  EXPECT_EQ(file.name(), "in-memory copy");
  ASSERT_EQ(file.tensors().size(), 26u);
  EXPECT_EQ(file.tensors().front().data.data(),
            reinterpret_cast<const std::byte*>(bytes.data()) + Q8Layout().data_start);
  const std::string message = ErrorOf([&] { GgufFile::FromBytes(AsBytes(bytes).first(100), "in-memory copy"); });
  EXPECT_TRUE(message.starts_with("in-memory copy: ")) << message;
}

TEST(GgufTest, TensorDataSurvivesMoves) {
  GgufFile file = GgufFile::Open(kQ8);
  const std::byte* data = file.FindTensor("output_norm.weight")->data.data();
  std::vector<GgufFile> files;
  files.push_back(std::move(file));
  GgufFile moved = std::move(files.back());
  files.clear();
  EXPECT_EQ(moved.FindTensor("output_norm.weight")->data.data(), data);
  float first = 0;
  std::memcpy(&first, data, 4);
  EXPECT_TRUE(std::isfinite(first));
}

TEST(GgufTest, TypeNamesAndTraits) {
  EXPECT_STREQ(GgmlTypeName(GgmlType::Q4_K), "Q4_K");
  EXPECT_STREQ(GgmlTypeName(GgmlType::BF16), "BF16");
  EXPECT_STREQ(GgmlTypeName(static_cast<GgmlType>(99)), "type 99");
  EXPECT_STREQ(GgmlTypeName(static_cast<GgmlType>(4)), "type 4");  // Q4_2, long retired
  const std::vector<std::tuple<GgmlType, uint32_t, uint32_t>> expected = {
      {GgmlType::F32, 1, 4},       {GgmlType::F16, 1, 2},      {GgmlType::BF16, 1, 2},     {GgmlType::Q8_0, 32, 34},
      {GgmlType::Q4_0, 32, 18},    {GgmlType::Q4_1, 32, 20},   {GgmlType::Q5_0, 32, 22},   {GgmlType::Q5_1, 32, 24},
      {GgmlType::Q8_1, 32, 36},    {GgmlType::Q2_K, 256, 84},  {GgmlType::Q3_K, 256, 110}, {GgmlType::Q4_K, 256, 144},
      {GgmlType::Q5_K, 256, 176},  {GgmlType::Q6_K, 256, 210}, {GgmlType::Q8_K, 256, 292}, {GgmlType::IQ4_NL, 32, 18},
      {GgmlType::IQ4_XS, 256, 136}};
  for (const auto& [type, elements, bytes] : expected) {
    SCOPED_TRACE(GgmlTypeName(type));
    ASSERT_TRUE(TraitsOf(type).has_value());
    EXPECT_EQ(TraitsOf(type)->block_elements, elements);
    EXPECT_EQ(TraitsOf(type)->block_bytes, bytes);
  }
  EXPECT_FALSE(TraitsOf(static_cast<GgmlType>(99)).has_value());
  EXPECT_FALSE(TraitsOf(static_cast<GgmlType>(31)).has_value());  // Q4_0_4_4, removed from ggml
}

// --- typed metadata ------------------------------------------------------------------------------

TEST(GgufTest, ReadsTypedMetadata) {
  const GgufFile file = GgufFile::Open(kQ8);
  const std::vector<std::string> keys = file.Keys();
  ASSERT_EQ(keys.size(), 28u);
  EXPECT_EQ(keys.front(), "general.architecture");
  EXPECT_EQ(keys.back(), "tokenizer.chat_template");
  EXPECT_EQ(file.GetString("general.architecture"), "qwen2");
  EXPECT_EQ(file.GetString("general.name"), "Qwen2 Tiny");
  EXPECT_EQ(file.GetUint("qwen2.block_count"), 2u);           // u32
  EXPECT_EQ(file.GetUint("general.sampling.top_k"), 20u);     // i32
  EXPECT_EQ(file.GetFloat("qwen2.rope.freq_base"), 1e6);      // f32
  EXPECT_EQ(file.GetFloat("qwen2.context_length"), 32768.0);  // an integer read as a number
  EXPECT_FLOAT_EQ(static_cast<float>(*file.GetFloat("general.sampling.top_p")), 0.8f);
  EXPECT_EQ(file.GetBool("tokenizer.ggml.add_bos_token"), false);
  EXPECT_EQ(file.Find("general.name")->type(), GgufType::String);
  EXPECT_EQ(file.Find("tokenizer.ggml.token_type")->type(), GgufType::Array);

  const std::vector<std::string> tokens = file.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 151936u);
  EXPECT_EQ(tokens[0], "!");
  EXPECT_EQ(tokens[151645], "<|im_end|>");
  EXPECT_EQ(tokens[151935], "[PAD151935]");
  const std::vector<int64_t> types = file.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_EQ(types.size(), 151936u);
  EXPECT_EQ(types[0], 1);
  EXPECT_EQ(types[151645], 3);
  EXPECT_EQ(types[151657], 4);
  EXPECT_EQ(types[151935], 5);
  EXPECT_EQ(file.GetStringArray("tokenizer.ggml.merges").front(), "Ġ Ġ");

  EXPECT_EQ(file.GetString("no.such.key"), std::nullopt);
  EXPECT_EQ(file.GetUint("no.such.key"), std::nullopt);
  EXPECT_EQ(file.GetFloat("no.such.key"), std::nullopt);
  EXPECT_EQ(file.GetBool("no.such.key"), std::nullopt);
  EXPECT_TRUE(file.GetStringArray("no.such.key").empty());
  EXPECT_TRUE(file.GetIntArray("no.such.key").empty());
  EXPECT_EQ(file.Find("no.such.key"), nullptr);
}

TEST(GgufTest, WrongMetadataTypesNameTheKey) {
  const GgufFile file = GgufFile::Open(kQ8);
  const auto expect = [&](const std::function<void()>& f, const std::vector<std::string>& parts) {
    std::vector<std::string> all = parts;
    all.push_back(kQ8.string());
    ExpectMentions(ErrorOf(f), all);
  };
  expect([&] { file.GetString("qwen2.block_count"); }, {"'qwen2.block_count'", "type u32, not string"});
  expect([&] { file.GetUint("general.name"); }, {"'general.name'", "type string, not an integer"});
  expect([&] { file.GetUint("qwen2.rope.freq_base"); }, {"'qwen2.rope.freq_base'", "type f32"});
  expect([&] { file.GetFloat("tokenizer.ggml.add_bos_token"); }, {"'tokenizer.ggml.add_bos_token'", "type bool"});
  expect([&] { file.GetBool("qwen2.block_count"); }, {"'qwen2.block_count'", "not bool"});
  expect([&] { file.GetStringArray("tokenizer.ggml.token_type"); }, {"array of i32, not of strings"});
  expect([&] { file.GetStringArray("general.name"); }, {"'general.name'", "not an array of strings"});
  expect([&] { file.GetIntArray("tokenizer.ggml.tokens"); }, {"array of string, not of integers"});
}

TEST(GgufTest, NegativeAndHugeIntegersAreRefused) {
  const std::string kvs = Kv("negative", 5, Bytes32(static_cast<uint32_t>(-3))) +
                          Kv("huge.list", 9, Bytes32(10) + Bytes64(2) + Bytes64(1) + Bytes64(uint64_t{1} << 63)) +
                          Kv("small.list", 9, Bytes32(1) + Bytes64(3) + std::string("\x01\xff\x7f", 3));
  const std::string bytes = MetadataOnly(kvs, 3);
  const GgufFile file = GgufFile::FromBytes(AsBytes(bytes), "mem");
  ExpectMentions(ErrorOf([&] { file.GetUint("negative"); }), {"mem: metadata 'negative': is -3"});
  EXPECT_EQ(file.GetFloat("negative"), -3.0);
  ExpectMentions(ErrorOf([&] { file.GetIntArray("huge.list"); }), {"'huge.list'", "element 1 is 9223372036854775808"});
  EXPECT_EQ(file.GetIntArray("small.list"), (std::vector<int64_t>{1, -1, 127}));
}

// --- ModelConfig ---------------------------------------------------------------------------------

TEST(GgufModelTest, TinyConfigEqualsSafetensorsConfig) {
  const ModelConfig hf = ModelConfig::FromJsonFile(kData / "qwen2-tiny/config.json");
  for (const fs::path& path : {kQ8, kQ4KM}) {
    SCOPED_TRACE(path.filename().string());
    const ModelConfig c = ConfigFromGguf(GgufFile::Open(path));
    EXPECT_EQ(c.architecture, hf.architecture);
    EXPECT_EQ(c.model_type, hf.model_type);
    EXPECT_EQ(c.hidden_size, 64u);
    EXPECT_EQ(c.hidden_size, hf.hidden_size);
    EXPECT_EQ(c.intermediate_size, hf.intermediate_size);
    EXPECT_EQ(c.num_layers, 2u);
    EXPECT_EQ(c.num_layers, hf.num_layers);
    EXPECT_EQ(c.num_heads, 4u);
    EXPECT_EQ(c.num_heads, hf.num_heads);
    EXPECT_EQ(c.num_kv_heads, 2u);
    EXPECT_EQ(c.num_kv_heads, hf.num_kv_heads);
    EXPECT_EQ(c.head_dim, 16u);
    EXPECT_EQ(c.head_dim, hf.head_dim);
    EXPECT_EQ(c.vocab_size, 151936u);
    EXPECT_EQ(c.vocab_size, hf.vocab_size);
    EXPECT_EQ(c.max_position_embeddings, hf.max_position_embeddings);
    EXPECT_EQ(c.rms_norm_eps, 1e-6f);
    EXPECT_EQ(c.rms_norm_eps, hf.rms_norm_eps);
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_EQ(c.rope_theta, hf.rope_theta);
    EXPECT_FALSE(c.yarn.has_value());
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.tie_word_embeddings, hf.tie_word_embeddings);
    EXPECT_EQ(c.layer_window, hf.layer_window);
    EXPECT_EQ(c.bos_token_id, hf.bos_token_id);
    EXPECT_EQ(c.eos_token_ids, hf.eos_token_ids);
  }
}

TEST(GgufModelTest, KqConfig) {
  const ModelConfig c = ConfigFromGguf(GgufFile::Open(kKq));
  EXPECT_EQ(c.hidden_size, 256u);
  EXPECT_EQ(c.intermediate_size, 768u);
  EXPECT_EQ(c.num_layers, 1u);
  EXPECT_EQ(c.num_heads, 4u);
  EXPECT_EQ(c.num_kv_heads, 2u);
  EXPECT_EQ(c.head_dim, 64u);
  EXPECT_EQ(c.vocab_size, 151936u);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.layer_window, std::vector<uint32_t>{0});
  EXPECT_EQ(c.eos_token_ids, std::vector<uint32_t>{151645});
}

TEST(GgufModelTest, ReadsYarnScaling) {
  const std::string kvs = Kv("qwen2.rope.scaling.type", 8, GgufString("yarn")) +
                          Kv("qwen2.rope.scaling.factor", 6, Bytes32(std::bit_cast<uint32_t>(4.0f))) +
                          Kv("qwen2.rope.scaling.original_context_length", 4, Bytes32(8192));
  const TempDir dir;
  const ModelConfig c = ConfigFromGguf(GgufFile::Open(dir.Write("yarn.gguf", WithEntries(Q8Bytes(), kvs, 3))));
  ASSERT_TRUE(c.yarn.has_value());
  EXPECT_EQ(c.yarn->factor, 4.0);
  EXPECT_EQ(c.yarn->original_max_position_embeddings, 8192u);
  EXPECT_EQ(c.yarn->beta_fast, 32.0);
  EXPECT_EQ(c.yarn->beta_slow, 1.0);

  const std::string linear = Kv("qwen2.rope.scaling.type", 8, GgufString("linear"));
  ExpectMentions(
      ErrorOf([&] { ConfigFromGguf(GgufFile::Open(dir.Write("linear.gguf", WithEntries(Q8Bytes(), linear, 1)))); }),
      {"'qwen2.rope.scaling.type'", "'linear' is not supported"});
}

TEST(GgufModelTest, MissingRopeBaseDefaultsTo10000) {
  std::string bytes = Q8Bytes();
  const Layout& layout = Q8Layout();
  // Renamed in place (same length), so the key is absent and the file stays valid.
  bytes.replace(layout.entry("qwen2.rope.freq_base").at + 8, 20, "qwen2.rope.freq_bass");
  const TempDir dir;
  EXPECT_EQ(ConfigFromGguf(GgufFile::Open(dir.Write("no-base.gguf", bytes))).rope_theta, 10000.0);
}

TEST(GgufModelTest, RefusesOtherArchitecturesAndBadValues) {
  const Layout& layout = Q8Layout();
  const TempDir dir;
  const auto config_error = [&](std::string bytes) {
    const fs::path path = dir.Write("bad-config.gguf", bytes);
    const std::string message = ErrorOf([&] { ConfigFromGguf(GgufFile::Open(path)); });
    ExpectMentions(message, {path.string()});
    return message;
  };
  std::string llama = Q8Bytes();
  llama.replace(layout.entry("general.architecture").value_at + 8, 5, "llama");
  ExpectMentions(config_error(llama), {"unsupported architecture 'llama'"});

  std::string heads = Q8Bytes();
  Put32(heads, layout.entry("qwen2.attention.head_count_kv").value_at, 3);
  ExpectMentions(config_error(heads), {"'qwen2.attention.head_count_kv'", "is 3"});

  std::string zero_layers = Q8Bytes();
  Put32(zero_layers, layout.entry("qwen2.block_count").value_at, 0);
  ExpectMentions(config_error(zero_layers), {"'qwen2.block_count'", "is 0; must be in [1, 1024]"});

  std::string eos = Q8Bytes();
  Put32(eos, layout.entry("tokenizer.ggml.eos_token_id").value_at, 151936);
  ExpectMentions(config_error(eos), {"'tokenizer.ggml.eos_token_id'", "is 151936"});

  std::string no_embedding = Q8Bytes();
  no_embedding.replace(layout.tensor("token_embd.weight").at + 8, 5, "tokex");
  ExpectMentions(config_error(no_embedding), {"no tensor token_embd.weight"});
}

// --- tokenizer and chat template -----------------------------------------------------------------

const Tokenizer& JsonTokenizer() {
  static const Tokenizer tokenizer = Tokenizer::FromTokenizerJson(kData / "qwen2-tiny/tokenizer.json");
  return tokenizer;
}

const Tokenizer& GgufTokenizer() {
  static const Tokenizer tokenizer(TokenizerVocabFromGguf(GgufFile::Open(kQ8)));
  return tokenizer;
}

TEST(GgufTokenizerTest, VocabularyEqualsTokenizerJson) {
  const Tokenizer& gguf = GgufTokenizer();
  const Tokenizer& hf = JsonTokenizer();
  // The 271 [PAD] tokens padding the vocabulary to the embedding's rows are left out.
  ASSERT_EQ(gguf.vocab_size(), 151665u);
  ASSERT_EQ(gguf.vocab_size(), hf.vocab_size());
  for (uint32_t id = 0; id < hf.vocab_size(); ++id) {
    ASSERT_EQ(gguf.TokenText(id), hf.TokenText(id)) << "id " << id;
  }
  EXPECT_TRUE(gguf.IsSpecial(151643));   // <|endoftext|>: control
  EXPECT_TRUE(gguf.IsSpecial(151645));   // <|im_end|>
  EXPECT_FALSE(gguf.IsSpecial(151657));  // <tool_call>: user-defined
  EXPECT_FALSE(gguf.IsSpecial(23811));
  const TokenizerVocab vocab = TokenizerVocabFromGguf(GgufFile::Open(kKq));
  EXPECT_EQ(vocab.pre_tokenizer_regex, kQwen2PreTokenizerRegex);
  EXPECT_EQ(vocab.merges.size(), 151387u);
  EXPECT_EQ(vocab.merges.front(), (std::pair<std::string, std::string>{"Ġ", "Ġ"}));
  EXPECT_EQ(vocab.added.size(), 22u);
}

TEST(GgufTokenizerTest, RegexIsTokenizerJsonsSplit) {
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(kData / "qwen2-tiny/tokenizer.json"));
  EXPECT_EQ(doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>(), kQwen2PreTokenizerRegex);
}

TEST(GgufTokenizerTest, MatchesTransformersReference) {
  const nlohmann::json reference = nlohmann::json::parse(ReadFile(kData / "tokenizer/tokenizer_reference.json"));
  ASSERT_EQ(reference["cases"].size(), 16u);
  for (const auto& c : reference["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    const std::vector<uint32_t> expected = c["ids"];
    EXPECT_EQ(GgufTokenizer().Encode(text), expected);
    EXPECT_EQ(GgufTokenizer().Encode(text), JsonTokenizer().Encode(text));
    EXPECT_EQ(GgufTokenizer().Decode(expected), c["decoded"].get<std::string>());
  }
}

TEST(GgufTokenizerTest, MatchesLlamaCppVectors) {
  const auto vectors = LlamaCppVectors();
  ASSERT_EQ(vectors.size(), 46u);
  for (size_t i = 0; i < vectors.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "vector " << i << ": " << vectors[i].text);
    EXPECT_EQ(GgufTokenizer().Encode(vectors[i].text), vectors[i].ids);
    EXPECT_EQ(GgufTokenizer().Encode(vectors[i].text), JsonTokenizer().Encode(vectors[i].text));
  }
}

TEST(GgufTokenizerTest, EncodesFixtureChatPrompts) {
  const nlohmann::json prompts = nlohmann::json::parse(ReadFile(kData / "qwen2-tiny/chat_prompts.json"))["prompts"];
  for (const char* name : {"chat_en", "chat_multi"}) {
    SCOPED_TRACE(name);
    const std::string text = prompts[name]["prompt_text"];
    const std::vector<uint32_t> ids = prompts[name]["input_ids"];
    EXPECT_EQ(GgufTokenizer().Encode(text), ids);
  }
}

TEST(GgufTokenizerTest, ChatTemplateEqualsTokenizerConfig) {
  const nlohmann::json config = nlohmann::json::parse(ReadFile(kData / "qwen2-tiny/tokenizer_config.json"));
  const std::string expected = config["chat_template"];
  for (const fs::path& path : {kQ8, kQ4KM, kKq}) {
    SCOPED_TRACE(path.filename().string());
    const std::optional<std::string> source = ChatTemplateFromGguf(GgufFile::Open(path));
    ASSERT_TRUE(source.has_value());
    EXPECT_EQ(*source, expected);
  }
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  EXPECT_EQ(ChatTemplate(*ChatTemplateFromGguf(GgufFile::Open(kQ8))).Apply(messages, true),
            ChatTemplate(expected).Apply(messages, true));
  const std::string no_template = MetadataOnly(Kv("general.architecture", 8, GgufString("qwen2")), 1);
  EXPECT_EQ(ChatTemplateFromGguf(GgufFile::FromBytes(AsBytes(no_template), "mem")), std::nullopt);
}

// --- crafted valid files -------------------------------------------------------------------------

TEST(GgufTest, ReadsVersion2) {
  std::string bytes = Q8Bytes();
  Put32(bytes, 4, 2);
  const TempDir dir;
  const GgufFile file = GgufFile::Open(dir.Write("v2.gguf", bytes));
  EXPECT_EQ(file.version(), 2u);
  EXPECT_EQ(file.tensors().size(), 26u);
}

TEST(GgufTest, HonoursGeneralAlignment) {
  const std::string& original = Q8Bytes();
  // The fixture's offsets are all multiples of 64, so only the data section's start moves.
  const std::string bytes = WithEntries(original, Kv("general.alignment", 4, Bytes32(64)), 1, 64);
  const TempDir dir;
  const GgufFile file = GgufFile::Open(dir.Write("align64.gguf", bytes));
  const GgufFile reference = GgufFile::Open(kQ8);
  EXPECT_EQ(file.alignment(), 64u);
  ASSERT_EQ(file.tensors().size(), reference.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const GgufTensor& a = file.tensors()[i];
    const GgufTensor& b = reference.tensors()[i];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(a.offset, b.offset);
    ASSERT_EQ(a.data.size(), b.data.size());
    EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size()), 0);
  }
}

TEST(GgufTest, ReadsNestedArraysUpToTheLimit) {
  // [[[[1, 2]]]]: four levels.
  const std::string inner = Bytes32(0) + Bytes64(2) + std::string("\x01\x02", 2);
  std::string value = inner;
  for (int level = 1; level < 4; ++level) value = Bytes32(9) + Bytes64(1) + value;
  const std::string ok = MetadataOnly(Kv("nested", 9, value), 1);
  const GgufFile file = GgufFile::FromBytes(AsBytes(ok), "mem");
  const auto& level1 = std::get<GgufArray>(file.Find("nested")->value);
  ASSERT_EQ(level1.element_type(), GgufType::Array);
  const auto& level2 = std::get<std::vector<GgufArray>>(level1.values).at(0);
  const auto& level3 = std::get<std::vector<GgufArray>>(level2.values).at(0);
  const auto& level4 = std::get<std::vector<GgufArray>>(level3.values).at(0);
  EXPECT_EQ(std::get<std::vector<uint8_t>>(level4.values), (std::vector<uint8_t>{1, 2}));

  const std::string deep = MetadataOnly(Kv("nested", 9, Bytes32(9) + Bytes64(1) + value), 1);
  ExpectMentions(ErrorOf([&] { GgufFile::FromBytes(AsBytes(deep), "mem"); }),
                 {"mem: metadata 'nested' element 0 element 0 element 0 element 0", "nested more than 4 deep"});
}

// --- truncated files -----------------------------------------------------------------------------

bool SaysTruncated(const std::string& message) {
  for (const char* phrase : {"truncated", "bytes left", "not a GGUF file", "past the end"}) {
    if (message.find(phrase) != std::string::npos) return true;
  }
  return false;
}

TEST(GgufBadFileTest, TruncatedHeaderAnywhere) {
  const std::string& bytes = Q8Bytes();
  const uint64_t header_end = Q8Layout().header_end;
  const TempDir dir;
  // One copy, shrunk step by step, instead of 50 fresh writes.
  const fs::path path = dir.Write("truncated.gguf", bytes.substr(0, header_end));
  for (int step = 49; step >= 0; --step) {
    const uint64_t size = header_end * step / 50;
    SCOPED_TRACE(testing::Message() << "truncated to " << size << " bytes");
    fs::resize_file(path, size);
    const std::string message = ErrorOf([&] { GgufFile::Open(path); });
    ExpectMentions(message, {path.string()});
    EXPECT_TRUE(SaysTruncated(message)) << message;
  }
  // Just short of the last tensor info's offset, and right after the fixed header.
  for (const uint64_t size : {header_end - 1, uint64_t{24}, uint64_t{7}}) {
    SCOPED_TRACE(testing::Message() << "truncated to " << size << " bytes");
    fs::resize_file(path, size);
    const std::string message = ErrorOf([&] { GgufFile::Open(path); });
    EXPECT_TRUE(SaysTruncated(message)) << message;
  }
}

TEST(GgufBadFileTest, TruncatedData) {
  const std::string& bytes = Q8Bytes();
  const Layout& layout = Q8Layout();
  const TempDir dir;
  const fs::path path = dir.Write("truncated.gguf", bytes.substr(0, bytes.size() - 1));
  std::vector<uint64_t> sizes = {bytes.size() - 1};
  for (int step = 9; step >= 0; --step)
    sizes.push_back(layout.data_start + (bytes.size() - layout.data_start) * step / 10);
  sizes.push_back(layout.header_end + 1);
  for (const uint64_t size : sizes) {
    SCOPED_TRACE(testing::Message() << "truncated to " << size << " bytes");
    fs::resize_file(path, size);
    const std::string message = ErrorOf([&] { GgufFile::Open(path); });
    ExpectMentions(message, {path.string(), "truncated?"});
  }
  ExpectMentions(ErrorOfBytes(bytes.substr(0, bytes.size() - 1)), {"tensor 'output_norm.weight'", "past the end"});
}

TEST(GgufBadFileTest, MissingAndEmptyFiles) {
  ExpectMentions(ErrorOf([&] { GgufFile::Open("/no/such/file.gguf"); }), {"/no/such/file.gguf", "cannot open"});
  ExpectMentions(ErrorOfBytes(""), {"not a GGUF file"});
}

// --- hostile headers -----------------------------------------------------------------------------

TEST(GgufBadFileTest, WrongMagic) {
  std::string bytes = Q8Bytes().substr(0, 4096);
  bytes[3] = 'G';
  ExpectMentions(ErrorOfBytes(bytes), {"not a GGUF file", "47475547"});
}

TEST(GgufBadFileTest, UnsupportedVersions) {
  std::string bytes = Q8Bytes().substr(0, 4096);
  Put32(bytes, 4, 1);
  ExpectMentions(ErrorOfBytes(bytes), {"GGUF version 1 is not supported"});
  Put32(bytes, 4, 4);
  ExpectMentions(ErrorOfBytes(bytes), {"GGUF version 4 is not supported"});
  Put32(bytes, 4, 0x03000000);
  ExpectMentions(ErrorOfBytes(bytes), {"big-endian"});
}

TEST(GgufBadFileTest, ImpossibleCounts) {
  std::string tensors = Q8Bytes().substr(0, 4096);
  Put64(tensors, 8, uint64_t{1} << 60);
  ExpectMentions(ErrorOfBytes(tensors), {"tensor count 1152921504606846976 is more than"});

  std::string entries = Q8Bytes().substr(0, 4096);
  Put64(entries, 16, uint64_t{1} << 60);
  ExpectMentions(ErrorOfBytes(entries), {"metadata entry count 1152921504606846976 is more than"});

  // Plausible before the metadata, too many for what is left after it.
  std::string after_metadata = Q8Bytes().substr(0, Q8Layout().entries_end + 64);
  Put64(after_metadata, 8, 3);
  ExpectMentions(ErrorOfBytes(after_metadata), {"tensor count 3", "after the metadata"});

  std::string elements = Q8Bytes();
  Put64(elements, Q8Layout().entry("tokenizer.ggml.tokens").value_at + 4, uint64_t{1} << 50);
  ExpectMentions(ErrorOfBytes(elements), {"metadata 'tokenizer.ggml.tokens'", "array element count 1125899906842624"});
}

TEST(GgufBadFileTest, StringLengthPastTheEnd) {
  std::string key = Q8Bytes().substr(0, 4096);
  Put64(key, 24, uint64_t{1} << 40);
  ExpectMentions(ErrorOfBytes(key), {"metadata entry 0", "string length 1099511627776", "past the end"});

  std::string value = Q8Bytes();
  Put64(value, Q8Layout().entry("tokenizer.chat_template").value_at, value.size());
  ExpectMentions(ErrorOfBytes(value), {"metadata 'tokenizer.chat_template'", "string length 16356128"});

  std::string element = Q8Bytes();
  Put64(element, Q8Layout().entry("tokenizer.ggml.tokens").value_at + 12, ~uint64_t{0});
  ExpectMentions(ErrorOfBytes(element), {"metadata 'tokenizer.ggml.tokens' element 0", "string length"});
}

TEST(GgufBadFileTest, BadMetadataValues) {
  const Layout& layout = Q8Layout();
  std::string type = Q8Bytes();
  Put32(type, layout.entry("general.name").type_at, 13);
  ExpectMentions(ErrorOfBytes(type), {"metadata 'general.name'", "unknown metadata value type 13"});

  std::string element_type = Q8Bytes();
  Put32(element_type, layout.entry("tokenizer.ggml.token_type").value_at, 99);
  ExpectMentions(ErrorOfBytes(element_type),
                 {"metadata 'tokenizer.ggml.token_type'", "unknown metadata value type 99"});

  std::string boolean = Q8Bytes();
  boolean[layout.entry("tokenizer.ggml.add_bos_token").value_at] = 2;
  ExpectMentions(ErrorOfBytes(boolean), {"metadata 'tokenizer.ggml.add_bos_token'", "bool value is 2"});

  std::string empty_key = Q8Bytes().substr(0, 4096);
  Put64(empty_key, 24, 0);
  ExpectMentions(ErrorOfBytes(empty_key), {"metadata entry 0", "empty key"});
}

TEST(GgufBadFileTest, DuplicateKey) {
  const std::string kv = Kv("general.name", 8, GgufString("again"));
  ExpectMentions(ErrorOfBytes(WithEntries(Q8Bytes(), kv, 1)), {"metadata 'general.name'", "appears twice"});
}

TEST(GgufBadFileTest, BadAlignment) {
  for (const uint32_t alignment : {3u, 0u, 96u}) {
    SCOPED_TRACE(alignment);
    const std::string kv = Kv("general.alignment", 4, Bytes32(alignment));
    ExpectMentions(ErrorOfBytes(WithEntries(Q8Bytes(), kv, 1)),
                   {"metadata 'general.alignment'", "must be a power of two"});
  }
  const std::string text = Kv("general.alignment", 8, GgufString("32"));
  ExpectMentions(ErrorOfBytes(WithEntries(Q8Bytes(), text, 1)), {"metadata 'general.alignment'", "type string"});
}

// --- hostile tensor infos ------------------------------------------------------------------------

TEST(GgufBadFileTest, BadDimensions) {
  const Layout::Info& embedding = Q8Layout().tensor("token_embd.weight");
  std::string many = Q8Bytes();
  Put32(many, embedding.n_dims_at, 9);
  ExpectMentions(ErrorOfBytes(many), {"tensor 'token_embd.weight'", "9 dimensions (a tensor has 1 to 4)"});

  std::string none = Q8Bytes();
  Put32(none, embedding.n_dims_at, 0);
  ExpectMentions(ErrorOfBytes(none), {"tensor 'token_embd.weight'", "0 dimensions"});

  std::string zero = Q8Bytes();
  Put64(zero, embedding.dims_at + 8, 0);
  ExpectMentions(ErrorOfBytes(zero), {"tensor 'token_embd.weight'", "dimension 1 is 0"});

  std::string overflow = Q8Bytes();
  Put64(overflow, embedding.dims_at, uint64_t{1} << 40);
  Put64(overflow, embedding.dims_at + 8, uint64_t{1} << 40);
  ExpectMentions(ErrorOfBytes(overflow), {"tensor 'token_embd.weight'", "more elements than fit in 63 bits"});

  std::string row = Q8Bytes();
  Put64(row, embedding.dims_at, 48);
  ExpectMentions(ErrorOfBytes(row),
                 {"tensor 'token_embd.weight'", "row length 48 is not a multiple of Q8_0's block of 32"});
}

TEST(GgufBadFileTest, BadTypesAndNames) {
  const Layout& layout = Q8Layout();
  for (const uint32_t type : {99u, 4u, 40u}) {
    std::string bytes = Q8Bytes();
    Put32(bytes, layout.tensor("blk.0.attn_q.bias").type_at, type);
    ExpectMentions(ErrorOfBytes(bytes), {"tensor 'blk.0.attn_q.bias'", "unknown ggml type " + std::to_string(type)});
  }
  std::string twice = Q8Bytes();
  twice.replace(layout.tensor("blk.1.ffn_up.weight").at + 8, 5, "blk.0");
  ExpectMentions(ErrorOfBytes(twice), {"tensor 'blk.0.ffn_up.weight' appears twice"});

  std::string empty = Q8Bytes().substr(0, layout.header_end);
  Put64(empty, layout.tensors[0].at, 0);
  ExpectMentions(ErrorOfBytes(empty), {"tensor info 0", "empty tensor name"});
}

TEST(GgufBadFileTest, MisplacedData) {
  const Layout& layout = Q8Layout();
  const uint64_t data_size = Q8Bytes().size() - layout.data_start;

  std::string unaligned = Q8Bytes();
  const uint64_t norm_at = layout.tensor("blk.0.attn_norm.weight").offset_at;
  Put64(unaligned, norm_at, Get64(unaligned, norm_at) + 4);
  ExpectMentions(ErrorOfBytes(unaligned),
                 {"tensor 'blk.0.attn_norm.weight'", "offset 10331652 is not a multiple of the alignment 32"});

  for (const uint64_t offset : {(data_size + 31) / 32 * 32, uint64_t{1} << 40, ~uint64_t{31}}) {
    SCOPED_TRACE(offset);
    std::string past = Q8Bytes();
    Put64(past, layout.tensor("output_norm.weight").offset_at, offset);
    ExpectMentions(ErrorOfBytes(past), {"tensor 'output_norm.weight'", "past the end of the data section"});
  }

  std::string overlap = Q8Bytes();
  Put64(overlap, layout.tensor("blk.0.attn_norm.weight").offset_at, 10331648 - 128);
  ExpectMentions(ErrorOfBytes(overlap), {"tensors 'token_embd.weight' [0, 10331648) and 'blk.0.attn_norm.weight' "
                                         "[10331520, 10331776) overlap"});

  std::string same = Q8Bytes();
  Put64(same, layout.tensor("output_norm.weight").offset_at,
        Get64(same, layout.tensor("blk.1.attn_norm.weight").offset_at));
  ExpectMentions(ErrorOfBytes(same), {"'blk.1.attn_norm.weight'", "'output_norm.weight'", "overlap"});
}

// --- hostile tokenizer ---------------------------------------------------------------------------

TEST(GgufBadFileTest, RefusesOtherTokenizers) {
  const Layout& layout = Q8Layout();
  const TempDir dir;
  const auto vocab_error = [&](const std::string& bytes) {
    const fs::path path = dir.Write("tokenizer.gguf", bytes);
    const std::string message = ErrorOf([&] { TokenizerVocabFromGguf(GgufFile::Open(path)); });
    ExpectMentions(message, {path.string()});
    return message;
  };
  std::string model = Q8Bytes();
  model.replace(layout.entry("tokenizer.ggml.model").value_at + 8, 4, "bert");
  ExpectMentions(vocab_error(model), {"'tokenizer.ggml.model'", "tokenizer 'bert' is not supported"});

  std::string pre = Q8Bytes();
  pre.replace(layout.entry("tokenizer.ggml.pre").value_at + 8, 5, "llama");
  ExpectMentions(vocab_error(pre), {"'tokenizer.ggml.pre'", "pre-tokenizer 'llama' is not supported"});

  std::string type = Q8Bytes();
  Put32(type, layout.entry("tokenizer.ggml.token_type").value_at + 12 + 4 * 5, 6);
  ExpectMentions(vocab_error(type), {"'tokenizer.ggml.token_type'", "token 5 ('&') has type 6"});

  std::string count = Q8Bytes();
  count.replace(layout.entry("tokenizer.ggml.token_type").at + 8, 25, "tokenizer.ggml.token_tipe");
  ExpectMentions(vocab_error(count), {"'tokenizer.ggml.token_type'", "has 0 entries for 151936 tokens"});

  std::string merge = Q8Bytes();
  merge[layout.entry("tokenizer.ggml.merges").value_at + 12 + 8 + 2] = 'x';  // "Ġ Ġ" -> "ĠxĠ"
  ExpectMentions(vocab_error(merge), {"'tokenizer.ggml.merges'", "merge 0 ('ĠxĠ') is not two tokens"});
}

}  // namespace
}  // namespace qvk
