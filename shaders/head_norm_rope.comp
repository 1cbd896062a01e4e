#version 450
// Qwen3's q and k heads: each scaled by its RMS and its weight (q_norm | k_norm), in f32 as
// transformers computes it, then rotated by NeoX RoPE as rope.comp rotates them; with
// QVK_FLAG_STORE_KV, K (rotated) and V go to the F16 cache instead of back into QKV. One workgroup
// per (token, head slot), the slots as rope.comp's: [0, H) q heads, [H, H + Hkv) k heads,
// [H + Hkv, H + 2 Hkv) v heads. The norm needs a whole head's sum of squares, which a workgroup
// of its own has; one dispatch rather than a norm and a rope saves a dependent dispatch a layer.
#include "common.glsl"
#include "rope.glsl"

layout(binding = 0) buffer QKV { float qkv[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer InvFreq { float inv_freq[]; };
layout(binding = 3) writeonly buffer KCache { float16_t k_cache[]; };
layout(binding = 4) writeonly buffer VCache { float16_t v_cache[]; };
layout(binding = 5) readonly buffer Weight { float weight[]; };  // q_norm | k_norm, f32 [2 * D]

layout(push_constant) uniform Push {
  RopePush p;
  float eps;  // the norm's epsilon (HeadNormRopePush)
};

void main() {
  const uint half_dim = p.head_dim / 2u;
  const uint slots = p.n_heads + 2u * p.n_kv_heads;
  const uint row = group_index();
  if (row >= p.tokens * slots) return;  // the whole workgroup
  const uint t = row / slots;
  const uint slot = row % slots;
  const uint pos = positions[t];
  const bool store = (p.flags & QVK_FLAG_STORE_KV) != 0u;

  if (slot >= p.n_heads + p.n_kv_heads) {  // v head: plain copy into the cache
    if (!store) return;
    const uint h = slot - p.n_heads - p.n_kv_heads;
    const uint src = t * p.qkv_stride + p.v_offset + h * p.head_dim;
    const uint dst = (h * p.capacity + pos) * p.head_dim;
    for (uint i = gl_LocalInvocationID.x; i < p.head_dim; i += WG) v_cache[dst + i] = float16_t(qkv[src + i]);
    return;
  }

  const bool is_q = slot < p.n_heads;
  const uint h = is_q ? slot : slot - p.n_heads;
  const uint src = t * p.qkv_stride + (is_q ? 0u : p.k_offset) + h * p.head_dim;
  const uint w = is_q ? 0u : p.head_dim;  // q_norm, then k_norm
  float sum_sq = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.head_dim; i += WG) sum_sq += qkv[src + i] * qkv[src + i];
  // workgroup_sum's barriers also order every read above before the writes below.
  const float inv_rms = inversesqrt(workgroup_sum(sum_sq) / float(p.head_dim) + eps);
  for (uint i = gl_LocalInvocationID.x; i < half_dim; i += WG) {
    const vec2 rotated = norm_rotate_pair(qkv[src + i], qkv[src + i + half_dim], inv_rms, weight[w + i],
                                          weight[w + i + half_dim],
                                          cos_sin(float(pos) * inv_freq[i]) * p.attention_factor);
    if (!is_q && store) {
      const uint dst = (h * p.capacity + pos) * p.head_dim;
      k_cache[dst + i] = float16_t(rotated.x);
      k_cache[dst + i + half_dim] = float16_t(rotated.y);
    } else {
      qkv[src + i] = rotated.x;
      qkv[src + i + half_dim] = rotated.y;
    }
  }
}
