// Conformance with Hugging Face transformers, by the bars of the fixtures README (prefill logits,
// top-1, greedy decoding through the KV cache, full logits, attention maps), on the fixture model
// as safetensors (tests/data/qwen2-tiny, random weights, the real tokenizer and layout) and as
// the three GGUF files llama.cpp made of it and of a second K-quant model; on tiny Qwen1.5, Qwen3,
// Qwen3-MoE and Qwen2-MoE checkpoints (tests/data/family, scripts/dev/family_reference.py) and
// llama.cpp's f16 GGUF of each but the Qwen2-MoE with a dense layer (their own tokenizer), with the
// MoE models' expert choice too; plus the engine's own promises (prefix reuse and decode agree with a fresh
// prefill, host-resident weights, limits).
// Sections: bars and cases / the model fixture / conformance / MoE routing / engine promises
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <span>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gpu/device.h"
#include "gpu/graph.h"
#include "model/engine.h"
#include "model/forward.h"
#include "model/model_files.h"
#include "model/weights.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

// --- bars and cases ------------------------------------------------------------------------------

const std::filesystem::path kData = qvk::test::TestDataDir();

struct Bars {
  double max_abs, max_rms, top1_margin;
};
constexpr Bars kFloatBars{0.10, 0.03, 0.2};      // weights stored as F32/F16/BF16
constexpr Bars kQuantizedBars{0.25, 0.08, 0.5};  // quantized GGUF, against its own dequantized weights
constexpr double kAttentionMaxAbs = 2e-3;
// Routing is compared where the k-th best router logit leads the next by this much: far more than
// an f32 engine's error in the router logits, so a choice that differs there is a bug.
constexpr double kRouterMargin = 1e-3;
constexpr double kRouterWeightMaxAbs = 1e-3;

// The prompts whose every last-position logit the reference keeps (<prompt>.last_logits.f32).
constexpr const char* kEveryPrompt[] = {"chat_en", "chat_multi", "text", "long"};
constexpr const char* kChatEnglishOnly[] = {"chat_en"};

struct ModelCase {
  const char* name;
  const char* model;      // under tests/data
  const char* reference;  // the folder of reference.json, under tests/data
  bool quantized;
  std::span<const char* const> full_logits;  // prompts checked by bar 4
  const char* tokenizer = nullptr;           // a folder under tests/data lending its tokenizer files, which
                                             // several models share rather than each keeping a 6 MB copy
};

void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << c.name;
}

const ModelCase kSafetensors{"safetensors_bf16", "qwen2-tiny", "reference/hf/qwen2-tiny", false, kEveryPrompt};
// bf16 Hugging Face folders; qwen2moe-tiny has a dense layer (mlp_only_layers), which llama.cpp's
// converter refuses, so it has no GGUF.
const ModelCase kQwen3{"qwen3_bf16", "family/qwen3-tiny", "family/qwen3-tiny",
                       false,        kChatEnglishOnly,    "family/qwen3-tokenizer"};
const ModelCase kQwen3Moe{"qwen3moe_bf16", "family/qwen3moe-tiny", "family/qwen3moe-tiny",
                          false,           kChatEnglishOnly,       "family/qwen3-tokenizer"};
const ModelCase kQwen2Moe{"qwen2moe_bf16", "family/qwen2moe-tiny", "family/qwen2moe-tiny",
                          false,           kChatEnglishOnly,       "qwen2-tiny"};
// Qwen1.5's multi-head attention (as many KV heads as query heads), and Qwen1.5-MoE-A2.7B's kind of
// Qwen2-MoE: every layer sparse, as llama.cpp's qwen2moe converts it.
const ModelCase kQwen15{"qwen15_bf16", "family/qwen1.5-tiny", "family/qwen1.5-tiny",
                        false,         kChatEnglishOnly,      "qwen2-tiny"};
const ModelCase kQwen2MoeSparse{"qwen2moe_sparse_bf16",
                                "family/qwen2moe-sparse-tiny",
                                "family/qwen2moe-sparse-tiny",
                                false,
                                kChatEnglishOnly,
                                "qwen2-tiny"};
// llama.cpp's f16 conversions of the same bf16 weights (exact in f16), so the references above
// hold for them; their tokenizer is the one the GGUF metadata carries.
const ModelCase kQwen3Gguf{"qwen3_gguf_f16", "family/qwen3-tiny.gguf", "family/qwen3-tiny", false, kChatEnglishOnly};
const ModelCase kQwen3MoeGguf{"qwen3moe_gguf_f16", "family/qwen3moe-tiny.gguf", "family/qwen3moe-tiny", false,
                              kChatEnglishOnly};
const ModelCase kQwen15Gguf{"qwen15_gguf_f16", "family/qwen1.5-tiny.gguf", "family/qwen1.5-tiny", false,
                            kChatEnglishOnly};
const ModelCase kQwen2MoeSparseGguf{"qwen2moe_sparse_gguf_f16", "family/qwen2moe-sparse-tiny.gguf",
                                    "family/qwen2moe-sparse-tiny", false, kChatEnglishOnly};

