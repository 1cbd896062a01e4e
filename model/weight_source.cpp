// Where the weights come from, by Hugging Face tensor name. In order: a safetensors folder's
// tensors; the names llama.cpp's GGUF gives them (GgufName, HfName, the experts' stacked tensors)
// and GGUF's types; a GGUF file's tensors under their Hugging Face names; the tensors a config
// expects, with their shapes, and the check of a file against them (ValidateQwen2Tensors).
#include "model/weight_source.h"

#include <cstdio>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"

namespace qvk {
namespace {

class Safetensors final : public WeightSource {
 public:
  Safetensors(const SafetensorsModel& model, std::filesystem::path folder)
      : model_(model), folder_(std::move(folder)) {}
  std::optional<SourceTensor> Find(std::string_view hf_name) const override {
    const TensorView* t = model_.Find(hf_name);
    if (t == nullptr) return std::nullopt;
    return SourceTensor{t->name, t->file, t->dtype, t->shape, t->data};
  }
  std::vector<std::string> names() const override { return model_.names(); }
  uint64_t total_bytes() const override { return model_.total_bytes(); }
  std::string description() const override { return folder_.string(); }

 private:
  const SafetensorsModel& model_;
  std::filesystem::path folder_;
};

// llama.cpp's names for the tensors of a Qwen2 model (convert_hf_to_gguf.py, arch qwen2).
std::optional<std::string> GgufName(std::string_view hf) {
  static const std::pair<std::string_view, std::string_view> kGlobal[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [from, to] : kGlobal) {
    if (hf == from) return std::string(to);
  }
  static const std::pair<std::string_view, std::string_view> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
      {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
      {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
  };
  constexpr std::string_view kPrefix = "model.layers.";
  if (!hf.starts_with(kPrefix)) return std::nullopt;
  const std::string_view rest = hf.substr(kPrefix.size());
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view layer = rest.substr(0, dot), suffix = rest.substr(dot + 1);
  for (const auto& [from, to] : kLayer) {
    if (suffix == from) return fmt::format("blk.{}.{}", layer, to);
  }
  return std::nullopt;
}

DType DTypeOf(const GgufTensor& t) {
  switch (t.type) {
    case GgmlType::F32:
      return DType::F32;
    case GgmlType::F16:
      return DType::F16;
    case GgmlType::BF16:
      return DType::BF16;
    case GgmlType::Q8_0:
      return DType::Q8_0;
    case GgmlType::Q4_0:
      return DType::Q4_0;
    case GgmlType::Q4_1:
      return DType::Q4_1;
    case GgmlType::Q5_0:
      return DType::Q5_0;
    case GgmlType::Q5_1:
      return DType::Q5_1;
    case GgmlType::Q4_K:
      return DType::Q4_K;
    case GgmlType::Q5_K:
      return DType::Q5_K;
    case GgmlType::Q6_K:
      return DType::Q6_K;
    default:
      throw Error(
          fmt::format("tensor {} is {}, a type QwenVK does not run (it runs F32, F16, BF16, Q8_0, Q4_0, "
                      "Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K)",
                      t.name, GgmlTypeName(t.type)));
  }
}

// The transformers name of a llama.cpp tensor name, or nullopt.
std::optional<std::string> HfName(std::string_view gguf) {
  for (std::string_view global : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}) {
    if (GgufName(global) == gguf) return std::string(global);
  }
  constexpr std::string_view kPrefix = "blk.";
  if (!gguf.starts_with(kPrefix)) return std::nullopt;
  const std::string_view rest = gguf.substr(kPrefix.size());
  const std::string layer(rest.substr(0, rest.find('.')));
  for (std::string_view suffix :
       {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
        "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
        "self_attn.q_norm.weight", "self_attn.k_norm.weight", "mlp.gate.weight", "mlp.shared_expert_gate.weight",
        "mlp.shared_expert.gate_proj.weight", "mlp.shared_expert.up_proj.weight",
        "mlp.shared_expert.down_proj.weight"}) {
    const std::string hf = fmt::format("model.layers.{}.{}", layer, suffix);
    if (GgufName(hf) == gguf) return hf;
  }
  return std::nullopt;
}

// llama.cpp stacks a layer's experts into one tensor per projection, [experts, rows, cols].
constexpr std::pair<std::string_view, std::string_view> kExpertTensors[] = {
    {"gate_proj", "ffn_gate_exps"}, {"up_proj", "ffn_up_exps"}, {"down_proj", "ffn_down_exps"}};

// "model.layers.L.mlp.experts.E.P.weight" as (L, E, the stacked GGUF tensor's name).
struct ExpertName {
  uint32_t expert;
  std::string stacked;
};
std::optional<ExpertName> ParseExpertName(std::string_view hf) {
  unsigned layer = 0, expert = 0;
  char projection[16] = {};
  int end = 0;
  const std::string name(hf);
  if (std::sscanf(name.c_str(), "model.layers.%u.mlp.experts.%u.%15[a-z_].weight%n", &layer, &expert, projection,
                  &end) != 3 ||
      static_cast<size_t>(end) != name.size()) {
    return std::nullopt;
  }
  for (const auto& [hf_part, gguf] : kExpertTensors) {
    if (hf_part == projection) return ExpertName{expert, fmt::format("blk.{}.{}.weight", layer, gguf)};
  }
  return std::nullopt;
}

class Gguf final : public WeightSource {
 public:
  Gguf(const GgufFile& file, std::filesystem::path path) : file_(file), path_(std::move(path)) {}
  std::optional<SourceTensor> Find(std::string_view hf_name) const override {
    if (const auto expert = ParseExpertName(hf_name)) return FindExpert(*expert);
    const auto name = GgufName(hf_name);
    const GgufTensor* t = name ? file_.FindTensor(*name) : nullptr;
    if (t == nullptr) return std::nullopt;
    // GGUF lists dimensions innermost first.
    std::vector<uint64_t> shape(t->dims.rbegin(), t->dims.rend());
    // llama.cpp writes the shared expert's gate, [1, hidden] in transformers, as a vector.
    if (hf_name.ends_with("shared_expert_gate.weight") && shape.size() == 1) shape.insert(shape.begin(), 1);
    return SourceTensor{t->name, path_.string(), DTypeOf(*t), std::move(shape), t->data};
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& t : file_.tensors()) {
      unsigned layer = 0;
      char stacked[32] = {};
      bool expanded = false;
      if (std::sscanf(t.name.c_str(), "blk.%u.%31[a-z_].weight", &layer, stacked) == 2 && t.dims.size() == 3) {
        for (const auto& [hf_part, gguf] : kExpertTensors) {
          if (gguf != stacked) continue;
          for (uint64_t e = 0; e < t.dims[2]; ++e) {
            out.push_back(fmt::format("model.layers.{}.mlp.experts.{}.{}.weight", layer, e, hf_part));
          }
          expanded = true;
        }
      }
      if (!expanded) out.push_back(HfName(t.name).value_or(t.name));
    }
    return out;
  }
  uint64_t total_bytes() const override {
    uint64_t total = 0;
    for (const auto& t : file_.tensors()) total += t.data.size();
    return total;
  }
  std::string description() const override { return path_.string(); }

