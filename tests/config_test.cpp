// config.json and generation_config.json: the qwen2-tiny fixture, YaRN in both the legacy
// rope_scaling and the transformers 5 rope_parameters forms, transformers' sliding-window layer
// rule, and refusals that name the field and its value.
// Sections: helpers / ModelConfig / GenerationConfig
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/config.h"
#include "tests/test_util.h"

namespace qvk {
namespace {

using test::ErrorOf;
using test::ExpectMentions;

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kTiny = test::TestDataDir() / "qwen2-tiny";

// --- helpers -------------------------------------------------------------------------------------

class ConfigFiles {
 public:
  fs::path Write(const std::string& text) const { return dir_.Write("config.json", text); }
  ModelConfig Load(const json& j) const { return ModelConfig::FromJsonFile(Write(j.dump())); }
  // The message of the Error loading `text` throws, or a marker that fails every substring check.
  std::string ErrorOfText(const std::string& text) const {
    return test::ErrorOf([&] { ModelConfig::FromJsonFile(Write(text)); });
  }
  std::string ErrorOf(const json& j) const { return ErrorOfText(j.dump()); }
  const fs::path& dir() const { return dir_.path(); }

 private:
  test::TempDir dir_;
};

json TinyConfig() {
  std::ifstream in(kTiny / "config.json");
  return json::parse(in);
}

// --- ModelConfig -------------------------------------------------------------------------------

TEST(ModelConfigTest, ReadsQwen2Tiny) {
  const ModelConfig c = ModelConfig::FromJsonFile(kTiny / "config.json");
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.hidden_size, 64u);
  EXPECT_EQ(c.intermediate_size, 160u);
  EXPECT_EQ(c.num_layers, 2u);
  EXPECT_EQ(c.num_heads, 4u);
  EXPECT_EQ(c.num_kv_heads, 2u);
  EXPECT_EQ(c.head_dim, 16u);
  EXPECT_EQ(c.vocab_size, 151936u);
  EXPECT_EQ(c.max_position_embeddings, 32768u);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_FALSE(c.yarn.has_value());
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.layer_window, (std::vector<uint32_t>{0, 0}));  // use_sliding_window is false
  EXPECT_EQ(c.bos_token_id, 151643u);
  EXPECT_EQ(c.eos_token_ids, (std::vector<uint32_t>{151645}));
}

TEST(ModelConfigTest, DefaultsAndExplicitHeadDim) {
  const ConfigFiles files;
  json j = TinyConfig();
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j["head_dim"] = 32;
  j["eos_token_id"] = {151645, 151643};
  const ModelConfig c = files.Load(j);
  EXPECT_EQ(c.num_kv_heads, 4u);  // absent: one KV head per query head
  EXPECT_EQ(c.head_dim, 32u);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<uint32_t>{151645, 151643}));
}

TEST(ModelConfigTest, ReadsYarnRopeScaling) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = files.Load(j);
  ASSERT_TRUE(c.yarn.has_value());
  EXPECT_EQ(c.yarn->factor, 4.0);
  EXPECT_EQ(c.yarn->original_max_position_embeddings, 8192u);
  EXPECT_EQ(c.yarn->beta_fast, 32.0);
  EXPECT_EQ(c.yarn->beta_slow, 1.0);
  EXPECT_FALSE(c.yarn->attention_factor.has_value());
  EXPECT_FALSE(c.yarn->mscale.has_value());
  EXPECT_TRUE(c.yarn->truncate);
  EXPECT_EQ(c.rope_theta, 1e6);

  j["rope_scaling"] = {{"rope_type", "yarn"},     {"factor", 2},   {"beta_fast", 16},       {"beta_slow", 2},
                       {"attention_factor", 1.5}, {"mscale", 0.7}, {"mscale_all_dim", 0.7}, {"truncate", false}};
  c = files.Load(j);
  ASSERT_TRUE(c.yarn.has_value());
  EXPECT_EQ(c.yarn->factor, 2.0);
  EXPECT_EQ(c.yarn->original_max_position_embeddings, 32768u);  // defaults to max_position_embeddings
  EXPECT_EQ(c.yarn->beta_fast, 16.0);
  EXPECT_EQ(c.yarn->beta_slow, 2.0);
  EXPECT_EQ(c.yarn->attention_factor, 1.5);
  EXPECT_EQ(c.yarn->mscale, 0.7);
  EXPECT_EQ(c.yarn->mscale_all_dim, 0.7);
  EXPECT_FALSE(c.yarn->truncate);
}

