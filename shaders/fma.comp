#version 450
// FP32 FMA-rate probe: QVK_FMA_CHAINS independent chains a = fma(a, b, c) per invocation, so the
// FMA latency hides behind the other chains; b < 1 keeps every value finite. The sum is written
// so that no chain is optimized away.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { FmaPush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  float a[QVK_FMA_CHAINS];
  [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) a[k] = float((i * QVK_FMA_CHAINS + k) % 17u);
  for (uint it = 0; it < p.iterations; ++it) {
    [[unroll]] for (uint s = 0; s < QVK_FMA_STEPS; ++s) {
      [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) a[k] = fma(a[k], p.b, p.c);
    }
  }
  float sum = 0.0;
  [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) sum += a[k];
  if (i < p.count) y[i] = sum;
}
