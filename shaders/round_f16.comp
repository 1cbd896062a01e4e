#version 450
// X's rows rounded to the nearest f16 (f16.glsl, as dequantize_f16.comp rounds weights) into rows
// of whole runs of 8: Y[t, c] = f16(X[t * x_stride + c]), Y rows ceil(cols / 8) * 8 halves long,
// zero past `cols`. A product of rounded weights (and the experts' products on matrix units) reads
// its X so (matmul_coopmat.comp's X_HALF): half the bytes of f32 rows in every step of every tile,
// rounded once rather than by every workgroup that stages them. One invocation per run of 8
// columns; X's rows may start anywhere, so it reads them a float at a time.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "f16.glsl"  // nearest_run

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { uvec4 y[]; };  // 8 halves a word

layout(push_constant) uniform Push { RoundF16Push p; };

void main() {
  const uint run = group_index() * WG + gl_LocalInvocationID.x;
  const uint runs_per_row = (p.cols + 7u) / 8u;
  if (run >= p.tokens * runs_per_row) return;
  const uint col = run % runs_per_row * 8u;
  const uint at = run / runs_per_row * p.x_stride + col;
  float v[8];
  [[unroll]] for (uint c = 0; c < 8u; ++c) v[c] = col + c < p.cols ? x[at + c] : 0.0;
  y[run] = nearest_run(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
}
