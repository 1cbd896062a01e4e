#version 450
// Matrix x vector for 1..QVK_MATVEC_MAX_TOKENS tokens (decode), with the neighbouring steps of the
// forward pass folded in (see MatVecPush):
//   Y[t, o] = W[o] . in[t] (+ bias[o]) (+ residual[t, o]),  in = X or rmsnorm(X) * norm_weight
//   QVK_FLAG_SWIGLU: Y[t, o] = silu(W[o] . in[t]) * (W[rows + o] . in[t])   (gate rows, then up rows)
//   ROPE (the matvec_rope variant): W's rows are q|k|v heads of a fused projection (rows of whole
//     heads, at Y column col_offset); q and k heads are rotated (rope.glsl) at positions[t] after the
//     bias, and with QVK_FLAG_STORE_KV the k and v heads are also stored into the F16 KV cache.
//
// `lanes` invocations (a power of two) share a row group of QVK_MATVEC_ROWS weight rows. Each reads
// whole units of the group's rows (matvec_units.glsl: a few wide loads, scales decoded once) and
// the matching columns of X once for all of the group's rows and tokens, so every weight is read
// once. A workgroup holds WG / lanes row groups and computes row_batches of them in turn; the
// lanes' sums meet in subgroupAdd, through shared memory where subgroups are narrower or wider than
// a row group. The norm needs no pass of its own: a row group's lanes see each column of X once,
// so they sum its squares on the way, and the dot products with X * norm_weight are scaled by
// 1 / rms at the end.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"  // load_weight, for rows read an element at a time
#include "matvec_units.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer Residual { float residual[]; };
layout(binding = 5) readonly buffer NormWeight { float norm_weight[]; };
layout(binding = 5) readonly buffer NormWeight4 { vec4 norm_weight4[]; };
#if defined(ROPE)
#include "rope.glsl"
layout(binding = 6) readonly buffer Positions { uint positions[]; };
layout(binding = 7) readonly buffer InvFreq { float inv_freq[]; };
layout(binding = 8) writeonly buffer KCache { float16_t k_cache[]; };
layout(binding = 9) writeonly buffer VCache { float16_t v_cache[]; };
#endif

layout(push_constant) uniform Push { MatVecPush p; };

#define ROWS QVK_MATVEC_ROWS
#define TOKENS QVK_MATVEC_MAX_TOKENS
// A row group's running sums: one dot product per row and token, then X's sum of squares per token.
#define SUMS (ROWS + 1u)
#define SUM_SQUARES ROWS

shared float partials[SUMS][WG];

bool has(uint flag) { return (p.flags & flag) != 0u; }

// The row group's rows, read a unit at a time (rows of whole units, X rows at 16-byte steps).
// One unit of each row per step: loading 2-4 units ahead cost registers and occupancy and made
// decode 7-15% slower on an H200 (docs/speed.md, runs 3 and 4).
void accumulate_units(uint rows[ROWS], uint lane, inout float sums[SUMS][TOKENS]) {
  const uint units_per_row = p.cols / UNIT_COLS;
  const uint x_stride4 = p.x_stride / 4u;
  const bool norm = has(QVK_FLAG_NORM);
  for (uint u = lane; u < units_per_row; u += p.lanes) {
    Unit w[ROWS];
    [[unroll]] for (uint m = 0; m < ROWS; ++m) w[m] = load_unit(rows[m] * units_per_row + u);
    const uint block_col = u / BLOCK_UNITS * (UNIT_COLS * BLOCK_UNITS);
    const uint part = u % BLOCK_UNITS;
    [[unroll]] for (uint r = 0; r < UNIT_RUNS; ++r) {
      const uint col4 = (block_col + run_column(part, r)) / 4u;
      vec4 scale_lo = vec4(1.0), scale_hi = vec4(1.0);
      if (norm) {
        scale_lo = norm_weight4[col4];
        scale_hi = norm_weight4[col4 + 1u];
      }
      vec4 in_lo[TOKENS], in_hi[TOKENS];
      float in_sum[TOKENS];  // of the run's 8 inputs: what a min multiplies
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
        if (t >= p.tokens) break;
        const vec4 x_lo = x4[t * x_stride4 + col4], x_hi = x4[t * x_stride4 + col4 + 1u];
        if (norm) sums[SUM_SQUARES][t] += dot(x_lo, x_lo) + dot(x_hi, x_hi);
        in_lo[t] = x_lo * scale_lo;
        in_hi[t] = x_hi * scale_hi;
        in_sum[t] = dot(in_lo[t] + in_hi[t], vec4(1.0));
      }
      [[unroll]] for (uint m = 0; m < ROWS; ++m) {
        vec4 w_lo, w_hi;
        unit_run(w[m], r, w_lo, w_hi);
        [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
          if (t >= p.tokens) break;
          const float products = dot(w_lo, in_lo[t]) + dot(w_hi, in_hi[t]);
          // One product by the run's scale (and min): with a single 1 in X it is the weight exactly.
#if defined(UNIT_MIN)
          precise float term = run_scale(w[m], r) * products - run_min(w[m], r) * in_sum[t];
#elif defined(UNIT_SCALED)
          precise float term = run_scale(w[m], r) * products;
#else
          const float term = products;
#endif
          sums[m][t] += term;
        }
      }
    }
  }
}

