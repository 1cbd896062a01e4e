#version 450
// Embedding gather, one workgroup per token: copies row ids[t] of the table to Y[t] as f32 when
// this row slice of the table holds it (large tables are bound as several slices).
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer Ids { uint ids[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { EmbedPush p; };

void main() {
  const uint t = group_index();
  if (t >= p.tokens) return;
  const uint id = ids[t];
  if (id < p.row_offset || id - p.row_offset >= p.rows) return;
  const uint src = (id - p.row_offset) * p.cols;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) y[t * p.cols + i] = load_weight(src + i);
}
