#version 450
// Matrix x matrix on cooperative matrices (tensor cores), the same contract as matmul.comp:
// Y[t, r] = sum_k W[r, k] X[t, k] (+ bias) (+ residual). A workgroup of eight 32-wide subgroups
// computes TILE_TOKENS tokens x TILE_ROWS features: 64 x 128 (MatMulCoopmat), 64 x 64
// (MatMulCoopmatNarrow, for products with too few outputs to fill the GPU with 128-wide tiles;
// ops::ChooseCoopmatTile), or 128 x 128 (MatMulCoopmatRoundedTall: rounded weights, whose X in one
// part leaves room in shared memory for twice the tokens). Each subgroup computes an eighth,
// TILE_TOKENS / 2 tokens x TILE_ROWS / 4 features, as TOKEN_FRAGS x ROW_FRAGS 16x16 f32
// accumulators, so every fragment it loads feeds several multiplies. ops::MatMul uses it only on
// devices with DeviceInfo::coopmat_f16, which checks everything assumed here (the 16x16x16
// f16*f16+f32 subgroup shape, 32-wide subgroups, the Vulkan memory model, 40.5 KiB of shared memory).
// EXPERTS (matmul_coopmat_experts, ExpertsPush): workgroup z multiplies expert z's rows by the X
// rows of the (token, slot) pairs that chose it, read and written through the grouped pair list,
// as matmul.comp's EXPERTS variant does; tiles past the expert's pairs exit at once.
//
// Every STEP inner elements, the workgroup stages W (dequantized, rounded to f16) and X (as one or
// two f16 parts, below) in shared memory, and the subgroups multiply 16x16x16 fragments loaded from
// there. Two stage buffers alternate, and each step's loads are issued LOAD_AHEAD (2) steps early:
// held in registers while the two steps before it multiply, then written to the free buffer, so
// memory latency hides behind the matrix units and one barrier a step suffices. Weights are read as
// matvec.comp reads them, in whole units (matvec_units.glsl: 16-byte loads for F16, a block's
// scales decoded once per unit). A unit's runs of 8 columns need not be adjacent (a Q4_K unit's
// spread over 64 columns), so a stage holds W's runs in unit order and X's runs of the same columns
// in the same order: the sum is over the same columns either way. Rows that are not a whole number
// of units, and X rows not at 16-byte steps, are staged an element at a time instead (odd shapes
// only).
//
// Precision: where W is exact in f16 (F16 and BF16 weights), X = hi + lo with hi = X's leading 11
// bits and lo = f16(X - hi), both multiplied by W and summed in the same accumulators, so X reaches
// the products to about 2^-22 relative, as in an f32 kernel; a plain f16 X (2^-11) moved the
// fixture model's logits by 2e-3, past the 1e-4 at which prefill must agree with decode. Where W is
// rounded to f16 (F32 and block weights: 2^-11 relative), X is rounded to nearest f16 too (X_SPLIT
// undefined): one product a fragment rather than two, and the pair's error, 2^-11 + 2^-11 of
// |w x|, stays within the full f16 ulp that W's rounding alone was allowed (matmul_coopmat_test).
// lo's products bought rounded weights nothing but cost half the matrix work, a quarter to a third
// of the staged bytes and the registers of its fragments (docs/speed.md, session 21).
// Products and sums are f32 in the matrix units.
//
// ROUNDED (matmul_coopmat_rounded*, F16 only): another type's weights, rounded to f16 once by
// dequantize_f16.comp so that a block is dequantized once per product rather than once per 64-token
// tile; multiplied as rounded weights (no promotion, X one f16 part).
// SHORT_SUMS (matmul_coopmat_short*, F16 only): an F16 file's rows whose sums (split along K or
// not) are short enough to need no promotion (ops::CoopmatSumsUnpromoted); X stays hi + lo.
//
// SWIGLU (matmul_coopmat*_swiglu, prefill's gate|up): W's rows are gate rows, then as many up rows,
// and Y[t, o] = silu(gate[o] . X[t]) * (up[o] . X[t]). A tile's first TILE_ROWS / 2 rows are gate
// rows and the rest the up rows of the same outputs, so the epilogue finds both sums in its tile,
// and the products' own rows (twice the outputs, in f32) are never written. Variants rather than
// QVK_FLAG_SWIGLU: with the flag's row arithmetic in every product, prefill of quantized files
// (the rounded kernels) ran 5-20% slower on the H200.
//
// Split along K (MatMulPush::split_steps, for products with too few tiles to fill the GPU): workgroup
// z sums only its range of steps and stores the tile's raw sums in plane z of Y, with no bias or
// residual; matmul_split_sum then adds the planes up in order.
//
// Sections: layout / staging by units / staging by elements / multiply / epilogue / main
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "coopmat.glsl"  // fragments, X's f16 parts

