#version 450
// Attention of one query token (a decode step) over the F16 KV cache, in one dispatch. A
// workgroup takes up to 8 q heads of one KV group and one split of the visible keys, so that a
// short context runs a few small workgroups and a long one fills the GPU; the splits of a head
// block merge inside the dispatch: each writes its partial (max m, sum l, unnormalised output),
// and the workgroup that finishes last (a counter per head block, left at 0 for the next
// dispatch) merges them. attention.comp with its separate combine pass costs two dispatches and,
// with one workgroup per 64 keys walking them lane by lane, about 20 µs a layer on an H200 at any
// depth; decode spends most of that waiting.
//
// Inside a workgroup: keys in chunks of up to 32 (staged in shared memory, the next chunk's loads
// in flight meanwhile); team k (invocations 32k..32k+31) owns heads k and k + 4 of the block, lane
// j of a team scores key j of the chunk for its heads, and then holds pairs of output dimensions
// j, j + 32, ... for the weighted sum of V.
// With QVK_FLAG_PROBS each split writes its raw scores into P and whoever writes O turns the row
// into probabilities exp(score - M) / L; the columns no split sees are zeroed by all the
// workgroups of the head block together. With QVK_FLAG_SCORES too, the scores stay (-inf before
// the window's first key, nothing after the position) and M and L follow the rows
// (AttentionPush).
//
// Sections: chunk loads / scores and softmax / merge / main
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer KCache { uvec2 k_quads[]; };  // head_dim % 4 == 0 (ops checks)
layout(binding = 3) readonly buffer VCache { uvec2 v_quads[]; };
layout(binding = 4) writeonly buffer O { float o[]; };
// Read back by the workgroup that merges (written by others): coherent.
layout(binding = 5) coherent buffer P { float probs[]; };
// Head h, split s: acc [D] at (h * splits + s) * D, then (m, l) pairs after every acc.
layout(binding = 6) coherent buffer Partials { float partials[]; };
layout(binding = 7) coherent buffer Counters { uint counters[]; };  // one per head block

layout(push_constant) uniform Push { AttentionPush p; };

#include "attention.glsl"

#define TEAM 32u
#define TEAMS (WG / TEAM)  // WG = 128: 4 teams
#define MAX_HEADS QVK_ATTENTION_DECODE_HEADS  // 2 per team
#define MAX_QUADS 64u      // head_dim <= 256
#define TILE_QUADS 1024u   // 4-half slots of one K or V chunk: 32 keys of head_dim <= 128, 16 of 256
#define MAX_CHUNK 32u
const uint LOADS_PER_LANE = TILE_QUADS / WG;
const uint HEADS_PER_TEAM = MAX_HEADS / TEAMS;
const uint MAX_PAIRS = MAX_QUADS * 2u / TEAM;  // dimension pairs per lane

shared vec4 q_sh[MAX_HEADS * MAX_QUADS];               // head hl, quad c at hl * quads + c, scaled
shared uvec2 k_sh[TILE_QUADS + MAX_CHUNK];             // key j, quad c at j * (quads + 1) + c (padded)
shared uint v_sh[2u * TILE_QUADS];                     // key j, pair i at j * 2 * quads + i
shared float s_sh[MAX_HEADS * MAX_CHUNK];              // head hl, key j: score
shared float p_sh[MAX_HEADS * MAX_CHUNK];              // head hl, key j: exp(score - m)
// Merge, head hl and split s at hl * QVK_ATTENTION_DECODE_SPLITS + s: m_s, then l_s exp(m_s - M);
// l_s, then exp(m_s - M) (32 KiB of shared memory in all is what lavapipe allows).
shared float m_sh[MAX_HEADS * QVK_ATTENTION_DECODE_SPLITS];
shared float w_sh[MAX_HEADS * QVK_ATTENTION_DECODE_SPLITS];
shared float big_m_sh[MAX_HEADS], big_l_sh[MAX_HEADS];
shared bool last_sh;

uint tid, quads, chunk_keys;
uint kv_row0;  // the KV head's first cache row
uvec2 k_next[LOADS_PER_LANE], v_next[LOADS_PER_LANE];

vec4 unpack_quad(uvec2 w) { return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); }

// --- chunk loads -----------------------------------------------------------------------------