TEST(ModelConfigTest, ReadsTransformers5RopeParameters) {
  const ConfigFiles files;
  json j = TinyConfig();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
  ModelConfig c = files.Load(j);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_FALSE(c.yarn.has_value());

  j["rope_parameters"] = {
      {"rope_type", "yarn"}, {"rope_theta", 1e6}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  j["max_position_embeddings"] = 131072;
  c = files.Load(j);
  EXPECT_EQ(c.rope_theta, 1e6);
  ASSERT_TRUE(c.yarn.has_value());
  EXPECT_EQ(c.yarn->factor, 4.0);
  EXPECT_EQ(c.yarn->original_max_position_embeddings, 32768u);
}

TEST(ModelConfigTest, RefusesOtherRopeTypesByName) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ExpectMentions(files.ErrorOf(j), {"unsupported RoPE type 'linear' in rope_scaling"});
  j["rope_scaling"] = {{"rope_type", "yarn"}};
  ExpectMentions(files.ErrorOf(j), {"rope_scaling.factor = (absent): required"});
}

// transformers 5, Qwen2Config.__post_init__: sliding_window is kept only with use_sliding_window;
// layer i slides when it is kept and i >= max_window_layers; explicit layer_types win.
TEST(ModelConfigTest, SlidingWindowLayersAsTransformersDecides) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["num_hidden_layers"] = 3;
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 1;
  j["sliding_window"] = 4096;
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{0, 4096, 4096}));

  j["max_window_layers"] = 0;
  j["sliding_window"] = 128;
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{128, 128, 128}));

  j["sliding_window"] = nullptr;  // no window at all
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{0, 0, 0}));

  j.erase("sliding_window");  // the dataclass default
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{4096, 4096, 4096}));

  j["use_sliding_window"] = false;
  j["sliding_window"] = 128;
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{0, 0, 0}));

  j["use_sliding_window"] = true;
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention"};
  EXPECT_EQ(files.Load(j).layer_window, (std::vector<uint32_t>{128, 0, 128}));
}

TEST(ModelConfigTest, RefusesBadLayerTypes) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["layer_types"] = {"full_attention"};
  ExpectMentions(files.ErrorOf(j), {"layer_types = [\"full_attention\"]", "one type per layer (2)"});
  j["layer_types"] = {"full_attention", "chunked_attention"};
  ExpectMentions(files.ErrorOf(j), {"layer 1 is \"chunked_attention\""});
  j["layer_types"] = {"full_attention", "sliding_attention"};  // use_sliding_window is false
  ExpectMentions(files.ErrorOf(j), {"layer 1 slides but"});
}

TEST(ModelConfigTest, RefusesOtherArchitecturesByName) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["architectures"] = {"LlamaForCausalLM"};
  ExpectMentions(files.ErrorOf(j), {"config.json", "unsupported architecture 'LlamaForCausalLM'"});
  j = TinyConfig();
  j["model_type"] = "qwen3";
  ExpectMentions(files.ErrorOf(j), {"unsupported model_type 'qwen3'"});
  j = TinyConfig();
  j["quantization_config"] = {{"quant_method", "gptq"}};
  ExpectMentions(files.ErrorOf(j), {"quantization_config = {\"quant_method\":\"gptq\"}"});
  // The Qwen models QwenVK does not run are named with why, and the list of what it runs.
  j = TinyConfig();
  j["architectures"] = {"Qwen2VLForConditionalGeneration"};
  ExpectMentions(files.ErrorOf(j), {"'Qwen2VLForConditionalGeneration'", "vision-language", "Qwen3MoeForCausalLM"});
  j["architectures"] = {"Qwen2AudioForConditionalGeneration"};
  ExpectMentions(files.ErrorOf(j), {"an audio model", "Qwen2MoeForCausalLM"});
  j = TinyConfig();
  j["dual_chunk_attention_config"] = {{"chunk_size", 262144}};
  ExpectMentions(files.ErrorOf(j), {"dual_chunk_attention_config", "Qwen2.5-1M", "Qwen3ForCausalLM"});
}