#define WEIGHT_BINDING 0
#include "weights.glsl"       // load_weight: staging by elements
#include "matvec_units.glsl"  // load_unit, unit_run_values, run_column: staging by units

// Products of rounded weights read X already rounded to nearest f16, once a product (ops:
// rmsnorm_f16 or round_f16, which round as dequantize_f16 rounds weights): half the bytes a step
// loads for X, and no rounding in the staging (7B's pp512 +7-8% on an H100, docs/speed.md, session
// 31). So do the experts' products of weights rounded as they are staged (all but F16 and BF16,
// whose X is split, below), X's rows padded to runs of 8 (round_f16's rows): rounded once or in
// every tile that stages them, X's halves are the same, and Qwen1.5-MoE-A2.7B's pp512 ran 3%
// faster on an H100 (session 35).
#if defined(ROUNDED) || (defined(EXPERTS) && !defined(WEIGHT_F16) && !defined(WEIGHT_BF16))
#define X_HALF
layout(binding = 1) readonly buffer XH { float16_t xh[]; };
layout(binding = 1) readonly buffer XH8 { uvec4 xh8[]; };
#else
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
#endif
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
// This workgroup's expert: its pairs in sorted, their count, its first weight row.
uint first_pair, tokens, w_first_row;
uint x_row(uint t) { return sorted[first_pair + t] / experts.x_items; }
uint y_row(uint t) { return sorted[first_pair + t]; }
#else
layout(push_constant) uniform Push { MatMulPush p; };
uint tokens = 0u;
const uint w_first_row = 0u;
uint x_row(uint t) { return t; }
uint y_row(uint t) { return gl_WorkGroupID.z * p.tokens + t; }  // split along K: the split's plane of Y
#endif

// X as hi + lo where W is exact in f16 (above).
#if (defined(WEIGHT_F16) || defined(WEIGHT_BF16)) && !defined(ROUNDED)
#define X_SPLIT
#endif

#if defined(SWIGLU)
bool swiglu() { return true; }
#else
bool swiglu() { return false; }
#endif

// --- layout ---------------------------------------------------------------------------------

// TILE_ROWS comes from kernels.cmake: QVK_COOPMAT_WIDE_ROWS or QVK_COOPMAT_NARROW_ROWS; and
// TILE_TOKENS for the tall tiles, QVK_COOPMAT_TALL_TOKENS.
#if !defined(TILE_TOKENS)
#define TILE_TOKENS QVK_COOPMAT_TOKENS
#endif
// Eight 32-wide subgroups (LOCAL_SIZE in kernels.cmake), two along the tokens by four along the
// features. Four subgroups (each 32 tokens x TILE_ROWS / 2) held twice the accumulators and loads
// an invocation; eight on the same tile stage the same bytes per product, and prefill ran 4-15%
// faster on the H200 (docs/speed.md, session 13). Sixteen (16 x 32 each) and a 4 x 2 layout, for
// every tile or the narrow ones only, were slower: more fragment loads a multiply. At 130
// registers an invocation (`qwenvk kernels` on the H200) an SM holds one such workgroup; variants
// under 128, which hold two, were slower still, as their loads ran one step ahead (session 14).
#define THREADS 256u
#define ROW_SUBGROUPS 4u
// Subgroup s owns tokens TOKEN_FRAGS * FRAG * (s / ROW_SUBGROUPS) and features
// ROW_FRAGS * FRAG * (s % ROW_SUBGROUPS) onward.
#define TOKEN_FRAGS (TILE_TOKENS / 2u / FRAG)
#define ROW_FRAGS (TILE_ROWS / ROW_SUBGROUPS / FRAG)

