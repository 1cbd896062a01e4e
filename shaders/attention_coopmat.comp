#version 450
// Causal grouped-query attention on cooperative matrices (tensor cores), for prefill: the same
// contract, push constants, bindings and key splits as attention.comp without probabilities
// (ops takes this kernel only where none are asked for). A workgroup of four 32-wide subgroups
// holds a block of 64 query rows, (token, q head) pairs of one KV group, 16 rows a subgroup, and
// walks its split of the block's keys in tiles of 32, staged in shared memory as f16 (the cache's
// own type) with the next tile's loads in flight meanwhile.
//
// One pass over the keys, FlashAttention-2's: per tile, S = Q K^T, each row's running max m grows
// to m' over the keys it sees, the row's sum l and its accumulator row of O are divided by
// exp(m' - m), P = exp(S - m') (0 where the row does not see the key), l += the sum of P, and
// O += P V on the matrix units. A fragment's elements have no row a shader can name, but fragments
// of one type divide component-wise, and a fragment loaded column by column with stride 0 holds
// row r's value from shared memory in all of row r: so each accumulator is divided by such a
// fragment of its rows' growths. Before, a first pass over the keys found each row's final max
// so that no row was ever rescaled: S was computed twice (docs/speed.md, session 32).
// One split writes O / l; more write m, l and the unnormalised O for attention_combine, as
// attention.comp does.
//
// Precision: Q (f32, times the scale) and P reach the matrix units as f16 hi + lo parts
// (coopmat.glsl's split), each multiplied by the f16 K or V and summed in f32: scores and outputs
// to about 2^-22 relative, as the scalar kernel's f32 arithmetic.
//
// HEAD_DIM (64 or 128) comes from kernels.cmake; ops::PrefillBlockRows checks the rest (q and o
// rows at 16-byte steps, DeviceInfo::coopmat_f16).
//
// Sections: layout / tiles / passes / main
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "coopmat.glsl"  // fragments, the hi/lo split

