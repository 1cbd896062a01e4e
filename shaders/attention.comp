#version 450
// Causal grouped-query flash attention over the F16 KV cache. A workgroup holds a block of up to
// MAX_ROWS query rows, (token, q head) pairs of one KV group, so K and V are read once for every head
// of the group and every token of the block; it walks its part of the block's keys in tiles
// staged in shared memory (the next tile's loads in flight meanwhile): scores, an online softmax
// per row and the weighted sum of V, four barriers per tile and none per key.
// The keys may be split over several workgroups ("flash decoding", so that one decode token
// fills the GPU): with one split the workgroup writes O; with more it writes each row's partial
// max m, sum l and unnormalised output, which attention_combine merges, or, in a decode step
// (SPLIT_COUNTERS, QVK_FLAG_COMBINE_IN_SPLITS), the last of the block's splits to finish.
// With QVK_FLAG_PROBS each row's scores go to P as its tiles pass, and become probabilities once
// the row's final m and l are known: at the end, each lane rereading the scores it wrote (no second
// pass over K), or, with more splits, in attention_combine, which alone knows the whole row's m and
// l. The columns no split of the block sees are zeroed by all the splits together. With
// QVK_FLAG_SCORES the scores stay (-inf where unseen, nothing past the block's last key) and the
// row's m and l are written after P's rows instead: a decode step's live rows are made
// probabilities only where a view reads them, by attention_live.
// QK_NORM (attention_narrow_norm: a decode step, one token, head_dim a multiple of 8): Q holds
// the q|k|v projection as it came out, and the kernel does Qwen3's head norm and RoPE itself
// (head_norm_rope.comp's arithmetic): each workgroup normalizes and rotates its q rows as it stages
// them, and the split holding the token's position normalizes and rotates that token's k, stores k
// and v into the cache and stages them from shared memory rather than from the cache it wrote.
//
// Sections: tile loads / Qwen3's head norm and RoPE / the splits merged by the last / main
#include "common.glsl"

#if defined(QK_NORM)
#include "rope.glsl"
#define CACHE_ACCESS
#else
#define CACHE_ACCESS readonly
#endif
layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
// The caches 4 halves at a time (head_dim % 4 == 0), or half by half (any head_dim).
layout(binding = 2) CACHE_ACCESS buffer KCache { uvec2 k_quads[]; };
layout(binding = 2) CACHE_ACCESS buffer KCacheHalves { float16_t k_halves[]; };
layout(binding = 3) CACHE_ACCESS buffer VCache { uvec2 v_quads[]; };
layout(binding = 3) CACHE_ACCESS buffer VCacheHalves { float16_t v_halves[]; };
layout(binding = 4) writeonly buffer O { float o[]; };
layout(binding = 5) buffer P { float probs[]; };
// Row (t, h), split s: acc [D] at ((t * H + h) * splits + s) * D, then (m, l) pairs after every acc.
// The decode kernels (SPLIT_COUNTERS) read other workgroups' partials back when they merge them.
#if defined(SPLIT_COUNTERS)
layout(binding = 6) coherent buffer Partials { float partials[]; };
layout(binding = 6) coherent buffer Partials4 { vec4 partials4[]; };
#else
layout(binding = 6) writeonly buffer Partials { float partials[]; };
#endif
#if defined(QK_NORM)
layout(binding = 7) readonly buffer InvFreq { float inv_freq[]; };
layout(binding = 8) readonly buffer NormWeight { float norm_weight[]; };  // q_norm | k_norm, f32 [2 * D]
#endif
#if defined(SPLIT_COUNTERS)
// Per block of query rows (gl_WorkGroupID.y * gl_NumWorkGroups.z + z): how many of its active
// splits have written their partials. Zero between dispatches: the last split sets it back.
#if defined(QK_NORM)
layout(binding = 9) coherent buffer SplitCounters { uint split_counters[]; };
#else
layout(binding = 7) coherent buffer SplitCounters { uint split_counters[]; };
#endif
#endif
#if defined(QK_NORM)