// Inner elements staged at a time: a whole number of units of every type (8, 16 or 32 columns),
// as RUNS runs of 8 columns: STEP_UNITS units of UNIT_RUNS runs each.
#define STEP 32u
#define RUNS (STEP / 8u)
#define STEP_UNITS (STEP / UNIT_COLS)
// Per step, W_UNITS units of W and X_RUNS runs of X, spread over the invocations.
#define W_UNITS (TILE_ROWS * STEP_UNITS)
#define W_ITEMS ((W_UNITS + THREADS - 1u) / THREADS)
#define X_RUNS (TILE_TOKENS * RUNS)
#define X_ITEMS (X_RUNS / THREADS)  // one run an invocation

// Shared memory is uvec4s (8 halves or 4 floats each), as in NVIDIA's cooperative-matrix
// samples: fragment loads and stores need 16-byte aligned rows, and a uvec4 array's elements are
// 16-byte aligned wherever the driver places it. Offsets and strides below are in uvec4s.
// A staged row is STEP halves plus 8 of padding: 80 bytes, so the eight rows a fragment load
// reads at once start in different banks. A stage buffer holds X's rows (hi, then lo rows where X
// is split) and W's rows: 20 KiB for 128-feature tiles with X split or for tall tiles, 15 KiB with
// X in one part or for 64-feature tiles with it split; two buffers alternate.
#if defined(X_SPLIT)
#define X_PARTS 2u
#else
#define X_PARTS 1u
#endif
#define STAGE_ROW (RUNS + 1u)
#define X_HI 0u
#define X_LO (TILE_TOKENS * STAGE_ROW)
#define W_STAGE (X_PARTS * TILE_TOKENS * STAGE_ROW)
#define STAGE_SIZE ((X_PARTS * TILE_TOKENS + TILE_ROWS) * STAGE_ROW)
// The accumulators, stored once at the end, reuse the stage memory: a row of floats plus 4 a token,
// OUT_TOKENS tokens a pass. A tall tile's 128 rows of 132 floats would need 66 KiB, so it stores
// them in two passes, one subgroup row's tokens each.
#define OUT_ROW (TILE_ROWS / 4u + 1u)
#define OUT_PASSES (TILE_TOKENS / QVK_COOPMAT_TOKENS)
#define OUT_TOKENS (TILE_TOKENS / OUT_PASSES)
shared uvec4 tile_memory[max(2u * STAGE_SIZE, OUT_TOKENS * OUT_ROW)];

// A run of X at uvec4 `at` of a stage buffer's X rows: its hi and lo parts (coopmat.glsl's
// split_run) where X is split, else rounded to nearest f16. lo is stored as it is, so that
// multiply() sums both parts' products into the same accumulators: one set of accumulators rather
// than one per part frees the registers a second set held.
void store_x_run(uint at, vec4 first, vec4 second) {
#if defined(X_SPLIT)
  uvec4 hi, lo;
  split_run(first, second, hi, lo);
  tile_memory[X_HI + at] = hi;
  tile_memory[X_LO + at] = lo;
#else
  tile_memory[X_HI + at] = nearest_run(first, second);
#endif
}

// The weight row (of the expert's rows) that tile row r stages: row0 is the tile's first output.
// Rows past the matrix repeat its last one (finite values for outputs never stored).
uint weight_row(uint row0, uint r) {
  if (!swiglu()) return w_first_row + min(row0 + r, p.rows - 1u);
  const uint outputs = p.rows / 2u;
  const uint feature = min(row0 + r % (TILE_ROWS / 2u), outputs - 1u);
  return w_first_row + (r < TILE_ROWS / 2u ? feature : outputs + feature);
}

// --- staging by units -----------------------------------------------------------------------
//
// Unit k (0..STEP_UNITS-1) of a step fills slots k * UNIT_RUNS .. + UNIT_RUNS - 1 of every staged
// row, run r in slot k * UNIT_RUNS + r. Units past the end of the rows (the last step of float rows
// whose units do not fill it) stage zeros in W and X: finite, so they add nothing.