// The same an element at a time, for float rows whose length is not a whole number of units and
// X rows that do not start at 16-byte steps.
void accumulate_elements(uint rows[ROWS], uint lane, inout float sums[SUMS][TOKENS]) {
  const bool norm = has(QVK_FLAG_NORM);
  for (uint k = lane; k < p.cols; k += p.lanes) {
    const float scale = norm ? norm_weight[k] : 1.0;
    float in_k[TOKENS];
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      const float xk = x[t * p.x_stride + k];
      if (norm) sums[SUM_SQUARES][t] += xk * xk;
      in_k[t] = xk * scale;
    }
    [[unroll]] for (uint m = 0; m < ROWS; ++m) {
      const float w = load_weight(rows[m] * p.cols + k);
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
        if (t >= p.tokens) break;
        sums[m][t] += w * in_k[t];
      }
    }
  }
}

// Each of the row group's sums over its lanes, into lane 0's copy. Every invocation calls it.
void sum_over_lanes(uint tid, uint group, uint lane, inout float sums[SUMS][TOKENS]) {
  const uint count = has(QVK_FLAG_NORM) ? SUMS : ROWS;
  if (gl_SubgroupSize == p.lanes) {
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      [[unroll]] for (uint s = 0; s < SUMS; ++s) {
        if (s < count) sums[s][t] = subgroupAdd(sums[s][t]);
      }
    }
    return;
  }
  // Partial sums through shared memory: one per subgroup where subgroups are narrower than a row
  // group (each lies inside one), else one per invocation.
  const bool per_subgroup = gl_SubgroupSize < p.lanes;
  const uint width = per_subgroup ? gl_SubgroupSize : 1u;
  const uint parts = p.lanes / width;
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    if (t >= p.tokens) break;
    [[unroll]] for (uint s = 0; s < SUMS; ++s) {
      if (s >= count) break;
      float v = sums[s][t];
      if (per_subgroup) v = subgroupAdd(v);
      if (tid % width == 0u) partials[s][tid / width] = v;
    }
    barrier();
    if (lane == 0u) {
      [[unroll]] for (uint s = 0; s < SUMS; ++s) {
        if (s >= count) break;
        float total = 0.0;
        for (uint i = 0; i < parts; ++i) total += partials[s][group * parts + i];
        sums[s][t] = total;
      }
    }
    barrier();
  }
}

// Lane 0's epilogue: norm scale, SwiGLU, bias, residual, store.
void store(uint first, uint outputs, inout float sums[SUMS][TOKENS]) {
  if (has(QVK_FLAG_NORM)) {
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      const float inv_rms = inversesqrt(sums[SUM_SQUARES][t] / float(p.cols) + p.eps);
      [[unroll]] for (uint m = 0; m < ROWS; ++m) sums[m][t] *= inv_rms;
    }
  }
  if (has(QVK_FLAG_SWIGLU)) {
    [[unroll]] for (uint m = 0; m < ROWS / 2u; ++m) {
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
        const float g = sums[m][t];
        sums[m][t] = g / (1.0 + exp(-g)) * sums[m + ROWS / 2u][t];
      }
    }
  }
  [[unroll]] for (uint m = 0; m < ROWS; ++m) {
    const uint o = first + m;
    if (m >= outputs || o >= p.rows) break;
    const uint out_col = p.col_offset + o;
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      float v = sums[m][t];
      if (has(QVK_FLAG_BIAS)) v += bias[out_col];
      const uint out_index = t * p.y_stride + out_col;
      if (has(QVK_FLAG_RESIDUAL)) v += residual[out_index];
      y[out_index] = v;
    }
  }
}