std::vector<float> ReadFloats(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> v(std::filesystem::file_size(path) / 4);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// Errors of our logits at the reference's 20 ids; returns their RMS, fails past the bar.
double CompareTop(std::span<const float> ours, const nlohmann::json& ref, double max_abs, const std::string& where) {
  double sum_sq = 0;
  const auto& ids = ref["ids"];
  for (size_t i = 0; i < ids.size(); ++i) {
    const double err = ours[ids[i].get<uint32_t>()] - ref["logits"][i].get<double>();
    EXPECT_LE(std::abs(err), max_abs) << where << " id " << ids[i];
    sum_sq += err * err;
  }
  return std::sqrt(sum_sq / static_cast<double>(ids.size()));
}

uint32_t Argmax(std::span<const float> v) {
  return static_cast<uint32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// The whole logits row at the last position of a prefill that continues what the cache holds.
std::vector<float> PrefillRow(Engine& engine, std::span<const uint32_t> ids) {
  engine.Prefill(ids, LastLogits{{.full_row = true}});
  const auto row = engine.logits();
  return {row.begin(), row.end()};
}

double Margin(const nlohmann::json& ref) {
  return ref["logits"][0].get<double>() - ref["logits"][1].get<double>();
}

// Where a MoE prompt's logits can be held to the bars. At a near tie of the router (the k-th logit
// ahead of the next by less than kRouterMargin) either choice is right, and the engine may take
// the other: in a sparse layer before the last, that changes the position's keys and values for
// every later layer, and so every later position; in the last, that position's logits alone.
// Dense models' prompts are comparable everywhere.
struct ComparablePositions {
  size_t first_flip = std::numeric_limits<size_t>::max();  // this position and later ones are not
  std::set<size_t> last_layer_ties;
  bool operator()(size_t p) const { return p < first_flip && !last_layer_ties.contains(p); }
};

// The positions before any near tie of sparse layers [0, layer) of `routing`.
size_t FirstFlipBefore(const nlohmann::json& routing, size_t layer) {
  size_t first = std::numeric_limits<size_t>::max();
  for (size_t i = 0; i < layer; ++i) {
    const auto& margins = routing["margin"][i];
    for (size_t p = 0; p < margins.size() && p < first; ++p) {
      if (margins[p].get<double>() < kRouterMargin) first = p;
    }
  }
  return first;
}

ComparablePositions Comparable(const nlohmann::json& prompt) {
  ComparablePositions comparable;
  if (!prompt.contains("routing")) return comparable;
  const auto& routing = prompt["routing"];
  const size_t last = routing["margin"].size() - 1;
  comparable.first_flip = FirstFlipBefore(routing, last);
  const auto& margins = routing["margin"][last];
  for (size_t p = 0; p < margins.size(); ++p) {
    if (margins[p].get<double>() < kRouterMargin) comparable.last_layer_ties.insert(p);
  }
  return comparable;
}

// --- the model fixture ---------------------------------------------------------------------------

class ModelTest : public GpuTest {
 protected:
  void Open(const ModelCase& c) {
    model_case_ = c;
    reference_dir_ = kData / c.reference;
    std::ifstream in(reference_dir_ / "reference.json");
    reference_ = nlohmann::json::parse(in);
    files_ = std::make_unique<ModelFiles>(c.tokenizer == nullptr
                                              ? kData / c.model
                                              : LinkModelFolder(kData / c.model, kData / c.tokenizer, folder_.path()));
    weights_ = std::make_unique<ModelWeights>(LoadWeights(device(), files_->config(), files_->weights()));
    engine_ = std::make_unique<Engine>(device(), files_->config(), *weights_, EngineOptions{.context = 2048});
  }
  void TearDown() override {
    engine_.reset();
    weights_.reset();
    GpuTest::TearDown();
  }
  static std::vector<uint32_t> Ids(const nlohmann::json& prompt) {
    return prompt["input_ids"].get<std::vector<uint32_t>>();
  }
  const nlohmann::json& Prompt(const std::string& name) { return reference_["prompts"][name]; }
  Bars bars() const { return model_case_.quantized ? kQuantizedBars : kFloatBars; }

  void CheckPrompt(const std::string& name) {
    const auto& prompt = Prompt(name);
    const auto ids = Ids(prompt);
    const auto& positions = prompt["positions"];
    ASSERT_EQ(positions.size(), ids.size());

    // Bars 1 and 2 over one batched prefill, at the positions a MoE router's near ties leave comparable.
    const ComparablePositions comparable = Comparable(prompt);
    double sum_sq = 0;
    size_t compared_rows = 0;
    std::vector<float> last;
    auto check_row = [&](uint32_t p, std::span<const float> logits) {
      if (p + 1 == ids.size()) last.assign(logits.begin(), logits.end());
      if (!comparable(p)) return;
      ++compared_rows;
      const auto& ref = positions[p];
      const double rms = CompareTop(logits, ref, bars().max_abs, name + " position " + std::to_string(p));
      sum_sq += rms * rms;
      if (Margin(ref) >= bars().top1_margin) {
        EXPECT_EQ(Argmax(logits), ref["ids"][0].get<uint32_t>()) << name << " top-1 at position " << p;
      }
    };
    engine_->Prefill(ids, AllLogits{check_row});
    ASSERT_GT(compared_rows, 0u) << name << ": a near tie at the first position leaves nothing to compare";
    EXPECT_LE(std::sqrt(sum_sq / static_cast<double>(compared_rows)), bars().max_rms) << name << " prefill RMS";
    // The last position and the decoding after it, unless a near tie came before.
    if (!comparable(ids.size() - 1)) return;

    // Bar 4: every logit of the last position.
    if (std::ranges::find(model_case_.full_logits, name) != model_case_.full_logits.end()) {
      const auto full = ReadFloats(reference_dir_ / (name + ".last_logits.f32"));
      ASSERT_EQ(full.size(), last.size());
      double full_sq = 0;
      for (size_t i = 0; i < full.size(); ++i) full_sq += (last[i] - full[i]) * static_cast<double>(last[i] - full[i]);
      EXPECT_LE(std::sqrt(full_sq / static_cast<double>(full.size())), bars().max_rms) << name << " full-logit RMS";
    }

    // Bar 3: greedy decoding through the KV cache, until the reference's margin gets thin.
    const auto& greedy = prompt["greedy"];
    const auto expected = greedy["tokens"].get<std::vector<uint32_t>>();
    uint32_t token = Argmax(last);
    if (Margin(positions[ids.size() - 1]) < bars().top1_margin) return;
    ASSERT_EQ(token, expected[0]) << name << " first greedy token";
    size_t compared = 0;
    for (size_t k = 0; k < greedy["steps"].size(); ++k) {
      const auto& step = greedy["steps"][k];
      ASSERT_EQ(step["input_id"].get<uint32_t>(), token);
      engine_->Decode(token, {.full_row = true});
      const auto logits = engine_->logits();
      const double rms = CompareTop(logits, step, bars().max_abs, name + " greedy step " + std::to_string(k));
      EXPECT_LE(rms, bars().max_rms) << name << " greedy step " << k;
      if (Margin(step) < bars().top1_margin) break;
      token = engine_->argmax();
      ASSERT_EQ(token, Argmax(logits)) << "GPU argmax disagrees with the logits it read";
      ASSERT_EQ(token, expected[k + 1]) << name << " greedy token " << k + 1;
      ++compared;
    }
  }

  // One profiled forward pass over `weights` of the first `tokens` of the reference's first prompt's
  // first `prompt` ids (a run state and cache of `prompt` tokens, from position 0): each label's
  // dispatches, and the kernels they ran (names without the weight type).
  struct Dispatches {
    std::map<std::string, uint32_t> counts;
    std::map<std::string, std::set<std::string>> kernels;
  };
  void ProfileForward(const ModelWeights& weights, uint32_t prompt, uint32_t tokens, Dispatches* out) {
    const ModelConfig& c = files_->config();
    RunState s(device(), c, weights, prompt, 1, prompt + 1);
    KvCache kv(device(), c, prompt + 1);
    std::vector<uint32_t> ids = Ids(reference_["prompts"].begin().value()), positions(prompt);
    ASSERT_GE(ids.size(), prompt);
    ids.resize(prompt);
    for (uint32_t p = 0; p < prompt; ++p) positions[p] = p;
    device().Upload(s.ids, 0, std::as_bytes(std::span(ids)));
    device().Upload(s.positions, 0, std::as_bytes(std::span(positions)));
    Graph g(device(), /*profile=*/true);
    RecordForward(g, c, weights, s, kv, tokens, 0);
    g.Run();
    for (const DispatchTiming& t : g.Timings()) {
      ++out->counts[t.label];
      out->kernels[t.label].insert(std::string(t.kernel.substr(0, t.kernel.rfind('_'))));
    }
  }

  ModelCase model_case_{};
  TempDir folder_;
  std::filesystem::path reference_dir_;
  nlohmann::json reference_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Engine> engine_;
};

// --- conformance ---------------------------------------------------------------------------------

// Every model against its reference.
class ConformanceTest : public ModelTest, public ::testing::WithParamInterface<ModelCase> {
 protected:
  void SetUp() override {
    ModelTest::SetUp();
    if (!IsSkipped()) Open(GetParam());
  }
};

// The engine's own promises, on the safetensors model.
class EngineTest : public ModelTest {
 protected:
  void SetUp() override {
    ModelTest::SetUp();
    if (!IsSkipped()) Open(kSafetensors);
  }
};

TEST_P(ConformanceTest, ChatEnglish) {
  CheckPrompt("chat_en");
}
TEST_P(ConformanceTest, ChatMultilingual) {
  CheckPrompt("chat_multi");
}
TEST_P(ConformanceTest, PlainText) {
  CheckPrompt("text");
}
TEST_P(ConformanceTest, LongPromptAcrossChunks) {
  CheckPrompt("long");
}

// Bar 5, through the capture a viewer uses: every head of every layer, one layer at a time.
TEST_P(ConformanceTest, AttentionProbabilities) {
  const auto ids = Ids(Prompt("chat_en"));
  const ModelConfig& c = files_->config();
  std::vector<AttentionRequest> layers;
  for (uint32_t l = 0; l < c.num_layers; ++l) layers.push_back(EveryHead(c, l, HeadReduce::Mean));
  std::vector<float> maps;
  for (const AttentionMap& layer : engine_->CaptureAttention(ids, layers)) {
    maps.insert(maps.end(), layer.values.begin(), layer.values.end());
  }
  const auto expected = ReadFloats(reference_dir_ / "attention.f32");
  const auto shape = Prompt("chat_en")["attention_shape"].get<std::vector<size_t>>();
  ASSERT_EQ(maps.size(), shape[0] * shape[1] * shape[2] * shape[3]);
  ASSERT_EQ(maps.size(), expected.size());
  double worst = 0;
  for (size_t i = 0; i < maps.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(maps[i]) - expected[i]));
  EXPECT_LE(worst, kAttentionMaxAbs);
}

TEST_P(ConformanceTest, PromptTokensMatchTheTokenizer) {
  for (const char* name : {"chat_en", "chat_multi", "text"}) {
    const auto& prompt = Prompt(name);
    EXPECT_EQ(files_->tokenizer().Encode(prompt["prompt_text"].get<std::string>()), Ids(prompt)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ConformanceTest,
    ::testing::Values(
        kSafetensors, ModelCase{"gguf_q8_0", "gguf/qwen2-tiny-q8_0.gguf", "reference/gguf/qwen2-tiny-q8_0", true, {}},
        ModelCase{"gguf_q4_k_m_q5_0", "gguf/qwen2-tiny-Q4_K_M.gguf", "reference/gguf/qwen2-tiny-Q4_K_M", true, {}},
        ModelCase{"gguf_q4_k_q6_k", "gguf/qwen2-kq-Q4_K_M.gguf", "reference/gguf/qwen2-kq-Q4_K_M", true, {}}, kQwen3,
        kQwen3Moe, kQwen2Moe, kQwen3Gguf, kQwen3MoeGguf, kQwen15, kQwen15Gguf, kQwen2MoeSparse, kQwen2MoeSparseGguf),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// Qwen3's template with enable_thinking=false (an empty think block after the generation prompt),
// run from the reference's ids.
class ThinkingOffConformanceTest : public ConformanceTest {};
TEST_P(ThinkingOffConformanceTest, ChatWithoutThinking) {
  CheckPrompt("chat_no_think");
}
INSTANTIATE_TEST_SUITE_P(Qwen3, ThinkingOffConformanceTest,
                         ::testing::Values(kQwen3, kQwen3Moe, kQwen3Gguf, kQwen3MoeGguf),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// --- MoE routing ---------------------------------------------------------------------------------

// Each sparse layer's chosen experts and their weights, at every position of every prompt in one
// forward, equal transformers' wherever the router's margin decides the choice; the layers the
// engine routes are exactly the reference's sparse layers (mlp_only_layers stay dense).
class MoeRoutingConformanceTest : public ConformanceTest {};
TEST_P(MoeRoutingConformanceTest, ChosenExpertsAndWeights) {
  const ModelConfig& c = files_->config();
  ASSERT_TRUE(c.moe.has_value());
  const uint32_t k = c.moe->experts_per_token;
  std::vector<uint32_t> sparse;
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    if (weights_->layers[l].moe) sparse.push_back(l);
  }
  size_t positions = 0, comparable = 0, compared = 0;
  for (const auto& [name, prompt] : reference_["prompts"].items()) {
    const auto ids = Ids(prompt);
    const auto tokens = static_cast<uint32_t>(ids.size());
    const auto& routing = prompt["routing"];
    ASSERT_EQ(sparse, routing["layers"].get<std::vector<uint32_t>>()) << name;

    RunState s(device(), c, *weights_, tokens, 1, tokens);
    KvCache kv(device(), c, tokens);
    std::vector<uint32_t> token_positions(tokens);
    for (uint32_t p = 0; p < tokens; ++p) token_positions[p] = p;
    device().Upload(s.ids, 0, std::as_bytes(std::span(ids)));
    device().Upload(s.positions, 0, std::as_bytes(std::span(token_positions)));
    Graph g(device());
    RecordForward(g, c, *weights_, s, kv, tokens, 0);
    g.Run();
    std::vector<uint32_t> experts(s.expert_ids.size() / 4);
    std::vector<float> expert_weights(experts.size());
    device().Download(s.expert_ids, 0, std::as_writable_bytes(std::span(experts)));
    device().Download(s.expert_weights, 0, std::as_writable_bytes(std::span(expert_weights)));

    for (size_t i = 0; i < sparse.size(); ++i) {
      // A near tie flipped in an earlier sparse layer changes this layer's input from there on.
      const size_t first_flip = FirstFlipBefore(routing, i);
      for (uint32_t p = 0; p < tokens; ++p) {
        ++positions;
        if (p >= first_flip) continue;
        ++comparable;
        if (routing["margin"][i][p].get<double>() < kRouterMargin) continue;
        ++compared;
        // The choice is a set: both sides as (expert, weight) by expert.
        std::vector<std::pair<uint32_t, float>> ours, theirs;
        for (uint32_t j = 0; j < k; ++j) {
          const size_t at = sparse[i] * s.routing_layer_stride / 4 + size_t{p} * k + j;
          ours.emplace_back(experts[at], expert_weights[at]);
          theirs.emplace_back(routing["experts"][i][p][j].get<uint32_t>(), routing["weights"][i][p][j].get<float>());
        }
        std::sort(ours.begin(), ours.end());
        std::sort(theirs.begin(), theirs.end());
        const std::string where = fmt::format("{} layer {} position {}", name, sparse[i], p);
        for (uint32_t j = 0; j < k; ++j) {
          ASSERT_EQ(ours[j].first, theirs[j].first) << where;
          EXPECT_NEAR(ours[j].second, theirs[j].second, kRouterWeightMaxAbs) << where << " expert " << ours[j].first;
        }
      }
    }
  }
  // Random routers decide almost everywhere, and near ties cut off at most half of the positions:
  // the comparison must not become vacuous.
  EXPECT_GE(comparable, positions / 2);
  EXPECT_GE(compared, comparable * 9 / 10);
}
// Decode runs the experts on the matvec kernel, the router's top-k folded into the router product
// (its last workgroup), the SwiGLU into gate|up and the router weights, the sum and a shared
// expert's gated output into down;
// prefill routes, groups the pairs by expert and runs one GEMM per projection for every expert, the
// SwiGLU in gate|up's epilogue there too. The dispatches say so.
TEST_P(MoeRoutingConformanceTest, DecodeOnMatVecsAndPrefillGroupedByExpert) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const ModelConfig& c = files_->config();
  const bool shared = c.moe->shared_expert_intermediate_size > 0;
  uint32_t sparse = 0;
  for (const LayerWeights& layer : weights_->layers) sparse += layer.moe ? 1 : 0;
  Dispatches prefill_dispatches, decode_dispatches;
  ASSERT_NO_FATAL_FAILURE(ProfileForward(*weights_, 9, 9, &prefill_dispatches));
  ASSERT_NO_FATAL_FAILURE(ProfileForward(*weights_, 9, 1, &decode_dispatches));
  const auto& [prefill, prefill_kernels] = prefill_dispatches;
  for (const char* label : {"route", "experts_group", "experts_gate_up", "experts_down", "moe_combine"}) {
    EXPECT_EQ(prefill.at(label), sparse) << label;
  }
  for (const char* label : {"experts_gate_up_swiglu", "experts_swiglu"}) {  // in gate|up's epilogue
    EXPECT_FALSE(prefill.contains(label)) << label;
  }
  // The SwiGLU is the coopmat kernel's own variant, and a flag of the tiled kernel's.
  EXPECT_EQ(prefill_kernels.at("experts_gate_up"),
            std::set<std::string>{info().coopmat_f16 ? "matmul_coopmat_experts_swiglu" : "matmul_experts"});
  // On matrix units, experts of weights rounded to f16 as they are staged (all but F16 and BF16)
  // read X rounded once a product, not in every tile.
  const auto rounds_x = [&](DType type) { return info().coopmat_f16 && type != DType::F16 && type != DType::BF16; };
  uint32_t gate_up_rounded = 0, down_rounded = 0;
  for (const LayerWeights& layer : weights_->layers) {
    if (!layer.moe) continue;
    for (const Projection& part : layer.moe->gate_up) gate_up_rounded += rounds_x(part.w.dtype) ? 1 : 0;
    down_rounded += rounds_x(layer.moe->down.dtype) ? 1 : 0;
  }
  for (const auto& [label, expected] :
       {std::pair{"experts_gate_up_x_f16", gate_up_rounded}, std::pair{"experts_down_x_f16", down_rounded}}) {
    EXPECT_EQ(prefill.contains(label) ? prefill.at(label) : 0u, expected) << label;
  }
  const auto& [decode, decode_kernels] = decode_dispatches;
  for (const auto& [label, kernel] :
       {std::pair{"router", "matvec_route"}, std::pair{"experts_gate_up", "matvec_experts"},
        std::pair{"experts_down", "matvec_experts"}}) {
    EXPECT_EQ(decode.at(label), sparse) << label;
    EXPECT_EQ(decode_kernels.at(label), std::set<std::string>{kernel}) << label;
  }
  for (const char* label : {"route", "experts_group", "experts_gate_up_swiglu", "experts_swiglu"}) {
    EXPECT_FALSE(decode.contains(label)) << label;
  }
  EXPECT_FALSE(decode.contains("moe_combine"));  // a shared expert's output added by experts_down
  EXPECT_EQ(decode.contains("shared_down") ? decode.at("shared_down") : 0u, shared ? sparse : 0u);
}

INSTANTIATE_TEST_SUITE_P(Moe, MoeRoutingConformanceTest,
                         ::testing::Values(kQwen3Moe, kQwen2Moe, kQwen3MoeGguf, kQwen2MoeSparse, kQwen2MoeSparseGguf),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// A quantized Qwen2-MoE shared expert goes through prefill as a dense layer's gate|up and down do:
// on matrix units its rows are rounded to f16 in chunks first (Qwen1.5-MoE-A2.7B Q4_K_M pp512
// 11 500 -> 13 850 on an H100, session 34); the tiled kernel reads the blocks themselves.
class SharedExpertTest : public ModelTest {
 protected:
  void SetUp() override {
    ModelTest::SetUp();
    if (!IsSkipped()) Open(kQwen2MoeSparse);
  }
};
TEST_F(SharedExpertTest, PrefillRoundsItsQuantizedRowsToF16) {
  DeviceInfo matrix_units = info();
  matrix_units.coopmat_f16 = true;
  // The run state's dequantization scratch holds the shared expert's largest chunk and its widest X
  // rounded to f16: on Qwen1.5-MoE-A2.7B's layer (matrices of its shapes, only their sizes read)
  // the shared down product's 5 632 columns, where q|k|v and o read 2 048.
  {
    const Buffer stand_in;
    const auto q4_k = [&](uint32_t rows, uint32_t cols) { return Matrix{&stand_in, 0, DType::Q4_K, rows, cols}; };
    ModelWeights a2_7b;
    LayerWeights& layer = a2_7b.layers.emplace_back();
    layer.qkv = {{q4_k(3 * 2048, 2048), 0}};
    layer.o = q4_k(2048, 2048);
    layer.moe = MoeLayerWeights{.router = Matrix{&stand_in, 0, DType::F32, 60, 2048},
                                .gate_up = {{q4_k(60 * 2 * 1408, 2048), 0}},
                                .down = q4_k(60 * 2048, 1408),
                                .shared_gate_up = {{q4_k(2 * 5632, 2048), 0}},
                                .shared_down = q4_k(2048, 5632),
                                .shared_gate = Matrix{&stand_in, 0, DType::F32, 1, 2048}};
    for (const uint32_t tokens : {5u, 512u}) {
      const VkDeviceSize scratch = PrefillDequantBytes(matrix_units, a2_7b, tokens);
      for (const Matrix& m : {layer.moe->shared_gate_up[0].w, layer.moe->shared_down}) {
        EXPECT_GE(scratch, std::min(PrefillDequantChunkBytes(m.rows, m.cols, tokens), kMaxPrefillDequantBytes) +
                               ops::RoundedXBytes(tokens, m.cols))
            << m.rows << " x " << m.cols << ", " << tokens << " tokens";
      }
    }
  }
  // The tiny model's prefill with its shared gate|up quantized to Q8_0 on loading (its down's 48
  // columns are no whole number of Q8_0 blocks, so it stays bf16): where prefill runs on matrix
  // units, one dequantize dispatch a layer before the shared gate|up product.
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const ModelConfig& c = files_->config();
  const ModelWeights q8 = LoadWeights(device(), c, files_->weights(), {.quantize = DType::Q8_0});
  uint32_t sparse = 0;
  for (const LayerWeights& layer : q8.layers) {
    ASSERT_TRUE(layer.moe.has_value() && layer.moe->shared_down.buffer != nullptr);
    ASSERT_EQ(layer.moe->shared_gate_up[0].w.dtype, DType::Q8_0);
    ++sparse;
  }
  Dispatches prefill;
  ASSERT_NO_FATAL_FAILURE(ProfileForward(q8, 9, 9, &prefill));
  EXPECT_EQ(prefill.counts.contains("shared_gate_up_dequantize") ? prefill.counts.at("shared_gate_up_dequantize") : 0u,
            info().coopmat_f16 ? sparse : 0u);
}

// --- engine promises -----------------------------------------------------------------------------

// The same weights as safetensors and as llama.cpp's Q8_0 GGUF agree, and quantizing the
// safetensors to Q8_0 while loading reproduces llama.cpp's file exactly.
TEST_F(EngineTest, SafetensorsAndQ8GgufAgree) {
  const auto ids = Ids(Prompt("chat_multi"));
  const std::vector<float> bf16 = PrefillRow(*engine_, ids);

  const ModelFiles gguf(kData / "gguf" / "qwen2-tiny-q8_0.gguf");
  const ModelWeights gguf_weights = LoadWeights(device(), gguf.config(), gguf.weights());
  Engine gguf_engine(device(), gguf.config(), gguf_weights, EngineOptions{.context = 64});
  const std::vector<float> q8 = PrefillRow(gguf_engine, ids);

  const ModelWeights quantized = LoadWeights(device(), files_->config(), files_->weights(), {.quantize = DType::Q8_0});
  EXPECT_EQ(quantized.layers[0].qkv[0].w.dtype, DType::Q8_0);
  Engine quantized_engine(device(), files_->config(), quantized, EngineOptions{.context = 64});
  const std::vector<float> ours_q8 = PrefillRow(quantized_engine, ids);

  // Quantization moves logits by up to a few tenths here; "agree" means it moves them exactly as
  // it does in transformers: at the last position, our q8_0-minus-bf16 difference equals the
  // difference between transformers' references for the two files, at every id both rank top-20.
  std::ifstream gguf_in(kData / "reference/gguf/qwen2-tiny-q8_0/reference.json");
  const auto gguf_reference = nlohmann::json::parse(gguf_in);
  const auto& hf_last = Prompt("chat_multi")["positions"].back();
  const auto& q8_last = gguf_reference["prompts"]["chat_multi"]["positions"].back();
  size_t compared = 0;
  for (size_t a = 0; a < hf_last["ids"].size(); ++a) {
    for (size_t b = 0; b < q8_last["ids"].size(); ++b) {
      if (hf_last["ids"][a] != q8_last["ids"][b]) continue;
      const uint32_t id = hf_last["ids"][a].get<uint32_t>();
      const double expected = q8_last["logits"][b].get<double>() - hf_last["logits"][a].get<double>();
      EXPECT_NEAR(q8[id] - bf16[id], expected, 0.02) << "id " << id;
      ++compared;
    }
  }
  EXPECT_GE(compared, 10u);
  for (size_t i = 0; i < bf16.size(); ++i) {
    ASSERT_NEAR(ours_q8[i], q8[i], 1e-5) << "logit " << i << ": our Q8_0 differs from llama.cpp's";
  }
}

// A conversation fed turn by turn (the cache keeps the shared prefix) gives the logits of the
// whole prompt computed at once; so does decoding the last token after a shorter prefill.
TEST_F(EngineTest, PrefixReuseAndDecodeMatchAFreshPrefill) {
  const auto ids = Ids(Prompt("chat_multi"));
  const std::vector<float> fresh = PrefillRow(*engine_, ids);

  engine_->Truncate(0);
  engine_->Prefill(std::span(ids).first(20), LastLogits{});
  const std::vector<float> reused = PrefillRow(*engine_, ids);
  EXPECT_EQ(engine_->cached_tokens(), ids);
  engine_->Truncate(0);
  engine_->Prefill(std::span(ids).first(ids.size() - 1), LastLogits{});
  engine_->Decode(ids.back(), {.full_row = true});
  const auto decoded = engine_->logits();
  for (size_t i = 0; i < fresh.size(); ++i) {
    ASSERT_NEAR(reused[i], fresh[i], 1e-4) << "prefix reuse, logit " << i;
    ASSERT_NEAR(decoded[i], fresh[i], 1e-4) << "decode, logit " << i;
  }
}

// An engine keeps one row of logits for the host until a prefill streams every position's: that
// prefill grows the room to LogitsRowsPerBatch rows (the chunk's, at most 64), once, and its
// last row equals a fresh prefill's last-position logits.
TEST_F(EngineTest, LogitsRowsForTheHostAreMadeWhenAPrefillStreamsThem) {
  const auto ids = Ids(Prompt("chat_multi"));
  ASSERT_GT(ids.size(), 8u);
  Engine engine(device(), files_->config(), *weights_, EngineOptions{.context = 64, .prefill_chunk = 8});
  const uint64_t vocab_row = uint64_t{4} * files_->config().vocab_size;
  const uint64_t working = engine.working_bytes();
  const std::vector<float> last = PrefillRow(engine, ids);
  EXPECT_EQ(engine.working_bytes(), working);
  std::vector<float> streamed;
  uint32_t rows = 0;
  const auto keep_last = [&](uint32_t position, std::span<const float> row) {
    EXPECT_EQ(position, rows++);
    streamed.assign(row.begin(), row.end());
  };
  engine.Prefill(ids, AllLogits{keep_last});
  EXPECT_EQ(rows, ids.size());
  EXPECT_GE(engine.working_bytes(), working + 7 * vocab_row);
  const uint64_t grown = engine.working_bytes();
  rows = 0;
  engine.Prefill(ids, AllLogits{keep_last});
  EXPECT_EQ(engine.working_bytes(), grown);
  ASSERT_EQ(streamed.size(), last.size());
  for (size_t i = 0; i < last.size(); ++i) ASSERT_NEAR(streamed[i], last[i], 1e-4) << "logit " << i;
}

// Prefill folds the SwiGLU into gate|up's product too, so a run state keeps no gate|up rows where
// each layer's gate|up is one product; `splits` holds attention's partials or a product's splits
// along K, whichever needs more, as neither outlives its dispatches; attention's activations lie in
// the MLP's memory, as they are dead before gate|up writes it. (The logits of every prefill here
// and in the conformance suites come through that epilogue and those buffers.)
TEST_F(EngineTest, PrefillKeepsOnlyActivationsThatLiveAtOnce) {
  const ModelConfig& c = files_->config();
  for (const LayerWeights& layer : weights_->layers) ASSERT_FALSE(GateUpNeedsScratch(info(), layer.gate_up));
  const uint32_t tokens = 64, context = 256;
  const RunState s(device(), c, *weights_, tokens, 1, context);
  EXPECT_FALSE(s.gate_up()) << "gate|up rows kept";
  // Attention's activations and the MLP's share one allocation; q|k|v and attention's output do not.
  EXPECT_EQ(s.qkv().buffer, s.mlp().buffer);
  EXPECT_EQ(s.attn().buffer, s.mlp().buffer);
  EXPECT_GE(s.attn().offset, s.qkv().offset + s.qkv().size);
  // xn, read by the products that write q|k|v and the MLP's output, lies past both.
  EXPECT_EQ(s.xn().buffer, s.mlp().buffer);
  EXPECT_GE(s.xn().offset, s.qkv().offset + s.qkv().size);
  EXPECT_GE(s.xn().offset, s.mlp().offset + s.mlp().size);
  EXPECT_EQ(s.attention_or_mlp.size(), std::max(s.attn().offset + s.attn().size, s.xn().offset + s.xn().size));
  EXPECT_EQ(s.splits.size(), std::max<uint64_t>(4, SplitsBytes(info(), c, *weights_, tokens, context)));
  EXPECT_GE(s.splits.size(), ops::AttentionScratchBytes(tokens, c.num_heads, c.num_kv_heads, c.head_dim, context));
  // Parts of two types multiply one at a time, into a scratch the SwiGLU then reads.
  std::vector<Projection> parts = weights_->layers[0].gate_up;
  parts.push_back(parts[0]);
  EXPECT_TRUE(GateUpNeedsScratch(info(), parts));
}

// Gate|up stored in two parts (as a file of two types stores it) runs as two products into the
// gate|up scratch, which lies in the MLP's memory after the SwiGLU's output, and then a SwiGLU
// dispatch: the same logits as one product with the SwiGLU in its epilogue, in prefill and decode.
TEST_F(EngineTest, GateUpInTwoPartsGivesTheSameLogits) {
  const ModelConfig& c = files_->config();
  ModelWeights parts = LoadWeights(device(), c, files_->weights());
  for (LayerWeights& layer : parts.layers) {
    ASSERT_EQ(layer.gate_up.size(), 1u);
    const Matrix w = layer.gate_up[0].w;
    const VkDeviceSize up_offset = w.offset + RowBytes(w.dtype, w.cols) * c.intermediate_size;
    ASSERT_EQ(up_offset % info().storage_offset_alignment, 0u);
    layer.gate_up = {{Matrix{w.buffer, w.offset, w.dtype, c.intermediate_size, w.cols}, 0},
                     {Matrix{w.buffer, up_offset, w.dtype, c.intermediate_size, w.cols}, c.intermediate_size}};
    ASSERT_TRUE(GateUpNeedsScratch(info(), layer.gate_up));
  }
  Engine engine(device(), c, parts, EngineOptions{.context = 64});
  const auto ids = Ids(Prompt("text"));
  ASSERT_GT(ids.size(), ops::kMatVecMaxTokens) << "a prefill past matvec's tokens";
  engine_->Truncate(0);
  const std::vector<float> expected = PrefillRow(*engine_, ids), got = PrefillRow(engine, ids);
  engine_->Decode(ids.back(), {.full_row = true});
  engine.Decode(ids.back(), {.full_row = true});
  const auto expected_step = engine_->logits(), got_step = engine.logits();
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-4) << "prefill, logit " << i;
    ASSERT_NEAR(got_step[i], expected_step[i], 1e-4) << "decode, logit " << i;
  }
}

// Under a GPU budget too small for the weights, the layers stay in host memory the GPU reads:
// the same kernels on the same numbers, so the same logits bit for bit.
TEST_F(EngineTest, HostResidentWeightsGiveTheSameLogits) {
  const auto ids = Ids(Prompt("text"));
  const std::vector<float> expected = PrefillRow(*engine_, ids);

  ModelWeights host = LoadWeights(device(), files_->config(), files_->weights(), {.device_budget = 0});
  EXPECT_EQ(host.host_layers, files_->config().num_layers);
  EXPECT_GT(host.host_bytes, 0u);
  EXPECT_LT(host.device_bytes, host.host_bytes / 100);  // only norms and biases
  Engine engine(device(), files_->config(), host, EngineOptions{.context = 64});
  const std::vector<float> got = PrefillRow(engine, ids);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "logit " << i;
}

// A decode step folds the norms into the projections that read them, RoPE into q|k|v and the
// SwiGLU into gate|up: five dispatches a layer, plus the embedding and the output projection. A
// prefill chunk (more tokens than a matvec takes) records the norms and RoPE as dispatches of their
// own; its gate|up product applies the SwiGLU too. (A 16-row cache splits no keys, so attention is
// one dispatch with no combine.)
TEST_F(EngineTest, DecodeRecordsFiveDispatchesALayer) {
  const ModelConfig& c = files_->config();
  for (const LayerWeights& layer : weights_->layers) {
    ASSERT_EQ(layer.qkv.size(), 1u);
    ASSERT_EQ(layer.gate_up.size(), 1u);
  }
  RunState s(device(), c, *weights_, 5, 5, 16);
  KvCache kv(device(), c, 16);
  Graph decode(device());
  RecordForward(decode, c, *weights_, s, kv, 1, 0);
  RecordLogits(decode, c, *weights_, s, 0, 1, /*on_host=*/false);
  EXPECT_EQ(decode.dispatch_count(), 1 + 5 * c.num_layers + 1);
  Graph prefill(device());
  RecordForward(prefill, c, *weights_, s, kv, 5, 0);
  RecordLogits(prefill, c, *weights_, s, 0, 5, /*on_host=*/true);
  EXPECT_EQ(prefill.dispatch_count(), 1 + 8 * c.num_layers + 2);
}

TEST_F(EngineTest, RefusesWhatDoesNotFitTheContext) {
  std::vector<uint32_t> too_long(engine_->context() + 1, 9707);
  EXPECT_THROW(engine_->Prefill(too_long, LastLogits{}), Error);
  EXPECT_THROW(engine_->Prefill(std::vector<uint32_t>{files_->config().vocab_size}, LastLogits{}), Error);
}

}  // namespace
}  // namespace qvk::test
