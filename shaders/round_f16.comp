#version 450
// X's rows rounded to the nearest f16 (f16.glsl, as dequantize_f16.comp rounds weights) into rows
// of whole runs of 8: Y[t, c] = f16(X[t * x_stride + c]), Y rows ceil(cols / 8) * 8 halves long,
// zero past `cols`. A product of rounded weights (and the experts' products on matrix units) reads
// its X so (matmul_coopmat.comp's X_HALF): half the bytes of f32 rows in every step of every tile,
// rounded once rather than by every workgroup that stages them. One invocation per run of 8
// columns; X's rows may start anywhere, so it reads them a float at a time.
//
// IN_PLACE (round_f16_in_place, ops::RoundToF16InPlace): X's rows (whole runs of 8, 16-byte
// aligned) rounded into X itself, row t's halves at the start of its own f32 row, so that no room
// of their own is needed (the MLP's m for down). One workgroup a row, in blocks of WG runs: run k's
// halves land on the floats of run k / 2, which the block that read them has converted before the
// barrier that precedes this block's stores; the rows' bytes never meet.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "f16.glsl"  // nearest_run

layout(push_constant) uniform Push { RoundF16Push p; };

#if defined(IN_PLACE)
layout(binding = 0) readonly buffer X { vec4 x4[]; };
layout(binding = 0) writeonly buffer Y { uvec4 y[]; };  // 8 halves a word

void main() {
  const uint row = group_index();
  if (row >= p.tokens) return;
  const uint runs_per_row = p.cols / 8u;
  const uint row_start = row * p.x_stride / 4u;  // in vec4 (and uvec4) words
  for (uint block = 0; block < runs_per_row; block += WG) {
    const uint run = block + gl_LocalInvocationID.x;
    uvec4 halves = uvec4(0u);
    if (run < runs_per_row) halves = nearest_run(x4[row_start + 2u * run], x4[row_start + 2u * run + 1u]);
    // Every run of the block read and rounded before any of the block stores over what it read.
    memoryBarrierBuffer();
    barrier();
    if (run < runs_per_row) y[row_start + run] = halves;
  }
}
#else
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { uvec4 y[]; };  // 8 halves a word

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
#endif
