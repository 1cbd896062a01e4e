#version 450
// A weight matrix's rows as f16 values, for the cooperative-matrix GEMM to multiply instead of
// dequantizing every block once per 64-token tile: Y[r, c] = f16(W[r, c]). One invocation per
// unit of matvec_units.glsl (its loads and its scale decoding), each run of 8 values rounded to
// nearest (f16.glsl) as matmul_coopmat.comp stages the weights it dequantizes itself, so both ways
// of running a product multiply the same f16 weights. Y's rows may come from two parts of W (a
// SwiGLU chunk's gate rows, then its up rows: one dispatch, not one a part).
//
// Where a unit's runs lie apart in its row (Q8_0's two 16 bytes apart, Q4_K's and Q5_K's four,
// Q6_K's four runs of 64 bytes), a store instruction straight from the registers fills only part
// of each 32-byte sector it touches: Q4_K's rows were written at a third of the copy rate. There a
// workgroup, whose units are whole blocks and so one contiguous stretch of Y, stages its runs in
// shared memory and stores the stretch in order: prefill of 7B Q4_K_M and Q8_0 +5-6%, 1.5B Q4_K_M
// +5% on an H100 (docs/speed.md, session 32). The other types' unit p stores its runs at columns
// 8p + 16r, in order already, and staging only cost them.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "f16.glsl"  // nearest_run

#define WEIGHT_BINDING 0
#include "matvec_units.glsl"

layout(binding = 1) writeonly buffer Y { uvec4 y[]; };  // 8 halves a word

layout(push_constant) uniform Push { DequantizeF16Push p; };

#define UNIT_WORDS (UNIT_COLS / 8u)  // a unit's 16-byte words of Y
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
#define STAGED
shared uvec4 staged[WG * UNIT_WORDS];  // the workgroup's stretch of Y
#endif

void main() {
  const uint units_per_row = p.cols / UNIT_COLS;
  const uint units = p.rows * units_per_row;
  const uint first_unit = group_index() * WG;
  if (first_unit >= units) return;  // a whole workgroup of the grid's spare ones (GridFor)
  const uint local = gl_LocalInvocationID.x;
  const uint u = first_unit + local;
  // Where the unit's block starts in the workgroup's stretch; blocks tile the rows, so the unit's
  // place in its block is its place in the stretch's blocks too.
  const uint block_column = local / BLOCK_UNITS * (UNIT_COLS * BLOCK_UNITS);
  if (u < units) {
    const Unit w = load_unit(u < p.part_rows * units_per_row ? u : u + p.gap_rows * units_per_row);
    [[unroll]] for (uint r = 0; r < UNIT_RUNS; ++r) {
      vec4 lo, hi;
      unit_run_values(w, r, lo, hi);
      const uint word = (block_column + run_column(local % BLOCK_UNITS, r)) / 8u;
#if defined(STAGED)
      staged[word] = nearest_run(lo, hi);
#else
      y[first_unit * UNIT_WORDS + word] = nearest_run(lo, hi);
#endif
    }
  }
#if defined(STAGED)
  barrier();
  const uint words = min(WG, units - first_unit) * UNIT_WORDS;
  [[unroll]] for (uint i = local; i < WG * UNIT_WORDS; i += WG) {
    if (i < words) y[first_unit * UNIT_WORDS + i] = staged[i];
  }
#endif
}
