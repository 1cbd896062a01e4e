// Sections: field reading / RoPE parameters / sliding-window layers / architectures /
// mixture of experts / ModelConfig / GenerationConfig
#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "base/bounded_json.h"
#include "base/error.h"
#include "model/input_limits.h"
#include "model/mapped_file.h"
#include "model/safetensors.h"

namespace qvk {
namespace {

using nlohmann::json;

using namespace input_limits;
constexpr uint32_t kUint32Max = std::numeric_limits<uint32_t>::max();

// --- field reading ---------------------------------------------------------------------------

// Reads the fields of one JSON object; every error names the file, the field and its value.
class Fields {
 public:
  Fields(const json& object, std::string file, std::string prefix = {})
      : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

  // Null reads as absent, as transformers treats `"head_dim": null`.
  const json* Find(std::string_view key) const {
    const auto it = object_.find(std::string(key));
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  [[noreturn]] void Fail(std::string_view key, std::string_view why) const {
    const json* value = Find(key);
    throw Error(fmt::format("{}: {}{} = {}: {}", file_, prefix_, key, value ? BriefJson(*value) : "(absent)", why));
  }

  uint32_t Uint(std::string_view key, std::optional<uint32_t> fallback, uint32_t min, uint32_t max) const {
    const json* v = Find(key);
    if (v == nullptr) {
      if (!fallback) Fail(key, "required");
      return *fallback;
    }
    if (!v->is_number_unsigned() || v->get<uint64_t>() < min || v->get<uint64_t>() > max) {
      Fail(key, fmt::format("must be an integer in [{}, {}]", min, max));
    }
    return static_cast<uint32_t>(v->get<uint64_t>());
  }

  double Number(std::string_view key, std::optional<double> fallback) const {
    const json* v = Find(key);
    if (v == nullptr) {
      if (!fallback) Fail(key, "required");
      return *fallback;
    }
    if (!v->is_number() || !std::isfinite(v->get<double>())) Fail(key, "must be a finite number");
    return v->get<double>();
  }

  std::optional<double> OptionalNumber(std::string_view key) const {
    if (Find(key) == nullptr) return std::nullopt;
    return Number(key, std::nullopt);
  }

  bool Bool(std::string_view key, bool fallback) const {
    const json* v = Find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) Fail(key, "must be true or false");
    return v->get<bool>();
  }

  std::optional<std::string> String(std::string_view key) const {
    const json* v = Find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) Fail(key, "must be a string");
    return v->get<std::string>();
  }

  // An id or a list of ids (eos_token_id is either).
  std::vector<uint32_t> TokenIds(std::string_view key, uint32_t vocab_size) const {
    const json* v = Find(key);
    if (v == nullptr) return {};
    std::vector<uint32_t> ids;
    const auto add = [&](const json& id) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= vocab_size) {
        Fail(key, fmt::format("must be a token id or a list of token ids below {}", vocab_size));
      }
      ids.push_back(static_cast<uint32_t>(id.get<uint64_t>()));
    };
    if (v->is_array()) {
      for (const json& id : *v) add(id);
    } else {
      add(*v);
    }
    return ids;
  }

  const std::string& file() const { return file_; }

 private:
  const json& object_;
  std::string file_;
  std::string prefix_;
};

json ReadObject(const std::filesystem::path& path) {
  json j = ReadJsonFile(path, {kMaxConfigJsonBytes, kMaxJsonDepth});
  if (!j.is_object()) throw Error(fmt::format("{}: is a JSON {}, not an object", path.string(), j.type_name()));
  return j;
}

// --- RoPE parameters -------------------------------------------------------------------------

