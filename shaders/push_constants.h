// Push-constant layouts shared by the C++ side (gpu/ops.cpp) and the GLSL kernels.
//
// Compiled as C++ and as GLSL: only scalar uint/float members, so std430 push-constant layout
// and the C++ layout agree byte for byte. A shader declares
//     layout(push_constant) uniform Push { MatMulPush p; };
// and C++ gets the same struct in namespace qvk::push, checked by static_asserts below.
//
// In order: shared flags; the products (MatMul, its split sums, the f16 dequantization, the
// regrouping, MatVec and its slots, the GEMM's tiles); RmsNorm, Rope, SwiGlu, Embed; attention
// (its splits, Attention and its Qwen3 head-norm form, the maps, live rows); TopK; the device
// peak probes; Qwen3's HeadNormRope; the mixture of experts; then the static_asserts.
#ifndef QWENVK_PUSH_CONSTANTS_H
#define QWENVK_PUSH_CONSTANTS_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
namespace qvk::push {
using uint = std::uint32_t;
#endif

// Flags shared by several kernels.
#define QVK_FLAG_BIAS 1u         // add bias[row]
#define QVK_FLAG_RESIDUAL 2u     // add residual[t, row] (may alias the output)
#define QVK_FLAG_PROBS 4u        // attention also writes post-softmax probabilities
#define QVK_FLAG_STORE_KV 8u     // rope and matvec_rope write K (rotated) and V into the cache
#define QVK_FLAG_NORM 16u        // matvec: the input is rmsnorm(X) * norm_weight
#define QVK_FLAG_SWIGLU 32u      // matvec, matmul: outputs are silu(gate row . in) * (up row . in)
#define QVK_FLAG_MAX 64u         // attention_reduce, attention_live: a cell's max (else its mean)
#define QVK_FLAG_SCORES 128u     // attention, attention_combine: P keeps the scores and each row's max and sum
#define QVK_FLAG_MUTE_SINK 256u  // attention_reduce, attention_live: key 0 out of each row, the row renormalized
#define QVK_FLAG_COMBINE_IN_SPLITS 512u  // attention_narrow*: the last split of a block merges its splits (no combine)
#define QVK_FLAG_STORE_NORMED 1024u      // matvec_norm: the first workgroup also stores rmsnorm(X) * norm_weight

// Y[t, col_offset + r] = sum_k W[r, k] * X[t, k] (+ bias[col_offset + r]) (+ R[t, col_offset + r])
// W is one row slice of a weight matrix: rows [col_offset, col_offset + rows).
// With a SwiGLU (QVK_FLAG_SWIGLU; the matmul_coopmat*_swiglu variants), the slice's rows are gate
// rows then as many up rows, and its rows / 2 outputs are
// Y[t, col_offset + o] = silu(gate[o] . X[t]) * (up[o] . X[t]) (no bias or residual).
struct MatMulPush {
  uint rows;        // weight rows in this slice: its output features, or twice them with a SwiGLU
  uint cols;        // inner size K
  uint tokens;      // T
  uint col_offset;  // where this slice's outputs start inside a Y row
  uint x_stride;    // floats between X rows
  uint y_stride;    // floats between Y rows (also R rows)
  uint flags;       // QVK_FLAG_BIAS | QVK_FLAG_RESIDUAL | QVK_FLAG_SWIGLU
  // matmul_coopmat split along K (ops::PlanCoopmatSplit): workgroup z sums inner steps
  // [z * split_steps, (z + 1) * split_steps) of 32 columns into Y + z * tokens * y_stride, with no bias
  // or residual, and matmul_split_sum adds the splits up. 0: one split (the tiled kernel ignores it).
  uint split_steps;
};

// Y[t, col_offset + r] = sum over s of P[s, t, r] (+ bias[col_offset + r]) (+ R[t, col_offset + r]),
// the splits summed in order: P holds `splits` planes of [tokens, rows].
struct MatMulSplitSumPush {
  uint rows;
  uint tokens;
  uint splits;
  uint col_offset;
  uint y_stride;  // floats between Y rows (also R rows)
  uint flags;     // QVK_FLAG_BIAS | QVK_FLAG_RESIDUAL
};

// Y[r, c] = f16(W[r, c]) for `rows` rows of `cols` columns, a whole number of units
// (dequantize_f16.comp): a block-quantized weight dequantized once for the cooperative-matrix GEMM.
// Y's rows from `part_rows` on are W's rows `gap_rows` further on (a SwiGLU chunk's up rows after
// its gate rows); part_rows = rows where Y is W's rows as they lie.
struct DequantizeF16Push {
  uint rows;
  uint cols;
  uint part_rows;
  uint gap_rows;
};

// Y[t, c] = f16(X[t * x_stride + c]) for `tokens` rows of `cols` columns, Y's rows padded to a
// multiple of 8 (round_f16.comp): the X a product of rounded weights reads.
struct RoundF16Push {
  uint tokens;
  uint cols;
  uint x_stride;
};

// Q8_0, Q4_0, Q5_0 and Q6_K blocks in device memory lie regrouped, QVK_REGROUP_BLOCKS at a time:
// their f16 scales, then the rest of each block (regroup.glsl). regroup_blocks.comp makes that
// layout in place, one workgroup per group, from `blocks` of ggml's blocks of block_halfwords
// halfwords (17, 9, 11 or 105) whose scale is halfword scale_halfword (0, or Q6_K's last, 104); the
// binding holds whole groups, and the last group's blocks past `blocks` become zeros.
#define QVK_REGROUP_BLOCKS 64u
struct RegroupPush {
  uint blocks;
  uint block_halfwords;
  uint scale_halfword;
};

// Weight units each matvec invocation loads at once (from up to as many rows), by the columns of
// the weight type's unit (UNIT_COLS in matvec_units.glsl): four, or two of the 32-column units of
// K-quants, whose four runs and decoded scales a unit doubles the registers a slot holds. At four
// the K-quant matvecs took 128 registers an invocation on an H200 (a quarter of an SM's threads
// resident) and at two 56-64; decode on 7B Q4_K_M rose 13%, while two slots slowed F16, Q8_0 and
// Q4_0 by 5-8% (docs/speed.md, 2026-12-02 session 7).
#define QVK_MATVEC_SLOTS_FOR(unit_cols) ((unit_cols) == 32u ? 2u : 4u)
// The most tokens a matvec takes (more go to the tiled kernel, which reads each weight once for 64
// tokens).
#define QVK_MATVEC_MAX_TOKENS 4u

// Y[t, col_offset + o] = W[o] . in[t] (+ bias[col_offset + o]) (+ R[t, col_offset + o]) for
// 1..QVK_MATVEC_MAX_TOKENS tokens, in[t] = X[t] or, with QVK_FLAG_NORM,
// X[t] * inversesqrt(mean(X[t]^2) + eps) * norm_weight (in matvec_prescaled, one token: X is
// already x * norm_weight, and x itself is bound where norm_weight would be). With QVK_FLAG_SWIGLU,
// W holds 2 * rows rows (gate rows, then up rows) and
// Y[t, col_offset + o] = silu(W[o] . in[t]) * (W[rows + o] . in[t]).
struct MatVecPush {
  uint rows;         // outputs in this slice
  uint cols;         // inner size K
  uint tokens;       // 1..QVK_MATVEC_MAX_TOKENS
  uint col_offset;   // where this slice's outputs start inside a Y row
  uint x_stride;     // floats between X rows
  uint y_stride;     // floats between Y rows (also R rows)
  uint flags;        // QVK_FLAG_BIAS | QVK_FLAG_RESIDUAL | QVK_FLAG_NORM | QVK_FLAG_SWIGLU
  uint lanes;        // invocations per row group: a power of two, at most the workgroup size
  uint group_rows;   // weight rows per row group: 1, 2 or 4 (SwiGLU and RoPE: 2 or 4), at most lanes
  float eps;         // QVK_FLAG_NORM
  // The matvec_rope variant (rows is then the number of row pairs) and QVK_FLAG_STORE_KV:
  uint head_dim;
  uint k_first;            // Y column of the first k head (q heads start at 0)
  uint v_first;            // Y column of the first v head
  uint capacity;           // cache rows per kv head
  float attention_factor;  // YaRN scales cos and sin by this; 1 otherwise
};

// Tiles of the cooperative-matrix GEMM (matmul_coopmat.comp): each workgroup computes
// QVK_COOPMAT_TOKENS tokens by QVK_COOPMAT_WIDE_ROWS features (MatMulCoopmat) or by
// QVK_COOPMAT_NARROW_ROWS (MatMulCoopmatNarrow); the tall tiles of rounded weights
// (MatMulCoopmatRoundedTall), QVK_COOPMAT_TALL_TOKENS tokens by QVK_COOPMAT_WIDE_ROWS.
#define QVK_COOPMAT_TOKENS 64u
#define QVK_COOPMAT_TALL_TOKENS 128u
#define QVK_COOPMAT_WIDE_ROWS 128u
#define QVK_COOPMAT_NARROW_ROWS 64u

// Y[t, i] = X[t, i] * inversesqrt(mean_i(X[t, i]^2) + eps) * weight[i]
struct RmsNormPush {
  uint cols;
  uint x_stride;
  uint y_stride;
  float eps;
};

// NeoX rotary embedding on a fused QKV activation [T, qkv_stride]; the q heads rotate in place,
// and with QVK_FLAG_STORE_KV the rotated k heads and the v heads are written to the F16 cache
// [kv_heads, capacity, head_dim] at row positions[t].
struct RopePush {
  uint tokens;
  uint n_heads;
  uint n_kv_heads;
  uint head_dim;
  uint qkv_stride;
  uint k_offset;           // floats from the start of a row to the first k head (q starts at 0)
  uint v_offset;           // floats from the start of a row to the first v head
  uint capacity;           // cache rows per kv head
  float attention_factor;  // YaRN scales cos and sin by this; 1 otherwise
  uint flags;              // QVK_FLAG_STORE_KV
};

// Y[t, i] = silu(GU[t, i]) * GU[t, inter + i]   (gate and up projections side by side)
struct SwiGluPush {
  uint tokens;
  uint inter;
  uint gu_stride;
  uint y_stride;
};

// Y[t, :] = E[ids[t] - row_offset, :] for the ids this slice holds, rows [row_offset, row_offset + rows)
struct EmbedPush {
  uint tokens;
  uint cols;
  uint row_offset;
  uint rows;
};

// KV split sizes are multiples of this many keys (and at least this many), so short contexts
// use few splits; a block of query rows is split at most QVK_ATTENTION_MAX_SPLITS ways. Where a
// block sees at most AttentionPush.short_keys keys, the granule is QVK_ATTENTION_SHORT_SPLIT_KEYS:
// one 32-key tile of the decode kernel (attention_narrow) a split, so that the chain of tiles is
// half as long and twice the workgroups share it; ops' PlanAttention sets short_keys where the
// dispatch still has workgroups to spare (docs/speed.md, sessions 39 and 40).
#define QVK_ATTENTION_SPLIT_KEYS 64u
#define QVK_ATTENTION_SHORT_SPLIT_KEYS 32u
#define QVK_ATTENTION_MAX_SPLITS 256u

// O[t, h*D:(h+1)*D] = softmax(scale * Q_h K_g^T + causal/window mask) V_g,  g = h / (H / H_kv).
// Key j is visible to query t when j <= positions[t] and (window == 0 or positions[t] - j < window).
// With QVK_FLAG_PROBS, P[h, t, j] holds the probabilities for j < probs_stride (0 past positions[t]).
// With QVK_FLAG_SCORES too, P holds the scores instead (-inf where the query does not see the key)
// through the last key the block's queries see, nothing past it, and each row's max m and sum l
// follow the rows, (m, l) of row (t, h) at H * T * probs_stride + 2 * (t * H + h): the
// probabilities are exp(score - m) / l, to be made only where they are read (a decode step's live
// rows). A workgroup takes a block of query rows (tokens_per_block tokens x heads_per_block q heads
// of one KV group) and one of `splits` parts of their keys; with splits > 1 it writes partial
// results (and its keys' scores in P) that attention_combine merges.
struct AttentionPush {
  uint tokens;
  uint n_heads;
  uint n_kv_heads;
  uint head_dim;
  uint q_stride;  // floats between Q rows; head h starts at h * head_dim
  uint o_stride;  // floats between O rows
  uint capacity;  // cache rows per kv head
  uint window;    // 0: no sliding window
  float scale;
  uint probs_stride;      // key columns per P row
  uint flags;             // QVK_FLAG_PROBS | QVK_FLAG_SCORES | QVK_FLAG_COMBINE_IN_SPLITS
  uint splits;            // KV splits per block (1: O written directly)
  uint block_rows;        // query rows a workgroup holds: 16, or 8 when head_dim > 128
  uint heads_per_block;   // rows of one token: q heads of one KV group
  uint tokens_per_block;  // block_rows / heads_per_block
  uint short_keys;        // a block that sees at most this many keys splits them in 32-key granules
};

// attention_narrow_norm's push constants as C++ records them (the shader declares the three as
// members of one block): Q is the raw q|k|v projection of one token, whose q and k heads are
// scaled by their RMS (epsilon eps) and q_norm | k_norm, then rotated (cos and sin times
// attention_factor), and whose k and v the kernel stores into the cache.
#ifdef __cplusplus
struct AttentionNormPush {
  AttentionPush attention;
  float eps;
  float attention_factor;
};
#endif

// Attention maps from attention's probabilities P [H, rows, p_stride], whose rows are map rows
// (query positions) first_row, first_row + 1, ...: output plane k reduces the query heads
// head_first + k * plane_heads .. + plane_heads, and its value (i, j) the map rows
// band_begin + [i * cell, (i + 1) * cell) (within the band [band_begin, band_end)) and the key
// columns [j * cell, (j + 1) * cell) (within [0, cols)): their max or their mean (a cell the
// band's or the map's edge cuts averages what it holds). Out[plane_base + k, i, j] is packed:
// ceil((band_end - band_begin) / cell) rows of ceil(cols / cell) values. A dispatch reduces the
// band's rows that P holds; a cell whose rows began before them (in the previous chunk of a
// prefill) is combined with what the previous dispatch wrote there.
struct AttentionReducePush {
  uint rows;      // query rows per head in P
  uint p_stride;  // floats between P rows
  uint first_row;
  uint band_begin;
  uint band_end;
  uint cols;  // key columns of the map
  uint cell;  // map rows and columns per output value: 1 copies
  uint head_first;
  uint plane_heads;
  uint plane_base;
  uint flags;  // QVK_FLAG_MAX | QVK_FLAG_MUTE_SINK
};

// Live attention rows: a decode step's attention reduced to each view a viewer chose, from what
// every layer's attention left with QVK_FLAG_SCORES at layer * layer_stride: S[head, key] at
// head * stride + key, then (m, l) of each head at n_heads * stride + 2 * head, so that the
// probability P[layer, head, key] = exp(S - m) / l. The views are in a buffer, not here, so that
// a step recorded once follows the viewer's choice: views[0].x of them, view v at views[1 + v] =
// (layer, first head, heads, QVK_FLAG_MAX | QVK_FLAG_MUTE_SINK). Out[v, j], packed to
// positions[0] + 1 keys a view, is the max or mean over the view's heads of P[layer, h, j] (each
// head's row without key 0 and renormalized when muted), as attention_reduce makes a map's.
struct AttentionLivePush {
  uint stride;        // floats between a layer's heads
  uint layer_stride;  // floats between layers
  uint n_heads;
};

// Elements each stage-1 workgroup of topk reduces to k candidates.
#define QVK_TOPK_CHUNK 2048u

// Top-k by value, ties to the lower index. Stage 1 reduces chunks of X to k candidates each;
// stage 2 reduces (value, index) candidates to the final k. Argmax is k = 1.
struct TopKPush {
  uint count;  // elements (stage 1) or candidates (stage 2)
  uint k;
  uint chunk;  // elements per workgroup
  uint stage;  // 1 or 2
};

// Device peak probes (gpu/peak.cpp). The copy moves 16-byte words, each invocation
// QVK_COPY_WORDS of them, QVK_COPY_WORDS * workgroup size words per workgroup.
#define QVK_COPY_WORDS 4u
// Y[i] = X[i] for i < words (uvec4 words)
struct CopyPush {
  uint words;
};

// Each invocation runs QVK_FMA_CHAINS independent chains a = fma(a, b, c), QVK_FMA_STEPS steps per
// iteration, and writes the chains' sum to Y[i] (i < count). Chain k of invocation i starts at
// float((i * QVK_FMA_CHAINS + k) % 17).
// fma_f16.comp and fma_coopmat.comp take the same push constants (for fma_coopmat, count is
// workgroups, and QVK_FMA_CHAINS accumulators per subgroup).
#define QVK_FMA_CHAINS 8u
#define QVK_FMA_STEPS 8u
struct FmaPush {
  uint count;
  uint iterations;
  float b;
  float c;
};

// Qwen3's RMSNorm of every q and k head, then RoPE (head_norm_rope.comp): head h of QKV row t
// (h < n_heads: q, else k) scaled by inversesqrt(mean(head^2) + eps) * weight[h < n_heads ? i :
// head_dim + i] (weight: q_norm | k_norm, f32 [2 * head_dim]), then rotated and stored as RopePush
// says. The shader declares RopePush and eps as members of one push-constant block.
#ifdef __cplusplus
struct HeadNormRopePush {
  RopePush rope;
  float eps;
};
#endif

// The mixture-of-experts router of Qwen2-MoE / Qwen3-MoE, one workgroup per token: p =
// softmax(logits[t, 0..experts)), the k largest (ties to the lower expert) written as
// ids[t * k + j] and weights[t * k + j] = p (divided by their sum with QVK_FLAG_NORM_TOPK),
// descending.
#define QVK_FLAG_NORM_TOPK 256u
#define QVK_MAX_EXPERTS 1024u  // a router's experts at most (model/input_limits.h; moe_group.comp too)
struct MoeRoutePush {
  uint tokens;
  uint experts;
  uint k;
  uint flags;
};
#ifdef __cplusplus
// One token's router product that also makes the router's choice (matvec_route): the product's
// MatVecPush, then the choice's MoeRoutePush (one token; experts, the product's rows). The shader
// declares the two as members of one push-constant block.
struct MatVecRoutePush {
  MatVecPush matvec;
  MoeRoutePush route;
};
#endif

// The expert variants of the matrix kernels (matvec_experts, matmul_experts, matmul_coopmat_experts):
// W stacks every expert's rows, expert e's expert_rows rows from row e * expert_rows, in one binding.
//   matvec_experts: dispatch row y (gl_WorkGroupID.y) is item i. Its weight rows are those of the
//     experts ids[i * segments + s] for s < segments, a row running through each in turn: with
//     segments = 1 row o is W[ids[i] * expert_rows + o] (an item is a (token, slot) pair), with
//     segments = k row o is the k chosen experts' rows o side by side, as X's row is their k inputs
//     (an item is a token: the sum over its experts in one product). X row i / x_items, Y row i.
//     QVK_FLAG_ROUTER_WEIGHT scales segment s's inputs by weights[i * segments + s]; QVK_FLAG_SHARED
//     (an item a token) adds shared_out[i, o] * sigmoid(shared_gate[i]) after the residual.
//   matmul_experts: workgroup z is expert e, whose (token, slot) pairs are
//     sorted[offsets[e] .. offsets[e + 1]): pair q reads X row q / x_items and writes Y row q.
#define QVK_FLAG_ROUTER_WEIGHT 1024u
#define QVK_MAX_SEGMENTS 32u  // experts per token at most (model/input_limits.h)
struct ExpertsPush {
  uint expert_rows;
  uint segments;
  uint x_items;
};
#ifdef __cplusplus
// The expert variants' push constants as C++ records them: their kernel's, then ExpertsPush (the
// shaders declare the two as members of one push-constant block).
struct MatVecExpertsPush {
  MatVecPush matvec;
  ExpertsPush experts;
};
struct MatMulExpertsPush {
  MatMulPush matmul;
  ExpertsPush experts;
};
#endif

// Pairs grouped by expert for matmul_experts (moe_group.comp): expert e's count of the pairs
// ids[0 .. pairs) that chose it, their prefix sums offsets[0 .. experts], and each pair's index q
// at sorted[offsets[ids[q]] ..] (in no particular order within an expert).
struct MoeGroupPush {
  uint pairs;
  uint experts;
};

// X[t, c] += sum_j weights[t * k + j] * E[(t * k + j), c] (+ sigmoid(G[t]) * S[t, c] with
// QVK_FLAG_SHARED): the experts' outputs and the shared expert's, added to the residual stream.
#define QVK_FLAG_SHARED 512u
struct MoeCombinePush {
  uint tokens;
  uint hidden;
  uint k;
  uint flags;
};

#ifdef __cplusplus
static_assert(sizeof(HeadNormRopePush) == 44 && offsetof(HeadNormRopePush, eps) == 40);
static_assert(sizeof(AttentionNormPush) == 72 && offsetof(AttentionNormPush, eps) == 64);
static_assert(sizeof(MoeRoutePush) == 16);
static_assert(sizeof(ExpertsPush) == 12);
static_assert(sizeof(MatVecExpertsPush) == 72 && offsetof(MatVecExpertsPush, experts) == 60);
static_assert(sizeof(MatMulExpertsPush) == 44 && offsetof(MatMulExpertsPush, experts) == 32);
static_assert(sizeof(MatVecRoutePush) == 76 && offsetof(MatVecRoutePush, route) == 60);
static_assert(sizeof(MoeGroupPush) == 8);
static_assert(sizeof(MoeCombinePush) == 16);
static_assert(sizeof(MatMulPush) == 32 && offsetof(MatMulPush, split_steps) == 28);
static_assert(sizeof(MatMulSplitSumPush) == 24);
static_assert(sizeof(DequantizeF16Push) == 16);
static_assert(sizeof(RoundF16Push) == 12);
static_assert(sizeof(RegroupPush) == 12);
static_assert(sizeof(MatVecPush) == 60 && offsetof(MatVecPush, attention_factor) == 56);
static_assert(sizeof(RmsNormPush) == 16 && offsetof(RmsNormPush, eps) == 12);
static_assert(sizeof(RopePush) == 40 && offsetof(RopePush, attention_factor) == 32);
static_assert(sizeof(SwiGluPush) == 16);
static_assert(sizeof(EmbedPush) == 16);
static_assert(sizeof(AttentionPush) == 64 && offsetof(AttentionPush, scale) == 32);
static_assert(sizeof(AttentionReducePush) == 44);
static_assert(sizeof(AttentionLivePush) == 12);
static_assert(sizeof(TopKPush) == 16);
static_assert(sizeof(CopyPush) == 4);
static_assert(sizeof(FmaPush) == 16 && offsetof(FmaPush, b) == 8);
}  // namespace qvk::push
#endif

#endif  // QWENVK_PUSH_CONSTANTS_H
