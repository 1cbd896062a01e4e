#version 450
// The mixture-of-experts router (MoeRoutePush): softmax over a token's router logits, then its k
// best experts, as transformers' Qwen2Moe/Qwen3Moe blocks compute them in f32. One invocation per
// token: k and the expert count are small, and decode routes one token.
#include "common.glsl"

layout(binding = 0) readonly buffer Logits { float logits[]; };
layout(binding = 1) writeonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Weights { float weights[]; };

layout(push_constant) uniform Push { MoeRoutePush p; };

void main() {
  const uint t = group_index() * WG + gl_LocalInvocationID.x;
  if (t >= p.tokens) return;
  const uint base = t * p.experts;
  float m = NEG_INF;
  for (uint e = 0; e < p.experts; ++e) m = max(m, logits[base + e]);
  float sum = 0.0;
  for (uint e = 0; e < p.experts; ++e) sum += exp(logits[base + e] - m);
  // The j-th best is the largest logit below the (j-1)-th in (logit descending, index ascending)
  // order, so no list of taken experts is kept.
  float prev_value = uintBitsToFloat(0x7f800000u);
  uint prev_index = 0;
  float chosen_sum = 0.0;
  for (uint j = 0; j < p.k; ++j) {
    float best = NEG_INF;
    uint best_index = 0xffffffffu;
    for (uint e = 0; e < p.experts; ++e) {
      const float v = logits[base + e];
      const bool after_prev = j == 0 || v < prev_value || (v == prev_value && e > prev_index);
      if (after_prev && (best_index == 0xffffffffu || v > best)) {
        best = v;
        best_index = e;
      }
    }
    const float prob = exp(best - m) / sum;
    ids[t * p.k + j] = best_index;
    weights[t * p.k + j] = prob;
    chosen_sum += prob;
    prev_value = best;
    prev_index = best_index;
  }
  if ((p.flags & QVK_FLAG_NORM_TOPK) != 0u) {
    for (uint j = 0; j < p.k; ++j) weights[t * p.k + j] /= chosen_sum;
  }
}
