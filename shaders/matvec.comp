#version 450
// Matrix x vector for 1..QVK_MATVEC_MAX_TOKENS tokens (decode), with the neighbouring steps of the
// forward pass folded in (see MatVecPush):
//   Y[t, o] = W[o] . in[t] (+ bias[o]) (+ residual[t, o]),  in = X or rmsnorm(X) * norm_weight
//     (the norm: not in decode's plain matvec variant, NO_NORM; ops takes matvec_norm for it)
//   QVK_FLAG_SWIGLU: Y[t, o] = silu(W[o] . in[t]) * (W[rows + o] . in[t])   (gate rows, then up rows)
//   ROPE (the matvec_rope variant): W's rows are q|k|v heads of a fused projection (rows of whole
//     heads, at Y column col_offset); q and k heads are rotated (rope.glsl) at positions[t] after the
//     bias, and with QVK_FLAG_STORE_KV the k and v heads are also stored into the F16 KV cache.
//   EXPERTS (the matvec_experts variant, ExpertsPush): one product per dispatch row (an item: a
//     (token, slot) pair, or a token whose rows run through its k experts' rows side by side), W's
//     rows those of the experts the router chose, read from its ids on the GPU: a decode step
//     reads only the chosen experts' weights, and the host never sees the choice.
//     With QVK_FLAG_SHARED (the down product) Qwen2-MoE's shared expert is added too, after the
//     sum over experts and the residual: + shared_out[t, o] * sigmoid(shared_gate[t]).
//   PRESCALED (matvec_prescaled, one token): X is already x * norm_weight, stored by the product
//     before (SCALED_OUT), and the norm_weight binding holds x itself, whose squares each workgroup
//     sums once after its products: in = X / rms(x), with no norm work in the row groups (where the
//     norm would otherwise be a dispatch of its own: a large K-quant gate|up).
//   SCALED_OUT (matvec_scaled_out, one token, no SwiGLU): Y and also scaled[o] = Y[o] *
//     norm_weight[o], the next norm's weight: that product's prescaled input.
//   NORMED_OUT (matvec_norm) with QVK_FLAG_STORE_NORMED: the first workgroup also stores the
//     token's in = rmsnorm(X) * norm_weight, for the products after this one to read as it is (a
//     MoE layer's router, where the experts' products take the norm apart: no rmsnorm dispatch).
//   ROUTE (matvec_route, one token, with NORMED_OUT's norm): Y is a MoE layer's router logits,
//     and the workgroup that finishes last makes the router's choice from them (moe_choice.glsl,
//     as moe_route.comp does) and stores it (ids, weights) for the expert products after it:
//     decode's MoE layer without a route dispatch, and without the choice in each workgroup of the
//     experts' gate|up, whose weight loads would wait on it.
//
// The work split (gpu/ops.cpp picks it per product): `lanes` invocations (a power of two) share a
// row group of group_rows weight rows (1, 2 or 4, at most SLOTS: 4, or 2 for K-quants, see
// QVK_MATVEC_SLOTS_FOR). Each invocation has SLOTS load slots a round: slot s reads row
// s % group_rows of the group, at step s / group_rows of the round, so every invocation issues
// SLOTS independent loads before it waits on any, whether the group holds four rows (long outputs:
// X read once for four rows) or one (short ones: a quarter of the invocations per row, so that a
// small product still fills the GPU in one round). The columns of X a unit needs are read once for
// all of the group's rows and tokens, and every weight is read once. A workgroup holds WG / lanes
// row groups. The lanes' sums meet in subgroupAdd where a row group is one subgroup, else through
// shared memory. The norm needs no pass of its own: a row group's lanes see each column of X once,
// so they sum its squares on the way, and the dot products with X * norm_weight are scaled by
// 1 / rms at the end. Invocation o of a group stores the group's output o, and reads what its
// epilogue adds (bias, residual, RoPE's angle) before the products, so that those reads wait
// alongside the weights' rather than after.
//
// Sections: where rows live / accumulate / sums over lanes / epilogues / the router's choice / main
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

