#include "model/rope_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qvk {
namespace {

double YarnMscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// Dimension index whose wavelength completes `rotations` turns over the original context.
double CorrectionDim(double rotations, double dim, double base, double max_positions) {
  return dim * std::log(max_positions / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

}  // namespace

RopeFrequencies ComputeRopeFrequencies(uint32_t head_dim, double theta, const std::optional<YarnScaling>& yarn) {
  const uint32_t half = head_dim / 2;
  RopeFrequencies out;
  out.inv_freq.resize(half);
  // base ** (2i / dim) in float32 as torch evaluates it, then its reciprocal in float32.
  std::vector<float> pos_freqs(half);
  for (uint32_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    pos_freqs[i] = std::pow(static_cast<float>(theta), exponent);
    out.inv_freq[i] = 1.0f / pos_freqs[i];
  }
  if (!yarn) return out;

  const YarnScaling& y = *yarn;
  if (y.attention_factor) {
    out.attention_factor = static_cast<float>(*y.attention_factor);
  } else if (y.mscale && y.mscale_all_dim) {
    out.attention_factor = static_cast<float>(YarnMscale(y.factor, *y.mscale) / YarnMscale(y.factor, *y.mscale_all_dim));
  } else {
    out.attention_factor = static_cast<float>(YarnMscale(y.factor, 1.0));
  }
  double low = CorrectionDim(y.beta_fast, head_dim, theta, y.original_max_position_embeddings);
  double high = CorrectionDim(y.beta_slow, head_dim, theta, y.original_max_position_embeddings);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(head_dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (uint32_t i = 0; i < half; ++i) {
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    const float extrapolation = 1.0f / pos_freqs[i];
    const float interpolation = 1.0f / (static_cast<float>(y.factor) * pos_freqs[i]);
    out.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return out;
}

}  // namespace qvk
