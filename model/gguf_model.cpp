// Sections: metadata fields / ModelConfig / tokenizer / chat template
#include "model/gguf_model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "model/input_limits.h"

namespace qvk {
namespace {

using namespace input_limits;

// llama_token_type in llama.cpp.
constexpr int64_t kTokenNormal = 1;
constexpr int64_t kTokenControl = 3;
constexpr int64_t kTokenUserDefined = 4;
constexpr int64_t kTokenUnused = 5;

// --- metadata fields -------------------------------------------------------------------------

[[noreturn]] void Fail(const GgufFile& file, std::string_view key, std::string_view why) {
  throw Error(fmt::format("{}: metadata '{}': {}", file.name(), key, why));
}

uint32_t Uint(const GgufFile& file, std::string_view key, std::optional<uint32_t> fallback, uint32_t min,
              uint32_t max) {
  const std::optional<uint64_t> v = file.GetUint(key);
  if (!v) {
    if (!fallback) Fail(file, key, "required");
    return *fallback;
  }
  if (*v < min || *v > max) Fail(file, key, fmt::format("is {}; must be in [{}, {}]", *v, min, max));
  return static_cast<uint32_t>(*v);
}

std::optional<double> Float(const GgufFile& file, std::string_view key) {
  const std::optional<double> v = file.GetFloat(key);
  if (v && !std::isfinite(*v)) Fail(file, key, fmt::format("is {}; must be finite", *v));
  return v;
}

std::optional<uint32_t> TokenId(const GgufFile& file, std::string_view key, uint32_t vocab_size) {
  if (file.Find(key) == nullptr) return std::nullopt;
  return Uint(file, key, std::nullopt, 0, vocab_size - 1);
}

// YaRN as convert_hf_to_gguf.py writes it from config.json's rope_scaling; transformers'
// defaults fill in what it leaves out.
std::optional<YarnScaling> ReadRopeScaling(const GgufFile& file, const std::string& arch, uint32_t max_positions) {
  const auto K = [&](std::string_view key) { return fmt::format("{}.{}", arch, key); };
  const std::optional<std::string> type = file.GetString(K("rope.scaling.type"));
  if (!type || *type == "none") return std::nullopt;
  if (*type != "yarn") Fail(file, K("rope.scaling.type"), fmt::format("'{}' is not supported (only yarn)", *type));
  YarnScaling y;
  const auto factor = Float(file, K("rope.scaling.factor"));
  if (!factor || *factor <= 0) Fail(file, K("rope.scaling.factor"), "YaRN needs a positive factor");
  y.factor = *factor;
  y.original_max_position_embeddings =
      Uint(file, K("rope.scaling.original_context_length"), max_positions, 1, kMaxPositions);
  // As transformers reads them (with `or`), 0 means the default.
  if (const auto beta = Float(file, K("rope.scaling.yarn_beta_fast")); beta && *beta != 0) y.beta_fast = *beta;
  if (const auto beta = Float(file, K("rope.scaling.yarn_beta_slow")); beta && *beta != 0) y.beta_slow = *beta;
  return y;
}

}  // namespace

// --- ModelConfig -----------------------------------------------------------------------------

ModelConfig ConfigFromGguf(const GgufFile& file) {
  const std::optional<std::string> architecture = file.GetString("general.architecture");
  if (!architecture) Fail(file, "general.architecture", "required (qwen2, qwen2moe, qwen3 or qwen3moe)");
  static const std::pair<std::string_view, Architecture> kArchitectures[] = {
      {"qwen2", Architecture::Qwen2},
      {"qwen2moe", Architecture::Qwen2Moe},
      {"qwen3", Architecture::Qwen3},
      {"qwen3moe", Architecture::Qwen3Moe},
  };
  const auto known =
      std::ranges::find(kArchitectures, *architecture, &std::pair<std::string_view, Architecture>::first);
  if (known == std::end(kArchitectures)) {
    throw Error(
        fmt::format("{}: unsupported architecture '{}'; QwenVK runs qwen2 (Qwen1.5, Qwen2, Qwen2.5), "
                    "qwen2moe, qwen3 and qwen3moe",
                    file.name(), *architecture));
  }
  const std::string arch = *architecture;
  const auto K = [&](std::string_view key) { return fmt::format("{}.{}", arch, key); };
  ModelConfig c;
  c.arch = known->second;
  static constexpr std::string_view kHfNames[] = {"Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM",
                                                  "Qwen3MoeForCausalLM"};
  static constexpr std::string_view kModelTypes[] = {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"};
  c.architecture = std::string(kHfNames[static_cast<int>(c.arch)]);
  c.model_type = std::string(kModelTypes[static_cast<int>(c.arch)]);
  const bool qwen3 = c.arch == Architecture::Qwen3 || c.arch == Architecture::Qwen3Moe;
  // llama.cpp's qwen3 graphs have no QKV bias and always normalize q and k.
  c.qkv_bias = file.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = qwen3;
  c.hidden_size = Uint(file, K("embedding_length"), std::nullopt, 1, kMaxHidden);
  c.intermediate_size = Uint(file, K("feed_forward_length"), std::nullopt, 1, kMaxIntermediate);
  c.num_layers = Uint(file, K("block_count"), std::nullopt, 1, kMaxLayers);
  c.num_heads = Uint(file, K("attention.head_count"), std::nullopt, 1, kMaxHeads);
  c.num_kv_heads = Uint(file, K("attention.head_count_kv"), c.num_heads, 1, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    Fail(file, K("attention.head_count_kv"),
         fmt::format("is {}; qwen2.attention.head_count ({}) must be a multiple of it", c.num_kv_heads, c.num_heads));
  }
  // llama.cpp derives the head size unless key_length gives it; the engine has one size for K and V.
  if (file.Find(K("attention.key_length")) != nullptr) {
    c.head_dim = Uint(file, K("attention.key_length"), std::nullopt, 2, kMaxHeadDim);
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      Fail(file, K("attention.head_count"),
           fmt::format("is {}; qwen2.embedding_length ({}) must be a multiple of it", c.num_heads, c.hidden_size));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (const uint32_t value_length = Uint(file, K("attention.value_length"), c.head_dim, 1, kMaxHeadDim);
      value_length != c.head_dim) {
    Fail(file, K("attention.value_length"),
         fmt::format("is {}; only a value size equal to the key size ({}) is supported", value_length, c.head_dim));
  }
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim) {
    throw Error(fmt::format("{}: head size {}: RoPE needs an even head size of at most {}", file.name(), c.head_dim,
                            kMaxHeadDim));
  }
  c.max_position_embeddings = Uint(file, K("context_length"), std::nullopt, 1, kMaxPositions);

  const auto eps = Float(file, K("attention.layer_norm_rms_epsilon"));
  if (!eps) Fail(file, K("attention.layer_norm_rms_epsilon"), "required");
  if (!(*eps > 0 && *eps < 1)) Fail(file, K("attention.layer_norm_rms_epsilon"), "must be in (0, 1)");
  c.rms_norm_eps = static_cast<float>(*eps);

  if (const auto theta = Float(file, K("rope.freq_base"))) {
    c.rope_theta = *theta;
  } else {
    // llama.cpp's default too; Qwen2 models use 1e6, so a missing key is worth a line in the log.
    c.rope_theta = 10000.0;
    spdlog::warn("{}: no qwen2.rope.freq_base; using the default RoPE base 10000", file.name());
  }
  // The YaRN correction range divides by log(theta); 1 or less is no rotary embedding at all.
  if (!(c.rope_theta > 1.0)) Fail(file, K("rope.freq_base"), fmt::format("is {}; must be over 1", c.rope_theta));
  c.yarn = ReadRopeScaling(file, arch, c.max_position_embeddings);

  const GgufTensor* embedding = file.FindTensor("token_embd.weight");
  if (embedding == nullptr) {
    throw Error(fmt::format("{}: no tensor token_embd.weight, which gives the vocabulary size", file.name()));
  }
  if (embedding->dims.size() != 2 || embedding->dims[0] != c.hidden_size || embedding->rows() > kMaxVocab) {
    throw Error(fmt::format("{}: tensor token_embd.weight has dims [{}]; expected [{}, vocabulary of at most {}]",
                            file.name(), fmt::join(embedding->dims, ", "), c.hidden_size, kMaxVocab));
  }
  c.vocab_size = static_cast<uint32_t>(embedding->rows());
  c.tie_word_embeddings = file.FindTensor("output.weight") == nullptr;
  c.layer_window.assign(c.num_layers, 0);
  if (c.arch == Architecture::Qwen2Moe || c.arch == Architecture::Qwen3Moe) {
    MoeConfig m;
    m.num_experts = Uint(file, K("expert_count"), std::nullopt, 1, kMaxExperts);
    m.experts_per_token =
        Uint(file, K("expert_used_count"), std::nullopt, 1, std::min(m.num_experts, kMaxExpertsPerToken));
    m.expert_intermediate_size = Uint(file, K("expert_feed_forward_length"), std::nullopt, 1, kMaxIntermediate);
    if (c.arch == Architecture::Qwen2Moe) {
      m.shared_expert_intermediate_size =
          Uint(file, K("expert_shared_feed_forward_length"), std::nullopt, 1, kMaxIntermediate);
    }
    // As llama.cpp builds these graphs: qwen3moe renormalizes the chosen weights, qwen2moe does not.
    m.norm_topk_prob = c.arch == Architecture::Qwen3Moe;
    if (const auto norm = file.GetBool(K("expert_weights_norm"))) m.norm_topk_prob = *norm;
    c.moe = m;
    // GGUF has no mlp_only_layers: a layer with a router is sparse, one without it dense.
    c.layer_sparse.assign(c.num_layers, false);
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      c.layer_sparse[l] = file.FindTensor(fmt::format("blk.{}.ffn_gate_inp.weight", l)) != nullptr;
    }
  }

  c.bos_token_id = TokenId(file, "tokenizer.ggml.bos_token_id", c.vocab_size);
  if (const auto eos = TokenId(file, "tokenizer.ggml.eos_token_id", c.vocab_size)) c.eos_token_ids.push_back(*eos);
  return c;
}

// --- tokenizer -------------------------------------------------------------------------------

TokenizerVocab TokenizerVocabFromGguf(const GgufFile& file) {
  const std::optional<std::string> model = file.GetString("tokenizer.ggml.model");
  if (!model) Fail(file, "tokenizer.ggml.model", "required: the file has no tokenizer");
  if (*model != "gpt2") {
    Fail(file, "tokenizer.ggml.model",
         fmt::format("tokenizer '{}' is not supported (only gpt2, the byte-level BPE of Qwen2)", *model));
  }
  // An absent pre-tokenizer name is what older conversions of Qwen2 wrote.
  if (const auto pre = file.GetString("tokenizer.ggml.pre"); pre && *pre != "qwen2") {
    Fail(file, "tokenizer.ggml.pre", fmt::format("pre-tokenizer '{}' is not supported (only qwen2)", *pre));
  }

  TokenizerVocab vocab;
  vocab.tokens = file.GetStringArray("tokenizer.ggml.tokens");
  if (vocab.tokens.empty()) Fail(file, "tokenizer.ggml.tokens", "required and not empty");
  if (vocab.tokens.size() > kMaxVocab) {
    Fail(file, "tokenizer.ggml.tokens",
         fmt::format("{} tokens is over the limit of {}", vocab.tokens.size(), kMaxVocab));
  }
  // Without the types the special tokens would be split like text.
  const std::vector<int64_t> types = file.GetIntArray("tokenizer.ggml.token_type");
  if (types.size() != vocab.tokens.size()) {
    Fail(file, "tokenizer.ggml.token_type",
         fmt::format("has {} entries for {} tokens", types.size(), vocab.tokens.size()));
  }
  size_t count = vocab.tokens.size();
  while (count > 0 && types[count - 1] == kTokenUnused) --count;
  if (count == 0) Fail(file, "tokenizer.ggml.token_type", "every token is unused");
  vocab.tokens.resize(count);
  for (uint32_t id = 0; id < count; ++id) {
    const int64_t type = types[id];
    if (type == kTokenControl || type == kTokenUserDefined) {
      vocab.added.push_back({id, vocab.tokens[id], type == kTokenControl});
    } else if (type != kTokenNormal && type != kTokenUnused) {
      Fail(file, "tokenizer.ggml.token_type",
           fmt::format("token {} ('{}') has type {}; a gpt2 vocabulary has only 1 (normal), 3 (control), 4 "
                       "(user-defined) and 5 (unused)",
                       id, vocab.tokens[id], type));
    }
  }

  const std::vector<std::string> merges = file.GetStringArray("tokenizer.ggml.merges");
  vocab.merges.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& merge = merges[rank];
    const size_t space = merge.find(' ');
    if (space == 0 || space == std::string::npos || space + 1 == merge.size() || merge.rfind(' ') != space) {
      Fail(file, "tokenizer.ggml.merges",
           fmt::format("merge {} ('{}') is not two tokens separated by one space", rank, merge));
    }
    vocab.merges.emplace_back(merge.substr(0, space), merge.substr(space + 1));
  }
  vocab.pre_tokenizer_regex = kQwen2PreTokenizerRegex;
  vocab.nfc = true;  // Qwen2's tokenizer.json normalizes to NFC; GGUF does not record it
  return vocab;
}

// --- chat template ---------------------------------------------------------------------------

std::optional<std::string> ChatTemplateFromGguf(const GgufFile& file) {
  return file.GetString("tokenizer.chat_template");
}

}  // namespace qvk
