#pragma once
// RoPE inverse frequencies as transformers computes them (float32), plain or YaRN-scaled. The
// rope kernel takes this table and the attention factor, so every scaling type is host-side.
#include <cstdint>
#include <optional>
#include <vector>

namespace qvk {

struct YarnScaling {
  double factor = 1.0;
  uint32_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;
};

struct RopeFrequencies {
  std::vector<float> inv_freq;  // [head_dim / 2]
  float attention_factor = 1.0f;
};

RopeFrequencies ComputeRopeFrequencies(uint32_t head_dim, double theta, const std::optional<YarnScaling>& yarn = {});

}  // namespace qvk
