#version 450
// RMSNorm, one workgroup per row: Y = X * inversesqrt(mean(X^2) + eps) * weight (all f32, as
// transformers computes it before casting back).
#include "common.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float weight[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { RmsNormPush p; };

void main() {
  const uint row = group_index();
  const uint xb = row * p.x_stride;
  float sum_sq = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) sum_sq += x[xb + i] * x[xb + i];
  const float inv_rms = inversesqrt(workgroup_sum(sum_sq) / float(p.cols) + p.eps);
  const uint yb = row * p.y_stride;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) y[yb + i] = x[xb + i] * inv_rms * weight[i];
}
