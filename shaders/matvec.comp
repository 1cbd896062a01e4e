#version 450
// Matrix x vector for few tokens (decode): p.lanes invocations per output feature stride over
// the inner dimension, so a workgroup computes WG / p.lanes features (short rows get few lanes
// and many rows per workgroup).
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer Residual { float residual[]; };

layout(push_constant) uniform Push { MatMulPush p; };

shared float partial[WG];

void main() {
  const uint lanes = p.lanes;
  const uint local_row = gl_LocalInvocationID.x / lanes;
  const uint lane = gl_LocalInvocationID.x % lanes;
  const uint row = group_index() * (WG / lanes) + local_row;
  const bool in_range = row < p.rows;
  const uint w_base = row * p.cols;

  for (uint t = 0; t < p.tokens; ++t) {
    float acc = 0.0;
    if (in_range) {
      const uint x_base = t * p.x_stride;
      for (uint k = lane; k < p.cols; k += lanes) acc += load_weight(w_base + k) * x[x_base + k];
    }
    partial[gl_LocalInvocationID.x] = acc;
    barrier();
    if (in_range && lane == 0) {
      float sum = 0.0;
      for (uint i = 0; i < lanes; ++i) sum += partial[local_row * lanes + i];
      const uint out_col = p.col_offset + row;
      if ((p.flags & QVK_FLAG_BIAS) != 0) sum += bias[out_col];
      const uint out_index = t * p.y_stride + out_col;
      if ((p.flags & QVK_FLAG_RESIDUAL) != 0) sum += residual[out_index];
      y[out_index] = sum;
    }
    barrier();
  }
}