// One step's loads for this invocation, held in registers while the steps before it multiply.
struct Staged {
  Unit w[W_ITEMS];
#if defined(X_HALF)
  uvec4 x[X_ITEMS];
#else
  vec4 x[X_ITEMS][2];
#endif
};

// Column of run r of unit u of a row.
uint unit_column(uint u, uint r) {
  return u / BLOCK_UNITS * (UNIT_COLS * BLOCK_UNITS) + run_column(u % BLOCK_UNITS, r);
}

// A step's loads. Only load_unit's scale decoding (block types) uses what they return before the
// multiplies; the rest waits until the values are stored. Tokens past the matrix repeat the last
// one (finite values for outputs never stored), units past the row's end its last unit (zeroed
// when stored).
Staged load_units(uint step, uint row0, uint token0, uint tid) {
  const uint units_per_row = p.cols / UNIT_COLS;
  Staged staged;
  [[unroll]] for (uint i = 0; i < W_ITEMS; ++i) {
    const uint item = min(tid + i * THREADS, W_UNITS - 1u);
    const uint row = weight_row(row0, item / STEP_UNITS);
    const uint u = min(step * STEP_UNITS + item % STEP_UNITS, units_per_row - 1u);
    staged.w[i] = load_unit(row * units_per_row + u);
  }
  [[unroll]] for (uint i = 0; i < X_ITEMS; ++i) {
    const uint item = tid + i * THREADS;
    const uint token = min(token0 + item / RUNS, tokens - 1u);
    const uint slot = item % RUNS;
    const uint u = min(step * STEP_UNITS + slot / UNIT_RUNS, units_per_row - 1u);
#if defined(X_HALF)
    staged.x[i] = xh8[(x_row(token) * p.x_stride + unit_column(u, slot % UNIT_RUNS)) / 8u];
#else
    const uint at = (x_row(token) * p.x_stride + unit_column(u, slot % UNIT_RUNS)) / 4u;
    staged.x[i][0] = x4[at];
    staged.x[i][1] = x4[at + 1u];
#endif
  }
  return staged;
}

// Run r of a unit as 8 halves: F16 weights as they are stored, others dequantized and rounded to
// nearest, as dequantize_f16.comp rounds them.
uvec4 staged_run(Unit w, uint r) {
#if defined(WEIGHT_F16)
  return w.words;
#else
  vec4 first, second;
  unit_run_values(w, r, first, second);
  return nearest_run(first, second);
#endif
}

void store_units(Staged staged, uint step, uint stage, uint tid) {
  const uint units_per_row = p.cols / UNIT_COLS;
  const uint base = stage * STAGE_SIZE;
  [[unroll]] for (uint i = 0; i < W_ITEMS; ++i) {
    const uint item = tid + i * THREADS;
    if (item < W_UNITS) {  // not every invocation has a unit where a tile row's step is one unit
      const uint k = item % STEP_UNITS;
      const bool inside = step * STEP_UNITS + k < units_per_row;
      const uint at = base + W_STAGE + item / STEP_UNITS * STAGE_ROW + k * UNIT_RUNS;
      [[unroll]] for (uint r = 0; r < UNIT_RUNS; ++r) tile_memory[at + r] = inside ? staged_run(staged.w[i], r) : uvec4(0u);
    }
  }
  [[unroll]] for (uint i = 0; i < X_ITEMS; ++i) {
    const uint item = tid + i * THREADS;
    const uint slot = item % RUNS;
    const bool inside = step * STEP_UNITS + slot / UNIT_RUNS < units_per_row;
#if defined(X_HALF)
    tile_memory[X_HI + base + item / RUNS * STAGE_ROW + slot] = inside ? staged.x[i] : uvec4(0u);
#else
    store_x_run(base + item / RUNS * STAGE_ROW + slot, inside ? staged.x[i][0] : vec4(0.0),
                inside ? staged.x[i][1] : vec4(0.0));
#endif
  }
}

// --- staging by elements --------------------------------------------------------------------
//
// Slot j holds columns step * STEP + 8j .. + 7; columns past the row's end are zero (their loads
// stay inside the row).