 private:
  // One expert's [rows, cols] matrix inside the stacked [experts, rows, cols] tensor.
  std::optional<SourceTensor> FindExpert(const ExpertName& expert) const {
    const GgufTensor* t = file_.FindTensor(expert.stacked);
    if (t == nullptr || t->dims.size() != 3 || expert.expert >= t->dims[2]) return std::nullopt;
    const DType type = DTypeOf(*t);
    const uint64_t bytes = t->dims[1] * RowBytes(type, static_cast<uint32_t>(t->dims[0]));
    return SourceTensor{fmt::format("{} (expert {})", t->name, expert.expert), path_.string(), type,
                        std::vector<uint64_t>{t->dims[1], t->dims[0]}, t->data.subspan(expert.expert * bytes, bytes)};
  }

  const GgufFile& file_;
  std::filesystem::path path_;
};

}  // namespace

SourceTensor WeightSource::Get(std::string_view hf_name) const {
  auto t = Find(hf_name);
  if (!t) throw Error(fmt::format("missing tensor {} in {}", hf_name, description()));
  return *std::move(t);
}

std::unique_ptr<WeightSource> SafetensorsSource(const SafetensorsModel& model, const std::filesystem::path& folder) {
  return std::make_unique<Safetensors>(model, folder);
}

std::unique_ptr<WeightSource> GgufSource(const GgufFile& file, const std::filesystem::path& path) {
  return std::make_unique<Gguf>(file, path);
}

