#version 450
// The splits of a matmul_coopmat split along K (MatMulSplitSumPush), summed in split order so the
// result does not depend on which workgroup finished first, then the bias and residual the split
// product left out: Y[t, col_offset + r] = sum_s P[s, t, r] (+ bias) (+ R).
#include "common.glsl"

layout(binding = 0) readonly buffer Partials { float partials[]; };
layout(binding = 1) buffer Y { float y[]; };
layout(binding = 2) readonly buffer Bias { float bias[]; };
layout(binding = 3) readonly buffer Residual { float residual[]; };

layout(push_constant) uniform Push { MatMulSplitSumPush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  if (i >= p.tokens * p.rows) return;
  const uint t = i / p.rows;
  const uint r = i % p.rows;
  const uint plane = p.tokens * p.rows;
  float v = 0.0;
  for (uint s = 0; s < p.splits; ++s) v += partials[s * plane + i];
  const uint out_col = p.col_offset + r;
  if ((p.flags & QVK_FLAG_BIAS) != 0) v += bias[out_col];
  const uint out_index = t * p.y_stride + out_col;
  if ((p.flags & QVK_FLAG_RESIDUAL) != 0) v += residual[out_index];
  y[out_index] = v;
}