void stage_elements(uint step, uint stage, uint row0, uint token0, uint tid) {
  const uint base = stage * STAGE_SIZE;
  for (uint item = tid; item < TILE_ROWS * RUNS; item += THREADS) {
    const uint row = weight_row(row0, item / RUNS);
    const uint k = step * STEP + item % RUNS * 8u;
    float v[8];
    [[unroll]] for (uint c = 0; c < 8u; ++c) {
      const float w = load_weight(row * p.cols + min(k + c, p.cols - 1u));
      v[c] = k + c < p.cols ? w : 0.0;
    }
    tile_memory[base + W_STAGE + item / RUNS * STAGE_ROW + item % RUNS] =
        nearest_run(vec4(v[0], v[1], v[2], v[3]), vec4(v[4], v[5], v[6], v[7]));
  }
  for (uint item = tid; item < X_RUNS; item += THREADS) {
    const uint x_at = x_row(min(token0 + item / RUNS, tokens - 1u)) * p.x_stride;
    const uint k = step * STEP + item % RUNS * 8u;
    float v[8];
    [[unroll]] for (uint c = 0; c < 8u; ++c) {
#if defined(X_HALF)
      const float xv = float(xh[x_at + min(k + c, p.cols - 1u)]);
#else
      const float xv = x[x_at + min(k + c, p.cols - 1u)];
#endif
      v[c] = k + c < p.cols ? xv : 0.0;
    }
    store_x_run(base + item / RUNS * STAGE_ROW + item % RUNS, vec4(v[0], v[1], v[2], v[3]),
                vec4(v[4], v[5], v[6], v[7]));
  }
}

// --- multiply -------------------------------------------------------------------------------

// The subgroup's accumulators += its tokens' X x its features' W^T over one stage buffer.
void multiply(uint stage, uint sub_token, uint sub_row, inout AccFrag acc[TOKEN_FRAGS][ROW_FRAGS]) {
  const uint base = stage * STAGE_SIZE;
  [[unroll]] for (uint kk = 0; kk < RUNS; kk += FRAG / 8u) {
    // A: X rows (tokens) row-major; B = W^T: column n is W row n, so W's rows read column-major.
    HalfFrag x_hi[TOKEN_FRAGS], w[ROW_FRAGS];
#if defined(X_SPLIT)
    HalfFrag x_lo[TOKEN_FRAGS];
#endif
    [[unroll]] for (uint i = 0; i < TOKEN_FRAGS; ++i) {
      const uint at = base + (sub_token + i * FRAG) * STAGE_ROW + kk;
      coopMatLoadNV(x_hi[i], tile_memory, X_HI + at, STAGE_ROW, false);
#if defined(X_SPLIT)
      coopMatLoadNV(x_lo[i], tile_memory, X_LO + at, STAGE_ROW, false);
#endif
    }
    [[unroll]] for (uint j = 0; j < ROW_FRAGS; ++j) {
      coopMatLoadNV(w[j], tile_memory, base + W_STAGE + (sub_row + j * FRAG) * STAGE_ROW + kk, STAGE_ROW, true);
    }
    [[unroll]] for (uint i = 0; i < TOKEN_FRAGS; ++i) {
      [[unroll]] for (uint j = 0; j < ROW_FRAGS; ++j) {
#if defined(X_SPLIT)
        acc[i][j] = coopMatMulAddNV(x_lo[i], w[j], acc[i][j]);
#endif
        acc[i][j] = coopMatMulAddNV(x_hi[i], w[j], acc[i][j]);
      }
    }
  }
}

