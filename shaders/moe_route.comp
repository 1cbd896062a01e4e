#version 450
// The mixture-of-experts router (MoeRoutePush): softmax over a token's router logits, then its k
// best experts, as transformers' Qwen2Moe/Qwen3Moe blocks compute them in f32. One workgroup per
// token, its invocations sharing the experts: a decode step's routing is a few workgroup
// reductions, not one invocation's walk over every expert k + 2 times.
#include "common.glsl"

layout(binding = 0) readonly buffer Logits { float logits[]; };
layout(binding = 1) writeonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Weights { float weights[]; };

layout(push_constant) uniform Push { MoeRoutePush p; };

// Each invocation's best candidate of a round, reduced in place to the workgroup's (WG is a power
// of two).
shared float candidate_values[WG];
shared uint candidate_indices[WG];

// (logit, expert) order: the larger logit first, then the lower expert. No expert (index ~0u)
// comes after every expert, even one whose logit is -inf.
bool before(float v, uint i, float w, uint j) { return v > w || (v == w && i < j); }

void main() {
  const uint t = group_index();
  if (t >= p.tokens) return;  // the whole workgroup
  const uint tid = gl_LocalInvocationID.x;
  const uint base = t * p.experts;
  float m = NEG_INF;
  for (uint e = tid; e < p.experts; e += WG) m = max(m, logits[base + e]);
  m = workgroup_max(m);
  float sum = 0.0;
  for (uint e = tid; e < p.experts; e += WG) sum += exp(logits[base + e] - m);
  sum = workgroup_sum(sum);
  // The j-th best is the best logit after the (j-1)-th in (logit descending, index ascending)
  // order, so no list of taken experts is kept.
  float prev_value = uintBitsToFloat(0x7f800000u);
  uint prev_index = 0;
  float chosen_sum = 0.0;
  float probs[QVK_MAX_SEGMENTS];
  for (uint j = 0; j < p.k; ++j) {
    float best = NEG_INF;
    uint best_index = 0xffffffffu;
    for (uint e = tid; e < p.experts; e += WG) {  // ascending: ties keep the lower expert
      const float v = logits[base + e];
      const bool after_prev = j == 0 || v < prev_value || (v == prev_value && e > prev_index);
      if (after_prev && (best_index == 0xffffffffu || v > best)) {
        best = v;
        best_index = e;
      }
    }
    candidate_values[tid] = best;
    candidate_indices[tid] = best_index;
    barrier();
    for (uint stride = WG / 2u; stride > 0u; stride /= 2u) {
      if (tid < stride && before(candidate_values[tid + stride], candidate_indices[tid + stride],
                                 candidate_values[tid], candidate_indices[tid])) {
        candidate_values[tid] = candidate_values[tid + stride];
        candidate_indices[tid] = candidate_indices[tid + stride];
      }
      barrier();
    }
    best = candidate_values[0];
    best_index = candidate_indices[0];
    barrier();  // every invocation has the round's best before the next round's candidates
    probs[j] = exp(best - m) / sum;
    chosen_sum += probs[j];
    prev_value = best;
    prev_index = best_index;
    if (tid == 0u) ids[t * p.k + j] = best_index;
  }
  if (tid != 0u) return;
  const bool normalize = (p.flags & QVK_FLAG_NORM_TOPK) != 0u;
  for (uint j = 0; j < p.k; ++j) weights[t * p.k + j] = normalize ? probs[j] / chosen_sum : probs[j];
}
