#include "model/weight_source.h"

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
  Safetensors(const SafetensorsModel& model, std::filesystem::path folder) : model_(model), folder_(std::move(folder)) {}
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
    case GgmlType::F32: return DType::F32;
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    case GgmlType::Q8_0: return DType::Q8_0;
    case GgmlType::Q4_0: return DType::Q4_0;
    case GgmlType::Q4_1: return DType::Q4_1;
    case GgmlType::Q5_0: return DType::Q5_0;
    case GgmlType::Q5_1: return DType::Q5_1;
    case GgmlType::Q4_K: return DType::Q4_K;
    case GgmlType::Q5_K: return DType::Q5_K;
    case GgmlType::Q6_K: return DType::Q6_K;
    default:
      throw Error(fmt::format("tensor {} is {}, a type QwenVK does not run (it runs F32, F16, BF16, Q8_0, Q4_0, "
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
        "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}) {
    const std::string hf = fmt::format("model.layers.{}.{}", layer, suffix);
    if (GgufName(hf) == gguf) return hf;
  }
  return std::nullopt;
}

class Gguf final : public WeightSource {
 public:
  Gguf(const GgufFile& file, std::filesystem::path path) : file_(file), path_(std::move(path)) {}
  std::optional<SourceTensor> Find(std::string_view hf_name) const override {
    const auto name = GgufName(hf_name);
    const GgufTensor* t = name ? file_.FindTensor(*name) : nullptr;
    if (t == nullptr) return std::nullopt;
    // GGUF lists dimensions innermost first.
    std::vector<uint64_t> shape(t->dims.rbegin(), t->dims.rend());
    return SourceTensor{t->name, path_.string(), DTypeOf(*t), std::move(shape), t->data};
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& t : file_.tensors()) out.push_back(HfName(t.name).value_or(t.name));
    return out;
  }
  uint64_t total_bytes() const override {
    uint64_t total = 0;
    for (const auto& t : file_.tensors()) total += t.data.size();
    return total;
  }
  std::string description() const override { return path_.string(); }

 private:
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

void ValidateQwen2Tensors(const ModelConfig& c, const WeightSource& source) {
  const uint64_t hidden = c.hidden_size, vocab = c.vocab_size, inter = c.intermediate_size;
  const uint64_t q = uint64_t{c.num_heads} * c.head_dim, kv = uint64_t{c.num_kv_heads} * c.head_dim;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> expected;
  expected.emplace_back("model.embed_tokens.weight", std::vector{vocab, hidden});
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    expected.emplace_back(p + "input_layernorm.weight", std::vector{hidden});
    expected.emplace_back(p + "self_attn.q_proj.weight", std::vector{q, hidden});
    expected.emplace_back(p + "self_attn.q_proj.bias", std::vector{q});
    expected.emplace_back(p + "self_attn.k_proj.weight", std::vector{kv, hidden});
    expected.emplace_back(p + "self_attn.k_proj.bias", std::vector{kv});
    expected.emplace_back(p + "self_attn.v_proj.weight", std::vector{kv, hidden});
    expected.emplace_back(p + "self_attn.v_proj.bias", std::vector{kv});
    expected.emplace_back(p + "self_attn.o_proj.weight", std::vector{hidden, q});
    expected.emplace_back(p + "post_attention_layernorm.weight", std::vector{hidden});
    expected.emplace_back(p + "mlp.gate_proj.weight", std::vector{inter, hidden});
    expected.emplace_back(p + "mlp.up_proj.weight", std::vector{inter, hidden});
    expected.emplace_back(p + "mlp.down_proj.weight", std::vector{hidden, inter});
  }
  expected.emplace_back("model.norm.weight", std::vector{hidden});
  if (!c.tie_word_embeddings) expected.emplace_back("lm_head.weight", std::vector{vocab, hidden});

  std::set<std::string, std::less<>> wanted;
  for (const auto& [name, shape] : expected) {
    const SourceTensor t = source.Get(name);
    if (t.shape != shape) {
      throw Error(fmt::format("{}: tensor {} has shape [{}], expected [{}]", t.where, name, fmt::join(t.shape, ", "),
                              fmt::join(shape, ", ")));
    }
    if (shape.size() == 1 && IsQuantized(t.dtype)) {
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
    throw Error(fmt::format("{}: unexpected tensor {}: not part of a Qwen2 model with {} layers",
                            t ? t->where : source.description(), name, c.num_layers));
  }
}

}  // namespace qvk