// PROMOTE (weights exact in f16: F16 and BF16 files): every PROMOTE_STEPS steps (1024 inner
// elements) the accumulators are added into f32 totals and restart from zero. The matrix units'
// f32 sums round every step's addition toward zero, an error that grows with K in one direction:
// over 4 864 inner elements it reached 1.1e-5 of |Y| on the H200, past the 1e-5 bar of
// matmul_coopmat_test; sums of 1024 stay well inside. Weights rounded to f16 (every other type)
// carry 2^-11 of error already, 100 times this drift, so they skip the totals and the registers
// they hold: promotion cost 7B Q4_K_M prefill 22% on the H200. F16 sums of at most
// ops::kCoopmatUnpromotedCols elements (a row, or a split's part of it) skip them too (the SHORT_SUMS
// variants), their drift inside the bar: 0.5B and 1.5B F16 files' pp512 on the H200 13-14% faster
// (docs/speed.md, session 18).
#if defined(X_SPLIT) && !defined(SHORT_SUMS)
#define PROMOTE
#endif
#define PROMOTE_STEPS 32u

// Steps whose loads are in flight while a step multiplies (see main). Loads one step ahead left the
// GEMM waiting on memory: on an H200, skipping every load after the first made 7B prefill 60% faster.
// Two ahead cost one more step's registers and made pp512 15-25% faster; three ahead made rounded
// weights slower again (docs/speed.md, session 8, with four subgroups; with eight, session 13).
#define LOAD_AHEAD 2u

void promote(inout AccFrag total[TOKEN_FRAGS][ROW_FRAGS], inout AccFrag acc[TOKEN_FRAGS][ROW_FRAGS]) {
  [[unroll]] for (uint i = 0; i < TOKEN_FRAGS; ++i) {
    [[unroll]] for (uint j = 0; j < ROW_FRAGS; ++j) {
      total[i][j] = total[i][j] + acc[i][j];
      acc[i][j] = AccFrag(0.0);
    }
  }
}

// --- epilogue -------------------------------------------------------------------------------

// Y of the OUT_TOKENS tokens from `first_token` on, from the sums stored in tile_memory: the SwiGLU
// (no bias or residual: ops::MatMul), or the bias and residual added.
void store_outputs(uint first_token, uint row0, uint tid) {
  if (swiglu()) {
    const uint outputs = p.rows / 2u;
    for (uint e = tid; e < OUT_TOKENS * TILE_ROWS / 2u; e += THREADS) {
      const uint t = e / (TILE_ROWS / 2u);
      const uint r = e % (TILE_ROWS / 2u);
      const uint token = first_token + t;
      if (token >= tokens || row0 + r >= outputs) continue;
      const float gate = uintBitsToFloat(tile_memory[t * OUT_ROW + r / 4u][r % 4u]);
      const uint up_r = r + TILE_ROWS / 2u;
      const float up = uintBitsToFloat(tile_memory[t * OUT_ROW + up_r / 4u][up_r % 4u]);
      y[y_row(token) * p.y_stride + p.col_offset + row0 + r] = gate / (1.0 + exp(-gate)) * up;
    }
    return;
  }
  for (uint e = tid; e < OUT_TOKENS * TILE_ROWS; e += THREADS) {
    const uint t = e / TILE_ROWS;
    const uint r = e % TILE_ROWS;
    const uint token = first_token + t;
    const uint row = row0 + r;
    if (token >= tokens || row >= p.rows) continue;
    const uint out_col = p.col_offset + row;
    float v = uintBitsToFloat(tile_memory[t * OUT_ROW + r / 4u][r % 4u]);
    if ((p.flags & QVK_FLAG_BIAS) != 0) v += bias[out_col];
    const uint out_index = y_row(token) * p.y_stride + out_col;
    if ((p.flags & QVK_FLAG_RESIDUAL) != 0) v += residual[out_index];
    y[out_index] = v;
  }
}

// --- main -----------------------------------------------------------------------------------

