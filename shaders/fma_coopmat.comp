#version 450
// Cooperative-matrix rate probe: each 32-wide subgroup runs QVK_FMA_CHAINS independent f32
// accumulators acc = A * B + acc on 16x16x16 f16 fragments (16^3 FMAs each), the shape and
// types matmul_coopmat.comp multiplies with; A is all b and B all c. Subgroup s of workgroup g
// stores accumulator k, a 16x16 tile of floats, at y[((4g + s) * QVK_FMA_CHAINS + k) * 256]
// (g < count), so no chain is optimized away. (Summing the accumulators first would store less,
// but glslang 11.13 crashes on fcoopmatNV addition.) Built into a device only where
// DeviceInfo::coopmat_f16 holds.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "coopmat.glsl"  // the fragments

layout(binding = 0) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { FmaPush p; };

void main() {
  HalfFrag a = HalfFrag(float16_t(p.b));
  HalfFrag b = HalfFrag(float16_t(p.c));
  AccFrag acc[QVK_FMA_CHAINS];
  [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) acc[k] = AccFrag(0.0);
  for (uint it = 0; it < p.iterations; ++it) {
    [[unroll]] for (uint s = 0; s < QVK_FMA_STEPS; ++s) {
      [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) acc[k] = coopMatMulAddNV(a, b, acc[k]);
    }
  }
  const uint group = group_index();
  if (group < p.count) {
    const uint first = (group * (WG / 32u) + gl_SubgroupID) * QVK_FMA_CHAINS;
    [[unroll]] for (uint k = 0; k < QVK_FMA_CHAINS; ++k) {
      coopMatStoreNV(acc[k], y, (first + k) * FRAG * FRAG, FRAG, false);
    }
  }
}