// Qwen1.5: as many KV heads as query heads, an untied output projection.
TEST(ModelConfigTest, ReadsQwen15MultiHeadAttention) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["num_key_value_heads"] = j["num_attention_heads"];
  j["tie_word_embeddings"] = false;
  const ModelConfig c = files.Load(j);
  EXPECT_EQ(c.num_kv_heads, c.num_heads);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.moe.has_value());
}

TEST(ModelConfigTest, ReadsQwen3) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["model_type"] = "qwen3";
  j["hidden_size"] = 32;
  j["head_dim"] = 16;  // q is 4 x 16 = 64 wide, not hidden
  j["attention_bias"] = false;
  const ModelConfig c = files.Load(j);
  EXPECT_EQ(c.arch, Architecture::Qwen3);
  EXPECT_EQ(c.head_dim, 16u);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_TRUE(c.qk_norm);
}

TEST(ModelConfigTest, ReadsMixtureOfExpertsLayersAsTransformersDecides) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["architectures"] = {"Qwen2MoeForCausalLM"};
  j["model_type"] = "qwen2_moe";
  j["num_hidden_layers"] = 5;
  j.update({{"num_experts", 8},
            {"num_experts_per_tok", 2},
            {"moe_intermediate_size", 24},
            {"shared_expert_intermediate_size", 48},
            {"decoder_sparse_step", 2},
            {"mlp_only_layers", {3}}});
  ModelConfig c = files.Load(j);
  ASSERT_TRUE(c.moe.has_value());
  EXPECT_EQ(c.moe->num_experts, 8u);
  EXPECT_EQ(c.moe->experts_per_token, 2u);
  EXPECT_EQ(c.moe->expert_intermediate_size, 24u);
  EXPECT_EQ(c.moe->shared_expert_intermediate_size, 48u);
  EXPECT_FALSE(c.moe->norm_topk_prob);  // transformers' Qwen2MoeConfig default
  // (i + 1) % 2 == 0, and layer 3 listed as dense.
  EXPECT_EQ(c.layer_sparse, (std::vector<bool>{false, true, false, false, false}));

  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["model_type"] = "qwen3_moe";
  j.erase("decoder_sparse_step");
  j.erase("mlp_only_layers");
  c = files.Load(j);
  EXPECT_TRUE(c.moe->norm_topk_prob);  // Qwen3MoeConfig's default
  EXPECT_EQ(c.moe->shared_expert_intermediate_size, 0u);
  EXPECT_EQ(c.layer_sparse, std::vector<bool>(5, true));

  j["num_experts_per_tok"] = 9;
  ExpectMentions(files.ErrorOf(j), {"num_experts_per_tok = 9"});
  j["num_experts_per_tok"] = 2;
  j["mlp_only_layers"] = {5};
  ExpectMentions(files.ErrorOf(j), {"mlp_only_layers", "below 5"});
}

TEST(ModelConfigTest, RefusesIndivisibleHeads) {
  const ConfigFiles files;
  json j = TinyConfig();
  j["num_key_value_heads"] = 3;
  ExpectMentions(files.ErrorOf(j), {"num_key_value_heads = 3", "num_attention_heads (4) must be a multiple of it"});
  j = TinyConfig();
  j["num_attention_heads"] = 5;
  j["num_key_value_heads"] = 5;
  ExpectMentions(files.ErrorOf(j), {"num_attention_heads = 5", "hidden_size (64) must be a multiple of it"});
  j = TinyConfig();
  j["hidden_size"] = 60;  // head_dim 15: RoPE rotates pairs
  ExpectMentions(files.ErrorOf(j), {"head_dim = 15"});
}