void main() {
  const uint tid = gl_LocalInvocationID.x;
  // The tile's first output feature: a SwiGLU tile's rows are half gate rows, half up rows.
  const uint row0 = gl_WorkGroupID.x * (swiglu() ? TILE_ROWS / 2u : TILE_ROWS);
  const uint token0 = gl_WorkGroupID.y * TILE_TOKENS;  // first token of the tile
  const uint sub_token = gl_SubgroupID / ROW_SUBGROUPS * TOKEN_FRAGS * FRAG;
  const uint sub_row = gl_SubgroupID % ROW_SUBGROUPS * ROW_FRAGS * FRAG;
#if defined(EXPERTS)
  const uint expert = gl_WorkGroupID.z;
  first_pair = offsets[expert];
  tokens = offsets[expert + 1u] - first_pair;
  w_first_row = expert * experts.expert_rows;
  if (token0 >= tokens) return;  // the whole workgroup: past the expert's pairs
#else
  tokens = p.tokens;
#endif

  // Without PROMOTE, total stays zero and the driver's compiler drops it with its registers.
  AccFrag total[TOKEN_FRAGS][ROW_FRAGS], acc[TOKEN_FRAGS][ROW_FRAGS];
  [[unroll]] for (uint i = 0; i < TOKEN_FRAGS; ++i) {
    [[unroll]] for (uint j = 0; j < ROW_FRAGS; ++j) {
      total[i][j] = AccFrag(0.0);
      acc[i][j] = AccFrag(0.0);
    }
  }

  // This workgroup's steps [first, first + steps) of the split. Local step s is staged in buffer
  // s % 2. Writing step s + 1 while other subgroups still multiply step s is safe: buffer
  // (s + 1) % 2 was last read by step s - 1, before the last barrier.
  const uint all_steps = (p.cols + STEP - 1u) / STEP;
  const uint first = p.split_steps == 0u ? 0u : gl_WorkGroupID.z * p.split_steps;
  const uint steps = p.split_steps == 0u ? all_steps : min(p.split_steps, all_steps - first);
  if (p.cols % UNIT_COLS == 0u && p.x_stride % 4u == 0u) {
    // pending[i] holds the loads of local step s + 1 + i while step s multiplies. Past the last
    // step, loads repeat it (inside the rows, never stored).
    Staged pending[LOAD_AHEAD];
    [[unroll]] for (uint i = 0; i < LOAD_AHEAD; ++i) pending[i] = load_units(first + min(i, steps - 1u), row0, token0, tid);
    store_units(pending[0], first, 0u, tid);
    barrier();
    for (uint step = 0; step + 1u < steps; ++step) {
      [[unroll]] for (uint i = 0; i + 1u < LOAD_AHEAD; ++i) pending[i] = pending[i + 1u];
      pending[LOAD_AHEAD - 1u] = load_units(first + min(step + LOAD_AHEAD, steps - 1u), row0, token0, tid);
      multiply(step % 2u, sub_token, sub_row, acc);
#if defined(PROMOTE)
      if ((step + 1u) % PROMOTE_STEPS == 0u) promote(total, acc);
#endif
      store_units(pending[0], first + step + 1u, (step + 1u) % 2u, tid);
      barrier();
    }
  } else {
    stage_elements(first, 0u, row0, token0, tid);
    barrier();
    for (uint step = 0; step + 1u < steps; ++step) {
      multiply(step % 2u, sub_token, sub_row, acc);
#if defined(PROMOTE)
      if ((step + 1u) % PROMOTE_STEPS == 0u) promote(total, acc);
#endif
      stage_elements(first + step + 1u, (step + 1u) % 2u, row0, token0, tid);
      barrier();
    }
  }
  multiply((steps - 1u) % 2u, sub_token, sub_row, acc);
  barrier();  // every subgroup is done with the stage buffers, which the accumulators now take

  // Epilogue through shared memory: bias, residual and the tile's ragged edges per element.
  [[unroll]] for (uint pass = 0; pass < OUT_PASSES; ++pass) {
    const uint out_token0 = pass * OUT_TOKENS;  // the pass's first token of the tile
    if (sub_token / OUT_TOKENS == pass) {        // the subgroup's tokens are this pass's
      [[unroll]] for (uint i = 0; i < TOKEN_FRAGS; ++i) {
        [[unroll]] for (uint j = 0; j < ROW_FRAGS; ++j) {
          const uint at = (sub_token - out_token0 + i * FRAG) * OUT_ROW + (sub_row + j * FRAG) / 4u;
          coopMatStoreNV(total[i][j] + acc[i][j], tile_memory, at, OUT_ROW, false);
        }
      }
    }
    barrier();
    store_outputs(token0 + out_token0, row0, tid);
    if (pass + 1u < OUT_PASSES) barrier();  // the next pass overwrites what this one read
  }
}
