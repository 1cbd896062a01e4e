#version 450
// Merges the KV splits of attention.comp exactly, one workgroup per query row (head, token):
//   M = max_s m_s,   L = sum_s l_s exp(m_s - M),   O = sum_s acc_s exp(m_s - M) / L
// over the splits that held keys (derived from positions[] as attention.comp derives them).
// With QVK_FLAG_PROBS the scores the splits left in P become probabilities: exp(score - M) / L;
// with QVK_FLAG_SCORES they stay, and the row's M and L are written after P's rows instead.
#include "common.glsl"

layout(binding = 0) readonly buffer Positions { uint positions[]; };
layout(binding = 1) readonly buffer Partials { float partials[]; };  // laid out as attention.comp writes them
layout(binding = 2) writeonly buffer O { float o[]; };
layout(binding = 3) buffer P { float probs[]; };

layout(push_constant) uniform Push { AttentionPush p; };

#include "attention.glsl"

shared float weight_sh[QVK_ATTENTION_MAX_SPLITS];  // exp(m_s - M)

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint h = gl_WorkGroupID.x;
  const uint t = gl_WorkGroupID.y;
  const KeyRange keys = block_keys(t / p.tokens_per_block);
  const uint count = active_splits(keys);
  const uint first = (t * p.n_heads + h) * p.splits;
  const uint ml_base = p.tokens * p.n_heads * p.splits * p.head_dim;

  float m = NEG_INF;
  for (uint s = tid; s < count; s += WG) m = max(m, partials[ml_base + 2 * (first + s)]);
  m = workgroup_max(m);  // finite: the split holding the row's own position saw a key
  float l = 0.0;
  for (uint s = tid; s < count; s += WG) {
    const float weight = exp(partials[ml_base + 2 * (first + s)] - m);
    weight_sh[s] = weight;
    l += weight * partials[ml_base + 2 * (first + s) + 1];
  }
  l = workgroup_sum(l);  // its barrier also publishes weight_sh

  const float inv_l = 1.0 / l;
  for (uint d = tid; d < p.head_dim; d += WG) {
    float sum = 0.0;
    for (uint s = 0; s < count; ++s) sum += weight_sh[s] * partials[(first + s) * p.head_dim + d];
    o[t * p.o_stride + h * p.head_dim + d] = sum * inv_l;
  }

  if ((p.flags & QVK_FLAG_PROBS) == 0) return;
  if ((p.flags & QVK_FLAG_SCORES) != 0) {
    if (tid == 0) {
      const uint at = p.n_heads * p.tokens * p.probs_stride + 2 * (t * p.n_heads + h);
      probs[at] = m;
      probs[at + 1] = l;
    }
    return;
  }
  const uint pb = (h * p.tokens + t) * p.probs_stride;
  for (uint j = keys.begin + tid; j < min(keys.end, p.probs_stride); j += WG) {
    probs[pb + j] = exp(probs[pb + j] - m) * inv_l;
  }
}