TEST(ModelConfigTest, RefusesBadValuesNamingFieldAndValue) {
  const ConfigFiles files;
  const auto with = [](const std::string& key, const json& value) {
    json j = TinyConfig();
    j[key] = value;
    return j;
  };
  ExpectMentions(files.ErrorOf(with("hidden_size", -64)), {"hidden_size = -64"});
  ExpectMentions(files.ErrorOf(with("hidden_size", 64.5)), {"hidden_size = 64.5"});
  ExpectMentions(files.ErrorOf(with("hidden_size", 1 << 20)), {"hidden_size = 1048576", "[1, 65536]"});
  json missing = TinyConfig();
  missing.erase("vocab_size");
  ExpectMentions(files.ErrorOf(missing), {"vocab_size = (absent): required"});
  ExpectMentions(files.ErrorOf(with("num_hidden_layers", 0)), {"num_hidden_layers = 0"});
  ExpectMentions(files.ErrorOf(with("rms_norm_eps", -1e-6)), {"rms_norm_eps = -1e-06"});
  ExpectMentions(files.ErrorOf(with("rope_theta", "big")), {"rope_theta = \"big\""});
  ExpectMentions(files.ErrorOf(with("tie_word_embeddings", 1)), {"tie_word_embeddings = 1"});
  ExpectMentions(files.ErrorOf(with("eos_token_id", 151936)), {"eos_token_id = 151936", "below 151936"});
  ExpectMentions(files.ErrorOf(with("hidden_act", "gelu")), {"hidden_act = \"gelu\""});
  // A nested value is shown two levels deep; one nested past the JSON depth limit is refused
  // while the file is parsed. Written as text, since building it as a json here would recurse.
  const auto deep_at = [&](const std::string& key, size_t depth) {
    json rest = TinyConfig();
    rest.erase(key);
    const std::string deep = std::string(depth, '[') + std::string(depth, ']');
    return files.ErrorOfText("{\"" + key + "\":" + deep + "," + rest.dump().substr(1));
  };
  ExpectMentions(deep_at("hidden_size", 50), {"hidden_size = [[[...]]]"});
  ExpectMentions(deep_at("eos_token_id", 50), {"eos_token_id = [[[...]]]"});
  ExpectMentions(deep_at("hidden_size", 100000), {"config.json: the JSON nests deeper than 64 levels"});
  ExpectMentions(files.ErrorOf(json::array()), {"config.json: is a JSON array"});
  ExpectMentions(files.ErrorOfText("{\"hidden_size\": "), {"config.json: not valid JSON"});
}

// --- GenerationConfig --------------------------------------------------------------------------

TEST(GenerationConfigTest, ReadsQwen2Tiny) {
  const GenerationConfig g = GenerationConfig::FromJsonFile(kTiny / "generation_config.json");
  EXPECT_EQ(g.eos_token_ids, (std::vector<uint32_t>{151645, 151643}));
  EXPECT_TRUE(g.do_sample);
  EXPECT_EQ(g.top_k, 20u);
  EXPECT_FLOAT_EQ(g.top_p, 0.8f);
  EXPECT_FLOAT_EQ(g.temperature, 0.7f);
  EXPECT_FLOAT_EQ(g.repetition_penalty, 1.05f);
  EXPECT_EQ(g.min_p, 0.0f);
}

TEST(GenerationConfigTest, MissingFileGivesDefaults) {
  const ConfigFiles files;
  const GenerationConfig g = GenerationConfig::FromJsonFile(files.dir() / "generation_config.json");
  EXPECT_TRUE(g.eos_token_ids.empty());
  EXPECT_FALSE(g.do_sample);
  EXPECT_EQ(g.temperature, 1.0f);
  EXPECT_EQ(g.top_p, 1.0f);
  EXPECT_EQ(g.top_k, 0u);
}

TEST(GenerationConfigTest, RefusesBadValues) {
  const ConfigFiles files;
  const auto error_of = [&](const std::string& text) {
    try {
      GenerationConfig::FromJsonFile(files.Write(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error thrown)");
  };
  ExpectMentions(error_of(R"({"top_p": 1.5})"), {"config.json", "top_p = 1.5", "[0, 1]"});
  ExpectMentions(error_of(R"({"temperature": "hot"})"), {"temperature = \"hot\""});
  ExpectMentions(error_of(R"({"top_k": -1})"), {"top_k = -1"});
  ExpectMentions(error_of(R"({"eos_token_id": [1, "x"]})"), {"eos_token_id = [1,\"x\"]"});
  ExpectMentions(error_of(R"({"repetition_penalty": 0})"), {"repetition_penalty = 0"});
  ExpectMentions(error_of("{"), {"config.json: not valid JSON"});
  EXPECT_EQ(GenerationConfig::FromJsonFile(files.Write(R"({"eos_token_id": 7, "min_p": 0.05})")).eos_token_ids,
            (std::vector<uint32_t>{7}));
}

}  // namespace
}  // namespace qvk
