#version 450
// Matrix x matrix for prefill: Y[t, r] = sum_k W[r, k] X[t, k], tiled 64 tokens x 64 features
// per workgroup of 256 invocations, each computing a 4 x 4 block from shared-memory tiles.
// QVK_FLAG_SWIGLU (prefill's gate|up): W's rows are gate rows, then as many up rows, and Y[t, o] =
// silu(gate[o] . X[t]) * (up[o] . X[t]); a tile holds 32 outputs' gate rows, then their up rows,
// and each invocation 2 outputs' gate and up sums.
// EXPERTS (matmul_experts, ExpertsPush): workgroup z multiplies expert z's rows by the X rows of
// the (token, slot) pairs that chose it, read and written through the grouped pair list, so each
// expert's weights are read once per 64 of its pairs; tiles past its pairs exit at once.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer Residual { float residual[]; };

#if defined(EXPERTS)
layout(binding = 5) readonly buffer Sorted { uint sorted[]; };
layout(binding = 6) readonly buffer Offsets { uint offsets[]; };
layout(push_constant) uniform Push {
  MatMulPush p;
  ExpertsPush experts;
};
uint first_pair;  // of this workgroup's expert in sorted
// X and Y rows of the tile's token t (a pair of the expert).
uint x_row(uint t) { return sorted[first_pair + t] / experts.x_items; }
uint y_row(uint t) { return sorted[first_pair + t]; }
#else
layout(push_constant) uniform Push { MatMulPush p; };
uint x_row(uint t) { return t; }
uint y_row(uint t) { return t; }
#endif

#define TILE 64
#define TILE_K 16
// +1 column keeps the transposed stores free of bank conflicts.
shared float x_tile[TILE_K][TILE + 1];
shared float w_tile[TILE_K][TILE + 1];

bool swiglu() { return (p.flags & QVK_FLAG_SWIGLU) != 0u; }

// The weight row tile row r holds, row0 being the tile's first output; false past the matrix.
bool weight_row(uint row0, uint r, out uint row) {
  if (!swiglu()) {
    row = row0 + r;
    return row < p.rows;
  }
  const uint outputs = p.rows / 2u;
  const uint feature = row0 + r % (TILE / 2u);
  row = r < TILE / 2u ? feature : outputs + feature;
  return feature < outputs;
}

// The tile row of this invocation's feature j (0..3): four side by side, or with SWIGLU two
// outputs' gate rows (j = 0, 1) and their up rows (j = 2, 3).
uint tile_row(uint j) {
  const uint lane = gl_LocalInvocationID.x % 16u;
  if (!swiglu()) return lane * 4u + j;
  return (j < 2u ? 0u : TILE / 2u) + lane * 2u + j % 2u;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row0 = gl_WorkGroupID.x * (swiglu() ? TILE / 2u : TILE);  // first output feature of the tile
  const uint token0 = gl_WorkGroupID.y * TILE;                          // first token of the tile
  const uint tt = (tid / 16) * 4;  // this invocation's 4 tokens inside the tile (its features: tile_row)
#if defined(EXPERTS)
  const uint expert = gl_WorkGroupID.z;
  first_pair = offsets[expert];
  const uint tokens = offsets[expert + 1u] - first_pair;
  const uint w_first = expert * experts.expert_rows * p.cols;  // the expert's first weight
  if (token0 >= tokens) return;  // the whole workgroup: past the expert's pairs
#else
  const uint tokens = p.tokens;
  const uint w_first = 0u;
#endif

  float acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < p.cols; k0 += TILE_K) {
    for (uint e = tid; e < TILE * TILE_K; e += WG) {
      const uint r = e / TILE_K;
      const uint kk = e % TILE_K;
      const uint k = k0 + kk;
      const uint token = token0 + r;
      uint row;
      const bool inside = weight_row(row0, r, row);
      x_tile[kk][r] = (token < tokens && k < p.cols) ? x[x_row(token) * p.x_stride + k] : 0.0;
      w_tile[kk][r] = (inside && k < p.cols) ? load_weight(w_first + row * p.cols + k) : 0.0;
    }
    barrier();
    for (uint kk = 0; kk < TILE_K; ++kk) {
      float xv[4], wv[4];
      for (uint i = 0; i < 4; ++i) {
        xv[i] = x_tile[kk][tt + i];
        wv[i] = w_tile[kk][tile_row(i)];
      }
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) acc[i][j] += xv[i] * wv[j];
    }
    barrier();
  }

  if (swiglu()) {  // no bias or residual (ops::MatMul)
    for (uint i = 0; i < 4; ++i) {
      const uint token = token0 + tt + i;
      if (token >= tokens) continue;
      for (uint j = 0; j < 2; ++j) {
        const uint feature = row0 + tile_row(j);
        if (feature >= p.rows / 2u) continue;
        const float gate = acc[i][j];
        y[y_row(token) * p.y_stride + p.col_offset + feature] = gate / (1.0 + exp(-gate)) * acc[i][j + 2];
      }
    }
    return;
  }
  for (uint i = 0; i < 4; ++i) {
    const uint token = token0 + tt + i;
    if (token >= tokens) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint row = row0 + tile_row(j);
      if (row >= p.rows) continue;
      const uint out_col = p.col_offset + row;
      float v = acc[i][j];
      if ((p.flags & QVK_FLAG_BIAS) != 0) v += bias[out_col];
      const uint out_index = y_row(token) * p.y_stride + out_col;
      if ((p.flags & QVK_FLAG_RESIDUAL) != 0) v += residual[out_index];
      y[out_index] = v;
    }
  }
}
