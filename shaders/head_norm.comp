#version 450
// Qwen3's per-head RMSNorm of q and k (HeadNormPush), in place, one workgroup per head and token,
// in f32 as transformers computes it.
#include "common.glsl"

layout(binding = 0) buffer QKV { float qkv[]; };
layout(binding = 1) readonly buffer W { float weight[]; };

layout(push_constant) uniform Push { HeadNormPush p; };

void main() {
  const uint heads = p.n_heads + p.n_kv_heads;
  const uint row = group_index();
  if (row >= p.tokens * heads) return;
  const uint h = row % heads;
  const uint base = (row / heads) * p.stride + h * p.head_dim;
  const uint wb = h < p.n_heads ? 0 : p.head_dim;
  float sum_sq = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.head_dim; i += WG) sum_sq += qkv[base + i] * qkv[base + i];
  const float inv_rms = inversesqrt(workgroup_sum(sum_sq) / float(p.head_dim) + p.eps);
  for (uint i = gl_LocalInvocationID.x; i < p.head_dim; i += WG) qkv[base + i] *= inv_rms * weight[wb + i];
}
