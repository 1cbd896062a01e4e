#version 450
// Attention maps from the attention kernel's probabilities (AttentionReducePush): one head's rows
// copied, or the max or mean over a plane's heads and over square cells of the map (overview
// thumbnails), for the query rows one chunk of a prefill holds, so that only the map asked for
// leaves the GPU; with QVK_FLAG_MUTE_SINK each head's row first loses key 0 (the attention sink)
// and is renormalized, so a pooled or reduced map shows what the rest of the keys get. A workgroup
// computes cells_per_wg values of one output row of one plane, with lanes_per_cell lanes per value
// reading its columns side by side.
#include "common.glsl"

layout(binding = 0) readonly buffer P { float probs[]; };
layout(binding = 1) buffer Out { float out_values[]; };

layout(push_constant) uniform Push { AttentionReducePush p; };

shared float partial_sh[WG];

float combine(bool is_max, float a, float b) { return is_max ? max(a, b) : a + b; }

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const bool is_max = (p.flags & QVK_FLAG_MAX) != 0;
  const bool mute = (p.flags & QVK_FLAG_MUTE_SINK) != 0;
  const uint out_cols = (p.cols + p.cell - 1) / p.cell;
  const uint out_rows = (p.band_end - p.band_begin + p.cell - 1) / p.cell;
  // The band's rows P holds; workgroup row y is the y-th output row they touch.
  const uint lo = max(p.band_begin, p.first_row);
  const uint hi = min(p.band_end, p.first_row + p.rows);
  const uint i = (lo - p.band_begin) / p.cell + gl_WorkGroupID.y;
  const uint plane = gl_WorkGroupID.z;

  const uint cells_per_wg = max(1, WG / p.cell);
  const uint lanes_per_cell = WG / cells_per_wg;
  const uint j = gl_WorkGroupID.x * cells_per_wg + tid / lanes_per_cell;
  const uint lane = tid % lanes_per_cell;
  const bool valid = tid < cells_per_wg * lanes_per_cell && j < out_cols;

  const uint cell_begin = p.band_begin + i * p.cell;  // the value's map rows ...
  const uint cell_end = min(cell_begin + p.cell, p.band_end);
  const uint r0 = max(cell_begin, lo), r1 = min(cell_end, hi);  // ... those P holds
  const uint c0 = j * p.cell, c1 = min(c0 + p.cell, p.cols);
  float acc = 0.0;  // probabilities are >= 0: 0 is the max's identity too
  if (valid) {
    const uint h0 = p.head_first + plane * p.plane_heads;
    for (uint h = h0; h < h0 + p.plane_heads; ++h) {
      for (uint r = r0; r < r1; ++r) {
        const uint base = (h * p.rows + r - p.first_row) * p.p_stride;
        // A row wholly on the sink has nothing left: 0, not 0 / 0.
        const float sink = probs[base];
        const float scale = !mute ? 1.0 : sink < 1.0 ? 1.0 / (1.0 - sink) : 0.0;
        for (uint c = max(c0, mute ? 1 : 0) + lane; c < c1; c += lanes_per_cell) {
          acc = combine(is_max, acc, probs[base + c] * scale);
        }
      }
    }
  }
  partial_sh[tid] = acc;
  barrier();
  if (!valid || lane != 0) return;
  for (uint k = 1; k < lanes_per_cell; ++k) acc = combine(is_max, acc, partial_sh[tid + k]);
  // The mean over the whole cell: each chunk's share is divided by its full size.
  if (!is_max) acc /= float(p.plane_heads) * float(cell_end - cell_begin) * float(c1 - c0);
  const uint at = ((p.plane_base + plane) * out_rows + i) * out_cols + j;
  if (cell_begin < lo) acc = combine(is_max, out_values[at], acc);
  out_values[at] = acc;
}
