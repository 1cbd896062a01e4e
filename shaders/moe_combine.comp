#version 450
// The mixture-of-experts output added to the residual stream (MoeCombinePush): the chosen
// experts' rows weighted by the router, and the shared expert's scaled by its sigmoid gate.
#include "common.glsl"

layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer Weights { float weights[]; };
layout(binding = 2) readonly buffer E { float expert_out[]; };
layout(binding = 3) readonly buffer S { float shared_out[]; };
layout(binding = 4) readonly buffer G { float shared_gate[]; };

layout(push_constant) uniform Push { MoeCombinePush p; };

void main() {
  const uint i = group_index() * WG + gl_LocalInvocationID.x;
  if (i >= p.tokens * p.hidden) return;
  const uint t = i / p.hidden;
  const uint c = i % p.hidden;
  float sum = 0.0;
  for (uint j = 0; j < p.k; ++j) sum += weights[t * p.k + j] * expert_out[(t * p.k + j) * p.hidden + c];
  if ((p.flags & QVK_FLAG_SHARED) != 0u) sum += shared_out[i] / (1.0 + exp(-shared_gate[t]));
  x[i] += sum;
}