std::vector<std::pair<std::string, std::vector<uint64_t>>> ExpectedTensors(const ModelConfig& c) {
  const uint64_t hidden = c.hidden_size, vocab = c.vocab_size, inter = c.intermediate_size;
  const uint64_t q = uint64_t{c.num_heads} * c.head_dim, kv = uint64_t{c.num_kv_heads} * c.head_dim;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> expected;
  expected.emplace_back("model.embed_tokens.weight", std::vector{vocab, hidden});
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    expected.emplace_back(p + "input_layernorm.weight", std::vector{hidden});
    expected.emplace_back(p + "self_attn.q_proj.weight", std::vector{q, hidden});
    expected.emplace_back(p + "self_attn.k_proj.weight", std::vector{kv, hidden});
    expected.emplace_back(p + "self_attn.v_proj.weight", std::vector{kv, hidden});
    if (c.qkv_bias) {
      expected.emplace_back(p + "self_attn.q_proj.bias", std::vector{q});
      expected.emplace_back(p + "self_attn.k_proj.bias", std::vector{kv});
      expected.emplace_back(p + "self_attn.v_proj.bias", std::vector{kv});
    }
    if (c.qk_norm) {
      expected.emplace_back(p + "self_attn.q_norm.weight", std::vector<uint64_t>{c.head_dim});
      expected.emplace_back(p + "self_attn.k_norm.weight", std::vector<uint64_t>{c.head_dim});
    }
    expected.emplace_back(p + "self_attn.o_proj.weight", std::vector{hidden, q});
    expected.emplace_back(p + "post_attention_layernorm.weight", std::vector{hidden});
    if (c.sparse(l)) {
      const MoeConfig& m = *c.moe;
      const uint64_t expert_inter = m.expert_intermediate_size;
      expected.emplace_back(p + "mlp.gate.weight", std::vector<uint64_t>{m.num_experts, hidden});
      for (uint32_t e = 0; e < m.num_experts; ++e) {
        const std::string x = fmt::format("{}mlp.experts.{}.", p, e);
        expected.emplace_back(x + "gate_proj.weight", std::vector{expert_inter, hidden});
        expected.emplace_back(x + "up_proj.weight", std::vector{expert_inter, hidden});
        expected.emplace_back(x + "down_proj.weight", std::vector{hidden, expert_inter});
      }
      if (const uint64_t shared = m.shared_expert_intermediate_size) {
        expected.emplace_back(p + "mlp.shared_expert_gate.weight", std::vector<uint64_t>{1, hidden});
        expected.emplace_back(p + "mlp.shared_expert.gate_proj.weight", std::vector{shared, hidden});
        expected.emplace_back(p + "mlp.shared_expert.up_proj.weight", std::vector{shared, hidden});
        expected.emplace_back(p + "mlp.shared_expert.down_proj.weight", std::vector{hidden, shared});
      }
    } else {
      expected.emplace_back(p + "mlp.gate_proj.weight", std::vector{inter, hidden});
      expected.emplace_back(p + "mlp.up_proj.weight", std::vector{inter, hidden});
      expected.emplace_back(p + "mlp.down_proj.weight", std::vector{hidden, inter});
    }
  }
  expected.emplace_back("model.norm.weight", std::vector{hidden});
  if (!c.tie_word_embeddings) expected.emplace_back("lm_head.weight", std::vector{vocab, hidden});
  return expected;
}

void ValidateQwen2Tensors(const ModelConfig& c, const WeightSource& source) {
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> expected = ExpectedTensors(c);
  std::set<std::string, std::less<>> wanted;
  for (const auto& [name, shape] : expected) {
    const SourceTensor t = source.Get(name);
    if (t.shape != shape) {
      throw Error(fmt::format("{}: tensor {} has shape [{}], expected [{}]", t.where, name, fmt::join(t.shape, ", "),
                              fmt::join(shape, ", ")));
    }
    if ((shape.size() == 1 || shape[0] == 1) && IsQuantized(t.dtype)) {
      throw Error(fmt::format("{}: tensor {} is a vector stored as {}; vectors must be F32, F16 or BF16", t.where,
                              t.name, DTypeName(t.dtype)));
    }
    wanted.insert(name);
  }
  for (const std::string& name : source.names()) {
    // With tied embeddings transformers re-ties lm_head to the embedding after loading, so a
    // stored lm_head.weight is ignored there too.
    if (wanted.contains(name) || (c.tie_word_embeddings && name == "lm_head.weight")) continue;
    const auto t = source.Find(name);
    throw Error(fmt::format("{}: unexpected tensor {}: not part of a {} model with {} layers",
                            t ? t->where : source.description(), name, c.architecture, c.num_layers));
  }
}

}  // namespace qvk
