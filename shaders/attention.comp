#version 450
// Causal grouped-query attention with online softmax (flash style): one workgroup per
// (query token, head) walks the visible keys in tiles of WG, one key per invocation, keeping a
// running max m, normaliser l and output accumulator, so memory does not grow with T^2.
// With QVK_FLAG_PROBS a second pass writes the exact post-softmax probabilities.
#include "common.glsl"

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer KCache { float16_t k_cache[]; };
layout(binding = 3) readonly buffer VCache { float16_t v_cache[]; };
layout(binding = 4) writeonly buffer O { float o[]; };
layout(binding = 5) writeonly buffer P { float probs[]; };

layout(push_constant) uniform Push { AttentionPush p; };

#define MAX_HEAD_DIM 256
shared float q_sh[MAX_HEAD_DIM];
shared float p_sh[WG];  // this tile's exp(score - m)

float score(uint kv_base, uint j) {
  const uint kb = kv_base + j * p.head_dim;
  float s = 0.0;
  for (uint d = 0; d < p.head_dim; ++d) s += q_sh[d] * float(k_cache[kb + d]);
  return s;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint t = gl_WorkGroupID.x;
  const uint h = gl_WorkGroupID.y;
  const uint g = h / (p.n_heads / p.n_kv_heads);
  const uint kv_base = g * p.capacity * p.head_dim;
  const uint pos = positions[t];
  const uint first = (p.window != 0 && pos + 1 > p.window) ? pos + 1 - p.window : 0;

  for (uint d = tid; d < p.head_dim; d += WG) q_sh[d] = q[t * p.q_stride + h * p.head_dim + d] * p.scale;
  barrier();

  // Each invocation owns output dims tid and tid + WG (head_dim <= 2 * WG).
  float m = NEG_INF;
  float l = 0.0;
  float acc0 = 0.0, acc1 = 0.0;
  const uint d0 = tid, d1 = tid + WG;
  for (uint j0 = first; j0 <= pos; j0 += WG) {
    const uint j = j0 + tid;
    const bool visible = j <= pos;
    const float s = visible ? score(kv_base, j) : NEG_INF;
    const float m_new = max(m, workgroup_max(s));
    const float e = visible ? exp(s - m_new) : 0.0;
    const float correction = exp(m - m_new);
    l = l * correction + workgroup_sum(e);
    p_sh[tid] = e;
    barrier();
    acc0 *= correction;
    acc1 *= correction;
    const uint n = min(WG, pos + 1 - j0);
    for (uint jj = 0; jj < n; ++jj) {
      const uint vb = kv_base + (j0 + jj) * p.head_dim;
      const float pj = p_sh[jj];
      if (d0 < p.head_dim) acc0 += pj * float(v_cache[vb + d0]);
      if (d1 < p.head_dim) acc1 += pj * float(v_cache[vb + d1]);
    }
    barrier();
    m = m_new;
  }

  const float inv_l = 1.0 / l;
  const uint ob = t * p.o_stride + h * p.head_dim;
  if (d0 < p.head_dim) o[ob + d0] = acc0 * inv_l;
  if (d1 < p.head_dim) o[ob + d1] = acc1 * inv_l;

  if ((p.flags & QVK_FLAG_PROBS) != 0) {
    const uint pb = (h * p.tokens + t) * p.probs_stride;
    for (uint j = tid; j < p.probs_stride; j += WG) {
      probs[pb + j] = (j >= first && j <= pos) ? exp(score(kv_base, j) - m) * inv_l : 0.0;
    }
  }
}
