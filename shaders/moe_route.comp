#version 450
// The mixture-of-experts router (MoeRoutePush): softmax over a token's router logits, then its k
// best experts, as transformers' Qwen2Moe/Qwen3Moe blocks compute them in f32. One workgroup per
// token, its invocations sharing the experts: a decode step's routing is a few workgroup
// reductions, not one invocation's walk over every expert k + 2 times. Each round's best is found
// by subgroup max and min, then across the few subgroups through shared memory: two barriers a
// round where a tree over the workgroup took seven.
#include "common.glsl"

layout(binding = 0) readonly buffer Logits { float logits[]; };
layout(binding = 1) writeonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Weights { float weights[]; };

layout(push_constant) uniform Push { MoeRoutePush p; };

#define NO_EXPERT 0xffffffffu

// Each subgroup's best candidate of a round, for every invocation to choose from.
shared float subgroup_values[WG];
shared uint subgroup_indices[WG];

// (logit, expert) order: the larger logit first, then the lower expert. No expert (NO_EXPERT)
// comes after every expert, even one whose logit is -inf.
bool before(float v, uint i, float w, uint j) { return v > w || (v == w && i < j); }

// A logit as the ranking sees it: NaN (a corrupt model's) as -inf, so that every round still finds
// an expert (there are at least k) and no id past the experts ever reaches the expert products.
float rank_value(float v) { return isnan(v) ? NEG_INF : v; }

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
    // This invocation's best expert after the last round's, among its own.
    float best = NEG_INF;
    uint best_index = NO_EXPERT;
    for (uint e = tid; e < p.experts; e += WG) {
      const float v = rank_value(logits[base + e]);
      if ((j == 0u || before(prev_value, prev_index, v, e)) && before(v, e, best, best_index)) {
        best = v;
        best_index = e;
      }
    }
    // The subgroup's: the largest value, then the lowest expert holding it (an expert before none).
    const float subgroup_best = subgroupMax(best);
    best_index = subgroupMin(best == subgroup_best ? best_index : NO_EXPERT);
    best = subgroup_best;
    if (gl_NumSubgroups > 1u) {  // the workgroup's, from each subgroup's in order
      if (subgroupElect()) {
        subgroup_values[gl_SubgroupID] = best;
        subgroup_indices[gl_SubgroupID] = best_index;
      }
      barrier();
      best = subgroup_values[0];
      best_index = subgroup_indices[0];
      for (uint s = 1u; s < gl_NumSubgroups; ++s) {
        if (before(subgroup_values[s], subgroup_indices[s], best, best_index)) {
          best = subgroup_values[s];
          best_index = subgroup_indices[s];
        }
      }
      barrier();  // every invocation has read the round's best before the next round's writes
    }
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
