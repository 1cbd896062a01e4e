#version 450
// The mixture-of-experts router (MoeRoutePush): softmax over a token's router logits, then its k
// best experts, as transformers' Qwen2Moe/Qwen3Moe blocks compute them in f32 (moe_choice.glsl).
// One workgroup per token, whose first subgroup makes the choice with subgroup operations alone;
// one token's router product makes the same choice in its last workgroup instead (matvec.comp's
// ROUTE), so this dispatch serves prefill, whose grouping by expert needs the ids first.
#include "common.glsl"

layout(binding = 0) readonly buffer Logits { float logits[]; };
layout(binding = 1) writeonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Weights { float weights[]; };

layout(push_constant) uniform Push { MoeRoutePush p; };

#include "moe_choice.glsl"

void main() {
  const uint t = group_index();
  if (t >= p.tokens || gl_SubgroupID != 0u) return;  // one subgroup a token
  const float chosen_sum = choose_experts(t * p.experts, p.experts, p.k);
  // chosen_* were written by this same invocation: no barrier between.
  if (!subgroupElect()) return;
  const bool normalize = (p.flags & QVK_FLAG_NORM_TOPK) != 0u;
  for (uint j = 0; j < p.k; ++j) {
    ids[t * p.k + j] = chosen_ids[j];
    weights[t * p.k + j] = normalize ? chosen_probs[j] / chosen_sum : chosen_probs[j];
  }
}