// Starts reading keys [j0, j0 + n) into registers.
void fetch_chunk(uint j0, uint n) {
  [[unroll]] for (uint i = 0; i < LOADS_PER_LANE; ++i) {
    const uint slot = tid + i * WG;
    if (slot < n * quads) {
      k_next[i] = k_quads[(kv_row0 + j0) * quads + slot];
      v_next[i] = v_quads[(kv_row0 + j0) * quads + slot];
    }
  }
}

void store_chunk(uint n) {
  [[unroll]] for (uint i = 0; i < LOADS_PER_LANE; ++i) {
    const uint slot = tid + i * WG;
    if (slot < n * quads) {
      const uint j = slot / quads, c = slot % quads;
      k_sh[j * (quads + 1u) + c] = k_next[i];
      v_sh[j * 2u * quads + 2u * c] = v_next[i].x;
      v_sh[j * 2u * quads + 2u * c + 1u] = v_next[i].y;
    }
  }
}

// --- scores and softmax ---------------------------------------------------------------------

// The scores of key `j` of the chunk for the team's heads (hl = team + k * TEAMS), NEG_INF past
// the chunk's n keys.
void chunk_scores(uint team, uint j, uint n, uint heads, out float s[HEADS_PER_TEAM]) {
  [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) s[k] = 0.0;
  if (j < n) {
    // Fixed trip counts, here and below, so that the loops unroll and their loads are all in flight.
    [[unroll]] for (uint c = 0; c < MAX_QUADS; ++c) {
      if (c >= quads) break;
      const vec4 kv = unpack_quad(k_sh[j * (quads + 1u) + c]);
      [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
        const uint hl = team + k * TEAMS;
        if (hl < heads) s[k] += dot(q_sh[hl * quads + c], kv);
      }
    }
  }
  [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
    if (j >= n) s[k] = NEG_INF;
  }
}

// --- merge ----------------------------------------------------------------------------------

// Every split's (m, l) of the block's heads, then each head's M and L into big_m_sh and
// big_l_sh, and each split's weight exp(m_s - M) into w_sh. Every invocation calls it.
void merge_weights(uint h0, uint heads, uint active_count) {
  const uint ml_base = p.n_heads * p.splits * p.head_dim;
  for (uint i = tid; i < heads * active_count; i += WG) {
    const uint hl = i / active_count, s = i % active_count;
    const uint at = ml_base + 2u * ((h0 + hl) * p.splits + s);
    m_sh[hl * QVK_ATTENTION_DECODE_SPLITS + s] = partials[at];
    w_sh[hl * QVK_ATTENTION_DECODE_SPLITS + s] = partials[at + 1u];
  }
  barrier();
  if (tid < heads) {
    float m = NEG_INF;
    [[unroll]] for (uint s = 0; s < QVK_ATTENTION_DECODE_SPLITS; ++s) {
      if (s < active_count) m = max(m, m_sh[tid * QVK_ATTENTION_DECODE_SPLITS + s]);
    }
    big_m_sh[tid] = m;  // finite: every active_count split saw a key
  }
  barrier();
  for (uint i = tid; i < heads * active_count; i += WG) {
    const uint at = i / active_count * QVK_ATTENTION_DECODE_SPLITS + i % active_count;
    const float w = exp(m_sh[at] - big_m_sh[i / active_count]);
    m_sh[at] = w * w_sh[at];
    w_sh[at] = w;
  }
  barrier();
  if (tid < heads) {
    float l = 0.0;
    [[unroll]] for (uint s = 0; s < QVK_ATTENTION_DECODE_SPLITS; ++s) {
      if (s < active_count) l += m_sh[tid * QVK_ATTENTION_DECODE_SPLITS + s];
    }
    big_l_sh[tid] = l;
  }
  barrier();
}

// P's row of each head over the visible keys: from raw scores to exp(score - M) / L.
// Eight elements an invocation per pass, their loads in flight together.
void make_probs(uint h0, uint heads, KeyRange keys) {
  const uint n = min(keys.end, p.probs_stride) - min(keys.begin, p.probs_stride);
  for (uint first = tid; first < heads * n; first += 8u * WG) {
    uint at[8];
    float v[8];
    [[unroll]] for (uint e = 0; e < 8u; ++e) {
      const uint i = min(first + e * WG, heads * n - 1u);  // past the end: the last again, unchanged
      at[e] = (h0 + i / n) * p.probs_stride + keys.begin + i % n;
      v[e] = probs[at[e]];
    }
    [[unroll]] for (uint e = 0; e < 8u; ++e) {
      const uint hl = min(first + e * WG, heads * n - 1u) / n;
      if (first + e * WG < heads * n) probs[at[e]] = exp(v[e] - big_m_sh[hl]) / big_l_sh[hl];
    }
  }
}