layout(binding = 0) readonly buffer Q4 { vec4 q4[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer KCache { uvec4 k_runs[]; };  // 8 halves each
layout(binding = 3) readonly buffer VCache { uvec4 v_runs[]; };
layout(binding = 4) writeonly buffer O { float o[]; };
// Binding 5 (probabilities) is unused: ops binds O there.
// Row (t, h), split s: acc [D] at ((t * H + h) * splits + s) * D, then (m, l) pairs after every acc.
layout(binding = 6) writeonly buffer Partials { float partials[]; };

layout(push_constant) uniform Push { AttentionPush p; };

#include "attention.glsl"

// --- layout ---------------------------------------------------------------------------------

#define ROWS 64u         // query rows a workgroup holds: ops::kAttentionCoopmatRows
#define SUB_ROWS 16u     // a subgroup's rows: one fragment high
#define TILE_KEYS 32u    // keys a tile holds: two fragments
#define THREADS 128u     // four 32-wide subgroups: LOCAL_SIZE in kernels.cmake
#define D_RUNS (HEAD_DIM / 8u)      // runs of 8 halves in a head row
#define D_FRAGS (HEAD_DIM / FRAG)   // fragments across a head row
#define KEY_FRAGS (TILE_KEYS / FRAG)
#define TILE_LOADS (TILE_KEYS * D_RUNS / THREADS)  // runs of K (and of V) each invocation loads a tile

// Shared memory is uvec4s (8 halves or 4 floats), as in matmul_coopmat.comp: fragment loads and
// stores need 16-byte aligned rows. Offsets and strides are in uvec4s. Rows of halves carry one
// uvec4 of padding so that the eight rows a fragment load reads at once start in different banks.
#define KV_ROW (D_RUNS + 1u)              // a key of the K or V tile
#define S_ROW (TILE_KEYS / 4u + 1u)       // a row of a subgroup's scores, f32
#define P_ROW (TILE_KEYS / 8u + 1u)       // a row of a subgroup's P part, halves
#define Q_ROW (D_RUNS + 1u)               // a row of Q's hi or lo part, halves
#define O_ROW (HEAD_DIM / 4u + 1u)        // a row of the output, f32
// While the keys are walked: the K tile, the V tile, each subgroup's scores, each subgroup's P
// (hi rows, then lo rows). Before them, Q's hi and lo rows; after them, the output rows.
#define K_TILE 0u
#define V_TILE (K_TILE + TILE_KEYS * KV_ROW)
#define S_AREA (V_TILE + TILE_KEYS * KV_ROW)
#define P_AREA (S_AREA + ROWS * S_ROW)
#define WALK_SIZE (P_AREA + 2u * ROWS * P_ROW)
#define Q_HI 0u
#define Q_LO (ROWS * Q_ROW)
#define MEMORY_SIZE max(WALK_SIZE, max(2u * ROWS * Q_ROW, ROWS * O_ROW))
shared uvec4 memory[MEMORY_SIZE];
shared float pair_sh[THREADS];  // what the two lanes of a row tell each other
shared float growth_sh[ROWS];   // each row's exp(m' - m) for the tile

uint tid, sub, lane;
RowBlock rb;    // this workgroup's query rows
uint kv_first;  // the KV group's first cache row
uvec4 k_next[TILE_LOADS], v_next[TILE_LOADS];  // the next tile, on its way to shared memory

// --- tiles ----------------------------------------------------------------------------------

// Starts reading the tile of keys [j0, j0 + TILE_KEYS) into registers; keys at or past `end`
// read key end - 1 again (finite values, which the passes give no weight).
void fetch_tile(uint j0, uint end, bool with_v) {
  [[unroll]] for (uint i = 0; i < TILE_LOADS; ++i) {
    const uint slot = tid + i * THREADS;
    const uint at = (kv_first + min(j0 + slot / D_RUNS, end - 1u)) * D_RUNS + slot % D_RUNS;
    k_next[i] = k_runs[at];
    if (with_v) v_next[i] = v_runs[at];
  }
}

void store_tile(bool with_v) {
  [[unroll]] for (uint i = 0; i < TILE_LOADS; ++i) {
    const uint slot = tid + i * THREADS;
    const uint at = slot / D_RUNS * KV_ROW + slot % D_RUNS;
    memory[K_TILE + at] = k_next[i];
    if (with_v) memory[V_TILE + at] = v_next[i];
  }
}

// --- passes ---------------------------------------------------------------------------------

// This subgroup's scores against the staged K tile, stored as f32 rows at S_AREA.
void tile_scores(HalfFrag q_hi[D_FRAGS], HalfFrag q_lo[D_FRAGS]) {
  AccFrag s[KEY_FRAGS];
  [[unroll]] for (uint c = 0; c < KEY_FRAGS; ++c) s[c] = AccFrag(0.0);
  [[unroll]] for (uint kk = 0; kk < D_FRAGS; ++kk) {
    [[unroll]] for (uint c = 0; c < KEY_FRAGS; ++c) {
      // B = K^T: column n is key n, so the tile's key rows read column-major.
      HalfFrag k;
      coopMatLoadNV(k, memory, K_TILE + c * FRAG * KV_ROW + kk * 2u, KV_ROW, true);
      s[c] = coopMatMulAddNV(q_lo[kk], k, s[c]);
      s[c] = coopMatMulAddNV(q_hi[kk], k, s[c]);
    }
  }
  [[unroll]] for (uint c = 0; c < KEY_FRAGS; ++c) {
    coopMatStoreNV(s[c], memory, S_AREA + sub * SUB_ROWS * S_ROW + c * 4u, S_ROW, false);
  }
  subgroupMemoryBarrierShared();
  subgroupBarrier();
}

// Lane `lane` reads half of row lane / 2 of the subgroup's scores: keys 16 * (lane % 2) ...
void lane_scores(uint j0, uint see_begin, uint see_end, out float s[16]) {
  const uint at = S_AREA + (sub * SUB_ROWS + lane / 2u) * S_ROW + (lane % 2u) * 4u;
  [[unroll]] for (uint i = 0; i < 4u; ++i) {
    const vec4 four = uintBitsToFloat(memory[at + i]);
    [[unroll]] for (uint e = 0; e < 4u; ++e) {
      const uint key = j0 + (lane % 2u) * 16u + 4u * i + e;
      s[4u * i + e] = key >= see_begin && key < see_end ? four[e] : NEG_INF;
    }
  }
}

// The other lane of this lane's row: both hold half of the row.
float partner(float v) {
  pair_sh[sub * 32u + lane] = v;
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  const float other = pair_sh[sub * 32u + (lane ^ 1u)];
  subgroupBarrier();  // read before the next write
  return other;
}

// --- main -----------------------------------------------------------------------------------

void main() {
  tid = gl_LocalInvocationID.x;
  sub = gl_SubgroupID;
  lane = gl_SubgroupInvocationID;
  rb = this_row_block();
  const uint split = rb.split;
  kv_first = rb.g * p.capacity;

  const KeyRange keys = block_keys(rb.block);
  const uint per = split_length(keys);
  const uint begin = keys.begin + split * per;
  if (begin >= keys.end) return;  // an empty split; the combine pass does not read it
  const uint end = min(begin + per, keys.end);
  fetch_tile(begin, end, true);

  // Q * scale as hi and lo rows, then into this subgroup's fragments.
  for (uint i = tid; i < ROWS * D_RUNS; i += THREADS) {
    const uint r = i / D_RUNS, c = i % D_RUNS;
    uint t, h;
    vec4 first = vec4(0.0), second = vec4(0.0);
    if (row_at(rb, r, t, h)) {
      const uint at = (t * p.q_stride + h * HEAD_DIM) / 4u + 2u * c;
      first = q4[at] * p.scale;
      second = q4[at + 1u] * p.scale;
    }
    uvec4 hi, lo;
    split_run(first, second, hi, lo);
    memory[Q_HI + r * Q_ROW + c] = hi;
    memory[Q_LO + r * Q_ROW + c] = lo;
  }
  barrier();
  HalfFrag q_hi[D_FRAGS], q_lo[D_FRAGS];
  [[unroll]] for (uint kk = 0; kk < D_FRAGS; ++kk) {
    coopMatLoadNV(q_hi[kk], memory, Q_HI + sub * SUB_ROWS * Q_ROW + kk * 2u, Q_ROW, false);
    coopMatLoadNV(q_lo[kk], memory, Q_LO + sub * SUB_ROWS * Q_ROW + kk * 2u, Q_ROW, false);
  }

  // This lane's row (two lanes a row) and the keys of this split it sees: the last tile's keys
  // past `end` are copies, never seen.
  const uint row = sub * SUB_ROWS + lane / 2u;
  uint row_t, row_h;
  const bool row_valid = row_at(rb, row, row_t, row_h);
  uint see_begin = 0xffffffffu, see_end = 0;
  if (row_valid) {
    const uint pos = positions[row_t];
    see_begin = max(first_visible(pos), begin);
    see_end = min(pos + 1, end);
  }

  // The walk: per tile S, the running max, P = exp(S - m), l = its sum, O += P V. The fetch
  // before Q's rows began the first tile.
  float m = NEG_INF, l = 0.0;
  AccFrag acc[D_FRAGS];
  [[unroll]] for (uint j = 0; j < D_FRAGS; ++j) acc[j] = AccFrag(0.0);
  const uint p_hi = P_AREA + (sub * SUB_ROWS + lane / 2u) * P_ROW + (lane % 2u) * 2u;
  const uint p_lo = p_hi + ROWS * P_ROW;
  for (uint j0 = begin; j0 < end; j0 += TILE_KEYS) {
    barrier();  // every subgroup is done with the tile (and, the first time, with Q's rows)
    store_tile(true);
    barrier();
    if (j0 + TILE_KEYS < end) fetch_tile(j0 + TILE_KEYS, end, true);
    tile_scores(q_hi, q_lo);
    float s[16];
    lane_scores(j0, see_begin, see_end, s);
    float tile_max = NEG_INF;
    [[unroll]] for (uint i = 0; i < 16u; ++i) tile_max = max(tile_max, s[i]);
    const float next_m = max(m, max(tile_max, partner(tile_max)));
    // What the row's sums so far are divided by at the new max: 1 where the max stands, inf
    // where the row saw no key before (m = -inf, its sums 0); a row that still sees none keeps 1.
    const float growth = next_m == NEG_INF ? 1.0 : exp(next_m - m);
    m = next_m;
    l /= growth;
    float e[16];
    [[unroll]] for (uint i = 0; i < 16u; ++i) {
      e[i] = s[i] == NEG_INF ? 0.0 : exp(s[i] - m);
      l += e[i];
    }
    [[unroll]] for (uint i = 0; i < 2u; ++i) {
      uvec4 hi, lo;
      split_run(vec4(e[8u * i], e[8u * i + 1u], e[8u * i + 2u], e[8u * i + 3u]),
                vec4(e[8u * i + 4u], e[8u * i + 5u], e[8u * i + 6u], e[8u * i + 7u]), hi, lo);
      memory[p_hi + i] = hi;
      memory[p_lo + i] = lo;
    }
    if (lane % 2u == 0u) growth_sh[sub * SUB_ROWS + lane / 2u] = growth;
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    AccFrag row_growth;  // (r, c): row r's growth
    coopMatLoadNV(row_growth, growth_sh, sub * SUB_ROWS, 0u, true);
    [[unroll]] for (uint j = 0; j < D_FRAGS; ++j) acc[j] = acc[j] / row_growth;
    [[unroll]] for (uint c = 0; c < KEY_FRAGS; ++c) {
      HalfFrag pf_hi, pf_lo;
      const uint at = P_AREA + sub * SUB_ROWS * P_ROW + c * 2u;
      coopMatLoadNV(pf_hi, memory, at, P_ROW, false);
      coopMatLoadNV(pf_lo, memory, at + ROWS * P_ROW, P_ROW, false);
      [[unroll]] for (uint j = 0; j < D_FRAGS; ++j) {
        HalfFrag v;  // keys c * 16.. as rows, head dims j * 16.. as columns
        coopMatLoadNV(v, memory, V_TILE + c * FRAG * KV_ROW + j * 2u, KV_ROW, false);
        acc[j] = coopMatMulAddNV(pf_lo, v, acc[j]);
        acc[j] = coopMatMulAddNV(pf_hi, v, acc[j]);
      }
    }
  }
  l += partner(l);

  // The output rows through shared memory: each lane writes half of its row.
  barrier();  // every subgroup is done with the tiles, whose memory the output rows take
  [[unroll]] for (uint j = 0; j < D_FRAGS; ++j) {
    coopMatStoreNV(acc[j], memory, sub * SUB_ROWS * O_ROW + j * 4u, O_ROW, false);
  }
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  if (!row_valid) return;
  const uint head = row_t * p.n_heads + row_h;
  const uint first_d = (lane % 2u) * (HEAD_DIM / 2u);
  const float inv_l = p.splits == 1 ? 1.0 / l : 1.0;  // a row of one split sees its own key: l > 0
  for (uint d = first_d; d < first_d + HEAD_DIM / 2u; d += 4u) {
    const vec4 v = uintBitsToFloat(memory[row * O_ROW + d / 4u]) * inv_l;
    if (p.splits == 1) {
      const uint at = row_t * p.o_stride + row_h * HEAD_DIM + d;
      [[unroll]] for (uint e = 0; e < 4u; ++e) o[at + e] = v[e];
    } else {
      const uint at = (head * p.splits + split) * HEAD_DIM + d;
      [[unroll]] for (uint e = 0; e < 4u; ++e) partials[at + e] = v[e];
    }
  }
  if (p.splits > 1 && lane % 2u == 0u) {
    const uint at = p.tokens * p.n_heads * p.splits * HEAD_DIM + 2u * (head * p.splits + split);
    partials[at] = m;
    partials[at + 1u] = l;
  }
}