#if defined(ROPE)
// Output o is the pair of rows (i, i + D/2) of a head, the two elements RoPE rotates together.
uint weight_row(uint o, uint second) {
  const uint half_dim = p.head_dim / 2u;
  return o / half_dim * p.head_dim + o % half_dim + second * half_dim;
}

// Lane 0's epilogue: norm scale, bias, rotation of q and k, store into Y and the cache.
void store_rope(uint first, uint outputs, inout float sums[SUMS][TOKENS]) {
  const uint half_dim = p.head_dim / 2u;
  [[unroll]] for (uint m = 0; m < ROWS / 2u; ++m) {
    const uint o = first + m;
    if (m >= outputs || o >= p.rows) break;
    const uint col = p.col_offset + weight_row(o, 0u);  // of the pair's first element
    const uint i = o % half_dim;
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      const float inv_rms = has(QVK_FLAG_NORM) ? inversesqrt(sums[SUM_SQUARES][t] / float(p.cols) + p.eps) : 1.0;
      vec2 v = vec2(sums[m][t], sums[m + ROWS / 2u][t]) * inv_rms;
      if (has(QVK_FLAG_BIAS)) v += vec2(bias[col], bias[col + half_dim]);
      const uint pos = positions[t];
      if (col < p.v_first) v = rotate_pair(v.x, v.y, cos_sin(float(pos) * inv_freq[i]) * p.attention_factor);
      const uint out_index = t * p.y_stride + col;
      y[out_index] = v.x;
      y[out_index + half_dim] = v.y;
      if (has(QVK_FLAG_STORE_KV) && col >= p.k_first) {
        const bool is_v = col >= p.v_first;
        const uint head = (col - (is_v ? p.v_first : p.k_first)) / p.head_dim;
        const uint dst = (head * p.capacity + pos) * p.head_dim + i;
        if (is_v) {
          v_cache[dst] = float16_t(v.x);
          v_cache[dst + half_dim] = float16_t(v.y);
        } else {
          k_cache[dst] = float16_t(v.x);
          k_cache[dst + half_dim] = float16_t(v.y);
        }
      }
    }
  }
}
#else
// Output o's rows: its own, and with SwiGLU its up row after all gate rows.
uint weight_row(uint o, uint second) { return o + second * p.rows; }
#endif

void main() {
  // Invocations numbered subgroup by subgroup, so that a subgroup no wider than a row group lies
  // inside one whatever order the device gives them.
  const uint tid = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  const uint group = tid / p.lanes;
  const uint lane = tid % p.lanes;
  // Outputs per row group: one per row, or one per pair of rows (a gate row and its up row, or
  // the two rows RoPE rotates together).
#if defined(ROPE)
  const uint outputs = ROWS / 2u;
#else
  const uint outputs = has(QVK_FLAG_SWIGLU) ? ROWS / 2u : ROWS;
#endif
  const uint batch_outputs = WG / p.lanes * outputs;
  const bool whole_units = p.cols % UNIT_COLS == 0u && p.x_stride % 4u == 0u;
  for (uint batch = 0; batch < p.row_batches; ++batch) {
    const uint batch_first = (group_index() * p.row_batches + batch) * batch_outputs;
    if (batch_first >= p.rows) break;  // the same for the whole workgroup
    const uint first = batch_first + group * outputs;
    // Outputs past the end repeat the last one (read, never stored).
    uint rows[ROWS];
    [[unroll]] for (uint m = 0; m < ROWS; ++m) rows[m] = weight_row(min(first + m % outputs, p.rows - 1u), m / outputs);
    float sums[SUMS][TOKENS];
    [[unroll]] for (uint s = 0; s < SUMS; ++s) {
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) sums[s][t] = 0.0;
    }
    if (whole_units) {
      accumulate_units(rows, lane, sums);
    } else {
      accumulate_elements(rows, lane, sums);
    }
    sum_over_lanes(tid, group, lane, sums);
#if defined(ROPE)
    if (lane == 0u) store_rope(first, outputs, sums);
#else
    if (lane == 0u) store(first, outputs, sums);
#endif
  }
}