#define WEIGHT_BINDING 0
#include "weights.glsl"  // load_weight, for rows read an element at a time
#include "matvec_units.glsl"

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
#if defined(ROUTE)
// Coherent: the last workgroup reads back what the others stored (logits, its name there).
layout(binding = 2) coherent buffer Y { float y[]; };
layout(binding = 2) coherent buffer Logits { float logits[]; };
#else
layout(binding = 2) buffer Y { float y[]; };
#endif
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
#if defined(NORMED_OUT)
layout(binding = 6) writeonly buffer Normed { float normed[]; };
#endif
#if defined(SCALED_OUT)
layout(binding = 6) writeonly buffer Scaled { float scaled[]; };
#endif
#if defined(ROUTE)
layout(binding = 7) writeonly buffer Ids { uint ids[]; };
layout(binding = 8) writeonly buffer ExpertWeights { float expert_weights[]; };
// How many workgroups have stored their logits: zero between dispatches (the last sets it back).
layout(binding = 9) coherent buffer RouteCounter { uint route_counter[]; };
#include "moe_choice.glsl"
#endif
#if defined(EXPERTS)
layout(binding = 6) readonly buffer Ids { uint ids[]; };
layout(binding = 7) readonly buffer ExpertWeights { float expert_weights[]; };
layout(binding = 8) readonly buffer SharedOut { float shared_out[]; };
layout(binding = 9) readonly buffer SharedGate { float shared_gate[]; };
#endif
#if defined(EXPERTS)
layout(push_constant) uniform Push {
  MatVecPush p;
  ExpertsPush experts;
};
#elif defined(ROUTE)
layout(push_constant) uniform Push {
  MatVecPush p;
  MoeRoutePush route;
};
#else
layout(push_constant) uniform Push { MatVecPush p; };
#endif

#define SLOTS QVK_MATVEC_SLOTS_FOR(UNIT_COLS)
// Decode's variants hold one token's sums, inputs and epilogue: registers for QVK_MATVEC_MAX_TOKENS
// would cost every decode step occupancy.
#if defined(ONE_TOKEN)
#define TOKENS 1u
#else
#define TOKENS QVK_MATVEC_MAX_TOKENS
#endif

// Per token, each row's partial sums (and X's sum of squares, at SLOTS) where lanes meet in shared
// memory: one per subgroup, or one per invocation where subgroups are wider than a row group.
shared float partials[SLOTS + 1u][WG];

bool has(uint flag) {
#if defined(NO_NORM)
  // ops dispatches rows with the norm folded in to matvec_norm: this variant leaves its code out.
  if (flag == QVK_FLAG_NORM) return false;
#endif
  return (p.flags & flag) != 0u;
}

// --- where rows live ------------------------------------------------------------------------

#if defined(EXPERTS)
// This item's X and Y rows (floats from the start of their bindings), and for each segment of a
// row (segment_cols columns each) its expert's first weight row and the router weight its inputs
// are scaled by: set by main before the products.
uint x_first, y_first;
uint segment_cols;
float segment_cols_inverse;  // 1 / segment_cols, for segment_of
shared uint segment_row[QVK_MAX_SEGMENTS];
shared float segment_scale[QVK_MAX_SEGMENTS];

// The segment column col lies in, col / segment_cols, by a multiplication: an integer division by
// a value known only at run time is a run of instructions on GPUs, and the down product's k
// segments need one a load. (col + 0.5) / segment_cols lies at least 0.5 / segment_cols from a
// whole number, far more than the product's rounding (a few f32 ulps of a value under
// QVK_MAX_SEGMENTS) while cols < 2^20 (ops::ExpertsMatVecSum).
uint segment_of(uint col) { return uint((float(col) + 0.5) * segment_cols_inverse); }