// The rows' last step: each head's M and L after the rows, or the probabilities themselves.
void finish_probs(uint h0, uint heads, KeyRange keys, bool keep_scores) {
  if (!keep_scores) {
    make_probs(h0, heads, keys);
  } else if (tid < heads) {
    const uint at = p.n_heads * p.probs_stride + 2u * (h0 + tid);
    probs[at] = big_m_sh[tid];
    probs[at + 1u] = big_l_sh[tid];
  }
}

// --- main -----------------------------------------------------------------------------------

void main() {
  tid = gl_LocalInvocationID.x;
  quads = p.head_dim / 4u;
  chunk_keys = min(MAX_CHUNK, TILE_QUADS / quads);
  const uint split = gl_WorkGroupID.x;
  const uint head_block = gl_WorkGroupID.y;
  const uint g = gl_WorkGroupID.z;  // the KV head
  const uint group = p.n_heads / p.n_kv_heads;
  const uint h0 = g * group + head_block * MAX_HEADS;  // the block's first q head
  const uint heads = min(MAX_HEADS, group - head_block * MAX_HEADS);
  const uint counter = g * ((group + MAX_HEADS - 1u) / MAX_HEADS) + head_block;
  kv_row0 = g * p.capacity;
  const bool probs_out = (p.flags & QVK_FLAG_PROBS) != 0u;
  const bool keep_scores = (p.flags & QVK_FLAG_SCORES) != 0u;

  // Keys [first_visible, pos] in `active_count` splits of `per` keys.
  const KeyRange keys = block_keys(0u);
  const uint per = split_length(keys);  // whole chunks: a multiple of QVK_ATTENTION_SPLIT_KEYS
  const uint active_count = active_splits(keys);

  if (probs_out) {
    // This split's share of the columns no split sees: [0, begin) and [end, probs_stride).
    const uint before = min(keys.begin, p.probs_stride);
    const uint after = p.probs_stride > keys.end && !keep_scores ? p.probs_stride - keys.end : 0u;
    const float unseen = keep_scores ? NEG_INF : 0.0;
    const uint share = (before + after + p.splits - 1u) / p.splits;
    const uint first = split * share, last = min(first + share, before + after);
    for (uint i = tid; i < heads * share; i += WG) {
      const uint c = first + i % share;
      if (c < last) probs[(h0 + i / share) * p.probs_stride + (c < before ? c : keys.end + c - before)] = unseen;
    }
  }
  if (split >= active_count) return;
  const uint begin = keys.begin + split * per;
  const uint end = min(begin + per, keys.end);
  fetch_chunk(begin, min(chunk_keys, end - begin));

  for (uint i = tid; i < heads * quads; i += WG) {
    const uint hl = i / quads, c = i % quads;
    const uint at = (h0 + hl) * p.head_dim + 4u * c;
    q_sh[i] = vec4(q[at], q[at + 1u], q[at + 2u], q[at + 3u]) * p.scale;
  }

  const uint team = tid / TEAM, lane = tid % TEAM;
  const uint pairs = p.head_dim / 2u;
  float m[HEADS_PER_TEAM], l[HEADS_PER_TEAM];
  vec2 acc[HEADS_PER_TEAM][MAX_PAIRS];
  [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
    m[k] = NEG_INF;
    l[k] = 0.0;
    [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) acc[k][i] = vec2(0.0);
  }

  for (uint j0 = begin; j0 < end; j0 += chunk_keys) {
    const uint n = min(chunk_keys, end - j0);
    store_chunk(n);
    barrier();
    if (j0 + chunk_keys < end) fetch_chunk(j0 + chunk_keys, min(chunk_keys, end - j0 - chunk_keys));

    float s[HEADS_PER_TEAM];
    chunk_scores(team, lane, n, heads, s);
    [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
      const uint hl = team + k * TEAMS;
      if (hl < heads && lane < n) {
        s_sh[hl * MAX_CHUNK + lane] = s[k];
        if (probs_out && j0 + lane < p.probs_stride) probs[(h0 + hl) * p.probs_stride + j0 + lane] = s[k];
      }
    }
    barrier();

    // Each lane of the team: the chunk's max, its own key's exp, then the weighted sum of V.
    float corr[HEADS_PER_TEAM];
    [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
      const uint hl = team + k * TEAMS;
      corr[k] = 1.0;
      if (hl >= heads) continue;
      float m_new = m[k];
      [[unroll]] for (uint j = 0; j < MAX_CHUNK; ++j) {
        if (j < n) m_new = max(m_new, s_sh[hl * MAX_CHUNK + j]);
      }
      corr[k] = exp(m[k] - m_new);  // m = -inf at first: 0, and acc and l are 0 anyway
      m[k] = m_new;
      if (lane < n) p_sh[hl * MAX_CHUNK + lane] = exp(s[k] - m_new);
    }
    barrier();

    [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
      const uint hl = team + k * TEAMS;
      if (hl >= heads) continue;
      float sum = 0.0;
      [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) acc[k][i] *= corr[k];
      [[unroll]] for (uint j = 0; j < MAX_CHUNK; ++j) {
        if (j >= n) break;
        const float pj = p_sh[hl * MAX_CHUNK + j];
        sum += pj;
        [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) {
          const uint pair = lane + i * TEAM;
          if (pair < pairs) acc[k][i] += pj * unpackHalf2x16(v_sh[j * 2u * quads + pair]);
        }
      }
      l[k] = l[k] * corr[k] + sum;
    }
    barrier();
  }

  if (active_count == 1u) {
    // The only split: O and P straight from its own m and l.
    [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
      const uint hl = team + k * TEAMS;
      if (hl >= heads) continue;
      [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) {
        const uint pair = lane + i * TEAM;
        if (pair < pairs) {
          const uint at = (h0 + hl) * p.head_dim + 2u * pair;
          o[at] = acc[k][i].x / l[k];
          o[at + 1u] = acc[k][i].y / l[k];
        }
      }
      if (lane == 0u) {
        big_m_sh[hl] = m[k];
        big_l_sh[hl] = l[k];
      }
    }
    if (!probs_out) return;
    memoryBarrierBuffer();
    barrier();
    finish_probs(h0, heads, keys, keep_scores);
    return;
  }

  // Several splits: this one's partial, then the last to finish merges them all.
  const uint ml_base = p.n_heads * p.splits * p.head_dim;
  [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
    const uint hl = team + k * TEAMS;
    if (hl >= heads) continue;
    const uint row = (h0 + hl) * p.splits + split;
    [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) {
      const uint pair = lane + i * TEAM;
      if (pair < pairs) {
        partials[row * p.head_dim + 2u * pair] = acc[k][i].x;
        partials[row * p.head_dim + 2u * pair + 1u] = acc[k][i].y;
      }
    }
    if (lane == 0u) {
      partials[ml_base + 2u * row] = m[k];
      partials[ml_base + 2u * row + 1u] = l[k];
    }
  }
  memoryBarrierBuffer();
  barrier();
  if (tid == 0u) {
    const bool last = atomicAdd(counters[counter], 1u) == active_count - 1u;
    if (last) atomicExchange(counters[counter], 0u);  // ready for the next dispatch
    last_sh = last;
  }
  barrier();
  if (!last_sh) return;
  memoryBarrierBuffer();

  merge_weights(h0, heads, active_count);
  [[unroll]] for (uint k = 0; k < HEADS_PER_TEAM; ++k) {
    const uint hl = team + k * TEAMS;
    if (hl >= heads) continue;
    [[unroll]] for (uint i = 0; i < MAX_PAIRS; ++i) {
      const uint pair = lane + i * TEAM;
      if (pair >= pairs) continue;
      vec2 sum = vec2(0.0);
      [[unroll]] for (uint s = 0; s < QVK_ATTENTION_DECODE_SPLITS; ++s) {
        if (s >= active_count) break;
        const uint row = (h0 + hl) * p.splits + s;
        sum += w_sh[hl * QVK_ATTENTION_DECODE_SPLITS + s] *
               vec2(partials[row * p.head_dim + 2u * pair], partials[row * p.head_dim + 2u * pair + 1u]);
      }
      const uint at = (h0 + hl) * p.head_dim + 2u * pair;
      o[at] = sum.x / big_l_sh[hl];
      o[at + 1u] = sum.y / big_l_sh[hl];
    }
  }
  if (probs_out) finish_probs(h0, heads, keys, keep_scores);
}
