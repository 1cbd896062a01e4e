#pragma once
// config.json and generation_config.json of a Qwen checkpoint (Qwen1.5, Qwen2, Qwen2.5, Qwen2-MoE,
// Qwen3, Qwen3-MoE), read as transformers 5 reads them: every field that changes the math,
// validated, so the forward pass never meets a shape it cannot run.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/rope_frequencies.h"

namespace qvk {

// The mixture-of-experts FFN of Qwen2-MoE and Qwen3-MoE: a router picks `experts_per_token` of
// `num_experts` per token (softmax, then top-k, renormalized with norm_topk_prob); Qwen2-MoE adds a
// shared expert scaled by sigmoid(h . w_gate).
struct MoeConfig {
  uint32_t num_experts = 0;
  uint32_t experts_per_token = 0;
  uint32_t expert_intermediate_size = 0;
  uint32_t shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool norm_topk_prob = false;
};

// The architectures QwenVK runs (config.json "architectures" / GGUF general.architecture).
enum class Architecture { Qwen2, Qwen2Moe, Qwen3, Qwen3Moe };

struct ModelConfig {
  std::string architecture;  // "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"
  std::string model_type;    // "qwen2", "qwen2_moe", "qwen3", "qwen3_moe"
  Architecture arch = Architecture::Qwen2;
  bool qkv_bias = true;  // Qwen2 and Qwen2-MoE
  bool qk_norm = false;  // Qwen3: RMSNorm of each q and k head before RoPE
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t num_layers = 0;
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t vocab_size = 0;
  uint32_t max_position_embeddings = 0;
  float rms_norm_eps = 0;
  double rope_theta = 0;
  std::optional<YarnScaling> yarn;
  bool tie_word_embeddings = false;
  std::vector<uint32_t> layer_window;  // per layer: 0 = full attention, else the sliding window size
  std::optional<uint32_t> bos_token_id;
  std::vector<uint32_t> eos_token_ids;
  std::optional<MoeConfig> moe;
  std::vector<bool> layer_sparse;  // per layer: its FFN is the mixture of experts (else dense)

  bool sparse(uint32_t layer) const { return moe.has_value() && layer_sparse[layer]; }

  // Throws Error naming the file, the field and its value.
  static ModelConfig FromJsonFile(const std::filesystem::path& config_json);
};

// Layers [begin, end) of a model: what one device runs when a model is split across devices.
struct LayerRange {
  uint32_t begin = 0;
  uint32_t end = 0;
  bool contains(uint32_t layer) const { return layer >= begin && layer < end; }
  uint32_t size() const { return end - begin; }
  bool operator==(const LayerRange&) const = default;
};

// Every layer of the model.
inline LayerRange AllLayers(const ModelConfig& config) {
  return {0, config.num_layers};
}

// The architectures QwenVK runs, named for messages.
std::string SupportedArchitectures();

struct GenerationConfig {
  std::vector<uint32_t> eos_token_ids;
  bool do_sample = false;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  uint32_t top_k = 0;  // 0: off

  // A missing file gives the defaults above; a malformed one throws Error naming the field.
  static GenerationConfig FromJsonFile(const std::filesystem::path& path);
};

}  // namespace qvk