// Weight unit `unit` of row `row` (of an expert's rows) whose rows hold units_per_row units; a
// segment's columns are whole units.
uint unit_address(uint row, uint unit, uint units_per_row) {
  if (experts.segments == 1u) return (segment_row[0] + row) * units_per_row + unit;
  const uint segment_units = segment_cols / UNIT_COLS;
  const uint segment = segment_of(unit * UNIT_COLS);
  return (segment_row[segment] + row) * segment_units + (unit - segment * segment_units);
}
uint element_address(uint row, uint col) {
  if (experts.segments == 1u) return (segment_row[0] + row) * p.cols + col;
  const uint segment = segment_of(col);
  return (segment_row[segment] + row) * segment_cols + (col - segment * segment_cols);
}
// What multiplies column col of X: the router weight of its expert.
float column_scale(uint col) { return segment_scale[segment_of(col)]; }
#else
const uint x_first = 0u, y_first = 0u;
uint unit_address(uint row, uint unit, uint units_per_row) { return row * units_per_row + unit; }
uint element_address(uint row, uint col) { return row * p.cols + col; }
float column_scale(uint col) { return 1.0; }
#endif

// --- accumulate -----------------------------------------------------------------------------

// Slot s of a group of R rows reads row s % R at step s / R of a round. The accumulate functions
// take R as an argument that main passes as a literal, so that once inlined every slot's row and
// step are constants: each round is straight-line code, which lets the compiler issue all of its
// loads before the first product.

// The group's rows, read a unit at a time (rows of whole units, X rows at 16-byte steps);
// rows[s] is slot s's. sums[s] collects slot s's products, squares X's sum of squares.
void accumulate_units(const uint group_rows, uint rows[SLOTS], uint lane, inout float sums[SLOTS][TOKENS],
                      inout float squares[TOKENS]) {
  const uint units_per_row = p.cols / UNIT_COLS;
  const uint x_stride4 = p.x_stride / 4u;
  const uint x_first4 = x_first / 4u;
  const bool norm = has(QVK_FLAG_NORM);
  const bool router_weight = has(QVK_FLAG_ROUTER_WEIGHT);
  for (uint first = lane; first < units_per_row; first += SLOTS / group_rows * p.lanes) {
    // Past the end of the row (the last round) a slot reads the row's last unit again and adds
    // nothing: no branch stands between the loads.
    uint unit[SLOTS];
    Unit w[SLOTS];
    [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
      unit[s] = first + s / group_rows * p.lanes;
      w[s] = load_unit(unit_address(rows[s], min(unit[s], units_per_row - 1u), units_per_row));
    }
    [[unroll]] for (uint r = 0; r < UNIT_RUNS; ++r) {
      vec4 in_lo[TOKENS], in_hi[TOKENS];
      float in_sum[TOKENS];  // of the run's 8 inputs: what a min multiplies
      [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
        const bool valid = unit[s] < units_per_row;
        if (s % group_rows == 0u) {  // a new unit: its columns of X
          const uint u = min(unit[s], units_per_row - 1u);
          const uint col4 = (u / BLOCK_UNITS * (UNIT_COLS * BLOCK_UNITS) + run_column(u % BLOCK_UNITS, r)) / 4u;
          vec4 scale_lo = vec4(1.0), scale_hi = vec4(1.0);
          if (norm) {
            scale_lo = norm_weight4[col4];
            scale_hi = norm_weight4[col4 + 1u];
          } else if (router_weight) {  // a run's 8 columns lie in one expert's
            scale_lo = vec4(column_scale(col4 * 4u));
            scale_hi = scale_lo;
          }
          [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
            if (t >= p.tokens) break;
            const uint at = x_first4 + t * x_stride4 + col4;
            const vec4 x_lo = x4[at], x_hi = x4[at + 1u];
            if (norm && valid) squares[t] += dot(x_lo, x_lo) + dot(x_hi, x_hi);
            in_lo[t] = x_lo * scale_lo;
            in_hi[t] = x_hi * scale_hi;
            in_sum[t] = dot(in_lo[t] + in_hi[t], vec4(1.0));
          }
        }
        vec4 w_lo, w_hi;
        unit_run(w[s], r, w_lo, w_hi);
        [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
          if (t >= p.tokens) break;
          const float products = dot(w_lo, in_lo[t]) + dot(w_hi, in_hi[t]);
          // One product by the run's scale (and min): with a single 1 in X it is the weight exactly.
#if defined(UNIT_MIN)
          precise float term = run_scale(w[s], r) * products - run_min(w[s], r) * in_sum[t];
#elif defined(UNIT_SCALED)
          precise float term = run_scale(w[s], r) * products;
#else
          const float term = products;
#endif
          if (valid) sums[s][t] += term;
        }
      }
    }
  }
}

