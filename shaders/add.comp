#version 450
// Elementwise Y = A + B (the residual stream).
#include "common.glsl"

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { AddPush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  if (i < p.count) y[i] = a[i] + b[i];
}