layout(push_constant) uniform Push {
  AttentionPush p;
  float eps;               // the head norm's epsilon (AttentionNormPush)
  float attention_factor;  // YaRN's, on cos and sin
};
#else
layout(push_constant) uniform Push { AttentionPush p; };
#endif

#include "attention.glsl"

// The wide variants (kernels.cmake), which a prefill takes where the device has their shared
// memory, hold 32 rows (MAX_ROWS), so that each staged key serves twice the rows:
//   attention_wide, head_dim <= 64: tiles of 48 keys, 1.5 times the work per barrier (28 KiB);
//   attention_wide_d128, head_dim <= 128: q of 32 rows (Q_QUADS), tiles of 24 keys (32 KiB).
// Both fit lavapipe's 32 KiB. attention_narrow holds 8 (a decode step's heads of one KV group)
// on 256 invocations, so that each row has 32 lanes and each lane scores 2 keys of a 64-key
// tile, not 8: a decode split's chain of scores and softmax a quarter as long.
#ifndef MAX_ROWS
#define MAX_ROWS 16
#define MAX_TILE_KEYS 64
#define TILE_QUADS 1024  // 4-half slots of one K or V tile: 64 keys of head_dim 64, 16 of 256
#endif
#ifndef Q_QUADS
#define Q_QUADS 512  // 16 rows of head_dim <= 128, or 8 rows of 256
#endif
// Per lane, for WG (64 or more) invocations:
const uint KEYS_PER_LANE = MAX_TILE_KEYS / (WG / MAX_ROWS);  // a row has WG / block_rows lanes
const uint ROWS_PER_LANE = Q_QUADS / WG;                      // block_rows / (WG / quads) at most
const uint LOADS_PER_LANE = TILE_QUADS / WG;

shared vec4 q_sh[Q_QUADS];                      // row r, quad c at r * quads + c: scaled, 0 past head_dim
shared uvec2 k_sh[TILE_QUADS + MAX_TILE_KEYS];  // key j, quad c at j * (quads + 1) + c: padded so lanes
                                                // reading different keys hit different banks
shared uvec2 v_sh[TILE_QUADS];                  // key j, quad c at j * quads + c
shared float p_sh[MAX_ROWS * MAX_TILE_KEYS];    // row r, key j: exp(score - m)
shared float lane_sh[WG];                       // each lane's tile max, at the end its share of l
shared float corr_sh[MAX_ROWS];                 // exp(m_old - m_new) of the current tile
shared float l_sh[MAX_ROWS];
#if defined(QK_NORM)
shared vec4 fresh_k_sh[Q_QUADS / MAX_ROWS];  // the token's own k (rotated) and v, as the cache holds
shared vec4 fresh_v_sh[Q_QUADS / MAX_ROWS];  // them (f16 values), where this split holds its position
uint fresh_key = 0xffffffffu;                // that position, or none
#endif

uint tid;
uint quads;   // 4-half slots per head row
RowBlock rb;  // this workgroup's query rows
uvec2 k_next[LOADS_PER_LANE], v_next[LOADS_PER_LANE];  // the next tile, on its way to shared memory

vec4 unpack_quad(uvec2 w) { return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); }

// --- tile loads ------------------------------------------------------------------------------

// Starts reading keys [0, n) of a tile whose first key is cache row `row0` into registers.
void fetch_tile(uint row0, uint n, bool with_v) {
  for (uint i = 0; i < LOADS_PER_LANE; ++i) {
    const uint slot = tid + i * WG;
    if (slot >= n * quads) break;
    if (p.head_dim % 4 == 0) {
      k_next[i] = k_quads[row0 * quads + slot];
      if (with_v) v_next[i] = v_quads[row0 * quads + slot];
    } else {
      const uint d = slot % quads * 4;
      const uint base = (row0 + slot / quads) * p.head_dim + d;
      vec4 k = vec4(0.0), v = vec4(0.0);
      for (uint e = 0; e < 4; ++e) {
        if (d + e < p.head_dim) {
          k[e] = float(k_halves[base + e]);
          if (with_v) v[e] = float(v_halves[base + e]);
        }
      }
      k_next[i] = uvec2(packHalf2x16(k.xy), packHalf2x16(k.zw));
      v_next[i] = uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
    }
  }
}

