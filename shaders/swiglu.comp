#version 450
// SwiGLU on side-by-side gate and up projections: Y[t, i] = silu(gate) * up.
#include "common.glsl"

layout(binding = 0) readonly buffer GU { float gate_up[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { SwiGluPush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  if (i >= p.tokens * p.inter) return;
  const uint t = i / p.inter;
  const uint c = i % p.inter;
  const float g = gate_up[t * p.gu_stride + c];
  const float u = gate_up[t * p.gu_stride + p.inter + c];
  y[t * p.y_stride + c] = g / (1.0 + exp(-g)) * u;
}