// transformers 5 takes a legacy non-empty "rope_scaling" first, else "rope_parameters"; inside
// it "rope_theta" wins over the top-level one and "rope_type" over "type".
void ReadRope(const Fields& f, ModelConfig& c) {
  std::string key = "rope_scaling";
  const json* params = f.Find(key);
  if (params != nullptr && !params->is_object()) f.Fail(key, "must be an object or null");
  if (params == nullptr || params->empty()) {
    key = "rope_parameters";
    params = f.Find(key);
    if (params != nullptr && !params->is_object()) f.Fail(key, "must be an object or null");
  }
  const double top_theta = f.Number("rope_theta", 10000.0);
  if (const auto partial = f.OptionalNumber("partial_rotary_factor"); partial && *partial != 1.0) {
    f.Fail("partial_rotary_factor", "partial rotary embeddings are not supported");
  }
  c.rope_theta = top_theta;
  if (params != nullptr) {
    const Fields r(*params, f.file(), key + ".");
    if (r.Find("full_attention") || r.Find("sliding_attention")) {
      f.Fail(key, "RoPE parameters per layer type are not supported");
    }
    c.rope_theta = r.Number("rope_theta", top_theta);
    if (const auto partial = r.OptionalNumber("partial_rotary_factor"); partial && *partial != 1.0) {
      r.Fail("partial_rotary_factor", "partial rotary embeddings are not supported");
    }
    const std::string type = r.String("rope_type").value_or(r.String("type").value_or("default"));
    if (type == "yarn") {
      YarnScaling y;
      y.factor = r.Number("factor", std::nullopt);
      if (y.factor <= 0) r.Fail("factor", "must be positive");
      // A top-level value wins, as transformers 5 gives it priority (Phi-3 stores it there).
      y.original_max_position_embeddings =
          f.Find("original_max_position_embeddings")
              ? f.Uint("original_max_position_embeddings", std::nullopt, 1, kMaxPositions)
              : r.Uint("original_max_position_embeddings", c.max_position_embeddings, 1, kMaxPositions);
      // transformers reads these with `or`: 0 means the default, as absence does.
      y.beta_fast = r.Number("beta_fast", 32.0);
      if (y.beta_fast == 0) y.beta_fast = 32.0;
      y.beta_slow = r.Number("beta_slow", 1.0);
      if (y.beta_slow == 0) y.beta_slow = 1.0;
      y.attention_factor = r.OptionalNumber("attention_factor");
      if (y.attention_factor && *y.attention_factor <= 0) r.Fail("attention_factor", "must be positive");
      y.mscale = r.OptionalNumber("mscale");
      if (y.mscale == 0.0) y.mscale.reset();
      y.mscale_all_dim = r.OptionalNumber("mscale_all_dim");
      if (y.mscale_all_dim == 0.0) y.mscale_all_dim.reset();
      y.truncate = r.Bool("truncate", true);
      c.yarn = y;
    } else if (type != "default") {
      throw Error(fmt::format("{}: unsupported RoPE type '{}' in {} (only default and yarn)", f.file(), type, key));
    }
  }
  // The YaRN correction range divides by log(theta); 1 or less is no rotary embedding at all.
  if (!(c.rope_theta > 1.0)) {
    throw Error(fmt::format("{}: rope_theta = {}: must be greater than 1", f.file(), c.rope_theta));
  }
}

// --- sliding-window layers -------------------------------------------------------------------

// As transformers 5's Qwen2Config.__post_init__: the window exists only with use_sliding_window
// (an absent "sliding_window" defaults to 4096, a null one means none); an explicit
// "layer_types" list decides per layer, else layer i slides when the window exists and
// i >= max_window_layers.
void ReadLayerWindows(const Fields& f, const json& j, ModelConfig& c) {
  std::optional<uint32_t> window;
  if (f.Bool("use_sliding_window", false)) {
    if (!j.contains("sliding_window")) {
      window = 4096;
    } else if (f.Find("sliding_window")) {
      window = f.Uint("sliding_window", std::nullopt, 1, kUint32Max);
    }
  }
  c.layer_window.assign(c.num_layers, 0);
  if (const json* types = f.Find("layer_types")) {
    if (!types->is_array() || types->size() != c.num_layers) {
      f.Fail("layer_types", fmt::format("must list one type per layer ({})", c.num_layers));
    }
    for (uint32_t i = 0; i < c.num_layers; ++i) {
      const json& type = (*types)[i];
      if (type == "full_attention") continue;
      if (type != "sliding_attention") {
        f.Fail("layer_types",
               fmt::format("layer {} is {}; only full_attention and sliding_attention exist", i, BriefJson(type)));
      }
      // transformers fails here too: the sliding mask needs a window size.
      if (!window) {
        f.Fail("layer_types", fmt::format("layer {} slides but use_sliding_window/sliding_window give no window", i));
      }
      c.layer_window[i] = *window;
    }
    return;
  }
  const uint32_t max_window_layers = f.Uint("max_window_layers", 28, 0, kUint32Max);
  for (uint32_t i = 0; i < c.num_layers; ++i) {
    if (window && i >= max_window_layers) c.layer_window[i] = *window;
  }
}

// --- architectures ---------------------------------------------------------------------------

struct ArchitectureInfo {
  std::string_view hf_name;
  std::string_view model_type;
  Architecture arch;
};

constexpr ArchitectureInfo kArchitectures[] = {
    {"Qwen2ForCausalLM", "qwen2", Architecture::Qwen2},
    {"Qwen2MoeForCausalLM", "qwen2_moe", Architecture::Qwen2Moe},
    {"Qwen3ForCausalLM", "qwen3", Architecture::Qwen3},
    {"Qwen3MoeForCausalLM", "qwen3_moe", Architecture::Qwen3Moe},
};

