#pragma once
// config.json and generation_config.json of a Qwen2-family checkpoint (Qwen1.5, Qwen2, Qwen2.5),
// read as transformers 5 reads them: every field that changes the math, validated, so the
// forward pass never meets a shape it cannot run.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/rope_frequencies.h"

namespace qvk {

struct ModelConfig {
  std::string architecture;  // "Qwen2ForCausalLM"
  std::string model_type;    // "qwen2"
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

  // Throws Error naming the file, the field and its value.
  static ModelConfig FromJsonFile(const std::filesystem::path& config_json);
};

struct GenerationConfig {
  std::vector<uint32_t> eos_token_ids;
  bool do_sample = false;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  uint32_t top_k = 0;  // 0: off

  // A missing file gives the defaults above; a malformed one throws Error naming the field.
  static GenerationConfig FromJsonFile(const std::filesystem::path& path);
};

}  // namespace qvk