// The same an element at a time, for float rows whose length is not a whole number of units and
// X rows that do not start at 16-byte steps.
void accumulate_elements(const uint group_rows, uint rows[SLOTS], uint lane, inout float sums[SLOTS][TOKENS],
                         inout float squares[TOKENS]) {
  const bool norm = has(QVK_FLAG_NORM);
  const bool router_weight = has(QVK_FLAG_ROUTER_WEIGHT);
  for (uint first = lane; first < p.cols; first += SLOTS / group_rows * p.lanes) {
    uint col[SLOTS];
    float w[SLOTS];
    [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
      col[s] = first + s / group_rows * p.lanes;
      w[s] = load_weight(element_address(rows[s], min(col[s], p.cols - 1u)));
    }
    float in_k[TOKENS];
    [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
      const bool valid = col[s] < p.cols;
      if (s % group_rows == 0u) {
        const uint k = min(col[s], p.cols - 1u);
        const float scale = norm ? norm_weight[k] : router_weight ? column_scale(k) : 1.0;
        [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
          if (t >= p.tokens) break;
          const float xk = x[x_first + t * p.x_stride + k];
          if (norm && valid) squares[t] += xk * xk;
          in_k[t] = xk * scale;
        }
      }
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
        if (t >= p.tokens) break;
        if (valid) sums[s][t] += w[s] * in_k[t];
      }
    }
  }
}

// Both, for the group size the dispatch was given (never more than SLOTS: the last branch is
// compiled for min(4, SLOTS) rows so that its stride is never zero).
void accumulate(uint rows[SLOTS], uint lane, inout float sums[SLOTS][TOKENS], inout float squares[TOKENS]) {
#if defined(EXPERTS)
  const bool whole_units = segment_cols % UNIT_COLS == 0u && p.x_stride % 4u == 0u;
#else
  const bool whole_units = p.cols % UNIT_COLS == 0u && p.x_stride % 4u == 0u;
#endif
  if (whole_units) {
    if (p.group_rows == 1u) {
      accumulate_units(1u, rows, lane, sums, squares);
    } else if (p.group_rows == 2u) {
      accumulate_units(2u, rows, lane, sums, squares);
    } else {
      accumulate_units(min(4u, SLOTS), rows, lane, sums, squares);
    }
  } else {
    if (p.group_rows == 1u) {
      accumulate_elements(1u, rows, lane, sums, squares);
    } else if (p.group_rows == 2u) {
      accumulate_elements(2u, rows, lane, sums, squares);
    } else {
      accumulate_elements(min(4u, SLOTS), rows, lane, sums, squares);
    }
  }
}

// --- sums over lanes ------------------------------------------------------------------------

// Element m of sums for a token, m the same for the whole subgroup or not.
float pick(float sums[SLOTS][TOKENS], uint m, uint t) {
  float v = sums[0][t];
  [[unroll]] for (uint s = 1; s < SLOTS; ++s) v = m == s ? sums[s][t] : v;
  return v;
}