const ArchitectureInfo* FindArchitecture(std::string_view name) {
  for (const ArchitectureInfo& a : kArchitectures) {
    if (a.hf_name == name) return &a;
  }
  return nullptr;
}

// Why a Qwen model QwenVK knows of is refused, said by its kind.
std::string RefusalReason(std::string_view name) {
  const auto has = [&](std::string_view part) { return name.find(part) != std::string_view::npos; };
  if (has("VL") || has("Vision")) return " (a vision-language model: QwenVK runs text models only)";
  if (has("Audio") || has("Omni")) return " (an audio model: QwenVK runs text models only)";
  if (has("Next")) return " (Qwen3-Next's hybrid linear attention is not supported)";
  if (name == "QWenLMHeadModel") return " (the first Qwen generation's remote code is not supported)";
  return "";
}

// --- mixture of experts ----------------------------------------------------------------------

// As transformers' Qwen2Moe/Qwen3Moe decoder layers: layer i is sparse unless listed in
// mlp_only_layers, when num_experts > 0 and (i + 1) % decoder_sparse_step == 0.
void ReadMoe(const Fields& f, ModelConfig& c) {
  MoeConfig m;
  m.num_experts = f.Uint("num_experts", std::nullopt, 1, kMaxExperts);
  m.experts_per_token = f.Uint("num_experts_per_tok", std::nullopt, 1, std::min(m.num_experts, kMaxExpertsPerToken));
  m.expert_intermediate_size = f.Uint("moe_intermediate_size", std::nullopt, 1, kMaxIntermediate);
  if (c.arch == Architecture::Qwen2Moe) {
    m.shared_expert_intermediate_size = f.Uint("shared_expert_intermediate_size", std::nullopt, 1, kMaxIntermediate);
  }
  m.norm_topk_prob = f.Bool("norm_topk_prob", c.arch == Architecture::Qwen3Moe);
  const uint32_t step = f.Uint("decoder_sparse_step", 1, 1, kUint32Max);
  std::set<uint32_t> dense;
  if (const json* only = f.Find("mlp_only_layers")) {
    if (!only->is_array()) f.Fail("mlp_only_layers", "must be a list of layer indices");
    for (const json& i : *only) {
      if (!i.is_number_unsigned() || i.get<uint64_t>() >= c.num_layers) {
        f.Fail("mlp_only_layers", fmt::format("must list layer indices below {}", c.num_layers));
      }
      dense.insert(static_cast<uint32_t>(i.get<uint64_t>()));
    }
  }
  c.layer_sparse.assign(c.num_layers, false);
  for (uint32_t i = 0; i < c.num_layers; ++i) c.layer_sparse[i] = !dense.contains(i) && (i + 1) % step == 0;
  c.moe = m;
}

}  // namespace

std::string SupportedArchitectures() {
  return "Qwen2ForCausalLM (Qwen1.5, Qwen2, Qwen2.5), Qwen2MoeForCausalLM (Qwen1.5-MoE, Qwen2-57B-A14B), "
         "Qwen3ForCausalLM and Qwen3MoeForCausalLM";
}

// --- ModelConfig -----------------------------------------------------------------------------

