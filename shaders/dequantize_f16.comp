#version 450
// A weight matrix's rows as f16 values, for the cooperative-matrix GEMM to multiply instead of
// dequantizing every block once per 64-token tile: Y[r, c] = f16(W[r, c]). One invocation per
// unit of matvec_units.glsl (its loads and its scale decoding), each run of 8 values stored as one
// 16-byte word at its columns, rounded to nearest (f16.glsl) as matmul_coopmat.comp stages the
// weights it dequantizes itself, so both ways of running a product multiply the same f16 weights.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "f16.glsl"  // nearest_run

#define WEIGHT_BINDING 0
#include "matvec_units.glsl"

layout(binding = 1) writeonly buffer Y { uvec4 y[]; };  // 8 halves a word

layout(push_constant) uniform Push { DequantizeF16Push p; };

void main() {
  const uint units_per_row = p.cols / UNIT_COLS;
  const uint u = group_index() * WG + gl_LocalInvocationID.x;
  if (u >= p.rows * units_per_row) return;
  const uint row = u / units_per_row;
  const uint in_row = u % units_per_row;
  const uint first_column = in_row / BLOCK_UNITS * (UNIT_COLS * BLOCK_UNITS);
  const Unit w = load_unit(u);
  [[unroll]] for (uint r = 0; r < UNIT_RUNS; ++r) {
    vec4 lo, hi;
    unit_run_values(w, r, lo, hi);
    const uint column = first_column + run_column(in_row % BLOCK_UNITS, r);
    y[(row * p.cols + column) / 8u] = nearest_run(lo, hi);
  }
}
