#version 450
// Matrix x matrix for prefill: Y[t, r] = sum_k W[r, k] X[t, k], tiled 64 tokens x 64 features
// per workgroup of 256 invocations, each computing a 4 x 4 block from shared-memory tiles.
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer Residual { float residual[]; };

layout(push_constant) uniform Push { MatMulPush p; };

#define TILE 64
#define TILE_K 16
// +1 column keeps the transposed stores free of bank conflicts.
shared float x_tile[TILE_K][TILE + 1];
shared float w_tile[TILE_K][TILE + 1];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint row0 = gl_WorkGroupID.x * TILE;    // first output feature of the tile
  const uint token0 = gl_WorkGroupID.y * TILE;  // first token of the tile
  const uint tr = (tid % 16) * 4;               // this invocation's 4 features...
  const uint tt = (tid / 16) * 4;               // ...and 4 tokens inside the tile

  float acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < p.cols; k0 += TILE_K) {
    for (uint e = tid; e < TILE * TILE_K; e += WG) {
      const uint r = e / TILE_K;
      const uint kk = e % TILE_K;
      const uint k = k0 + kk;
      const uint token = token0 + r;
      const uint row = row0 + r;
      x_tile[kk][r] = (token < p.tokens && k < p.cols) ? x[token * p.x_stride + k] : 0.0;
      w_tile[kk][r] = (row < p.rows && k < p.cols) ? load_weight(row * p.cols + k) : 0.0;
    }
    barrier();
    for (uint kk = 0; kk < TILE_K; ++kk) {
      float xv[4], wv[4];
      for (uint i = 0; i < 4; ++i) {
        xv[i] = x_tile[kk][tt + i];
        wv[i] = w_tile[kk][tr + i];
      }
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) acc[i][j] += xv[i] * wv[j];
    }
    barrier();
  }

  for (uint i = 0; i < 4; ++i) {
    const uint token = token0 + tt + i;
    if (token >= p.tokens) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint row = row0 + tr + j;
      if (row >= p.rows) continue;
      const uint out_col = p.col_offset + row;
      float v = acc[i][j];
      if ((p.flags & QVK_FLAG_BIAS) != 0) v += bias[out_col];
      const uint out_index = token * p.y_stride + out_col;
      if ((p.flags & QVK_FLAG_RESIDUAL) != 0) v += residual[out_index];
      y[out_index] = v;
    }
  }
}