// Keys [0, n) of the tile whose first key is j0, from registers into shared memory.
void store_tile(uint j0, uint n, bool with_v) {
  for (uint i = 0; i < LOADS_PER_LANE; ++i) {
    const uint slot = tid + i * WG;
    if (slot >= n * quads) break;
    uvec2 k = k_next[i], v = v_next[i];
#if defined(QK_NORM)
    if (j0 + slot / quads == fresh_key) {  // the cache row this workgroup wrote, as it wrote it
      const vec4 fk = fresh_k_sh[slot % quads], fv = fresh_v_sh[slot % quads];
      k = uvec2(packHalf2x16(fk.xy), packHalf2x16(fk.zw));
      v = uvec2(packHalf2x16(fv.xy), packHalf2x16(fv.zw));
    }
#endif
    k_sh[slot / quads * (quads + 1) + slot % quads] = k;
    if (with_v) v_sh[slot] = v;
  }
}

// Scores of `row` against this lane's keys lane, lane + lanes, ... of the tile in k_sh (tile
// keys [0, n), cache rows from j0); -inf where the row does not see the key. Rows past the
// block's tokens and heads see nothing (a decode block of 0.5B fills 7 of its 16 rows).
void tile_scores(out float s[KEYS_PER_LANE], uint row, uint lane, uint lanes, uint j0, uint n, uint see_begin,
                 uint see_end) {
  for (uint k = 0; k < KEYS_PER_LANE; ++k) s[k] = 0.0;
  for (uint c = 0; c < quads && see_begin < see_end; ++c) {
    const vec4 qv = q_sh[row * quads + c];
    for (uint k = 0; k < KEYS_PER_LANE; ++k) {
      const uint j = lane + k * lanes;
      if (j < n) s[k] += dot(qv, unpack_quad(k_sh[j * (quads + 1) + c]));
    }
  }
  for (uint k = 0; k < KEYS_PER_LANE; ++k) {
    const uint j = lane + k * lanes;
    const uint key = j0 + j;
    if (j >= n || key < see_begin || key >= see_end) s[k] = NEG_INF;
  }
}

// Zeros in the columns of P row `pb` that no split of the block sees, [0, keys.begin) and
// [keys.end, probs_stride), this split's share of them: a decode row of a long cache is mostly
// such columns, and one workgroup alone would write them slowly. Scores get -inf before the
// block's keys and nothing after them.
void zero_unseen_columns(uint pb, KeyRange keys, uint split, uint lane, uint lanes) {
  const bool scores = (p.flags & QVK_FLAG_SCORES) != 0;
  const uint before = min(keys.begin, p.probs_stride);
  const uint after = !scores && p.probs_stride > keys.end ? p.probs_stride - keys.end : 0;
  const uint share = (before + after + p.splits - 1) / p.splits;
  const uint first = split * share, last = min(first + share, before + after);
  const float unseen = scores ? NEG_INF : 0.0;
  for (uint i = first + lane; i < last; i += lanes) probs[pb + (i < before ? i : keys.end + i - before)] = unseen;
}

#if defined(QK_NORM)
// --- Qwen3's head norm and RoPE ----------------------------------------------------------------

