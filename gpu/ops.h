#pragma once
// Typed recording of every kernel: each function fills the push constants, picks the variant,
// slices weights that exceed one binding, computes the grid and records one or more dispatches.
// This is the vocabulary the forward pass is written in.
//
// In order: weight matrices (Matrix, SliceRows, the regrouped layout); the product kernels and
// their planning (ChooseMatMulKernel, PlanMatVec, the cooperative-matrix tiles, splits and
// dequantized chunks); MatMul and what folds into it (the norm, SwiGLU); RegroupBlocks and
// DequantizeToF16; RmsNorm, Rope, MatMulRope, HeadNormRope; the mixture of experts (MoeRoute,
// GroupByExpert, ExpertsMatMul, ExpertsMatVecSum, MoeCombine); SwiGlu and Embed; Attention and
// its maps (AttentionReduce, AttentionLive); TopK; the device peak probes.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

#include "base/dtype.h"
#include "gpu/graph.h"

namespace qvk {

struct DeviceInfo;

// A row-major [rows, cols] weight matrix stored at `offset` in `buffer`. It may be larger than
// one storage binding (Qwen's 151936 x 896 f16 embedding is 272 MB; lavapipe binds 128 MiB):
// kernels see it as row slices that each fit.
struct Matrix {
  const Buffer* buffer = nullptr;
  VkDeviceSize offset = 0;
  DType dtype = DType::F32;
  uint32_t rows = 0;
  uint32_t cols = 0;
};

struct RowSlice {
  BufferRange range;
  uint32_t first_row;
  uint32_t rows;
};

// Splits m into the fewest row slices whose byte ranges fit the device's binding limit and
// start at an allowed offset alignment (and, for regrouped types, at a whole group of blocks,
// and end at one: a slice's last group may run past its rows).
std::vector<RowSlice> SliceRows(const DeviceInfo& device, const Matrix& m, VkDeviceSize max_range = 0);

// Q8_0, Q4_0, Q5_0 and Q6_K weights lie in device memory regrouped, QVK_REGROUP_BLOCKS blocks at a
// time: their f16 scales, then the rest of each block (shaders/regroup.glsl), so that the kernels
// read aligned quants.
// A matrix of these types starts at a whole group (offset 0 of its buffer) and its storage ends at
// one (MatrixBytes); ops::RegroupBlocks makes the layout once its ggml blocks are uploaded.
bool IsRegrouped(DType type);
// The halfword of a regrouped type's block that holds its scale: 0, or Q6_K's last.
uint32_t RegroupScaleHalfword(DType type);
// Bytes of one group of blocks of a regrouped type.
uint64_t RegroupBytes(DType type);
// Bytes a rows x cols matrix of `type` takes in device memory: its blocks, and for regrouped
// types the padding that makes its last group whole.
uint64_t MatrixBytes(DType type, uint64_t rows, uint32_t cols);

namespace ops {

// The kernels that compute a matrix product: matvec (few tokens: one pass over the weights per
// token), the cooperative-matrix GEMM (matrix units, f16 operands: see matmul_coopmat.comp) and
// the scalar tiled GEMM (f32, every device).
enum class MatMulKernel { MatVec, CoopMat, Tiled };

// Matvec for up to kMatVecMaxTokens tokens, else the cooperative-matrix GEMM where the device has
// it (DeviceInfo::coopmat_f16), else the tiled GEMM.
inline constexpr uint32_t kMatVecMaxTokens = 4;  // QVK_MATVEC_MAX_TOKENS
MatMulKernel ChooseMatMulKernel(const DeviceInfo& device, uint32_t tokens);

// A product as the matvec kernel's work split sees it (matvec.comp, PlanMatVec).
struct MatVecShape {
  DType type = DType::F32;
  uint32_t rows = 0;  // weight rows in one binding
  uint32_t cols = 0;
  uint32_t x_stride = 0;  // floats between X rows
  uint32_t tokens = 1;
  bool norm = false;    // the input is rmsnorm(X) * weight
  bool paired = false;  // outputs read pairs of rows: SwiGLU's gate and up, RoPE's rotated pair
};

// How the matvec kernel splits a product: `lanes` invocations share a row group of `group_rows`
// rows and read each row's `units` loads (whole units, or elements: units == cols) in `rounds`
// rounds of dependent loads; `workgroups` workgroups of row groups cover the rows. MatMul records
// the split this returns; tests read it to cover every way the kernel sums.
struct MatVecSplit {
  uint32_t slots = 0;  // units each lane loads a round: QVK_MATVEC_SLOTS_FOR the type's unit
  uint32_t lanes = 0;
  uint32_t group_rows = 0;
  uint32_t units = 0;
  uint32_t rounds = 0;
  uint32_t workgroups = 0;
};
MatVecSplit PlanMatVec(const DeviceInfo& device, const MatVecShape& shape);

// The cooperative-matrix GEMM's workgroup tiles: 64 tokens by 128 features, or by 64; or, for rows
// dequantized to f16 first, 128 tokens by 128 features (MatMul takes them where the split planner's
// estimate of them beats the other tile's, as for every Qwen2 product at prefill sizes).
enum class CoopmatTile { Wide, Narrow, Tall };

// Wide tiles where they alone make enough workgroups to keep every SM of a big GPU busy (Qwen2's
// MLP gate|up at prefill sizes), or, for a product that may split along its `split_cols` inner
// columns (0: it may not), where splits long enough make up the rest (down from 1.5B on, 7B's o);
// narrow ones otherwise (q|k|v and o up to 1.5B, 0.5B's down: few 128-wide columns, short rows).
CoopmatTile ChooseCoopmatTile(uint32_t rows, uint32_t tokens, uint32_t split_cols = 0);
// The fewest weight rows whose wide tiles alone keep every SM busy at `tokens` tokens (4 224 at
// 512): the row chunks a dequantized product runs in need be no longer (forward's
// PrefillDequantBytes).
uint32_t CoopmatFillRows(uint32_t tokens);
// The rows of each chunk but the last that a product whose weights are dequantized to f16 first
// is multiplied in at `tokens` tokens, where `most_rows` (a multiple of the tile's rows) fit the
// scratch; both count a SwiGLU's gate rows only, each chunk dequantized with the up rows of the
// same outputs. Where a chunk of whole waves of wide tiles fits, as many whole waves as fit
// (1.5B's gate|up at 512 tokens: 4 224 of 8 960 rows, so 66 + 66 + 8 row tiles in 9 waves, where
// two equal chunks of 70 took 5 waves each); otherwise as few chunks as fit, of equal length, so
// that no short last chunk leaves SMs idle.
uint32_t DequantChunkRows(uint32_t rows, uint32_t most_rows, bool swiglu, uint32_t tokens);

// A cooperative-matrix product of `tiles` workgroups split along its inner size K (MatMulPush's
// split_steps: steps of 32 columns a split; 0: no split), where its tiles alone leave most SMs idle
// (q|k|v, o and down of small models at prefill) and `scratch_bytes` holds the splits' planes of
// [tokens, rows] floats: the splits whose whole waves of `tile` workgroups take least time (1.5B's
// down at 512 tokens: 4 splits, 384 wide workgroups in 3 waves, where 6 took 5 waves of shorter
// splits).
uint32_t PlanCoopmatSplitSteps(uint64_t tiles, uint32_t cols, uint32_t tokens, uint32_t rows,
                               VkDeviceSize scratch_bytes, CoopmatTile tile);

// One cooperative-matrix product of a weight piece (a binding-sized slice or a dequantized chunk).
struct CoopmatProduct {
  uint32_t rows = 0;  // with swiglu: gate rows, then as many up rows
  uint32_t cols = 0;
  uint32_t tokens = 0;
  bool swiglu = false;
  bool rounded = false;                    // rows dequantized to f16 first, which tall tiles multiply
  std::optional<VkDeviceSize> split_room;  // f32 room it may split along K in; unset: it may not
  std::optional<CoopmatTile> tile;         // set: that tile (the tests hold each to the reference)
};
// How it runs: in ChooseCoopmatTile's tile, or, for rounded rows, in tall tiles where the split
// planner's estimate of them beats that tile's, split as PlanCoopmatSplitSteps says. MatMul records
// this plan; CoopmatSplitBytes sizes the room for its planes.
struct CoopmatPlan {
  CoopmatTile tile = CoopmatTile::Wide;
  uint32_t feature_tiles = 0;  // workgroups along the rows (a SwiGLU's: along its outputs)
  uint32_t token_tiles = 0;    // workgroups along the tokens
  uint32_t split_steps = 0;    // steps of 32 columns a split; 0: unsplit
};
CoopmatPlan PlanCoopmat(const CoopmatProduct& product);

// A product whose input is rmsnorm(X) * weight rather than X. The matvec kernel (up to 4 tokens:
// decode) normalizes as it reads X; otherwise, and for one token's large K-quant product without
// RoPE (a gate|up, the LM head: ops.cpp, NormApart), a separate RmsNorm writes the input to
// `scratch` first.
struct RmsNormInput {
  BufferRange weight;  // f32 [w.cols]
  float eps = 0;
  BufferRange scratch;  // f32 [T, w.cols]
  // The normalized input is also left in `scratch` for the products after this one: by the
  // separate RmsNorm where there is one, else (one token's matvec) by the product's first
  // workgroup, with no dispatch of its own; MatMul refuses it for 2 to 4 tokens on the matvec.
  bool store = false;
  // One token: `scratch` already holds X * weight, which the product before stored
  // (MatMulArgs::scaled_out, or ScaleByWeight); the matvec reads it, with no norm work in its row
  // groups, and sums X's squares once a workgroup for 1 / rms. Other paths normalize X as without it.
  bool prescaled = false;
};
// One token's output times a weight, stored beside the output: the next product's input but for
// its norm's 1 / rms (RmsNormInput::prescaled). The output takes no SwiGLU.
struct ScaledOutput {
  BufferRange weight;  // f32 [outputs]: the next norm's weight
  BufferRange out;     // f32 [outputs], like a Y row
};
// Whether one token's product without RoPE reading `weights` weights of `type` takes its norm
// apart (the rule RecordMatMul applies to a dense gate|up and the LM head; a MoE layer asks it of
// the experts' gate|up rows a token reads).
bool NormApartFor(DType type, uint32_t tokens, uint64_t weights);

// One token's router product that also makes the router's choice (matvec_route): Y is the
// router's logits, and the workgroup that stores its logits last chooses the k best experts of
// softmax(Y) as MoeRoute does, bit for bit, writing them to ids and weights, so that no route
// dispatch stands between the router and the expert products. The output takes no bias,
// residual, SwiGLU, scaled output or Y offset.
struct RouteOutput {
  BufferRange ids;      // u32 [k]
  BufferRange weights;  // f32 [k]
  BufferRange counter;  // u32 [1]: zero before the product, which leaves it zero
  uint32_t k = 0;
  bool normalize = false;  // norm_topk_prob
};

// A product of gate and up projections stacked in one W [2 * inter, cols] whose output is
// Y[t, r] = silu(gate_r . in[t]) * (up_r . in[t]), r < inter. Every product kernel forms it from
// both sums, which it never stores; only a W bound in several slices (bigger than the device's
// largest binding) puts both products in `scratch`, and a SwiGLU dispatch follows.
struct SwiGluOutput {
  std::optional<BufferRange> scratch;  // f32 [T, 2 * inter]
};

// Y[t, r] = sum_k W[r, k] X[t, k] (+ bias[r]) (+ residual[t, r]); f32 activations. A quantized W
// needs a device with 8-bit storage buffers (DeviceInfo::storage_8bit); MatMul throws otherwise.
struct MatMulArgs {
  Matrix w;
  BufferRange x;
  BufferRange y;
  uint32_t tokens = 1;
  uint32_t x_stride = 0;  // 0: w.cols (with x_rounded, in halves)
  // X holds halves already rounded to nearest f16 (RoundToF16InPlace), which the product of rows
  // dequantized to f16 reads as they are, with no room for them in dequant_scratch. Only where
  // MultipliesRoundedRows, with no norm.
  bool x_rounded = false;
  uint32_t y_stride = 0;                   // 0: w.rows (with swiglu: w.rows / 2)
  uint32_t y_offset = 0;                   // Y column (and bias index) of W's first row: projections side by side
  std::optional<BufferRange> bias;         // [w.rows] f32
  std::optional<BufferRange> residual;     // like y; may be y itself
  std::optional<RmsNormInput> norm;        // the input is rmsnorm(X) * norm.weight
  std::optional<SwiGluOutput> swiglu;      // Y = silu(gate) * up (no bias, residual or y_offset)
  std::optional<ScaledOutput> scaled_out;  // one token: also Y * weight (no norm, SwiGLU or RoPE)
  std::optional<RouteOutput> route;        // one token's matvec: Y is router logits, and their choice
  // Unset: ChooseMatMulKernel. Set: that kernel (the tests hold each kernel to the reference on
  // every shape); MatVec throws past its 4 tokens, CoopMat where the device has none.
  std::optional<MatMulKernel> kernel;
  std::optional<CoopmatTile> coopmat_tile;  // unset: ChooseCoopmatTile (for each row slice)
  // f32 room a cooperative-matrix product may split along K in (PlanCoopmatSplitSteps): memory the
  // caller does not need during the product. Unset: no split.
  std::optional<BufferRange> split_scratch;
  // Room for f16 weights: the cooperative-matrix kernel then takes a W of any type but F16 and BF16
  // dequantized to f16 once (DequantizeToF16), in row chunks of at least 128 rows that fit here
  // (as few as fit, of equal length), rather than dequantizing every block once per 64-token tile.
  // Its last RoundedXBytes hold X rounded to f16 once (by the norm, where one is folded in), which
  // every chunk's product reads. Unset or smaller: no such pass.
  std::optional<BufferRange> dequant_scratch;
};
void MatMul(Graph& g, const MatMulArgs& a, std::string_view label = {});
// Whether a SwiGLU product of gate|up weights `w` needs SwiGluOutput::scratch on `device`.
bool SwiGluNeedsScratch(const DeviceInfo& device, const Matrix& w);
// Whether MatMul of `w` at `tokens` tokens multiplies rows dequantized to f16 in a dequant_scratch
// of `dequant_bytes`, and so reads X rounded to f16: X may then come rounded already
// (MatMulArgs::x_rounded, `x_rounded` here), leaving the scratch whole to the weights.
bool MultipliesRoundedRows(const DeviceInfo& device, const Matrix& w, uint32_t tokens, VkDeviceSize dequant_bytes,
                           bool x_rounded);
// The split_scratch bytes in which MatMul of `w` at `tokens` tokens (with `dequant_bytes` of
// dequant_scratch, and X rounded already or not) splits along K as far as PlanCoopmatSplitSteps
// would with room to spare: 0 where it would not split.
uint64_t SplitScratchBytes(const DeviceInfo& device, const Matrix& w, uint32_t tokens, VkDeviceSize dequant_bytes,
                           bool x_rounded);
// The bytes at the end of MatMulArgs::dequant_scratch that hold X (`tokens` rows of `cols`)
// rounded to f16 for the products of rounded weights: half the bytes a GEMM step loads for X.
uint64_t RoundedXBytes(uint32_t tokens, uint32_t cols);
// The same for one piece (a chunk or slice) of `rows` rows of `cols` columns on matrix units,
// `rounded`: dequantized to f16 first (PlanCoopmat's planes where the room has no end).
uint64_t CoopmatSplitBytes(uint32_t rows, uint32_t cols, uint32_t tokens, bool rounded);

// Whether the cooperative-matrix GEMM sums weights of `type` over `cols` inner elements (a row, or
// a split's part of it where the product splits along K) without promotion (matmul_coopmat.comp's
// PROMOTE: f32 totals every 1 024 inner elements, which guard exact weights' sums against the
// matrix units' drift): F16 weights over at most kCoopmatUnpromotedCols, which take the
// matmul_coopmat_short* variants (X still hi + lo, as for every exact weight). Unpromoted, the drift
// over all outputs measured on an H200 4e-6 of |Y| at 1 536 inner elements, 6e-6 at 2 560, 9e-6
// at 3 584 and 1.1e-5 at 4 864, against matmul_coopmat_test's 1e-5 bar for exact weights; 1.5B's
// down split in four (2 240 each) 3e-6. Every product of a 512-token prefill of 0.5B and 1.5B
// F16 files so sums short, and their pp512 there went 13-14% faster (docs/speed.md, session
// 18). BF16 weights and longer sums (7B's) keep promotion.
constexpr uint32_t kCoopmatUnpromotedCols = 2560;
bool CoopmatSumsUnpromoted(DType type, uint32_t cols);

// Regroups w's blocks in place (IsRegrouped types): record once after their upload, before any
// kernel reads them. w's buffer holds MatrixBytes from w.offset: the last group's padding becomes
// zero blocks.
void RegroupBlocks(Graph& g, const Matrix& w, std::string_view label = {});

// Y[r, c] = f16(W[r, c]), row-major [w.rows, w.cols] f16, rounded as the cooperative-matrix kernel
// rounds weights. For every type but F16 and BF16, in rows of whole matvec units (16 or 32 columns
// for block types, 8 for F32), within one binding. With `then_offset`, Y holds 2 x w.rows rows:
// w's, then as many of w's buffer from then_offset on, whole rows after w's (a SwiGLU chunk's up
// rows after its gate rows), in one dispatch where both lie within one binding.
void DequantizeToF16(Graph& g, const Matrix& w, BufferRange y, std::string_view label = {},
                     std::optional<VkDeviceSize> then_offset = std::nullopt);
// Whether DequantizeToF16 takes such rows, and so MatMul's dequant_scratch applies to them.
bool DequantizesToF16(DType type, uint32_t cols);

// Y[t, :] = X[t, :] / sqrt(mean(X[t, :]^2) + eps) * weight    (weight [cols] f32)
void RmsNorm(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols, float eps,
             std::string_view label = {});
// Y[t, :] = X[t, :] * weight: what a ScaledOutput stores, to the bit (RmsNormInput::prescaled
// where no product before stored it).
void ScaleByWeight(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols,
                   std::string_view label = {});
// Y[t, c] = f16(X[t * x_stride + c]), rounded to nearest as DequantizeToF16 rounds, Y rows of
// AlignUp(cols, 8) halves (zero past `cols`): the input MatMul gives a product of rounded weights,
// and ExpertsMatMul its experts on matrix units. Needs 16-bit float arithmetic.
void RoundToF16(Graph& g, BufferRange x, uint32_t x_stride, uint32_t tokens, uint32_t cols, BufferRange y,
                std::string_view label = {});
// RoundToF16 of X's `tokens` rows of `cols` f32 (cols a multiple of 8) into X itself: row t's
// halves at the start of its own f32 row, so rows of 2 * cols halves, the rest of each row left
// as it is. The X a product of rounded weights reads (MatMulArgs::x_rounded, x_stride 2 * cols)
// with no room of its own: the MLP's m for down (forward.cpp's MlpRounded).
void RoundToF16InPlace(Graph& g, BufferRange x, uint32_t tokens, uint32_t cols, std::string_view label = {});
// RmsNorm, Y rounded to the nearest f16 (as DequantizeToF16 rounds): the input MatMul gives a
// product of rounded weights whose norm is folded in. Needs 16-bit float arithmetic.
void RmsNormToF16(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols, float eps,
                  std::string_view label = {});

// NeoX RoPE on fused QKV rows [T, (H + 2 Hkv) * D]; with a cache, K (rotated) and V are stored
// at row positions[t] of the F16 caches [Hkv, capacity, D].
struct RopeArgs {
  BufferRange qkv;
  BufferRange positions;  // uint32 [T]
  BufferRange inv_freq;   // f32 [D/2]
  uint32_t tokens = 1;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t head_dim = 0;
  float attention_factor = 1.0f;
  std::optional<BufferRange> k_cache;
  std::optional<BufferRange> v_cache;
  uint32_t capacity = 0;
};
void Rope(Graph& g, const RopeArgs& a, std::string_view label = {});

// The fused q|k|v projection followed by RoPE: each part (a row block of one stored type, whose Y
// is rope.qkv, at a y_offset of whole heads) is recorded as by MatMul, then q and k are rotated and
// k and v stored into the cache as Rope does. Decode's matvec (every part in one binding, head_dim
// a multiple of 4) rotates and stores in its epilogue; otherwise a Rope dispatch labelled
// `rope_label` follows the products.
void MatMulRope(Graph& g, std::span<const MatMulArgs> parts, const RopeArgs& rope, std::string_view label,
                std::string_view rope_label);

// Qwen3: each q and k head of rope.qkv scaled by its RMS and weight (q_norm | k_norm, f32 [2 * D]),
// then rotated and stored as Rope does, in one dispatch (HeadNormRopePush in
// shaders/push_constants.h).
struct HeadNormInput {
  BufferRange weight;
  float eps = 1e-6f;
};
void HeadNormRope(Graph& g, const RopeArgs& rope, const HeadNormInput& norm, std::string_view label = {});

// Mixture of experts (MoeRoutePush, ExpertsPush, MoeGroupPush, MoeCombinePush in
// shaders/push_constants.h).
// ids, weights [T, k] = the k best experts of softmax(logits [T, experts]), renormalized or not.
void MoeRoute(Graph& g, BufferRange logits, BufferRange ids, BufferRange weights, uint32_t tokens, uint32_t experts,
              uint32_t k, bool normalize, std::string_view label = {});

// The (token, slot) pairs of ids [pairs] grouped by the expert they chose, for ExpertsMatMul's
// GEMMs: expert e's pair indices at sorted[offsets[e] .. offsets[e + 1]).
struct ExpertGroups {
  BufferRange offsets;  // u32 [experts + 1]
  BufferRange sorted;   // u32 [pairs]
};
void GroupByExpert(Graph& g, BufferRange ids, uint32_t pairs, uint32_t experts, const ExpertGroups& groups,
                   std::string_view label = {});

// Expert products: W stacks every expert's rows, expert e's `expert_rows` rows from row
// e * expert_rows, in one binding, and the router's ids pick them on the GPU.
//   Y[(t, j), y_offset + r] = W[ids[t, j] * expert_rows + r] . X[t, or (t, j) with x_per_pair]
// With swiglu, an expert's rows are its gate rows then its up rows (expert_rows = 2 * inter) and
//   Y[(t, j), r] = silu(gate_r . X) * (up_r . X), r < inter
// Up to matvec's tokens (ChooseMatMulKernel) the matvec kernel computes each pair's product,
// reading only the chosen experts' rows, with the SwiGLU in its epilogue. More tokens need
// `groups` (GroupByExpert of these ids): each expert's rows then multiply all its pairs' X rows in
// one GEMM (coopmat or tiled), one dispatch for every expert, the SwiGLU in its epilogue too;
// there a token must choose an expert at most once (as MoeRoute's top-k does).
struct ExpertsMatMulArgs {
  Matrix w;
  uint32_t expert_rows = 0;
  BufferRange x;            // f32 [T, w.cols], or [T * k, w.cols] with x_per_pair
  bool x_per_pair = false;  // X rows per (token, slot) pair, else per token
  BufferRange ids;          // u32 [T, k]
  BufferRange y;            // f32 [T * k, y_stride]
  uint32_t tokens = 0;
  uint32_t k = 0;
  uint32_t y_stride = 0;               // 0: the outputs (expert_rows, or half of them with swiglu)
  uint32_t y_offset = 0;               // Y column of the first output (no SwiGLU)
  std::optional<RmsNormInput> norm;    // X is rmsnorm(X) * weight (per token): folded on the matvec path
  bool swiglu = false;                 // Y = silu(gate) * up
  std::optional<ExpertGroups> groups;  // required past matvec's tokens
  std::optional<MatMulKernel> kernel;  // unset: ChooseMatMulKernel; as MatMulArgs::kernel
  // Room for X rounded to f16 (ExpertsRoundedXBytes), where the coopmat kernel reads it so.
  std::optional<BufferRange> x_f16;
};
void ExpertsMatMul(Graph& g, const ExpertsMatMulArgs& a, std::string_view label = {});
// The room ExpertsMatMul of `type` weights of `cols` columns needs for its X of `x_rows` rows
// rounded to f16 (ExpertsMatMulArgs::x_f16) at `tokens` tokens, 0 where it reads X as it is: on
// matrix units, experts whose weights are rounded to f16 as they are staged (every type but F16
// and BF16) read X rounded once (round_f16) rather than in every tile that stages it.
uint64_t ExpertsRoundedXBytes(const DeviceInfo& device, DType type, uint32_t cols, uint32_t x_rows, uint32_t tokens);

// Up to matvec's tokens, the down projection, the router weights and the sum over experts as one
// product per token whose rows run through its k experts' rows side by side:
//   Y[t] += sum_j weights[t, j] * W[ids[t, j] * expert_rows ..] m[t, j]
// and then, with `shared` (Qwen2-MoE), its shared expert's output as MoeCombine adds it:
//   Y[t] += shared.out[t] * sigmoid(shared.gate[t])
struct SharedExpertOut {
  BufferRange out;   // f32 [T, expert_rows]
  BufferRange gate;  // f32 [T]: the gate's logit
};
struct ExpertsSumArgs {
  Matrix w;  // [experts * expert_rows, inter]
  uint32_t expert_rows = 0;
  BufferRange m;        // f32 [T, k * inter]: pair (t, j)'s inputs at t * k + j
  BufferRange ids;      // u32 [T, k]
  BufferRange weights;  // f32 [T, k]
  BufferRange y;        // f32 [T, expert_rows]: added to
  uint32_t tokens = 0;
  uint32_t k = 0;
  std::optional<SharedExpertOut> shared;
};
void ExpertsMatVecSum(Graph& g, const ExpertsSumArgs& a, std::string_view label = {});

// X[t] += sum_j weights[t, j] * expert_out[(t, j)] (+ sigmoid(shared_gate[t]) * shared_out[t]);
struct MoeCombineArgs {
  BufferRange x;                           // f32 [T, hidden]
  BufferRange weights;                     // f32 [T, k]
  BufferRange expert_out;                  // f32 [T * k, hidden]
  std::optional<BufferRange> shared_out;   // f32 [T, hidden]
  std::optional<BufferRange> shared_gate;  // f32 [T]: the gate's logit
  uint32_t tokens = 0;
  uint32_t hidden = 0;
  uint32_t k = 0;
};
void MoeCombine(Graph& g, const MoeCombineArgs& a, std::string_view label = {});

// Y[t, i] = silu(GU[t, i]) * GU[t, inter + i]
void SwiGlu(Graph& g, BufferRange gate_up, BufferRange y, uint32_t tokens, uint32_t inter, std::string_view label = {});

// Y[t, :] = table[ids[t], :] as f32 (a quantized table needs 8-bit storage buffers, as MatMul)
void Embed(Graph& g, const Matrix& table, BufferRange ids, BufferRange y, uint32_t tokens, std::string_view label = {});

// Causal grouped-query attention of T query rows against the F16 KV cache. Workgroups take blocks
// of query rows and split their keys when the blocks alone would leave the GPU idle (decode);
// a second dispatch then merges the splits' partial results, which live in `scratch`. The split
// layout is derived on the GPU from positions[], so one recording serves every depth.
// Probabilities are computed without splits.
struct AttentionArgs {
  BufferRange q;          // f32 [T, q_stride], head h at h * head_dim
  BufferRange positions;  // uint32 [T]: query t sees keys 0..positions[t]
  BufferRange k_cache;    // f16 [Hkv, capacity, D]
  BufferRange v_cache;
  BufferRange out;  // f32 [T, o_stride]
  uint32_t tokens = 1;
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t capacity = 0;
  uint32_t q_stride = 0;             // 0: n_heads * head_dim
  uint32_t o_stride = 0;             // 0: n_heads * head_dim
  uint32_t window = 0;               // 0: no sliding window
  float scale = 0;                   // 0: 1 / sqrt(head_dim)
  std::optional<BufferRange> probs;  // f32 [H, T, probs_stride]: the softmax, with the keys split or not
  uint32_t probs_stride = 0;
  // P keeps the scores (-inf where unseen) through the last key the queries see, each row's max m
  // and sum l after the rows (AttentionPush): the probabilities exp(score - m) / l are made only
  // where they are read (a decode step's live rows, attention_live). `probs` then holds
  // AttentionScoresFloats floats.
  bool scores = false;
  std::optional<BufferRange> scratch;  // split partials: AttentionScratchBytes(tokens, ...) bytes
  // u32, AttentionSplitCounterBytes(tokens, n_heads) bytes, zero (and left zero): with them a
  // decode block's splits (the narrow kernels, no probabilities) merge themselves, the last to
  // finish merging all, and no attention_combine dispatch follows.
  std::optional<BufferRange> split_counters;
  // positions[0] as the host knows it when recording (rows follow consecutively): sizes the
  // dispatch's cost (keys read, flops) only; the kernel reads the positions buffer.
  uint32_t first_position = 0;
  // Qwen3's head norm and RoPE done by the attention kernel itself (where AttentionNormsHeads):
  // q is then the raw q|k|v projection, whose k and v the kernel stores into the caches.
  struct HeadNorm {
    BufferRange weight;  // q_norm | k_norm, f32 [2 * head_dim]
    float eps = 1e-6f;
    BufferRange inv_freq;  // f32 [head_dim / 2]
    float attention_factor = 1.0f;
  };
  std::optional<HeadNorm> head_norm;
};
void Attention(Graph& g, const AttentionArgs& a, std::string_view label = {});
// Whether Attention takes `head_norm` for this shape: a decode step (one token) whose
// q heads of a KV group fit one narrow block, head_dim a multiple of 8. Elsewhere HeadNormRope
// goes first and attention reads what it left.
bool AttentionNormsHeads(uint32_t tokens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim);
// Floats of P with scores kept: the rows [H, T, probs_stride], then (m, l) of each.
uint64_t AttentionScoresFloats(uint32_t n_heads, uint32_t tokens, uint32_t probs_stride);
// The bytes an attention dispatch must move and the flops it does (see DispatchCost).
DispatchCost AttentionCost(const AttentionArgs& a);

// Attention maps from Attention's probabilities (AttentionReducePush in shaders/push_constants.h
// has the whole contract): plane k of `out` reduces the query heads head_first + k * plane_heads
// .. + plane_heads; its value (i, j) the map rows band_begin + [i * cell, (i + 1) * cell) and the
// key columns [j * cell, (j + 1) * cell), by their max or their mean. A dispatch covers the band's
// rows `probs` holds; dispatched chunk by chunk in row order, cells spanning chunks come out whole.
struct AttentionReduceArgs {
  BufferRange probs;  // f32 [n_heads, rows, probs_stride], rows at map rows first_row..
  BufferRange out;    // f32 [plane_base + planes, ceil(band / cell), ceil(cols / cell)]
  uint32_t n_heads = 0;
  uint32_t rows = 0;
  uint32_t probs_stride = 0;
  uint32_t first_row = 0;
  uint32_t band_begin = 0, band_end = 0;
  uint32_t cols = 0;  // key columns
  uint32_t cell = 1;
  uint32_t head_first = 0, plane_heads = 1, planes = 1, plane_base = 0;
  bool max = false;        // else the mean
  bool mute_sink = false;  // key 0 left out of each head's row and the row renormalized first
};
void AttentionReduce(Graph& g, const AttentionReduceArgs& a, std::string_view label = {});

// Live attention rows (AttentionLivePush has the whole contract): the attention of a decode step's
// token at positions[0] reduced to each view in `views`, as attention_reduce reduces one row of a
// plane, into `out` packed to positions[0] + 1 keys a view, from each layer's scores as Attention
// keeps them (`scores`). The views buffer is read when the dispatch runs, so the host may rewrite
// it between runs of one recording.
struct AttentionLiveArgs {
  BufferRange scores;     // layer l at l * layer_stride floats: AttentionScoresFloats(n_heads, 1, stride)
  BufferRange positions;  // u32 [1]
  BufferRange views;      // u32 [4 * (1 + max_views)]: LiveViewWords
  BufferRange out;        // f32 [views, positions[0] + 1], room for [max_views, stride]
  uint32_t layers = 0, n_heads = 0;
  uint32_t stride = 0;        // floats between a layer's heads: the most keys, the cache's capacity
  uint32_t layer_stride = 0;  // floats between layers
  uint32_t max_views = 1;
  // positions[0] and the heads of every view together, as the host knows them when recording:
  // they size the dispatch's cost only.
  uint32_t position = 0, view_heads = 0;
};
void AttentionLive(Graph& g, const AttentionLiveArgs& a, std::string_view label = {});

// One view of AttentionLive: plane 0 of an attention map's request (its layer and heads, reduced
// by max or mean, the sink muted or not).
struct LiveView {
  uint32_t layer = 0, first_head = 0, heads = 1;
  bool max = false, mute_sink = false;
};
// The views buffer's contents for `views` (at most the recorded max_views).
std::vector<uint32_t> LiveViewWords(std::span<const LiveView> views);

// The wide attention kernels' shared arrays (32 rows): q, K (padded), V, P, the lanes' sums and the
// rows' corrections and sums. Attention takes them for a prefill on devices with this much shared
// memory per workgroup (lavapipe and desktop GPUs have 32 KiB or more; Vulkan promises 16):
// attention_wide (48-key tiles) where head_dim <= 64, attention_wide_d128 (q of 1 024 quads,
// 24-key tiles) where it is <= 128.
inline constexpr uint32_t kAttentionWideSharedBytes = 8192 + 6528 + 6144 + 6144 + 512 + 256;
inline constexpr uint32_t kAttentionWideD128SharedBytes = 16384 + 6336 + 6144 + 3072 + 512 + 256;
static_assert(kAttentionWideD128SharedBytes <= 32768, "attention_wide_d128 fits lavapipe's 32 KiB, so CI runs it");
// The shared memory the wide kernel for head_dim needs, 0 if none serves it.
inline constexpr uint32_t AttentionWideSharedBytes(uint32_t head_dim) {
  return head_dim <= 64 ? kAttentionWideSharedBytes : head_dim <= 128 ? kAttentionWideD128SharedBytes : 0;
}

// Bytes of split partials Attention needs for min_tokens to max_tokens query rows against a cache
// of `capacity` rows (0: it never splits them).
uint64_t AttentionScratchBytes(uint32_t max_tokens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                               uint32_t capacity, uint32_t min_tokens = 1);

// Bytes of the split counters (AttentionArgs::split_counters) for up to max_tokens query rows:
// one u32 a block of rows, at most one block a row.
inline uint64_t AttentionSplitCounterBytes(uint32_t max_tokens, uint32_t n_heads) {
  return uint64_t{4} * max_tokens * n_heads;
}

// The k largest of count values, descending, ties to the lower index. Scratch holds the
// per-workgroup candidates: TopKScratchCount(count, k) values and as many indices.
uint32_t TopKScratchCount(uint32_t count, uint32_t k);
inline constexpr uint32_t kTopKMax = 256;
void TopK(Graph& g, BufferRange values, uint32_t count, uint32_t k, BufferRange scratch_values,
          BufferRange scratch_indices, BufferRange out_values, BufferRange out_indices, std::string_view label = {});

// Device peak probes (gpu/peak.cpp):
// y = x, in 16-byte loads and stores; both ranges the same size, a multiple of 16 bytes.
void Copy(Graph& g, BufferRange x, BufferRange y, std::string_view label = {});
// y[i] = the sum of QVK_FMA_CHAINS chains a = fma(a, b, c) of iterations * QVK_FMA_STEPS steps each
// (shaders/fma.comp), for i < invocations; y holds at least `invocations` floats.
void FmaChains(Graph& g, BufferRange y, uint32_t invocations, uint32_t iterations, float b, float c,
               std::string_view label = {});
// The same on f16vec2 chains (shaders/fma_f16.comp): twice the FMAs, b and c rounded to f16, y[i]
// the sum of 2 * QVK_FMA_CHAINS lanes. Needs DeviceInfo::fp16_arithmetic.
void FmaChainsF16(Graph& g, BufferRange y, uint32_t invocations, uint32_t iterations, float b, float c,
                  std::string_view label = {});
// Cooperative-matrix accumulate chains (shaders/fma_coopmat.comp): `groups` workgroups, each
// subgroup storing a 16x16 float tile per chain; y holds at least CoopmatFmaFloats(groups) floats. Needs
// DeviceInfo::coopmat_f16.
void CoopmatFmaChains(Graph& g, BufferRange y, uint32_t groups, uint32_t iterations, float b, float c,
                      std::string_view label = {});
uint64_t CoopmatFmaFloats(uint32_t groups);
// The FMAs one CoopmatFmaChains dispatch runs.
uint64_t CoopmatFmas(uint32_t groups, uint32_t iterations);

}  // namespace ops
}  // namespace qvk
