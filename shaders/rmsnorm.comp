#version 450
// RMSNorm, one workgroup per row: Y = X * inversesqrt(mean(X^2) + eps) * weight (all f32, as
// transformers computes it before casting back); SCALE_ONLY (scale_by_weight): Y = X * weight, the
// product that matvec's SCALED_OUT stores, to the bit.
//
// A decode step normalizes a single row in a dispatch of its own (ops: a K-quant gate|up product
// with its norm apart), so one workgroup's latency is the kernel's time: rows of whole vec4 are
// read four vec4 an invocation a round, all four loads issued before the first is used, rather
// than one float a round (a 3 584-column row: 4 rounds of dependent loads, not 14).
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1) readonly buffer W { float weight[]; };
layout(binding = 1) readonly buffer W4 { vec4 weight4[]; };
#if defined(Y_HALF)
// Y as f16 rounded to nearest (rmsnorm_f16), for a product of weights rounded to f16 to read.
#include "f16.glsl"
layout(binding = 2) writeonly buffer Y { float16_t y[]; };
layout(binding = 2) writeonly buffer Y4 { uvec2 y4[]; };
void store(uint i, float v) { y[i] = float16_t(f16_nearest(vec4(v)).x); }
void store4(uint i, vec4 v) {
  const vec4 r = f16_nearest(v);
  y4[i] = uvec2(pack_halves(r.xy), pack_halves(r.zw));
}
#else
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(binding = 2) writeonly buffer Y4 { vec4 y4[]; };
void store(uint i, float v) { y[i] = v; }
void store4(uint i, vec4 v) { y4[i] = v; }
#endif

layout(push_constant) uniform Push { RmsNormPush p; };

const uint kLoads = 4u;  // vec4 loads in flight per invocation and round

void main() {
  const uint row = group_index();
  const uint xb = row * p.x_stride, yb = row * p.y_stride;
  const uint tid = gl_LocalInvocationID.x;
  const bool whole_vec4 = p.cols % 4u == 0u && p.x_stride % 4u == 0u && p.y_stride % 4u == 0u;
  float sum_sq = 0.0;
  if (whole_vec4) {
    const uint n4 = p.cols / 4u, x4b = xb / 4u, y4b = yb / 4u;
    for (uint first = tid; first < n4; first += kLoads * WG) {
      vec4 v[kLoads];
      [[unroll]] for (uint k = 0; k < kLoads; ++k) {
        const uint i = first + k * WG;
        v[k] = i < n4 ? x4[x4b + i] : vec4(0.0);
      }
      [[unroll]] for (uint k = 0; k < kLoads; ++k) sum_sq += dot(v[k], v[k]);
    }
#if defined(SCALE_ONLY)
    const float inv_rms = 1.0;
#else
    const float inv_rms = inversesqrt(workgroup_sum(sum_sq) / float(p.cols) + p.eps);
#endif
    for (uint first = tid; first < n4; first += kLoads * WG) {
      [[unroll]] for (uint k = 0; k < kLoads; ++k) {
        const uint i = first + k * WG;
        if (i < n4) store4(y4b + i, x4[x4b + i] * inv_rms * weight4[i]);
      }
    }
    return;
  }
#if defined(SCALE_ONLY)
  const float inv_rms = 1.0;
#else
  for (uint i = tid; i < p.cols; i += WG) sum_sq += x[xb + i] * x[xb + i];
  const float inv_rms = inversesqrt(workgroup_sum(sum_sq) / float(p.cols) + p.eps);
#endif
  for (uint i = tid; i < p.cols; i += WG) store(yb + i, x[xb + i] * inv_rms * weight[i]);
}