// The block's q rows (one token: its q heads of KV group rb.g) into q_sh, each scaled by its RMS
// and q_norm, rotated and scaled by p.scale; and where [begin, end) holds the token's position, its
// k (scaled by its RMS and k_norm, rotated) and v into the cache and fresh_k_sh / fresh_v_sh, by
// head_norm_rope.comp's arithmetic (norm_rotate_pair, in f32).
void stage_normed_heads(uint begin, uint end) {
  const uint half_quads = quads / 2u, half_dim = p.head_dim / 2u;
  const uint pos = positions[0];
  const uint lanes = WG / p.block_rows;
  const uint row = tid / lanes, lane = tid % lanes;
  uint t, h;
  const bool valid = row_at(rb, row, t, h);
  // Raw q, and the row's sum of squares from its lanes' shares.
  float squares = 0.0;
  for (uint c = lane; c < quads; c += lanes) {
    const vec4 qv = valid ? vec4(q[h * p.head_dim + 4u * c], q[h * p.head_dim + 4u * c + 1u],
                                 q[h * p.head_dim + 4u * c + 2u], q[h * p.head_dim + 4u * c + 3u])
                          : vec4(0.0);
    q_sh[row * quads + c] = qv;
    squares += dot(qv, qv);
  }
  lane_sh[tid] = squares;
  barrier();
  squares = 0.0;
  for (uint i = 0; i < lanes; ++i) squares += lane_sh[row * lanes + i];
  const float q_inv_rms = inversesqrt(squares / float(p.head_dim) + eps);
  for (uint c = lane; c < half_quads; c += lanes) {
    vec4 x0 = q_sh[row * quads + c], x1 = q_sh[row * quads + c + half_quads];
    for (uint e = 0; e < 4u; ++e) {
      const uint i = 4u * c + e;
      const vec2 rotated = norm_rotate_pair(x0[e], x1[e], q_inv_rms, norm_weight[i], norm_weight[i + half_dim],
                                            cos_sin(float(pos) * inv_freq[i]) * attention_factor);
      x0[e] = rotated.x * p.scale;
      x1[e] = rotated.y * p.scale;
    }
    q_sh[row * quads + c] = valid ? x0 : vec4(0.0);
    q_sh[row * quads + c + half_quads] = valid ? x1 : vec4(0.0);
  }
  if (pos < begin || pos >= end) return;  // the whole workgroup: another split holds the position
  fresh_key = pos;
  // The token's k head rb.g and v head rb.g, into the cache and fresh_*_sh.
  const uint k_src = (p.n_heads + rb.g) * p.head_dim, v_src = (p.n_heads + p.n_kv_heads + rb.g) * p.head_dim;
  const uint dst = (rb.g * p.capacity + pos) * p.head_dim;
  float k_squares = 0.0;
  for (uint i = tid; i < p.head_dim; i += WG) k_squares += q[k_src + i] * q[k_src + i];
  const float k_inv_rms = inversesqrt(workgroup_sum(k_squares) / float(p.head_dim) + eps);
  for (uint i = tid; i < half_dim; i += WG) {
    const vec2 rotated = norm_rotate_pair(q[k_src + i], q[k_src + i + half_dim], k_inv_rms, norm_weight[p.head_dim + i],
                                          norm_weight[p.head_dim + i + half_dim],
                                          cos_sin(float(pos) * inv_freq[i]) * attention_factor);
    k_halves[dst + i] = float16_t(rotated.x);
    k_halves[dst + i + half_dim] = float16_t(rotated.y);
    // Each invocation reads back only what it wrote itself: the values exactly as the cache holds them.
    fresh_k_sh[i / 4u][i % 4u] = float(k_halves[dst + i]);
    fresh_k_sh[(i + half_dim) / 4u][i % 4u] = float(k_halves[dst + i + half_dim]);
  }
  for (uint i = tid; i < p.head_dim; i += WG) {
    v_halves[dst + i] = float16_t(q[v_src + i]);
    fresh_v_sh[i / 4u][i % 4u] = float(v_halves[dst + i]);
  }
  barrier();  // fresh_*_sh before the first store_tile reads them
}
#endif

#if defined(SPLIT_COUNTERS)
// --- the splits merged by the last -------------------------------------------------------------

