#version 450
// Copy-bandwidth probe: Y = X in 16-byte words. A workgroup's loads (and stores) of one round
// are contiguous; each invocation issues its QVK_COPY_WORDS loads before any store.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) readonly buffer X { uvec4 x[]; };
layout(binding = 1) writeonly buffer Y { uvec4 y[]; };

layout(push_constant) uniform Push { CopyPush p; };

void main() {
  const uint first = group_index() * WG * QVK_COPY_WORDS + gl_LocalInvocationID.x;
  uvec4 words[QVK_COPY_WORDS];
  [[unroll]] for (uint k = 0; k < QVK_COPY_WORDS; ++k) {
    const uint i = first + k * WG;
    if (i < p.words) words[k] = x[i];
  }
  [[unroll]] for (uint k = 0; k < QVK_COPY_WORDS; ++k) {
    const uint i = first + k * WG;
    if (i < p.words) y[i] = words[k];
  }
}
