#version 450
// Expert products (MoeMatVecPush): one workgroup per output row of one (token, slot) pair, its
// expert read from the router's ids on the GPU, so a decode step reads only the chosen experts'
// rows and needs no trip to the host.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) readonly buffer Ids { uint ids[]; };
layout(binding = 3) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { MoeMatVecPush p; };

void main() {
  const uint index = group_index();
  const uint pair = index / p.rows;
  const uint r = index % p.rows;
  if (pair >= p.pairs) return;
  const uint w_base = (ids[pair] * p.rows + r) * p.cols;
  const uint x_base = (p.x_per_pair != 0u ? pair : pair / p.k) * p.x_stride;
  float acc = 0.0;
  for (uint c = gl_LocalInvocationID.x; c < p.cols; c += WG) acc += load_weight(w_base + c) * x[x_base + c];
  const float total = workgroup_sum(acc);
  if (gl_LocalInvocationID.x == 0) y[pair * p.y_stride + p.y_offset + r] = total;
}