// The group's totals for output `lane` (lane < outputs): its row's (first) and the second row of a
// pair (second), and X's sum of squares. Every invocation calls it.
void sum_over_lanes(uint tid, uint group, uint lane, uint outputs, float sums[SLOTS][TOKENS],
                    float squares[TOKENS], out float first[TOKENS], out float second[TOKENS],
                    out float group_squares[TOKENS]) {
  // Each row's sum over its slots: row m's are slots m, m + group_rows, ..., added pairwise.
  [[unroll]] for (uint width = SLOTS / 2u; width >= 1u; width /= 2u) {
    if (width < p.group_rows) break;
    [[unroll]] for (uint s = 0; s < width; ++s) {
      [[unroll]] for (uint t = 0; t < TOKENS; ++t) sums[s][t] += sums[s + width][t];
    }
  }
  const bool norm = has(QVK_FLAG_NORM);
  if (gl_SubgroupSize == p.lanes) {
    [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
      if (t >= p.tokens) break;
      [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
        if (s < p.group_rows) sums[s][t] = subgroupAdd(sums[s][t]);
      }
      group_squares[t] = norm ? subgroupAdd(squares[t]) : 0.0;
      first[t] = pick(sums, lane, t);
      second[t] = pick(sums, lane + outputs, t);
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
    if (t > 0u) barrier();  // the token before's readers of partials are done
    [[unroll]] for (uint s = 0; s <= SLOTS; ++s) {
      if (s == SLOTS ? !norm : s >= p.group_rows) continue;
      float v = s == SLOTS ? squares[t] : sums[s][t];
      if (per_subgroup) v = subgroupAdd(v);
      if (tid % width == 0u) partials[s][tid / width] = v;
    }
    barrier();
    first[t] = 0.0;
    second[t] = 0.0;
    group_squares[t] = 0.0;
    if (lane < outputs) {
      for (uint i = 0; i < parts; ++i) {
        const uint part = group * parts + i;
        first[t] += partials[lane][part];
        if (outputs < p.group_rows) second[t] += partials[lane + outputs][part];
        if (norm) group_squares[t] += partials[SLOTS][part];
      }
    }
  }
}

// --- epilogues ------------------------------------------------------------------------------

// 1 / rms of token t's X, or 1 without the norm.
float inv_rms(float squares[TOKENS], uint t) {
#if defined(PRESCALED)
  return inversesqrt(squares[t] / float(p.cols) + p.eps);
#else
  return has(QVK_FLAG_NORM) ? inversesqrt(squares[t] / float(p.cols) + p.eps) : 1.0;
#endif
}

#if defined(PRESCALED)
// The sum of x's squares (x in the norm_weight binding), once a workgroup, every invocation taking
// every WG-th float; each invocation gets the total. Called after the products, whose loads it
// would otherwise hold back.
float x_squares(uint tid) {
  float v = 0.0;
  if (p.cols % 4u == 0u) {
    for (uint i = tid; i < p.cols / 4u; i += WG) v += dot(norm_weight4[i], norm_weight4[i]);
  } else {
    for (uint i = tid; i < p.cols; i += WG) v += norm_weight[i] * norm_weight[i];
  }
  return workgroup_sum(v);
}
#endif

#if defined(ROPE)
// Output o is the pair of rows (i, i + D/2) of a head, the two elements RoPE rotates together.
uint weight_row(uint o, uint second) {
  const uint half_dim = p.head_dim / 2u;
  return o / half_dim * p.head_dim + o % half_dim + second * half_dim;
}

// What output o's epilogue reads: the pair's bias and each token's position and rotation.
struct Epilogue {
  vec2 bias;
  uint position[TOKENS];
  vec2 cs[TOKENS];  // cos and sin of the token's angle, times the attention factor
};
Epilogue prefetch(uint o) {
  Epilogue e;
  const uint col = p.col_offset + weight_row(o, 0u);
  e.bias = has(QVK_FLAG_BIAS) ? vec2(bias[col], bias[col + p.head_dim / 2u]) : vec2(0.0);
  const float freq = inv_freq[o % (p.head_dim / 2u)];
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    if (t >= p.tokens) break;
    e.position[t] = positions[t];
    e.cs[t] = cos_sin(float(e.position[t]) * freq) * p.attention_factor;
  }
  return e;
}

