#version 450
// Row softmax, one workgroup per row: Y = exp(s*X - max) / sum.
#include "common.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { SoftmaxPush p; };

void main() {
  const uint base = group_index() * p.cols;
  float m = NEG_INF;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) m = max(m, x[base + i] * p.scale);
  m = workgroup_max(m);
  float sum = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) sum += exp(x[base + i] * p.scale - m);
  const float inv = 1.0 / workgroup_sum(sum);
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) y[base + i] = exp(x[base + i] * p.scale - m) * inv;
}