// With QVK_FLAG_COMBINE_IN_SPLITS (a decode step without P), the last of a block's `count` active
// splits to finish merges their partials into O as attention_combine would, so that no combine
// dispatch follows: each split makes its partials visible and counts itself on its block's
// counter; the one that counts last reads every split's (coherent) partials and sets the counter
// back to zero for the next dispatch. The merge's weights exp(m_s - M) live in v_sh (free once
// the tiles are done), MAX_ROWS x QVK_ATTENTION_MAX_SPLITS of them.
shared bool last_split_sh;
void set_weight(uint row, uint s, float w) {
  const uint i = row * QVK_ATTENTION_MAX_SPLITS + s;
  v_sh[i >> 1][i & 1u] = floatBitsToUint(w);
}
float weight_of(uint row, uint s) {
  const uint i = row * QVK_ATTENTION_MAX_SPLITS + s;
  return uintBitsToFloat(v_sh[i >> 1][i & 1u]);
}
void merge_splits(uint count) {
  memoryBarrierBuffer();  // this invocation's partials, before the count says they are there
  barrier();              // every invocation's
  const uint block = gl_WorkGroupID.y * gl_NumWorkGroups.z + gl_WorkGroupID.z;
  if (tid == 0) last_split_sh = atomicAdd(split_counters[block], 1u) == count - 1u;
  barrier();
  if (!last_split_sh) return;
  memoryBarrierBuffer();

  const uint ml_base = p.tokens * p.n_heads * p.splits * p.head_dim;
  const uint lanes = WG / p.block_rows;
  const uint row = tid / lanes, lane = tid % lanes;
  uint t, h;
  const bool valid = row_at(rb, row, t, h);
  const uint first = valid ? (t * p.n_heads + h) * p.splits : 0u;
  // M = max_s m_s (finite: the split holding the row's position saw a key), then
  // L = sum_s l_s exp(m_s - M), each row's splits over its lanes.
  float m = NEG_INF;
  for (uint s = lane; valid && s < count; s += lanes) m = max(m, partials[ml_base + 2 * (first + s)]);
  lane_sh[tid] = m;
  barrier();
  for (uint i = 0; i < lanes; ++i) m = max(m, lane_sh[row * lanes + i]);
  barrier();  // lane_sh read before it takes the sums
  float l = 0.0;
  for (uint s = lane; valid && s < count; s += lanes) {
    const float w = exp(partials[ml_base + 2 * (first + s)] - m);
    set_weight(row, s, w);
    l += w * partials[ml_base + 2 * (first + s) + 1];
  }
  lane_sh[tid] = l;
  barrier();
  if (lane == 0) {
    float sum = 0.0;
    for (uint i = 0; i < lanes; ++i) sum += lane_sh[row * lanes + i];
    l_sh[row] = sum;
  }
  barrier();
  // O = sum_s acc_s exp(m_s - M) / L, 4 elements of a row per invocation (1 where head_dim is not
  // a multiple of 4), MERGE_LOADS splits at a time in independent sums so that as many loads are
  // in flight: one scalar at a time, a deep cache's 64 splits made the merge slower than the
  // combine dispatch it replaces (docs/speed.md, session 27).
  const uint MERGE_LOADS = 8u;
  const uint width = p.head_dim % 4 == 0 ? 4u : 1u;
  const uint row_items = p.head_dim / width;
  for (uint i = tid; i < p.block_rows * row_items; i += WG) {
    const uint r = i / row_items, d = i % row_items * width;
    uint rt, rh;
    if (!row_at(rb, r, rt, rh)) continue;
    const uint at = (rt * p.n_heads + rh) * p.splits * p.head_dim + d;
    vec4 sums[MERGE_LOADS];
    for (uint j = 0; j < MERGE_LOADS; ++j) sums[j] = vec4(0.0);
    uint s = 0;
    if (width == 4u) {
      for (; s + MERGE_LOADS <= count; s += MERGE_LOADS) {
        for (uint j = 0; j < MERGE_LOADS; ++j) {
          sums[j] += weight_of(r, s + j) * partials4[(at + (s + j) * p.head_dim) / 4u];
        }
      }
      for (; s < count; ++s) sums[0] += weight_of(r, s) * partials4[(at + s * p.head_dim) / 4u];
    } else {
      for (; s < count; ++s) sums[s % MERGE_LOADS].x += weight_of(r, s) * partials[at + s * p.head_dim];
    }
    vec4 sum = vec4(0.0);
    for (uint j = 0; j < MERGE_LOADS; ++j) sum += sums[j];
    const uint out_at = rt * p.o_stride + rh * p.head_dim + d;
    for (uint e = 0; e < width; ++e) o[out_at + e] = sum[e] / l_sh[r];
  }
  if (tid == 0) split_counters[block] = 0u;
}
#endif