// Output o's epilogue: norm scale, bias, rotation of q and k, store into Y and the cache.
void store(uint o, Epilogue e, float first[TOKENS], float second[TOKENS], float squares[TOKENS]) {
  const uint half_dim = p.head_dim / 2u;
  const uint col = p.col_offset + weight_row(o, 0u);  // of the pair's first element
  const uint i = o % half_dim;
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    if (t >= p.tokens) break;
    vec2 v = vec2(first[t], second[t]) * inv_rms(squares, t) + e.bias;
    if (col < p.v_first) v = rotate_pair(v.x, v.y, e.cs[t]);
    const uint out_index = t * p.y_stride + col;
    y[out_index] = v.x;
    y[out_index + half_dim] = v.y;
    if (has(QVK_FLAG_STORE_KV) && col >= p.k_first) {
      const bool is_v = col >= p.v_first;
      const uint head = (col - (is_v ? p.v_first : p.k_first)) / p.head_dim;
      const uint dst = (head * p.capacity + e.position[t]) * p.head_dim + i;
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
#else
// Output o's rows: its own, and with SwiGLU its up row after all gate rows.
uint weight_row(uint o, uint second) { return o + second * p.rows; }

// What output o's epilogue reads: its bias and each token's residual (and SCALED_OUT's weight).
struct Epilogue {
  float bias;
  float residual[TOKENS];
#if defined(SCALED_OUT)
  float scale;
#endif
};
Epilogue prefetch(uint o) {
  Epilogue e;
  const uint out_col = p.col_offset + o;
  e.bias = has(QVK_FLAG_BIAS) ? bias[out_col] : 0.0;
#if defined(SCALED_OUT)
  e.scale = norm_weight[out_col];
#endif
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    if (t >= p.tokens) break;
    e.residual[t] = has(QVK_FLAG_RESIDUAL) ? residual[y_first + t * p.y_stride + out_col] : 0.0;
  }
  return e;
}

// Output o's epilogue: norm scale, SwiGLU, bias, residual (and the shared expert), store.
void store(uint o, Epilogue e, float first[TOKENS], float second[TOKENS], float squares[TOKENS]) {
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    if (t >= p.tokens) break;
    float v = first[t] * inv_rms(squares, t);
    if (has(QVK_FLAG_SWIGLU)) v = v / (1.0 + exp(-v)) * (second[t] * inv_rms(squares, t));
    const uint out_index = y_first + t * p.y_stride + p.col_offset + o;
    float out_value = v + e.bias + e.residual[t];
#if defined(EXPERTS)
    // Read here, after the products, rather than prefetched: no register held through them. Added
    // as moe_combine added it, in the same order. An item is a token here, its Y row shared_out's.
    if (has(QVK_FLAG_SHARED)) out_value += shared_out[out_index] / (1.0 + exp(-shared_gate[gl_WorkGroupID.y]));
#endif
    y[out_index] = out_value;
#if defined(SCALED_OUT)
    scaled[out_index] = out_value * e.scale;
#endif
  }
}
#endif

#if defined(NORMED_OUT)
// QVK_FLAG_STORE_NORMED, one token: in = X * inv_rms * norm_weight, stored by the first workgroup
// after its outputs. Its first row group's first lane holds the sum of squares (every lane
// of a group does where its lanes meet in a subgroup, the storing ones otherwise); the other
// workgroups never wait for this.
shared float normed_scale;
void store_normed(uint tid, uint lane, uint group, float group_squares[TOKENS]) {
  if (group == 0u && lane == 0u) normed_scale = inv_rms(group_squares, 0u);
  barrier();
  for (uint i = tid; i < p.cols; i += WG) normed[i] = x[i] * normed_scale * norm_weight[i];
}
#endif

// --- the router's choice --------------------------------------------------------------------

