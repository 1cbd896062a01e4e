#version 450
// FP16 FMA-rate probe, fma.comp's twin on f16vec2 chains: packed half arithmetic is how GPUs
// reach their FP16 rate, so each step is two FMAs. Lane x of chain k starts as chain 2k and lane
// y as chain 2k + 1 of fma.comp's numbering with twice the chains; y[i] is every lane's sum.
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "common.glsl"

layout(binding = 0) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { FmaPush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  const f16vec2 b = f16vec2(p.b);
  const f16vec2 c = f16vec2(p.c);
  f16vec2 a[QVK_FMA_CHAINS];
  [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) {
    const uint first = i * 2u * QVK_FMA_CHAINS + 2u * k;
    a[k] = f16vec2(float(first % 17u), float((first + 1u) % 17u));
  }
  for (uint it = 0; it < p.iterations; ++it) {
    [[unroll]] for (uint s = 0; s < QVK_FMA_STEPS; ++s) {
      [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) a[k] = fma(a[k], b, c);
    }
  }
  float sum = 0.0;
  [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) sum += float(a[k].x) + float(a[k].y);
  if (i < p.count) y[i] = sum;
}