// --- main ------------------------------------------------------------------------------------

void main() {
  tid = gl_LocalInvocationID.x;
  quads = (p.head_dim + 3) / 4;
  rb = this_row_block();
  const uint split = rb.split;

  const KeyRange keys = block_keys(rb.block);
  const uint per = split_length(keys);
  const uint begin = keys.begin + split * per;

  // Scores and softmax: `lanes` lanes per row, each with every lanes-th key of a tile.
  const uint lanes = WG / p.block_rows;
  const uint row = tid / lanes, lane = tid % lanes;
  uint row_t, row_h;
  const bool row_valid = row_at(rb, row, row_t, row_h);
  const uint pb = (row_h * p.tokens + row_t) * p.probs_stride;  // the row of P
  const bool write_probs = (p.flags & QVK_FLAG_PROBS) != 0 && row_valid;
  if (write_probs) zero_unseen_columns(pb, keys, split, lane, lanes);
  if (begin >= keys.end) return;  // an empty split; the combine pass does not read it
  const uint end = min(begin + per, keys.end);
  const uint tile_keys = min(MAX_TILE_KEYS, TILE_QUADS / quads);
  const uint kv_row0 = rb.g * p.capacity;
  fetch_tile(kv_row0 + begin, min(tile_keys, end - begin), true);

#if defined(QK_NORM)
  stage_normed_heads(begin, end);
#else
  for (uint i = tid; i < p.block_rows * quads; i += WG) {
    const uint d = i % quads * 4;
    uint t, h;
    vec4 qv = vec4(0.0);
    if (row_at(rb, i / quads, t, h)) {
      for (uint e = 0; e < 4; ++e) {
        if (d + e < p.head_dim) qv[e] = q[t * p.q_stride + h * p.head_dim + d + e] * p.scale;
      }
    }
    q_sh[i] = qv;
  }
#endif

  uint see_begin = 0xffffffffu, see_end = 0;
  if (row_valid) {
    const uint pos = positions[row_t];
    see_begin = first_visible(pos);
    see_end = pos + 1;
  }
  // Weighted sum of V: lane tid holds quad pv_quad of rows pv_group, pv_group + pv_groups, ...
  const uint pv_groups = WG / quads;
  const uint pv_quad = tid % quads, pv_group = tid / quads;
  const uint rows_used = p.heads_per_block * min(p.tokens_per_block, p.tokens - rb.t0);

  float m = NEG_INF;   // the row's running max; every lane of the row holds the same value
  float l_lane = 0.0;  // this lane's share of the row's sum of exp(score - m)
  vec4 acc[ROWS_PER_LANE];
  for (uint k = 0; k < ROWS_PER_LANE; ++k) acc[k] = vec4(0.0);

  for (uint j0 = begin; j0 < end; j0 += tile_keys) {
    const uint n = min(tile_keys, end - j0);
    store_tile(j0, n, true);
    barrier();
    if (j0 + tile_keys < end) fetch_tile(kv_row0 + j0 + tile_keys, min(tile_keys, end - j0 - tile_keys), true);

    float s[KEYS_PER_LANE];
    tile_scores(s, row, lane, lanes, j0, n, see_begin, see_end);
    if (write_probs) {
      for (uint k = 0; k < KEYS_PER_LANE; ++k) {
        const uint j = lane + k * lanes;
        if (j < n && j0 + j < p.probs_stride) probs[pb + j0 + j] = s[k];
      }
    }
    float tile_max = NEG_INF;
    for (uint k = 0; k < KEYS_PER_LANE; ++k) tile_max = max(tile_max, s[k]);
    lane_sh[tid] = tile_max;
    barrier();

    float m_new = m;
    for (uint i = 0; i < lanes; ++i) m_new = max(m_new, lane_sh[row * lanes + i]);
    const bool none = m_new == NEG_INF;  // the row has seen no key yet
    const float corr = none ? 1.0 : exp(m - m_new);
    float sum = 0.0;
    for (uint k = 0; k < KEYS_PER_LANE; ++k) {
      const uint j = lane + k * lanes;
      if (j < n) {
        const float e = none ? 0.0 : exp(s[k] - m_new);
        p_sh[row * MAX_TILE_KEYS + j] = e;
        sum += e;
      }
    }
    l_lane = l_lane * corr + sum;
    m = m_new;
    if (lane == 0) corr_sh[row] = corr;
    barrier();

    if (pv_group < pv_groups) {
      for (uint k = 0; k < ROWS_PER_LANE; ++k) {
        const uint r = pv_group + k * pv_groups;
        if (r < rows_used) acc[k] *= corr_sh[r];
      }
      for (uint j = 0; j < n; ++j) {
        const vec4 v = unpack_quad(v_sh[j * quads + pv_quad]);
        for (uint k = 0; k < ROWS_PER_LANE; ++k) {
          const uint r = pv_group + k * pv_groups;
          if (r < rows_used) acc[k] += p_sh[r * MAX_TILE_KEYS + j] * v;
        }
      }
    }
    barrier();
  }

  // O directly with one split, or where the splits merge themselves and this is the only active one.
#if defined(SPLIT_COUNTERS)
  const bool merge_in_splits = (p.flags & QVK_FLAG_COMBINE_IN_SPLITS) != 0;
  const uint count = merge_in_splits ? active_splits(keys) : 0u;
  const bool direct = p.splits == 1 || count == 1u;
#else
  const bool direct = p.splits == 1;
#endif
  const uint ml_base = p.tokens * p.n_heads * p.splits * p.head_dim;
  lane_sh[tid] = l_lane;
  barrier();
  if (lane == 0) {
    float l = 0.0;
    for (uint i = 0; i < lanes; ++i) l += lane_sh[row * lanes + i];
    l_sh[row] = l;
    if (!direct && row_valid) {
      const uint at = ml_base + 2 * ((row_t * p.n_heads + row_h) * p.splits + split);
      partials[at] = m;
      partials[at + 1] = l;
    }
  }
  barrier();
  if (pv_group < pv_groups) {
    const uint d = pv_quad * 4;
    for (uint k = 0; k < ROWS_PER_LANE; ++k) {
      const uint r = pv_group + k * pv_groups;
      uint t, h;
      if (r >= rows_used || !row_at(rb, r, t, h)) continue;
      if (direct) {
        // As attention_combine scales a single active split, so results do not depend on the cache size.
        const vec4 out_row = acc[k] * (1.0 / l_sh[r]);
        for (uint e = 0; e < 4 && d + e < p.head_dim; ++e) o[t * p.o_stride + h * p.head_dim + d + e] = out_row[e];
      } else {
        const uint at = ((t * p.n_heads + h) * p.splits + split) * p.head_dim + d;
        for (uint e = 0; e < 4 && d + e < p.head_dim; ++e) partials[at + e] = acc[k][e];
      }
    }
  }

#if defined(SPLIT_COUNTERS)
  if (merge_in_splits && !direct) merge_splits(count);
#endif

  // Scores to probabilities, exp(score - m) / l, where the workgroup saw every key of its rows:
  // each lane rereads the keys it wrote, so no barrier is needed. A row that saw no key (m = -inf)
  // has nothing but zeros in it. Scores kept: the row's m and l follow P's rows.
  if (!write_probs || p.splits > 1) return;
  if ((p.flags & QVK_FLAG_SCORES) != 0) {
    if (lane == 0) {
      const uint at = p.n_heads * p.tokens * p.probs_stride + 2 * (row_t * p.n_heads + row_h);
      probs[at] = m;
      probs[at + 1] = l_sh[row];
    }
    return;
  }
  const float inv_l = 1.0 / l_sh[row];
  for (uint j0 = begin; j0 < end; j0 += tile_keys) {
    const uint n = min(tile_keys, end - j0);
    for (uint k = 0; k < KEYS_PER_LANE; ++k) {
      const uint j = lane + k * lanes;
      if (j >= n || j0 + j >= p.probs_stride) continue;
      const uint at = pb + j0 + j;
      probs[at] = m == NEG_INF ? 0.0 : exp(probs[at] - m) * inv_l;
    }
  }
}