#if defined(ROUTE)
// The router's choice, by the workgroup that stores its logits last: each workgroup makes its
// stores visible and counts itself; the last reads every logit back (coherent), and its first
// subgroup chooses as moe_route.comp does (the same code, so the same ids and weights bit for bit)
// and sets the counter back to zero for the next dispatch. Workgroups past the last output (the
// grid's last row) returned at once and are not counted.
shared bool last_workgroup_sh;
void route_when_last(uint tid, uint workgroup_outputs) {
  memoryBarrierBuffer();  // this invocation's logits, before the count says they are there
  barrier();              // every invocation's
  const uint workgroups = (p.rows + workgroup_outputs - 1u) / workgroup_outputs;
  if (tid == 0u) last_workgroup_sh = atomicAdd(route_counter[0], 1u) == workgroups - 1u;
  barrier();
  if (!last_workgroup_sh || gl_SubgroupID != 0u) return;
  memoryBarrierBuffer();
  const float chosen_sum = choose_experts(0u, route.experts, route.k);
  if (!subgroupElect()) return;  // the invocation that wrote chosen_*
  const bool normalize = (route.flags & QVK_FLAG_NORM_TOPK) != 0u;
  for (uint j = 0; j < route.k; ++j) {
    ids[j] = chosen_ids[j];
    expert_weights[j] = normalize ? chosen_probs[j] / chosen_sum : chosen_probs[j];
  }
  route_counter[0] = 0u;
}
#endif

// --- main -----------------------------------------------------------------------------------

void main() {
  // Invocations numbered subgroup by subgroup, so that a subgroup no wider than a row group lies
  // inside one whatever order the device gives them.
  const uint tid = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  const uint group = tid / p.lanes;
  const uint lane = tid % p.lanes;
  // Outputs per row group: one per row, or one per pair of rows (a gate row and its up row, or
  // the two rows RoPE rotates together). ops keeps lanes >= group_rows: a lane for each output.
#if defined(ROPE)
  const uint outputs = p.group_rows / 2u;
#else
  const uint outputs = has(QVK_FLAG_SWIGLU) ? p.group_rows / 2u : p.group_rows;
#endif
#if defined(EXPERTS)
  // Workgroups along x take the item's row groups, along y its items.
  const uint item = gl_WorkGroupID.y;
  const uint row_group_index = gl_WorkGroupID.x;
  x_first = item / experts.x_items * p.x_stride;
  y_first = item * p.y_stride;
  segment_cols = p.cols / experts.segments;
  segment_cols_inverse = 1.0 / float(segment_cols);
  if (tid < experts.segments) {
    const uint pair = item * experts.segments + tid;
    segment_row[tid] = ids[pair] * experts.expert_rows;
    segment_scale[tid] = has(QVK_FLAG_ROUTER_WEIGHT) ? expert_weights[pair] : 1.0;
  }
  barrier();
#else
  const uint row_group_index = group_index();
#endif
  const uint workgroup_outputs = WG / p.lanes * outputs;
  const uint workgroup_first = row_group_index * workgroup_outputs;
  if (workgroup_first >= p.rows) return;  // past the end in the grid's last row: the whole workgroup
  const uint first = workgroup_first + group * outputs;
  const bool stores = lane < outputs && first + lane < p.rows;
  Epilogue epilogue;
  if (stores) epilogue = prefetch(first + lane);
  // Outputs past the end repeat the last one (read, never stored).
  uint rows[SLOTS];
  [[unroll]] for (uint s = 0; s < SLOTS; ++s) {
    const uint m = s % p.group_rows;
    rows[s] = weight_row(min(first + m % outputs, p.rows - 1u), m / outputs);
  }
  float sums[SLOTS][TOKENS], squares[TOKENS];
  [[unroll]] for (uint t = 0; t < TOKENS; ++t) {
    [[unroll]] for (uint s = 0; s < SLOTS; ++s) sums[s][t] = 0.0;
    squares[t] = 0.0;
  }
  accumulate(rows, lane, sums, squares);
  float first_sums[TOKENS], second_sums[TOKENS], group_squares[TOKENS];
  sum_over_lanes(tid, group, lane, outputs, sums, squares, first_sums, second_sums, group_squares);
#if defined(PRESCALED)
  group_squares[0] = x_squares(tid);
#endif
  if (stores) store(first + lane, epilogue, first_sums, second_sums, group_squares);
#if defined(NORMED_OUT)
  if (has(QVK_FLAG_STORE_NORMED) && gl_WorkGroupID == uvec3(0u)) store_normed(tid, lane, group, group_squares);
#endif
#if defined(ROUTE)
  route_when_last(tid, workgroup_outputs);
#endif
}
