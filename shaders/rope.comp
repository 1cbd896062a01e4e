#version 450
// NeoX rotary embedding on fused QKV rows. One invocation per (token, head slot, pair i): slots
// [0, H) are q heads (rotated in place), [H, H + Hkv) k heads (rotated; stored to the cache with
// QVK_FLAG_STORE_KV, else in place), [H + Hkv, H + 2 Hkv) v heads (copied to the cache).
// Element i rotates with element i + D/2 by angle positions[t] * inv_freq[i].
#include "common.glsl"
#include "rope.glsl"

layout(binding = 0) buffer QKV { float qkv[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer InvFreq { float inv_freq[]; };
layout(binding = 3) writeonly buffer KCache { float16_t k_cache[]; };
layout(binding = 4) writeonly buffer VCache { float16_t v_cache[]; };

layout(push_constant) uniform Push { RopePush p; };

void main() {
  const uint half_dim = p.head_dim / 2;
  const uint slots = p.n_heads + 2 * p.n_kv_heads;
  const uint item = group_index() * WG + gl_LocalInvocationID.x;
  if (item >= p.tokens * slots * half_dim) return;
  const uint i = item % half_dim;
  const uint slot = (item / half_dim) % slots;
  const uint t = item / (half_dim * slots);
  const uint pos = positions[t];
  const bool store = (p.flags & QVK_FLAG_STORE_KV) != 0;

  if (slot >= p.n_heads + p.n_kv_heads) {  // v head: plain copy into the cache
    if (!store) return;
    const uint h = slot - p.n_heads - p.n_kv_heads;
    const uint src = t * p.qkv_stride + p.v_offset + h * p.head_dim;
    const uint dst = (h * p.capacity + pos) * p.head_dim;
    v_cache[dst + i] = float16_t(qkv[src + i]);
    v_cache[dst + i + half_dim] = float16_t(qkv[src + i + half_dim]);
    return;
  }

  const bool is_q = slot < p.n_heads;
  const uint h = is_q ? slot : slot - p.n_heads;
  const uint src = t * p.qkv_stride + (is_q ? 0 : p.k_offset) + h * p.head_dim;
  const vec2 cs = cos_sin(float(pos) * inv_freq[i]) * p.attention_factor;
  const float x0 = qkv[src + i];
  const float x1 = qkv[src + i + half_dim];
  const vec2 rotated = rotate_pair(x0, x1, cs);
  const float r0 = rotated.x, r1 = rotated.y;
  if (!is_q && store) {
    const uint dst = (h * p.capacity + pos) * p.head_dim;
    k_cache[dst + i] = float16_t(r0);
    k_cache[dst + i + half_dim] = float16_t(r1);
  } else {
    qkv[src + i] = r0;
    qkv[src + i + half_dim] = r1;
  }
}