ModelConfig ModelConfig::FromJsonFile(const std::filesystem::path& config_json) {
  const json j = ReadObject(config_json);
  const Fields f(j, config_json.string());
  ModelConfig c;

  const json* architectures = f.Find("architectures");
  if (architectures == nullptr || !architectures->is_array()) f.Fail("architectures", "must be a list of names");
  std::vector<std::string> names;
  for (const json& a : *architectures) {
    if (!a.is_string()) f.Fail("architectures", "must be a list of names");
    names.push_back(a.get<std::string>());
  }
  const ArchitectureInfo* info = nullptr;
  for (const std::string& name : names) {
    if ((info = FindArchitecture(name)) != nullptr) break;
  }
  if (info == nullptr) {
    throw Error(fmt::format("{}: unsupported architecture '{}'{}; QwenVK runs {}", f.file(), fmt::join(names, "', '"),
                            names.empty() ? "" : RefusalReason(names.front()), SupportedArchitectures()));
  }
  c.architecture = std::string(info->hf_name);
  c.arch = info->arch;
  if (f.Find("model_type") == nullptr) f.Fail("model_type", fmt::format("required ({})", info->model_type));
  c.model_type = *f.String("model_type");
  if (c.model_type != info->model_type) {
    throw Error(fmt::format("{}: unsupported model_type '{}' for architecture {} (whose model_type is {})", f.file(),
                            c.model_type, info->hf_name, info->model_type));
  }
  if (f.Find("dual_chunk_attention_config")) {
    f.Fail("dual_chunk_attention_config",
           "dual chunk attention (the Qwen2.5-1M long-context models) is not supported; QwenVK runs " +
               SupportedArchitectures());
  }
  if (f.Find("quantization_config")) f.Fail("quantization_config", "quantized checkpoints are not supported");
  if (f.String("hidden_act").value_or("silu") != "silu") f.Fail("hidden_act", "only silu is supported");

  c.hidden_size = f.Uint("hidden_size", std::nullopt, 1, kMaxHidden);
  c.intermediate_size = f.Uint("intermediate_size", std::nullopt, 1, kMaxIntermediate);
  c.num_layers = f.Uint("num_hidden_layers", std::nullopt, 1, kMaxLayers);
  c.num_heads = f.Uint("num_attention_heads", std::nullopt, 1, kMaxHeads);
  c.num_kv_heads = f.Uint("num_key_value_heads", c.num_heads, 1, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    f.Fail("num_key_value_heads", fmt::format("num_attention_heads ({}) must be a multiple of it", c.num_heads));
  }
  if (f.Find("head_dim")) {
    c.head_dim = f.Uint("head_dim", std::nullopt, 2, kMaxHeadDim);
  } else {
    // Only a derived head_dim needs the division to be exact; an explicit one may differ.
    if (c.hidden_size % c.num_heads != 0) {
      f.Fail("num_attention_heads", fmt::format("hidden_size ({}) must be a multiple of it", c.hidden_size));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim) {
    throw Error(
        fmt::format("{}: head_dim = {}: RoPE needs an even head_dim of at most {}", f.file(), c.head_dim, kMaxHeadDim));
  }
  c.vocab_size = f.Uint("vocab_size", std::nullopt, 1, kMaxVocab);
  c.max_position_embeddings = f.Uint("max_position_embeddings", 32768, 1, kMaxPositions);
  const double eps = f.Number("rms_norm_eps", 1e-6);
  if (!(eps > 0 && eps < 1)) f.Fail("rms_norm_eps", "must be in (0, 1)");
  c.rms_norm_eps = static_cast<float>(eps);
  c.tie_word_embeddings = f.Bool("tie_word_embeddings", false);
  // transformers hard-codes QKV bias for Qwen2 and Qwen2-MoE; Qwen3 reads attention_bias.
  const bool qwen3 = c.arch == Architecture::Qwen3 || c.arch == Architecture::Qwen3Moe;
  c.qkv_bias = qwen3 ? f.Bool("attention_bias", false) : true;
  c.qk_norm = qwen3;

  ReadRope(f, c);
  ReadLayerWindows(f, j, c);
  if (c.arch == Architecture::Qwen2Moe || c.arch == Architecture::Qwen3Moe) ReadMoe(f, c);

  if (f.Find("bos_token_id")) c.bos_token_id = f.Uint("bos_token_id", std::nullopt, 0, c.vocab_size - 1);
  c.eos_token_ids = f.TokenIds("eos_token_id", c.vocab_size);
  return c;
}

// --- GenerationConfig ------------------------------------------------------------------------

GenerationConfig GenerationConfig::FromJsonFile(const std::filesystem::path& path) {
  GenerationConfig g;
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return g;
  const json j = ReadObject(path);
  const Fields f(j, path.string());
  g.eos_token_ids = f.TokenIds("eos_token_id", kUint32Max);
  g.do_sample = f.Bool("do_sample", g.do_sample);
  const double temperature = f.Number("temperature", g.temperature);
  if (temperature < 0) f.Fail("temperature", "must not be negative");
  const double top_p = f.Number("top_p", g.top_p);
  if (top_p < 0 || top_p > 1) f.Fail("top_p", "must be in [0, 1]");
  const double min_p = f.Number("min_p", g.min_p);
  if (min_p < 0 || min_p > 1) f.Fail("min_p", "must be in [0, 1]");
  const double penalty = f.Number("repetition_penalty", g.repetition_penalty);
  if (penalty <= 0) f.Fail("repetition_penalty", "must be positive");
  g.temperature = static_cast<float>(temperature);
  g.top_p = static_cast<float>(top_p);
  g.min_p = static_cast<float>(min_p);
  g.repetition_penalty = static_cast<float>(penalty);
  g.top_k = f.Uint("top_k", g.top_k, 0, kUint32Max);
  return g;
}

}  // namespace qvk
