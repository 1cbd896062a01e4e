// Recording each op: its checks against the buffers it gets, its work split, its dispatch and what
// the dispatch must at least move and compute.
//
// Sections: plans and limits / products / norms and RoPE / mixture of experts / SwiGLU and
// embedding / attention / ranking and copies / device peaks
#include "gpu/ops.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/memory.h"
#include "shaders/push_constants.h"

namespace qvk {
namespace {

uint32_t CeilDiv(uint64_t a, uint64_t b) {
  return static_cast<uint32_t>((a + b - 1) / b);
}

void Require(bool condition, std::string_view op, std::string_view what) {
  if (!condition) throw Error(fmt::format("{}: {}", op, what));
}

// Whether `type`'s weights reach the matrix units rounded to f16: every type but F16 and BF16,
// which are exact there (and take X as f16 hi + lo; matmul_coopmat.comp). The products of rounded
// weights read X rounded to f16 as well.
bool RoundedToF16(DType type) {
  return type != DType::F16 && type != DType::BF16;
}

// --- plans and limits ------------------------------------------------------------------------

constexpr uint32_t kMatMulTile = 64;  // TILE in matmul.comp
using ops::kMatVecMaxTokens;
static_assert(kMatVecMaxTokens == QVK_MATVEC_MAX_TOKENS, "ops.h and the matvec kernels agree");
constexpr uint32_t kMaxHeadDim = 256;  // Q_QUADS and TILE_QUADS in attention.comp

// ChooseCoopmatTile takes wide tiles when they make at least this many workgroups, two waves of
// them on a 132-SM H200 (kCoopmatWideWave). With fewer, SMs idle, and narrow tiles (twice as many
// workgroups, two an SM) do better even though each fragment a subgroup loads then feeds half as
// many multiplies.
constexpr uint64_t kCoopmatWideGroups = 264;
// ... or, for a product that may split along K, where about kCoopmatSplitGroups workgroups (four
// waves) of splits at least kCoopmatWideSplitSteps long would run: on the H200 that made 1.5B's
// down 29% faster (68 TFLOP/s), and 7B's prefill 12%, where q|k|v's and o's shorter splits (8
// steps at 1.5B) lost 4-13% to narrow tiles (docs/speed.md, session 11).
constexpr uint64_t kCoopmatSplitGroups = 528;
constexpr uint32_t kCoopmatWideSplitSteps = 32;
// Every split is at least this many steps of 32 columns long, so that its pipeline's first load
// and last multiply stay a small part of it.
constexpr uint32_t kCoopmatMinSplitSteps = 8;
constexpr uint32_t kCoopmatStep = 32;  // STEP in matmul_coopmat.comp
// Tiles run in waves: an H200 holds one wide workgroup an SM (130-138 registers an invocation,
// docs/speed.md, session 14) and two narrow ones (95-114), 132 or 264 at once, and every tile of a
// product takes as many steps, so 133 wide workgroups take about as long as 264.
// PlanCoopmatSplitSteps sizes a product's splits, and DequantChunkRows a wide product's row chunks,
// in whole waves where they can, by this estimate of a split's time: its waves x (its steps +
// kCoopmatWaveOverheadSteps for the first loads and the epilogue) x kCoopmatStepNs, plus the split
// sum's read of every plane at kCoopmatSplitSumBytesPerNs (what 1.5B's and 7B's prefill profiles
// measure on the H200; two narrow workgroups share an SM, so their step counts as a wide one's).
// Against splits toward kCoopmatSplitGroups workgroups and chunks of equal length, prefill of
// 1.5B and 7B ran 4-8% faster (docs/speed.md, session 17).
constexpr uint64_t kCoopmatWideWave = 132;
constexpr double kCoopmatStepNs = 900;
constexpr double kCoopmatWaveOverheadSteps = 3;
constexpr double kCoopmatSplitSumBytesPerNs = 2500;
// The splits a product of `cols` inner columns runs in at split_steps steps each (the last shorter).
uint32_t CoopmatSplitCount(uint32_t cols, uint32_t split_steps) {
  return CeilDiv(CeilDiv(cols, kCoopmatStep), split_steps);
}
// Rows a prefill product's weights are dequantized to f16 in at the least, and in multiples of: a
// wide tile's (QVK_COOPMAT_WIDE_ROWS).
constexpr uint32_t kCoopmatDequantRows = QVK_COOPMAT_WIDE_ROWS;

// How Attention lays out its workgroups: blocks of query rows (tokens x q heads of one KV group)
// times splits of their keys. Splits are added until about kAttentionWorkgroups workgroups run
// (four per SM of a 132-SM GPU); a decode step on Qwen2-0.5B has only 2 blocks, one per KV head.
constexpr uint64_t kAttentionWorkgroups = 512;
// A prefill on matrix units (attention_coopmat) splits toward one wave of workgroups instead: each
// stages its block's 64 rows of Q and writes 64 partial rows, costs that splits multiply, and at
// 245 registers an invocation two workgroups fill an SM. On an H100, pp512 (104-228 blocks, so one
// split) against splits toward 512 workgroups: 1.5B Q4_K_M +4.7%, 0.5B Q4_0 +4%, 7B Q4_K_M +1.9%,
// and no attention_combine pass (docs/speed.md, session 32).
constexpr uint64_t kAttentionCoopmatWorkgroups = 132;
// A decode block splits its keys in 32-key granules (one tile of attention_narrow each, where
// head_dim > 64) while those splits keep the dispatch within one wave of a 132-SM GPU: on an H100,
// 1.5B Q4_K_M tg32 at depths 256 to 2 048 +1.6% to +6%, 7B's at 256 and 1 024 +2%; twice that
// many workgroups lost 6% at depth 4 096, merging twice the partials (docs/speed.md, session 40).
constexpr uint64_t kAttentionShortWorkgroups = 132;
constexpr uint32_t kAttentionNarrowRows = 8;    // MAX_ROWS of attention_narrow (kernels.cmake)
constexpr uint32_t kAttentionWideRows = 32;     // MAX_ROWS of the wide attention kernels
constexpr uint32_t kAttentionCoopmatRows = 64;  // ROWS of attention_coopmat.comp
// A block's splits merged in attention_narrow keep their weights in its V tile (TILE_QUADS 1024
// pairs of words there).
static_assert(kAttentionNarrowRows * QVK_ATTENTION_MAX_SPLITS <= 2 * 1024,
              "merge weights past attention_narrow's v_sh");
struct AttentionPlan {
  // 16 (attention), or 8 (attention_narrow) for a decode step whose KV group has at most 8 q heads
  // and where head_dim > 128 (attention.comp keeps 512 quads of q); for a prefill, what
  // PrefillBlockRows allows: 64 (attention_coopmat_d64, _d128) or 32 (attention_wide, _d128).
  uint32_t block_rows;
  uint32_t heads_per_block, tokens_per_block;
  uint32_t token_blocks, head_blocks;  // blocks per KV head: token_blocks x head_blocks
  uint32_t splits;
  uint32_t short_keys;  // AttentionPush.short_keys
};

// The matvec work split (matvec.comp): a row group of R rows and L lanes covers SLOTS / R * L units
// of each row a round, each lane loading SLOTS units at once. PlanMatVec estimates each split's
// time on an H200 and takes the fastest: the longest of
//   rounds x kMatVecRoundNs        the chain of dependent loads a lane waits through, once per
//                                  wave of the invocations the GPU holds at once;
//   weight bytes / DRAM bandwidth;
//   weights + X (and the norm weight), read once per row group / L1 bandwidth;
// plus kMatVecSharedNs where lanes meet in shared memory (a group of several subgroups, or part of
// one). kMatVecRoundNs is what the run-4 profile (docs/speed.md) implies: o_proj (2 rounds a lane)
// and down (5) took 9.3 and 13.0 us, a fixed 6.8 us and 1.25 us a round. Small products are
// latency-bound (an 896 x 896 o_proj moves 1.6 MB, what an H200 streams in well under a round):
// there one row per subgroup, all of a row's loads in one round, wins. Large ones are
// bandwidth-bound: four rows per group, reading X once for four rows. Ties go to lanes of one
// subgroup (subgroupAdd alone), then more rows, then fewer lanes. Every workgroup computes one
// batch of row groups, however many workgroups that takes: capping the workgroups at 1 024, each
// computing several batches in turn (gate|up of 7B, the output projections), made decode 1-6%
// slower on an H200 (docs/speed.md, session 7). The L1 rate and the resident invocations differ by
// the load slots a lane has (QVK_MATVEC_SLOTS_FOR its unit), as a sweep of them on the H200 found
// (session 12): with four slots (8- and 16-column units) 5 000 bytes a ns, which keeps more rows a
// group and fewer workgroups (decode of 0.5B and 1.5B Q4_0 +6-7%, 0.5B F16 +5%), then 7 000
// (session 16), at which the long-row products (down; 7B Q8_0's q|k|v and o too) take more lanes
// or fewer rows a group and fewer rounds (1.5B Q4_0's down 128 x 4 -> 128 x 2, 460 -> 397 us a
// step; decode of 7B Q8_0 +6%, 1.5B Q4_0 +3%, 0.5B F16 +2%), where 10 000 lost; with two (the
// K-quants' 32-column units) that rate led to plans of 19 rounds, while counting 768 resident
// invocations an SM rather than 2 048 did best (1.5B Q4_K_M +8%).
constexpr double kMatVecRoundNs = 1250;
constexpr double kMatVecDramBytesPerNs = 3800;
constexpr double kMatVecSharedNs = 100;
struct MatVecRates {
  double l1_bytes_per_ns;  // 132 SMs' L1 hits
  double resident;         // invocations the GPU holds at once
};
MatVecRates MatVecRatesFor(uint32_t slots) {
  return slots == 4 ? MatVecRates{7000, 132 * 2048} : MatVecRates{20000, 132 * 768};
}
// The fewest lanes a row group of K-quant units (32 columns, two slots) takes. Where the estimate
// above ties at the DRAM bound (an LM head: 150 000 short rows, many waves) it chose 2 lanes, which
// read a row's 16-26-byte units in pieces of 32-52 bytes a round: on an H100 the LM head of 1.5B
// Q4_K_M (Q6_K, 151 936 x 1 536) took 250 us a step at 2 lanes, 153 at 4, 143 at 8 and 16, 178 at
// 32 (docs/speed.md, session 33).
constexpr uint32_t kMatVecMinKQuantLanes = 8;

// The columns of one matvec unit (UNIT_COLS in matvec_units.glsl), indexed by DType.
constexpr uint32_t kMatVecUnitCols[] = {8, 8, 8, 16, 16, 16, 16, 16, 32, 32, 32};
static_assert(std::size(kMatVecUnitCols) == kDTypeCount, "one unit width per DType");
// The units a matvec lane loads a round for weights of `type` (SLOTS in matvec.comp).
uint32_t MatVecSlots(DType type) {
  return QVK_MATVEC_SLOTS_FOR(kMatVecUnitCols[static_cast<uint32_t>(type)]);
}

// The rows of a prefill's blocks (more tokens than matvec takes), so that each K and V tile staged
// serves more rows: 64 on matrix units (attention_coopmat_d64, _d128) where the device has them
// (DeviceInfo::coopmat_f16), head_dim is 64 or 128, Q's rows start at 16-byte steps and no
// probabilities are asked for (that kernel writes none); else 32 where head_dim <= 128 and the
// device has the wide kernels' shared memory; else 0 (decode's blocks). On an H200, 32-row blocks
// cut Qwen2.5-1.5B's prefill attention (head_dim 128, 6 q heads a KV head: 30 of 32 rows used,
// against 12 of 16) by a third (docs/speed.md, session 8).
uint32_t PrefillBlockRows(const DeviceInfo& device, uint32_t head_dim, bool q_in_runs, bool probs) {
  if (device.coopmat_f16 && (head_dim == 64 || head_dim == 128) && q_in_runs && !probs) return kAttentionCoopmatRows;
  const uint32_t wide_bytes = ops::AttentionWideSharedBytes(head_dim);
  return wide_bytes > 0 && device.max_compute_shared_memory >= wide_bytes ? kAttentionWideRows : 0;
}

AttentionPlan PlanAttention(uint32_t tokens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                            uint32_t capacity, uint32_t prefill_rows) {
  AttentionPlan plan{};
  const uint32_t group = n_heads / n_kv_heads;
  // A decode step whose KV group fits 8 rows takes narrow blocks: each row's keys over four times
  // the lanes of a 16-row block, most of whose rows it would leave empty (docs/speed.md, session 15).
  const bool narrow = head_dim > 128 || (tokens == 1 && group <= kAttentionNarrowRows);
  plan.block_rows = tokens > kMatVecMaxTokens && prefill_rows > 0 ? prefill_rows : narrow ? kAttentionNarrowRows : 16;
  plan.heads_per_block = std::min(group, plan.block_rows);
  plan.tokens_per_block = plan.block_rows / plan.heads_per_block;
  plan.token_blocks = CeilDiv(tokens, plan.tokens_per_block);
  plan.head_blocks = CeilDiv(group, plan.heads_per_block);
  const uint64_t blocks = uint64_t{plan.token_blocks} * n_kv_heads * plan.head_blocks;
  // A block that sees few keys splits them in 32-key granules while their splits keep the dispatch
  // within kAttentionShortWorkgroups; head_dim 64's tile holds 64 keys, which a 32-key split halves.
  const uint64_t short_splits = head_dim > 64 ? kAttentionShortWorkgroups / blocks : 0;
  plan.short_keys = static_cast<uint32_t>(std::min<uint64_t>(short_splits * QVK_ATTENTION_SHORT_SPLIT_KEYS, capacity));
  // More splits than the cache has granules of keys would always be empty (counting the short
  // granule of a block that sees few keys).
  const uint32_t most = std::clamp(
      std::max(CeilDiv(capacity, QVK_ATTENTION_SPLIT_KEYS), CeilDiv(plan.short_keys, QVK_ATTENTION_SHORT_SPLIT_KEYS)),
      1u, QVK_ATTENTION_MAX_SPLITS);
  const uint64_t workgroups =
      plan.block_rows == kAttentionCoopmatRows ? kAttentionCoopmatWorkgroups : kAttentionWorkgroups;
  plan.splits = static_cast<uint32_t>(std::clamp<uint64_t>(workgroups / blocks, 1, most));
  return plan;
}

uint64_t PartialsBytes(const AttentionPlan& plan, uint32_t tokens, uint32_t n_heads, uint32_t head_dim) {
  if (plan.splits == 1) return 0;
  return uint64_t{4} * tokens * n_heads * plan.splits * (head_dim + 2);  // acc [D], then m and l
}

// A kernel the device cannot run (block-quantized weights need 8-bit storage buffers) is refused
// when the op is recorded, naming the op and the weights.
KernelId RequireKernel(const Graph& g, KernelOp op, DType type, std::string_view op_name) {
  const KernelId kernel = KernelFor(op, type);
  if (const std::string missing = MissingFeatures(g.device().info(), Spec(kernel)); !missing.empty()) {
    throw Error(
        fmt::format("{}: {} weights: this device lacks {}, which they need", op_name, DTypeName(type), missing));
  }
  return kernel;
}

// For a kernel that reads no weights.
void RequireFeatures(const Graph& g, KernelId kernel) {
  if (const std::string missing = MissingFeatures(g.device().info(), Spec(kernel)); !missing.empty()) {
    throw Error(fmt::format("{}: this device lacks {}, which it needs", Spec(kernel).name, missing));
  }
}

// What moe_choice.glsl chooses (moe_route, and one token's router product): k of the experts,
// k at most QVK_MAX_SEGMENTS and the experts at most QVK_MAX_EXPERTS.
void RequireChoice(uint32_t experts, uint32_t k, std::string_view op) {
  Require(experts > 0 && experts <= QVK_MAX_EXPERTS && k > 0 && k <= experts && k <= QVK_MAX_SEGMENTS, op,
          fmt::format("1 to {} experts, and k in 1..experts and at most {}", QVK_MAX_EXPERTS, QVK_MAX_SEGMENTS));
}

void RequireRope(const ops::RopeArgs& a) {
  Require(a.head_dim % 2 == 0 && a.head_dim > 0, "rope", "head_dim must be even");
  Require(a.n_heads > 0 && a.n_kv_heads > 0, "rope", "no heads");
  Require(a.k_cache.has_value() == a.v_cache.has_value(), "rope", "K and V caches go together");
  const uint64_t stride = uint64_t{1} * (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  Require(a.qkv.size >= static_cast<VkDeviceSize>(a.tokens) * stride * 4, "rope", "QKV too small");
  Require(a.inv_freq.size >= a.head_dim / 2 * 4ull, "rope", "inv_freq too small");
  if (a.k_cache.has_value()) {
    const VkDeviceSize cache_bytes = static_cast<VkDeviceSize>(a.n_kv_heads) * a.capacity * a.head_dim * 2;
    Require(a.k_cache->size >= cache_bytes && a.v_cache->size >= cache_bytes, "rope", "cache too small");
  }
}

// Y[t * y_stride + i] = silu(GU[t, i]) * GU[t, inter + i]
void RecordSwiGlu(Graph& g, BufferRange gate_up, BufferRange y, uint32_t tokens, uint32_t inter, uint32_t y_stride,
                  std::string_view label) {
  Require(gate_up.size >= tokens * inter * 8ull && y.size >= ((tokens - 1ull) * y_stride + inter) * 4, "swiglu",
          "buffer too small");
  const uint64_t items = static_cast<uint64_t>(tokens) * inter;
  g.Dispatch(KernelId::SwiGlu, {gate_up, y}, push::SwiGluPush{tokens, inter, 2 * inter, y_stride},
             GridFor(CeilDiv(items, Spec(KernelId::SwiGlu).local_size_x)), label,
             {.bytes = 12 * items, .flops = 5 * items});
}

}  // namespace

bool IsRegrouped(DType type) {
  return type == DType::Q8_0 || type == DType::Q4_0 || type == DType::Q5_0 || type == DType::Q6_K;
}

uint32_t RegroupScaleHalfword(DType type) {
  return type == DType::Q6_K ? BlockBytes(type) / 2 - 1 : 0;
}

uint64_t RegroupBytes(DType type) {
  return uint64_t{QVK_REGROUP_BLOCKS} * BlockBytes(type);
}

uint64_t MatrixBytes(DType type, uint64_t rows, uint32_t cols) {
  const uint64_t bytes = RowBytes(type, cols) * rows;
  return IsRegrouped(type) ? AlignUp(bytes, RegroupBytes(type)) : bytes;
}

namespace {

// The offset alignment a binding of a `type` matrix's rows needs: the device's, and for regrouped
// types also a whole group, so that the binding reads as the whole matrix does.
VkDeviceSize BindingAlignment(const DeviceInfo& device, DType type) {
  const VkDeviceSize align = device.storage_offset_alignment;
  return IsRegrouped(type) ? std::lcm(align, RegroupBytes(type)) : align;
}

}  // namespace

std::vector<RowSlice> SliceRows(const DeviceInfo& device, const Matrix& m, VkDeviceSize max_range) {
  if (max_range == 0) max_range = device.max_storage_buffer_range;
  const VkDeviceSize row_bytes = RowBytes(m.dtype, m.cols);
  // Slices start at multiples of `step` rows so that every slice offset stays aligned.
  const VkDeviceSize align = BindingAlignment(device, m.dtype);
  if (m.offset % align != 0) throw Error("matrix offset is not aligned for binding");
  const VkDeviceSize step = align / std::gcd(row_bytes, align);
  VkDeviceSize rows_per_slice = max_range / row_bytes / step * step;
  if (rows_per_slice == 0) throw Error(fmt::format("a {}-byte matrix row does not fit one binding", row_bytes));
  std::vector<RowSlice> slices;
  for (VkDeviceSize first = 0; first < m.rows; first += rows_per_slice) {
    const auto rows = static_cast<uint32_t>(std::min<VkDeviceSize>(rows_per_slice, m.rows - first));
    // Slices before the last hold whole groups already (`align` is a whole number of them).
    const VkDeviceSize offset = m.offset + first * row_bytes, size = MatrixBytes(m.dtype, rows, m.cols);
    if (m.buffer && offset + size > m.buffer->size()) {  // (planning passes no buffer)
      throw Error("the matrix's buffer ends inside its last group of blocks");
    }
    slices.push_back({BufferRange(*m.buffer, offset, size), static_cast<uint32_t>(first), rows});
  }
  return slices;
}

namespace ops {

// --- products --------------------------------------------------------------------------------

MatMulKernel ChooseMatMulKernel(const DeviceInfo& device, uint32_t tokens) {
  if (tokens <= kMatVecMaxTokens) return MatMulKernel::MatVec;
  // Past matvec's few tokens the matrix units win even on a mostly empty 64-token tile.
  return device.coopmat_f16 ? MatMulKernel::CoopMat : MatMulKernel::Tiled;
}

MatVecSplit PlanMatVec(const DeviceInfo& device, const MatVecShape& shape) {
  // Every matvec variant has matvec's workgroup size (shaders/kernels.cmake).
  const uint32_t wg = Spec(KernelFor(KernelOp::MatVec, shape.type)).local_size_x;
  // Rows of whole units read a unit at a time, others an element at a time (see matvec.comp).
  const uint32_t unit_cols = kMatVecUnitCols[static_cast<uint32_t>(shape.type)];
  const uint32_t units = shape.cols % unit_cols == 0 && shape.x_stride % 4 == 0 ? shape.cols / unit_cols : shape.cols;
  const double weight_bytes = static_cast<double>(RowBytes(shape.type, shape.cols)) * shape.rows;
  const double x_row_bytes = 4.0 * shape.cols * (shape.tokens + (shape.norm ? 1 : 0));
  const uint32_t slots = MatVecSlots(shape.type);
  const MatVecRates rates = MatVecRatesFor(slots);
  const auto estimate_ns = [&](const MatVecSplit& s) {
    const double groups = CeilDiv(shape.rows, s.group_rows);
    const double waves = std::max(1.0, groups * s.lanes / rates.resident);
    const double ns = std::max({s.rounds * waves * kMatVecRoundNs, weight_bytes / kMatVecDramBytesPerNs,
                                (weight_bytes + groups * x_row_bytes) / rates.l1_bytes_per_ns});
    return std::llround(s.lanes == device.subgroup_size ? ns : ns + kMatVecSharedNs);
  };
  const auto rank = [&](const MatVecSplit& s) {
    return std::tuple(estimate_ns(s), s.lanes != device.subgroup_size, -static_cast<int>(s.group_rows), s.lanes);
  };
  std::optional<MatVecSplit> best;
  for (const uint32_t group_rows : {4u, 2u, 1u}) {
    if ((shape.paired && group_rows == 1) || group_rows > slots) continue;
    // Lanes >= rows: a lane to store each of the group's outputs; and a K-quant row group at least
    // kMatVecMinKQuantLanes.
    const uint32_t least_lanes = slots == 2 ? std::max(group_rows, kMatVecMinKQuantLanes) : group_rows;
    for (uint32_t lanes = least_lanes; lanes <= wg; lanes *= 2) {
      const MatVecSplit split{.slots = slots,
                              .lanes = lanes,
                              .group_rows = group_rows,
                              .units = units,
                              .rounds = CeilDiv(units, slots / group_rows * lanes)};
      if (!best || rank(split) < rank(*best)) best = split;
    }
  }
  const uint32_t outputs = shape.paired ? shape.rows / 2 : shape.rows;
  const uint32_t group_outputs = shape.paired ? best->group_rows / 2 : best->group_rows;
  best->workgroups = CeilDiv(outputs, wg / best->lanes * group_outputs);
  return *best;
}

namespace {
// The planner's estimate (above, at kCoopmatStepNs) for `tiles` workgroups of `tile` split in steps
// of `split_steps` (0: unsplit). A tall tile (128 tokens by 128 features: each staged weight
// fragment feeds twice the multiplies, and every subgroup's fragment loads four where it loaded
// two) counts as a wide one: session 29's 7B profile timed its step at 0.83 us against the wide
// tile's 0.9.
double CoopmatEstimateNs(uint64_t tiles, uint32_t cols, uint32_t tokens, uint32_t rows, uint32_t split_steps,
                         CoopmatTile tile) {
  const uint32_t steps = CeilDiv(cols, kCoopmatStep);
  if (split_steps == 0) split_steps = steps;
  const uint32_t splits = CeilDiv(steps, split_steps);
  const uint64_t wave = tile == CoopmatTile::Narrow ? 2 * kCoopmatWideWave : kCoopmatWideWave;
  const double waves = static_cast<double>(CeilDiv(std::max<uint64_t>(tiles, 1) * splits, wave));
  const double plane_ns = 4.0 * tokens * rows / kCoopmatSplitSumBytesPerNs;
  return waves * (split_steps + kCoopmatWaveOverheadSteps) * kCoopmatStepNs + (splits > 1 ? splits * plane_ns : 0);
}
}  // namespace

uint32_t PlanCoopmatSplitSteps(uint64_t tiles, uint32_t cols, uint32_t tokens, uint32_t rows,
                               VkDeviceSize scratch_bytes, CoopmatTile tile) {
  const uint32_t steps = CeilDiv(cols, kCoopmatStep);
  const uint64_t long_enough = steps / kCoopmatMinSplitSteps;
  const uint64_t room = scratch_bytes / (uint64_t{4} * tokens * rows);
  const auto estimate_ns = [&](uint32_t split_steps) {
    return CoopmatEstimateNs(tiles, cols, tokens, rows, split_steps, tile);
  };
  uint32_t best = steps;  // unsplit
  for (uint64_t splits = 2; splits <= std::min(long_enough, room); ++splits) {
    const uint32_t split_steps = CeilDiv(steps, static_cast<uint32_t>(splits));
    if (estimate_ns(split_steps) < estimate_ns(best)) best = split_steps;  // at most `splits` planes
  }
  return best == steps ? 0 : best;
}

uint32_t CoopmatFillRows(uint32_t tokens) {
  return CeilDiv(kCoopmatWideGroups, CeilDiv(tokens, QVK_COOPMAT_TOKENS)) * QVK_COOPMAT_WIDE_ROWS;
}

uint32_t DequantChunkRows(uint32_t rows, uint32_t most_rows, bool swiglu, uint32_t tokens) {
  // A chunk's rows in all (both parts) fill whole wide tiles.
  const uint32_t step = kCoopmatDequantRows / (swiglu ? 2 : 1);
  // The fewest row tiles whose workgroups (one per token tile each) fill whole waves.
  const uint64_t token_tiles = CeilDiv(tokens, QVK_COOPMAT_TOKENS);
  const uint64_t wave_rows = kCoopmatWideWave / std::gcd(token_tiles, kCoopmatWideWave) * step;
  const uint32_t chunks = CeilDiv(rows, most_rows);
  if (chunks > 1 && most_rows >= wave_rows) return static_cast<uint32_t>(most_rows / wave_rows * wave_rows);
  return static_cast<uint32_t>(AlignUp(CeilDiv(rows, chunks), step));
}

CoopmatTile ChooseCoopmatTile(uint32_t rows, uint32_t tokens, uint32_t split_cols) {
  const uint64_t wide_groups = uint64_t{CeilDiv(rows, QVK_COOPMAT_WIDE_ROWS)} * CeilDiv(tokens, QVK_COOPMAT_TOKENS);
  if (wide_groups >= kCoopmatWideGroups) return CoopmatTile::Wide;
  // Splits toward kCoopmatSplitGroups workgroups, each at least kCoopmatWideSplitSteps long.
  const uint32_t steps = CeilDiv(split_cols, kCoopmatStep);
  const uint64_t splits = std::min<uint64_t>(CeilDiv(kCoopmatSplitGroups, wide_groups), steps / kCoopmatMinSplitSteps);
  return splits >= 2 && steps / splits >= kCoopmatWideSplitSteps ? CoopmatTile::Wide : CoopmatTile::Narrow;
}

CoopmatPlan PlanCoopmat(const CoopmatProduct& p) {
  Require(p.tile != CoopmatTile::Tall || p.rounded, "matmul", "tall tiles multiply rows dequantized to f16 only");
  // A SwiGLU's epilogue needs whole sums.
  const bool may_split = p.split_room.has_value() && !p.swiglu;
  const auto plan_of = [&](CoopmatTile tile) {
    // Features per workgroup; a SwiGLU tile holds half as many outputs' gate rows, then their up rows.
    const uint32_t features = tile == CoopmatTile::Narrow ? QVK_COOPMAT_NARROW_ROWS : QVK_COOPMAT_WIDE_ROWS;
    CoopmatPlan plan{
        .tile = tile,
        .feature_tiles = p.swiglu ? CeilDiv(p.rows / 2, features / 2) : CeilDiv(p.rows, features),
        .token_tiles = CeilDiv(p.tokens, tile == CoopmatTile::Tall ? QVK_COOPMAT_TALL_TOKENS : QVK_COOPMAT_TOKENS)};
    if (may_split) {
      plan.split_steps = PlanCoopmatSplitSteps(uint64_t{plan.feature_tiles} * plan.token_tiles, p.cols, p.tokens,
                                               p.rows, *p.split_room, tile);
    }
    return plan;
  };
  if (p.tile) return plan_of(*p.tile);
  const CoopmatPlan chosen = plan_of(ChooseCoopmatTile(p.rows, p.tokens, may_split ? p.cols : 0));
  if (!p.rounded) return chosen;
  // Rounded rows take tall tiles (as many features as a wide one) where the estimate of them, split
  // along K or not, beats the chosen tile's: with half a wide tile's workgroups, each step of one
  // multiplies twice as much in about the time of a wide one's (docs/speed.md, session 30).
  const auto estimate_ns = [&](const CoopmatPlan& plan) {
    return CoopmatEstimateNs(uint64_t{plan.feature_tiles} * plan.token_tiles, p.cols, p.tokens, p.rows,
                             plan.split_steps, plan.tile);
  };
  const CoopmatPlan tall = plan_of(CoopmatTile::Tall);
  return estimate_ns(tall) < estimate_ns(chosen) ? tall : chosen;
}

namespace {

// MatMul, or with `rope` (a matvec of rows of whole heads in one binding: see MatMulRope) its
// matvec_rope variant.
void RecordMatMul(Graph& g, const MatMulArgs& a, const RopeArgs* rope, std::string_view label);

// The kernel of `plan`'s tile for `cols` columns of weights of `type`: `dequantized` (rows of it
// rounded to f16), the rounded kernels (no promotion, X one f16 part); otherwise the type's own,
// promoted where W is exact, but for F16 rows whose sums, split or not, run short
// (matmul_coopmat_short*, CoopmatSumsUnpromoted).
KernelId CoopmatKernel(Graph& g, const CoopmatPlan& plan, DType type, uint32_t cols, bool dequantized, bool swiglu) {
  if (plan.tile == CoopmatTile::Tall) {
    return RequireKernel(g, swiglu ? KernelOp::MatMulCoopmatRoundedTallSwiGlu : KernelOp::MatMulCoopmatRoundedTall,
                         DType::F16, "matmul");
  }
  enum Sums { kStored, kShort, kRounded };
  const Sums sums = dequantized ? kRounded
                    : CoopmatSumsUnpromoted(type, plan.split_steps > 0 ? plan.split_steps * kCoopmatStep : cols)
                        ? kShort
                        : kStored;
  // [sums][swiglu][wide]
  constexpr KernelOp kOps[3][2][2] = {
      {{KernelOp::MatMulCoopmatNarrow, KernelOp::MatMulCoopmat},
       {KernelOp::MatMulCoopmatNarrowSwiGlu, KernelOp::MatMulCoopmatSwiGlu}},
      {{KernelOp::MatMulCoopmatShortNarrow, KernelOp::MatMulCoopmatShort},
       {KernelOp::MatMulCoopmatShortNarrowSwiGlu, KernelOp::MatMulCoopmatShortSwiGlu}},
      {{KernelOp::MatMulCoopmatRoundedNarrow, KernelOp::MatMulCoopmatRounded},
       {KernelOp::MatMulCoopmatRoundedNarrowSwiGlu, KernelOp::MatMulCoopmatRoundedSwiGlu}}};
  return RequireKernel(g, kOps[sums][swiglu][plan.tile == CoopmatTile::Wide], sums == kStored ? type : DType::F16,
                       "matmul");
}

// Where X rounded to f16 starts in a dequantization scratch of `scratch_bytes` (a multiple of 256
// bytes in, as any binding may start there), and so the room before it for the weights' chunks;
// 0 where there is none.
VkDeviceSize RoundedXOffset(VkDeviceSize scratch_bytes, uint32_t tokens, uint32_t cols) {
  const VkDeviceSize end = scratch_bytes / 256 * 256;
  return end > RoundedXBytes(tokens, cols) ? end - RoundedXBytes(tokens, cols) : 0;
}

// The row chunks a cooperative-matrix product of `w` dequantizes to f16 in a scratch of
// `scratch_bytes` (in the room before its rounded X, RoundedXOffset, or all of it where X comes
// rounded already: `x_rounded`) and then multiplies at `tokens` tokens, one at a time,
// DequantChunkRows long. With `swiglu`, chunks of the gate rows, each dequantized with the up rows
// of the same outputs after it. Empty where the product multiplies W's blocks as they are stored:
// F16 and BF16 weights, rows not of whole units, a scratch too small for one chunk, or up rows at
// an offset no binding can start at.
std::vector<RowSlice> DequantChunks(const DeviceInfo& device, const Matrix& w, uint32_t tokens,
                                    VkDeviceSize scratch_bytes, bool swiglu, bool x_rounded) {
  if (!DequantizesToF16(w.dtype, w.cols)) return {};
  if (!x_rounded) scratch_bytes = RoundedXOffset(scratch_bytes, tokens, w.cols);
  const uint32_t parts = swiglu ? 2 : 1;
  const uint32_t rows = w.rows / parts;
  const uint32_t step = kCoopmatDequantRows / parts;
  // Whole tiles' rows, and no more than one chunk of them all needs.
  const VkDeviceSize most_rows =
      std::min(scratch_bytes / (uint64_t{2} * w.cols * parts) / step * step, AlignUp(rows, step));
  const VkDeviceSize up_offset = w.offset + RowBytes(w.dtype, w.cols) * rows;
  if (most_rows == 0 || (swiglu && up_offset % BindingAlignment(device, w.dtype) != 0)) return {};
  const uint32_t chunk_rows = DequantChunkRows(rows, static_cast<uint32_t>(most_rows), swiglu, tokens);
  return SliceRows(device, Matrix{w.buffer, w.offset, w.dtype, rows, w.cols}, chunk_rows * RowBytes(w.dtype, w.cols));
}

// Whether MatMul of `a` runs as one matvec dispatch per binding-sized slice, one slice in all.
bool OneMatVec(const Graph& g, const MatMulArgs& a) {
  return a.tokens <= kMatVecMaxTokens && a.kernel.value_or(MatMulKernel::MatVec) == MatMulKernel::MatVec && !a.swiglu &&
         SliceRows(g.device().info(), a.w).size() == 1;
}

}  // namespace

void MatMul(Graph& g, const MatMulArgs& a, std::string_view label) {
  RecordMatMul(g, a, nullptr, label);
}

bool SwiGluNeedsScratch(const DeviceInfo& device, const Matrix& w) {
  return SliceRows(device, w).size() > 1;
}

bool MultipliesRoundedRows(const DeviceInfo& device, const Matrix& w, uint32_t tokens, VkDeviceSize dequant_bytes,
                           bool x_rounded) {
  return ChooseMatMulKernel(device, tokens) == MatMulKernel::CoopMat &&
         !DequantChunks(device, w, tokens, dequant_bytes, false, x_rounded).empty();
}

uint64_t SplitScratchBytes(const DeviceInfo& device, const Matrix& w, uint32_t tokens, VkDeviceSize dequant_bytes,
                           bool x_rounded) {
  if (ChooseMatMulKernel(device, tokens) != MatMulKernel::CoopMat) return 0;
  // Each chunk (or binding-sized slice) splits as if the scratch had no end.
  std::vector<RowSlice> pieces = DequantChunks(device, w, tokens, dequant_bytes, false, x_rounded);
  if (pieces.empty()) pieces = SliceRows(device, w);
  uint64_t bytes = 0;
  const bool rounded = DequantizesToF16(w.dtype, w.cols);
  for (const RowSlice& piece : pieces) bytes = std::max(bytes, CoopmatSplitBytes(piece.rows, w.cols, tokens, rounded));
  return bytes;
}

uint64_t RoundedXBytes(uint32_t tokens, uint32_t cols) {
  return AlignUp(uint64_t{2} * tokens * cols, 256);
}

uint64_t CoopmatSplitBytes(uint32_t rows, uint32_t cols, uint32_t tokens, bool rounded) {
  // With at least this room, MatMul's plan is the same: more room only adds split counts it would
  // not take, and less for the other tile only slows that tile's estimate.
  const CoopmatPlan plan =
      PlanCoopmat({.rows = rows, .cols = cols, .tokens = tokens, .rounded = rounded, .split_room = ~VkDeviceSize{0}});
  return plan.split_steps == 0 ? 0 : uint64_t{4} * CoopmatSplitCount(cols, plan.split_steps) * tokens * rows;
}

void MatMulRope(Graph& g, std::span<const MatMulArgs> parts, const RopeArgs& rope, std::string_view label,
                std::string_view rope_label) {
  Require(!parts.empty(), "matmul_rope", "no projection");
  RequireRope(rope);
  const bool fold = rope.head_dim % 4 == 0 && std::ranges::all_of(parts, [&](const MatMulArgs& a) {
                      return OneMatVec(g, a) && a.tokens == rope.tokens && a.w.rows % rope.head_dim == 0 &&
                             a.y_offset % rope.head_dim == 0;
                    });
  for (const MatMulArgs& part : parts) {
    Require(part.y.buffer == rope.qkv.buffer && part.y.offset == rope.qkv.offset, "matmul_rope",
            "the products must write the rotated rows");
    RecordMatMul(g, part, fold ? &rope : nullptr, label);
  }
  if (!fold) Rope(g, rope, rope_label);
}

bool CoopmatSumsUnpromoted(DType type, uint32_t cols) {
  return type == DType::F16 && cols <= kCoopmatUnpromotedCols;
}

bool DequantizesToF16(DType type, uint32_t cols) {
  return RoundedToF16(type) && cols % kMatVecUnitCols[static_cast<uint32_t>(type)] == 0;
}

void RegroupBlocks(Graph& g, const Matrix& w, std::string_view label) {
  Require(IsRegrouped(w.dtype), "regroup", fmt::format("{} blocks are not regrouped", DTypeName(w.dtype)));
  const uint64_t group_bytes = RegroupBytes(w.dtype);
  const uint64_t blocks = uint64_t{w.rows} * w.cols / BlockElements(w.dtype);
  const uint64_t groups = CeilDiv(blocks, uint64_t{QVK_REGROUP_BLOCKS});
  // Bindings of whole groups that start at allowed offsets (`align`, a whole number of groups),
  // each within the binding limit.
  const DeviceInfo& device = g.device().info();
  const uint64_t align = BindingAlignment(device, w.dtype);
  const uint64_t most = device.max_storage_buffer_range / align * (align / group_bytes);
  Require(w.offset % align == 0 && most > 0, "regroup", "the matrix does not start at a bindable whole group");
  Require(w.offset + MatrixBytes(w.dtype, w.rows, w.cols) <= w.buffer->size(), "regroup",
          "the matrix's buffer ends inside its last group of blocks");
  for (uint64_t first = 0; first < groups; first += most) {
    const uint64_t n = std::min(most, groups - first);
    const uint64_t n_blocks = std::min(n * QVK_REGROUP_BLOCKS, blocks - first * QVK_REGROUP_BLOCKS);
    g.Dispatch(
        KernelId::RegroupBlocks, {BufferRange(*w.buffer, w.offset + first * group_bytes, n * group_bytes)},
        push::RegroupPush{static_cast<uint32_t>(n_blocks), BlockBytes(w.dtype) / 2, RegroupScaleHalfword(w.dtype)},
        GridFor(n), label, {.bytes = 2 * n * group_bytes, .flops = 0});
  }
}

void RoundToF16(Graph& g, BufferRange x, uint32_t x_stride, uint32_t tokens, uint32_t cols, BufferRange y,
                std::string_view label) {
  Require(tokens > 0 && cols > 0 && x_stride >= cols, "round_f16", "rows of at least one column within X's rows");
  const uint64_t runs = uint64_t{tokens} * CeilDiv(cols, 8);
  Require(x.size >= (uint64_t{tokens - 1} * x_stride + cols) * 4 && y.size >= 16 * runs, "round_f16",
          "buffer too small");
  const KernelId kernel = KernelId::RoundF16;
  RequireFeatures(g, kernel);
  g.Dispatch(kernel, {x, y}, push::RoundF16Push{tokens, cols, x_stride},
             GridFor(CeilDiv(runs, Spec(kernel).local_size_x)), label,
             {.bytes = uint64_t{4} * tokens * cols + 16 * runs, .flops = 0});
}

void RoundToF16InPlace(Graph& g, BufferRange x, uint32_t tokens, uint32_t cols, std::string_view label) {
  Require(tokens > 0 && cols > 0 && cols % 8 == 0, "round_f16_in_place", "rows of whole runs of 8 columns");
  Require(x.size >= uint64_t{4} * tokens * cols, "round_f16_in_place", "buffer too small");
  const KernelId kernel = KernelId::RoundF16InPlace;
  RequireFeatures(g, kernel);
  // One workgroup a row: its runs are read before any of its halves are written (round_f16.comp).
  g.Dispatch(kernel, {x}, push::RoundF16Push{tokens, cols, cols}, GridFor(tokens), label,
             {.bytes = uint64_t{6} * tokens * cols, .flops = 0});
}

void DequantizeToF16(Graph& g, const Matrix& w, BufferRange y, std::string_view label,
                     std::optional<VkDeviceSize> then_offset) {
  Require(w.rows > 0 && w.cols > 0, "dequantize", "empty shape");
  Require(DequantizesToF16(w.dtype, w.cols), "dequantize",
          fmt::format("{} rows of {} columns are not dequantized to f16", DTypeName(w.dtype), w.cols));
  const uint32_t parts = then_offset ? 2 : 1;
  const uint64_t part_values = uint64_t{w.rows} * w.cols;
  Require(y.size >= 2 * parts * part_values, "dequantize", "Y too small");
  const VkDeviceSize row_bytes = RowBytes(w.dtype, w.cols);
  const VkDeviceSize first_end = w.offset + row_bytes * w.rows;
  Require(!then_offset || (*then_offset >= first_end && (*then_offset - first_end) % row_bytes == 0), "dequantize",
          "the second part's rows start at a whole row after the first's");
  const uint32_t gap_rows = then_offset ? static_cast<uint32_t>((*then_offset - first_end) / row_bytes) : 0;
  // Both parts and the rows between them in one binding, else a dispatch a part.
  const std::vector<RowSlice> slices =
      SliceRows(g.device().info(), Matrix{w.buffer, w.offset, w.dtype, parts * w.rows + gap_rows, w.cols});
  if (then_offset && slices.size() > 1) {
    DequantizeToF16(g, w, SubRange(y, 0, 2 * part_values), label);
    DequantizeToF16(g, Matrix{w.buffer, *then_offset, w.dtype, w.rows, w.cols},
                    SubRange(y, 2 * part_values, 2 * part_values), label);
    return;
  }
  Require(slices.size() == 1, "dequantize", "the weights do not fit one binding");
  const KernelId kernel = RequireKernel(g, KernelOp::DequantizeF16, w.dtype, "dequantize");
  const uint64_t units = parts * part_values / kMatVecUnitCols[static_cast<uint32_t>(w.dtype)];
  g.Dispatch(kernel, {slices[0].range, y}, push::DequantizeF16Push{parts * w.rows, w.cols, w.rows, gap_rows},
             GridFor(CeilDiv(units, Spec(kernel).local_size_x)), label,
             {.bytes = parts * (row_bytes * w.rows + 2 * part_values), .flops = 0});
}

// Whether a one-token product's RMSNorm runs as a dispatch of its own rather than inside the
// matvec. Inside it, every row group repeats X's side of the norm (X * norm weight, X's squares)
// for the rows it reads; a K-quant unit's row groups read X for two rows (QVK_MATVEC_SLOTS_FOR),
// and there that work outweighs a dispatch on a SwiGLU product of some size. On an H100, with its
// norm apart: 7B Q4_K_M's gate|up (136M weights) 2 545 -> 1 683 us a step over 28 layers, the
// rmsnorm dispatches 183 us, decode 177 -> 207 tokens/s; 1.5B Q4_K_M's (28M) decode 393 -> 399.
// The LM head too (no RoPE, 136-545M weights): its row groups repeat X's side for every two of
// 150 000 rows; apart, at 8 lanes a group, 1.5B Q4_K_M's took 115 + 5 us a step, folded 143, and
// 7B's 245 + 6 against 322 (session 33; session 26 had measured it apart at 689 us, the planner
// then giving it 2 lanes a group). Not q|k|v with RoPE folded in (7B: 89 us saved a step, more
// than that in rmsnorm dispatches): there a large K-quant q|k|v reads its input prescaled instead
// (RmsNormInput::prescaled), as gate|up does where the o product before stored it.
constexpr uint64_t kNormApartMinWeights = uint64_t{16} << 20;
bool NormApartFor(DType type, uint32_t tokens, uint64_t weights) {
  return tokens == 1 && MatVecSlots(type) == 2 && weights >= kNormApartMinWeights;
}

namespace {

bool NormApart(const MatMulArgs& a, bool rope) {
  return !rope && NormApartFor(a.w.dtype, a.tokens, uint64_t{a.w.rows} * a.w.cols);
}

void RecordMatMul(Graph& g, const MatMulArgs& a, const RopeArgs* rope, std::string_view label) {
  Require(a.tokens > 0 && a.w.rows > 0 && a.w.cols > 0, "matmul", "empty shape");
  Require(!a.swiglu || a.w.rows % 2 == 0, "matmul", "SwiGLU needs as many up rows as gate rows");
  Require(!a.swiglu || (!a.bias && !a.residual && a.y_offset == 0), "matmul",
          "a SwiGLU output takes no bias, residual or Y offset");
  const uint32_t outputs = a.swiglu ? a.w.rows / 2 : a.w.rows;
  const uint32_t x_stride = a.x_stride ? a.x_stride : a.w.cols;
  const uint32_t y_stride = a.y_stride ? a.y_stride : outputs;
  // Bytes an element of X: halves where it comes rounded to f16.
  const VkDeviceSize x_element = a.x_rounded ? 2 : 4;
  Require(a.x.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * x_stride + a.w.cols) * x_element, "matmul",
          "X too small");
  Require(a.y_offset + outputs <= y_stride, "matmul", "outputs past the end of a Y row");
  Require(a.y.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * y_stride + a.y_offset + outputs) * 4, "matmul",
          "Y too small");
  Require(!a.bias || a.bias->size >= (a.y_offset + outputs) * 4ull, "matmul", "bias too small");
  Require(!a.residual || a.residual->size >= a.y.size, "matmul", "residual smaller than Y");
  Require(!a.norm || a.norm->weight.size >= a.w.cols * 4ull, "matmul", "norm weight too small");
  Require(!a.split_scratch ||
              (Apart(*a.split_scratch, a.x) && Apart(*a.split_scratch, a.y) &&
               (!a.residual || Apart(*a.split_scratch, *a.residual)) && (!a.bias || Apart(*a.split_scratch, *a.bias))),
          "matmul", "the split scratch must not overlap X, Y, the bias or the residual");
  Require(!a.dequant_scratch || (Apart(*a.dequant_scratch, a.x) && Apart(*a.dequant_scratch, a.y) &&
                                 (!a.split_scratch || Apart(*a.dequant_scratch, *a.split_scratch))),
          "matmul", "the dequantization scratch must not overlap X, Y or the split scratch");
  const DeviceInfo& device = g.device().info();
  const MatMulKernel path = a.kernel.value_or(ChooseMatMulKernel(device, a.tokens));
  Require(path != MatMulKernel::MatVec || a.tokens <= kMatVecMaxTokens, "matmul",
          fmt::format("matvec takes at most {} tokens", kMatVecMaxTokens));
  if (path == MatMulKernel::CoopMat && !device.coopmat_f16) {
    throw Error(fmt::format("matmul: the cooperative-matrix kernel cannot run on {}: {}", device.name,
                            device.coopmat_f16_problem));
  }
  const bool matvec = path == MatMulKernel::MatVec;
  const std::vector<RowSlice> slices = SliceRows(device, a.w);

  if (a.swiglu && slices.size() > 1) {  // gate and up products side by side, then the SwiGLU
    Require(a.swiglu->scratch && a.swiglu->scratch->size >= static_cast<VkDeviceSize>(a.tokens) * a.w.rows * 4,
            "matmul", "a SwiGLU of weights bound in several slices needs a scratch of both products");
    MatMulArgs products = a;
    products.y = *a.swiglu->scratch;
    products.y_stride = a.w.rows;
    products.swiglu.reset();
    RecordMatMul(g, products, nullptr, label);
    RecordSwiGlu(g, *a.swiglu->scratch, a.y, a.tokens, outputs, y_stride, fmt::format("{}_swiglu", label));
    return;
  }
  // A prefill's rows rounded to f16 first, in chunks (DequantChunks), whose products read X rounded
  // to f16 once (normalized on the way where a norm is folded in).
  const std::vector<RowSlice> chunks =
      path == MatMulKernel::CoopMat && a.dequant_scratch
          ? DequantChunks(device, a.w, a.tokens, a.dequant_scratch->size, a.swiglu.has_value(), a.x_rounded)
          : std::vector<RowSlice>{};
  Require(!a.x_rounded || (!chunks.empty() && !a.norm && x_stride % 8 == 0), "matmul",
          "X rounded to f16 is read only by products of rows dequantized to f16 (MultipliesRoundedRows), with no "
          "norm and rows of whole runs of 8");
  const bool one_token = a.tokens == 1;
  // X already times the norm's weight, where one token's matvec reads it (elsewhere X is normalized
  // as without it: the product before stored X too).
  const bool prescaled = a.norm && a.norm->prescaled && matvec && one_token;
  Require(!prescaled || (!a.norm->store && a.norm->scratch.size >= a.w.cols * 4ull), "matmul",
          "a prescaled input is read from a norm scratch of w.cols floats, and never stored");
  Require(!a.scaled_out || (matvec && one_token && !a.norm && !a.swiglu && !rope), "matmul",
          "only one token's matvec without a norm, SwiGLU or RoPE stores a scaled output");
  Require(!a.scaled_out || (a.scaled_out->weight.size >= (a.y_offset + outputs) * 4ull &&
                            a.scaled_out->out.size >= a.y.size && Apart(a.scaled_out->out, a.x) &&
                            Apart(a.scaled_out->out, a.y) && (!a.residual || Apart(a.scaled_out->out, *a.residual))),
          "matmul",
          "the scaled output and its weight must hold Y's rows, and the output lie apart from X, Y and the residual");
  Require(!a.route || (matvec && one_token && !rope && !a.swiglu && !a.scaled_out && !a.bias && !a.residual &&
                       !prescaled && a.y_offset == 0 && slices.size() == 1),
          "matmul",
          "only one token's matvec makes the router's choice, with no bias, residual, SwiGLU, scaled output, Y "
          "offset or prescaled input");
  if (a.route) {
    RequireChoice(a.w.rows, a.route->k, "matmul: the router");
    Require(a.route->ids.size >= 4ull * a.route->k && a.route->weights.size >= 4ull * a.route->k &&
                a.route->counter.size >= 4,
            "matmul", "the router's ids and weights must hold k, its counter one");
  }
  // A norm outside the matvec (a dispatch of its own, or the one that rounds a prefill's X to f16)
  // reads X's rows whole.
  const bool norm_apart = a.norm && !prescaled && (!matvec || NormApart(a, rope != nullptr));
  Require(!norm_apart || x_stride == a.w.cols, "matmul", "a normalized input needs X rows of w.cols floats");
  if (norm_apart && chunks.empty()) {  // the normalized rows first
    RmsNorm(g, a.x, a.norm->weight, a.norm->scratch, a.tokens, a.w.cols, a.norm->eps, fmt::format("{}_norm", label));
    MatMulArgs normalized = a;
    normalized.x = a.norm->scratch;
    normalized.norm.reset();
    RecordMatMul(g, normalized, rope, label);
    return;
  }

  const bool normalizes = a.norm && !prescaled;  // inside the matvec's row groups
  const KernelOp op = rope && one_token             ? (prescaled ? KernelOp::MatVecRopePrescaled : KernelOp::MatVecRope)
                      : rope                        ? KernelOp::MatVecRopeTokens
                      : a.route                     ? KernelOp::MatVecRoute
                      : matvec && one_token         ? (normalizes     ? KernelOp::MatVecNorm
                                                       : prescaled    ? KernelOp::MatVecPrescaled
                                                       : a.scaled_out ? KernelOp::MatVecScaledOut
                                                                      : KernelOp::MatVec)
                      : matvec                      ? KernelOp::MatVecTokens
                      : path == MatMulKernel::Tiled ? KernelOp::MatMul
                                                    : KernelOp::MatMulCoopmat;
  const KernelId kernel = RequireKernel(g, op, a.w.dtype, "matmul");
  Require(!a.norm || !a.norm->store || op == KernelOp::MatVecNorm || op == KernelOp::MatVecRoute, "matmul",
          "only one token's matvec stores its normalized input");
  Require(!a.norm || !a.norm->store || a.norm->scratch.size >= a.w.cols * 4ull, "matmul", "norm scratch too small");
  const bool store_kv = rope && rope->k_cache.has_value();
  const uint32_t flags = (a.bias ? QVK_FLAG_BIAS : 0u) | (a.residual ? QVK_FLAG_RESIDUAL : 0u) |
                         (normalizes ? QVK_FLAG_NORM : 0u) | (a.swiglu ? QVK_FLAG_SWIGLU : 0u) |
                         (store_kv ? QVK_FLAG_STORE_KV : 0u);
  // Absent optional inputs are bound to X, which the kernel then never reads.
  const BufferRange bias = a.bias.value_or(a.x);
  const BufferRange residual = a.residual.value_or(a.x);
  // The weights of `rows` rows with their block scales (not a binding's padding), X (and the norm
  // weight), Y, and the bias and residual rows it adds; a SwiGLU output reads two product rows per
  // output.
  const VkDeviceSize row_bytes = RowBytes(a.w.dtype, a.w.cols);
  const auto cost = [&](uint32_t rows) {
    const uint64_t products = uint64_t{a.tokens} * rows;
    const uint64_t written = a.swiglu ? products / 2 : products;
    return DispatchCost{.bytes = row_bytes * rows + x_element * a.tokens * a.w.cols +
                                 (a.norm ? uint64_t{4} * a.w.cols : 0) + 4 * written * (a.residual ? 2 : 1) +
                                 (a.bias ? uint64_t{4} * rows : 0),
                        .flops = 2 * products * a.w.cols};
  };
  if (!matvec) {
    // Records the GEMM of `rows` weight rows bound at `w` (with a SwiGLU: gate rows, then as many up
    // rows), whose outputs start at Y column a.y_offset + first_row: one dispatch, or on matrix
    // units as PlanCoopmat plans it, one per split along K and their sum. `dequantized`: W is
    // another type's rows rounded to f16 (CoopmatKernel), whose X is `x` rounded to f16 too;
    // `x_row_stride` elements (floats or halves) lie between X's rows.
    const auto gemm = [&](const BufferRange& w, const BufferRange& x, uint32_t x_row_stride, bool dequantized,
                          uint32_t first_row, uint32_t rows, const DispatchCost& tile_cost) {
      // The tiled kernel: 64 features (a SwiGLU's: 32 outputs' gate rows, then their up rows) by 64
      // tokens a workgroup, unsplit.
      KernelId tile_kernel = kernel;
      Groups tiles{a.swiglu ? CeilDiv(rows / 2, kMatMulTile / 2) : CeilDiv(rows, kMatMulTile),
                   CeilDiv(a.tokens, kMatMulTile), 1};
      uint32_t split_steps = 0;
      if (path == MatMulKernel::CoopMat) {
        const CoopmatPlan plan =
            PlanCoopmat({.rows = rows,
                         .cols = a.w.cols,
                         .tokens = a.tokens,
                         .swiglu = a.swiglu.has_value(),
                         .rounded = dequantized,
                         .split_room = a.split_scratch ? std::optional(a.split_scratch->size) : std::nullopt,
                         .tile = a.coopmat_tile});
        tiles = Groups{plan.feature_tiles, plan.token_tiles, 1};
        split_steps = plan.split_steps;
        tile_kernel = CoopmatKernel(g, plan, a.w.dtype, a.w.cols, dequantized, a.swiglu.has_value());
      }
      if (split_steps == 0) {
        const push::MatMulPush push{rows, a.w.cols, a.tokens, a.y_offset + first_row, x_row_stride, y_stride, flags, 0};
        g.Dispatch(tile_kernel, {w, x, a.y, bias, residual}, push, tiles, label, tile_cost);
        return;
      }
      // Each split's raw sums into its plane of the scratch, then the planes summed in order with
      // the bias and residual.
      const uint32_t splits = CoopmatSplitCount(a.w.cols, split_steps);
      const BufferRange planes(*a.split_scratch->buffer, a.split_scratch->offset,
                               VkDeviceSize{4} * splits * a.tokens * rows);
      const push::MatMulPush push{rows, a.w.cols, a.tokens, 0, x_row_stride, rows, 0, split_steps};
      g.Dispatch(tile_kernel, {w, x, planes, a.x, a.x}, push, Groups{tiles.x, tiles.y, splits}, label, tile_cost);
      const uint64_t outputs_count = uint64_t{a.tokens} * rows;
      g.Dispatch(KernelId::MatMulSplitSum, {planes, a.y, bias, residual},
                 push::MatMulSplitSumPush{rows, a.tokens, splits, a.y_offset + first_row, y_stride, flags},
                 GridFor(CeilDiv(outputs_count, Spec(KernelId::MatMulSplitSum).local_size_x)),
                 fmt::format("{}_split_sum", label),
                 {.bytes = 4 * outputs_count * (splits + (a.residual ? 2 : 1)), .flops = outputs_count * splits});
    };
    const uint64_t f16_row_bytes = uint64_t{2} * a.w.cols;
    const VkDeviceSize up_offset = row_bytes * outputs;  // of a SwiGLU's up rows
    // X rounded to f16 once, for every chunk's product: by the norm where one is folded in, else by
    // round_f16, unless it comes so (x_rounded: the MLP's m, rounded in place).
    BufferRange x_half = a.x;
    const uint32_t x_half_stride = a.x_rounded ? x_stride : a.w.cols;
    if (!chunks.empty() && !a.x_rounded) {
      x_half = SubRange(*a.dequant_scratch, RoundedXOffset(a.dequant_scratch->size, a.tokens, a.w.cols),
                        RoundedXBytes(a.tokens, a.w.cols));
      if (a.norm) {
        RmsNormToF16(g, a.x, a.norm->weight, x_half, a.tokens, a.w.cols, a.norm->eps, fmt::format("{}_norm", label));
      } else {
        RoundToF16(g, a.x, x_stride, a.tokens, a.w.cols, x_half, fmt::format("{}_x_f16", label));
      }
    }
    for (const RowSlice& chunk : chunks) {
      // The chunk's rows rounded to f16 (a SwiGLU's gate rows, then their up rows), then multiplied.
      const uint32_t rows = a.swiglu ? 2 * chunk.rows : chunk.rows;
      const BufferRange f16 = SubRange(*a.dequant_scratch, 0, rows * f16_row_bytes);
      DequantizeToF16(g, Matrix{chunk.range.buffer, chunk.range.offset, a.w.dtype, chunk.rows, a.w.cols}, f16,
                      fmt::format("{}_dequantize", label),
                      a.swiglu ? std::optional(chunk.range.offset + up_offset) : std::nullopt);
      DispatchCost f16_cost = cost(rows);
      f16_cost.bytes += f16.size - row_bytes * rows;  // it reads the f16 weights, not the blocks
      gemm(f16, x_half, x_half_stride, /*dequantized=*/true, chunk.first_row, rows, f16_cost);
    }
    if (chunks.empty()) {
      for (const RowSlice& slice : slices)
        gemm(slice.range, a.x, x_stride, /*dequantized=*/false, slice.first_row, slice.rows, cost(slice.rows));
    }
    return;
  }
  // X, and what the norm_weight binding holds: the norm's weight, or where X is prescaled the
  // unscaled X whose squares make 1 / rms, or the scaled output's weight.
  const BufferRange x = prescaled ? a.norm->scratch : a.x;
  const BufferRange norm_weight = prescaled ? a.x : a.norm ? a.norm->weight : a.scaled_out ? a.scaled_out->weight : a.x;
  // A SwiGLU output reads a gate and an up row, a rotated one a pair of rows of a head.
  const bool paired = a.swiglu || rope;
  for (const RowSlice& slice : slices) {
    const uint32_t slice_outputs = paired ? slice.rows / 2 : slice.rows;
    const MatVecSplit split = PlanMatVec(device, {.type = a.w.dtype,
                                                  .rows = slice.rows,
                                                  .cols = a.w.cols,
                                                  .x_stride = x_stride,
                                                  .tokens = a.tokens,
                                                  .norm = normalizes,
                                                  .paired = paired});
    push::MatVecPush push{.rows = slice_outputs,
                          .cols = a.w.cols,
                          .tokens = a.tokens,
                          .col_offset = a.y_offset + slice.first_row,
                          .x_stride = x_stride,
                          .y_stride = y_stride,
                          .flags = flags,
                          .lanes = split.lanes,
                          .group_rows = split.group_rows,
                          .eps = a.norm ? a.norm->eps : 0.0f,
                          .head_dim = 0,
                          .k_first = 0,
                          .v_first = 0,
                          .capacity = 0,
                          .attention_factor = 1.0f};
    const Groups grid = GridFor(split.workgroups);
    // One token's slice binds only the Y columns it writes (and the bias of those), where the
    // bindings' alignment allows: so that the products of a projection stored in parts of two
    // types (q|k and v, gate and up) run side by side, where bound whole each would wait on the one
    // before it. Not where it adds a residual or stores a scaled output (read and written by Y's
    // column); with RoPE, where the slice starts at a projection's first row (q, k or v). Columns
    // (col_offset, and RoPE's k_first and v_first) then count from the bindings' start.
    const uint32_t k_first = rope ? rope->n_heads * rope->head_dim : 0;
    const uint32_t v_first = rope ? (rope->n_heads + rope->n_kv_heads) * rope->head_dim : 0;
    const uint32_t first_col = push.col_offset;
    const VkDeviceSize first_byte = VkDeviceSize{4} * first_col;
    const VkDeviceSize written_bytes = VkDeviceSize{4} * (a.swiglu ? slice_outputs : slice.rows);
    const auto aligned = [&](const BufferRange& r) {
      return (r.offset + first_byte) % device.storage_offset_alignment == 0;
    };
    const bool narrow = one_token && !a.residual && !a.scaled_out &&
                        (!rope || first_col <= k_first || first_col == v_first) && aligned(a.y) &&
                        (!a.bias || aligned(*a.bias));
    const uint32_t shift = narrow ? first_col : 0;
    const BufferRange y = narrow ? SubRange(a.y, first_byte, written_bytes) : a.y;
    const BufferRange slice_bias = narrow && a.bias ? SubRange(*a.bias, first_byte, written_bytes) : bias;
    push.col_offset -= shift;
    if (!rope && (op == KernelOp::MatVecNorm || op == KernelOp::MatVecRoute)) {
      // The first slice stores the normalized input where asked; otherwise Y stands in for that
      // binding, which the kernel then never writes.
      const bool store_normed = a.norm && a.norm->store && slice.first_row == 0;
      if (store_normed) push.flags |= QVK_FLAG_STORE_NORMED;
      DispatchCost normed_cost = cost(slice.rows);
      normed_cost.bytes += store_normed ? uint64_t{4} * a.w.cols : 0;
      const BufferRange normed = store_normed ? a.norm->scratch : y;
      if (!a.route) {
        g.Dispatch(kernel, {slice.range, x, y, slice_bias, residual, norm_weight, normed}, push, grid, label,
                   normed_cost);
        continue;
      }
      // The last workgroup reads the logits back and writes the choice.
      const RouteOutput& route = *a.route;
      normed_cost.bytes += uint64_t{4} * slice.rows + uint64_t{8} * route.k;
      g.Dispatch(
          kernel,
          {slice.range, x, y, slice_bias, residual, norm_weight, normed, route.ids, route.weights, route.counter},
          push::MatVecRoutePush{push, {1, slice.rows, route.k, route.normalize ? QVK_FLAG_NORM_TOPK : 0u}}, grid, label,
          normed_cost);
      continue;
    }
    if (a.scaled_out) {
      DispatchCost scaled_cost = cost(slice.rows);
      scaled_cost.bytes += uint64_t{8} * slice.rows;  // the weight read, the scaled output written
      g.Dispatch(kernel, {slice.range, x, a.y, bias, residual, norm_weight, a.scaled_out->out}, push, grid, label,
                 scaled_cost);
      continue;
    }
    if (!rope) {
      g.Dispatch(kernel, {slice.range, x, y, slice_bias, residual, norm_weight}, push, grid, label, cost(slice.rows));
      continue;
    }
    push.head_dim = rope->head_dim;
    push.capacity = rope->capacity;
    push.attention_factor = rope->attention_factor;
    push.k_first = k_first - std::min(k_first, shift);
    push.v_first = v_first - shift;
    // Only the cache the slice stores into is bound: Y stands in for the other (for both without a
    // cache), never written.
    const bool k_rows = first_col < v_first && first_col + slice.rows > k_first;
    const bool v_rows = first_col + slice.rows > v_first;
    // The cost adds the positions, the frequencies and, with the cache, the slice's k and v rows
    // stored as f16.
    const uint32_t kv_rows = slice.rows - std::min(slice.rows, k_first - std::min(k_first, first_col));
    DispatchCost rope_cost = cost(slice.rows);
    rope_cost.bytes +=
        uint64_t{4} * a.tokens + uint64_t{2} * rope->head_dim + (store_kv ? uint64_t{2} * a.tokens * kv_rows : 0);
    g.Dispatch(kernel,
               {slice.range, x, y, slice_bias, residual, norm_weight, rope->positions, rope->inv_freq,
                store_kv && k_rows ? *rope->k_cache : y, store_kv && v_rows ? *rope->v_cache : y},
               push, grid, label, rope_cost);
  }
}

}  // namespace

// --- norms and RoPE --------------------------------------------------------------------------

namespace {
// RmsNorm and RmsNormToF16: Y of `y_bytes` a value.
void RecordRmsNorm(Graph& g, KernelId kernel, uint32_t y_bytes, BufferRange x, BufferRange weight, BufferRange y,
                   uint32_t tokens, uint32_t cols, float eps, std::string_view label) {
  Require(tokens > 0 && cols > 0, "rmsnorm", "empty shape");
  RequireFeatures(g, kernel);
  const uint64_t elements = uint64_t{tokens} * cols;
  Require(x.size >= elements * 4 && y.size >= elements * y_bytes && weight.size >= cols * 4ull, "rmsnorm",
          "buffer too small");
  g.Dispatch(kernel, {x, weight, y}, push::RmsNormPush{cols, cols, cols, eps}, GridFor(tokens), label,
             {.bytes = (4 + y_bytes) * elements + 4 * cols, .flops = 4 * elements});
}
}  // namespace

void RmsNorm(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols, float eps,
             std::string_view label) {
  RecordRmsNorm(g, KernelId::RmsNorm, 4, x, weight, y, tokens, cols, eps, label);
}

void ScaleByWeight(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols,
                   std::string_view label) {
  RecordRmsNorm(g, KernelId::ScaleByWeight, 4, x, weight, y, tokens, cols, 0.0f, label);
}

void RmsNormToF16(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols, float eps,
                  std::string_view label) {
  RecordRmsNorm(g, KernelId::RmsNormF16, 2, x, weight, y, tokens, cols, eps, label);
}

namespace {

// Rope's push constants and cost, which HeadNormRope shares.
push::RopePush RopePushOf(const RopeArgs& a) {
  return {a.tokens,
          a.n_heads,
          a.n_kv_heads,
          a.head_dim,
          (a.n_heads + 2 * a.n_kv_heads) * a.head_dim,
          a.n_heads * a.head_dim,
          (a.n_heads + a.n_kv_heads) * a.head_dim,
          a.capacity,
          a.attention_factor,
          a.k_cache.has_value() ? QVK_FLAG_STORE_KV : 0u};
}

DispatchCost RopeCost(const RopeArgs& a) {
  // q and k rotated in place (read and written, 3 flops an element); with the cache, v read and
  // k and v stored as f16.
  const uint64_t rotated = uint64_t{a.tokens} * (a.n_heads + a.n_kv_heads) * a.head_dim;
  const uint64_t kv_elements = uint64_t{a.tokens} * a.n_kv_heads * a.head_dim;
  return {.bytes = 8 * rotated + (a.k_cache.has_value() ? 4 * kv_elements + 2 * 2 * kv_elements : 0) +
                   uint64_t{4} * a.tokens + uint64_t{2} * a.head_dim,
          .flops = 3 * rotated};
}

}  // namespace

void Rope(Graph& g, const RopeArgs& a, std::string_view label) {
  RequireRope(a);
  // Without a cache the cache bindings are never written; QKV stands in for them.
  const BufferRange k_cache = a.k_cache.value_or(a.qkv);
  const BufferRange v_cache = a.v_cache.value_or(a.qkv);
  const uint64_t items = static_cast<uint64_t>(a.tokens) * (a.n_heads + 2 * a.n_kv_heads) * (a.head_dim / 2);
  g.Dispatch(KernelId::Rope, {a.qkv, a.positions, a.inv_freq, k_cache, v_cache}, RopePushOf(a),
             GridFor(CeilDiv(items, Spec(KernelId::Rope).local_size_x)), label, RopeCost(a));
}

void HeadNormRope(Graph& g, const RopeArgs& rope, const HeadNormInput& norm, std::string_view label) {
  RequireRope(rope);
  Require(norm.weight.size >= uint64_t{8} * rope.head_dim, "head_norm_rope", "q_norm | k_norm too small");
  const BufferRange k_cache = rope.k_cache.value_or(rope.qkv);
  const BufferRange v_cache = rope.v_cache.value_or(rope.qkv);
  // One workgroup per token and head slot; the norm reads each q and k element once more (its sum
  // of squares, 2 flops) and scales it (2 flops), and reads the two weight rows.
  const uint64_t slots = uint64_t{rope.tokens} * (rope.n_heads + 2 * rope.n_kv_heads);
  const uint64_t normed = uint64_t{rope.tokens} * (rope.n_heads + rope.n_kv_heads) * rope.head_dim;
  DispatchCost cost = RopeCost(rope);
  cost.bytes += uint64_t{8} * rope.head_dim;
  cost.flops += 4 * normed;
  g.Dispatch(KernelId::HeadNormRope, {rope.qkv, rope.positions, rope.inv_freq, k_cache, v_cache, norm.weight},
             push::HeadNormRopePush{RopePushOf(rope), norm.eps}, GridFor(slots), label, cost);
}

void MoeRoute(Graph& g, BufferRange logits, BufferRange ids, BufferRange weights, uint32_t tokens, uint32_t experts,
              uint32_t k, bool normalize, std::string_view label) {
  Require(tokens > 0, "moe_route", "no tokens");
  RequireChoice(experts, k, "moe_route");
  Require(logits.size >= uint64_t{4} * tokens * experts && ids.size >= uint64_t{4} * tokens * k &&
              weights.size >= uint64_t{4} * tokens * k,
          "moe_route", "buffer too small");
  const uint64_t read = uint64_t{tokens} * experts;
  g.Dispatch(KernelId::MoeRoute, {logits, ids, weights},
             push::MoeRoutePush{tokens, experts, k, normalize ? QVK_FLAG_NORM_TOPK : 0u}, GridFor(tokens), label,
             {.bytes = 4 * read + uint64_t{8} * tokens * k, .flops = read * (3 + k)});
}

// --- mixture of experts ----------------------------------------------------------------------

namespace {

// The expert kernels bind every expert of a projection at once: their matrix must fit one binding.
BufferRange ExpertsBinding(const Graph& g, const Matrix& w, std::string_view op) {
  const std::vector<RowSlice> slices = SliceRows(g.device().info(), w);
  if (slices.size() != 1) {
    throw Error(fmt::format("{}: the experts' {} x {} {} matrix is larger than one storage binding of {}", op, w.rows,
                            w.cols, DTypeName(w.dtype), g.device().info().name));
  }
  return slices[0].range;
}

// matvec_experts for `items` dispatch rows of `outputs` outputs each (SwiGLU: pairs of rows). The
// work split is PlanMatVec's for all items' rows as one product, which is how they run: one
// dispatch, each item's row groups along x, the items along y.
struct ExpertsMatVecPlan {
  push::MatVecExpertsPush push;
  Groups grid;
};
ExpertsMatVecPlan PlanExpertsMatVec(const DeviceInfo& device, DType type, const push::ExpertsPush& experts,
                                    uint32_t cols, uint32_t items, bool swiglu, uint32_t y_stride, uint32_t y_offset,
                                    uint32_t flags) {
  const MatVecSplit split = PlanMatVec(device, {.type = type,
                                                .rows = items * experts.expert_rows,
                                                .cols = cols,
                                                .x_stride = cols,
                                                .tokens = 1,
                                                .norm = (flags & QVK_FLAG_NORM) != 0,
                                                .paired = swiglu});
  const uint32_t outputs = swiglu ? experts.expert_rows / 2 : experts.expert_rows;
  const uint32_t group_outputs = swiglu ? split.group_rows / 2 : split.group_rows;
  const uint32_t wg = Spec(KernelFor(KernelOp::MatVecExperts, type)).local_size_x;
  return {.push = {.matvec = {.rows = outputs,
                              .cols = cols,
                              .tokens = 1,
                              .col_offset = y_offset,
                              .x_stride = cols,
                              .y_stride = y_stride,
                              .flags = flags | (swiglu ? QVK_FLAG_SWIGLU : 0u),
                              .lanes = split.lanes,
                              .group_rows = split.group_rows,
                              .eps = 0.0f,
                              .head_dim = 0,
                              .k_first = 0,
                              .v_first = 0,
                              .capacity = 0,
                              .attention_factor = 1.0f},
                   .experts = experts},
          .grid = Groups{CeilDiv(outputs, wg / split.lanes * group_outputs), items, 1}};
}

}  // namespace

void GroupByExpert(Graph& g, BufferRange ids, uint32_t pairs, uint32_t experts, const ExpertGroups& groups,
                   std::string_view label) {
  Require(pairs > 0 && experts > 0 && experts <= QVK_MAX_EXPERTS, "moe_group",
          fmt::format("1 to {} experts and at least one pair", QVK_MAX_EXPERTS));
  Require(ids.size >= uint64_t{4} * pairs && groups.sorted.size >= uint64_t{4} * pairs &&
              groups.offsets.size >= uint64_t{4} * (experts + 1),
          "moe_group", "buffer too small");
  g.Dispatch(KernelId::MoeGroup, {ids, groups.offsets, groups.sorted}, push::MoeGroupPush{pairs, experts}, Groups{},
             label, {.bytes = uint64_t{4} * (3 * pairs + experts + 1), .flops = 0});
}

uint64_t ExpertsRoundedXBytes(const DeviceInfo& device, DType type, uint32_t cols, uint32_t x_rows, uint32_t tokens) {
  if (ChooseMatMulKernel(device, tokens) != MatMulKernel::CoopMat || !RoundedToF16(type)) return 0;
  return uint64_t{2} * x_rows * AlignUp(cols, 8);
}

void ExpertsMatMul(Graph& g, const ExpertsMatMulArgs& a, std::string_view label) {
  Require(a.tokens > 0 && a.k > 0 && a.k <= QVK_MAX_SEGMENTS && a.expert_rows > 0 && a.w.cols > 0 &&
              a.w.rows % a.expert_rows == 0,
          "experts_matmul",
          fmt::format("W must stack whole experts of expert_rows rows, and k be 1 to {}", QVK_MAX_SEGMENTS));
  Require(!a.swiglu || (a.expert_rows % 2 == 0 && a.y_offset == 0), "experts_matmul",
          "SwiGLU needs as many up rows as gate rows and no Y offset");
  const uint32_t pairs = a.tokens * a.k;
  const uint32_t experts = a.w.rows / a.expert_rows;
  const uint32_t outputs = a.swiglu ? a.expert_rows / 2 : a.expert_rows;
  const uint32_t y_stride = a.y_stride ? a.y_stride : outputs;
  Require(a.y_offset + outputs <= y_stride, "experts_matmul", "outputs past the end of a Y row");
  Require(a.x.size >= uint64_t{4} * (a.x_per_pair ? pairs : a.tokens) * a.w.cols, "experts_matmul", "X too small");
  Require(
      a.ids.size >= uint64_t{4} * pairs && a.y.size >= uint64_t{4} * ((pairs - 1) * y_stride + a.y_offset + outputs),
      "experts_matmul", "buffer too small");
  const BufferRange w = ExpertsBinding(g, a.w, "experts_matmul");
  const DeviceInfo& device = g.device().info();
  const MatMulKernel path = a.kernel.value_or(ChooseMatMulKernel(device, a.tokens));
  Require(path != MatMulKernel::MatVec || a.tokens <= kMatVecMaxTokens, "experts_matmul",
          fmt::format("matvec takes at most {} tokens", kMatVecMaxTokens));
  if (path == MatMulKernel::CoopMat && !device.coopmat_f16) {
    throw Error(fmt::format("experts_matmul: the cooperative-matrix kernel cannot run on {}: {}", device.name,
                            device.coopmat_f16_problem));
  }
  const uint64_t expert_bytes = RowBytes(a.w.dtype, a.w.cols) * a.expert_rows;
  const uint64_t products = uint64_t{pairs} * a.expert_rows;
  const uint64_t x_rows = a.x_per_pair ? pairs : a.tokens;
  const push::ExpertsPush experts_push{a.expert_rows, 1, a.x_per_pair ? 1 : a.k};
  Require(!a.norm || a.norm->weight.size >= a.w.cols * 4ull, "experts_matmul", "norm weight too small");

  if (path == MatMulKernel::MatVec) {
    // Each pair reads its expert's rows (at most `pairs` experts' bytes) and its X row, which a
    // folded norm scales on the way.
    const KernelId kernel = RequireKernel(g, KernelOp::MatVecExperts, a.w.dtype, "experts_matmul");
    ExpertsMatVecPlan plan = PlanExpertsMatVec(device, a.w.dtype, experts_push, a.w.cols, pairs, a.swiglu, y_stride,
                                               a.y_offset, a.norm ? QVK_FLAG_NORM : 0u);
    plan.push.matvec.eps = a.norm ? a.norm->eps : 0.0f;
    const BufferRange norm_weight = a.norm ? a.norm->weight : a.x;
    const DispatchCost cost{.bytes = pairs * expert_bytes + uint64_t{4} * (x_rows * a.w.cols + pairs * (outputs + 1)) +
                                     (a.norm ? uint64_t{4} * a.w.cols : 0),
                            .flops = 2 * products * a.w.cols};
    g.Dispatch(kernel, {w, a.x, a.y, a.x, a.x, norm_weight, a.ids, a.x, a.x, a.x}, plan.push, plan.grid, label, cost);
    return;
  }
  if (a.norm) {  // the normalized rows first
    RmsNorm(g, a.x, a.norm->weight, a.norm->scratch, static_cast<uint32_t>(x_rows), a.w.cols, a.norm->eps,
            fmt::format("{}_norm", label));
    ExpertsMatMulArgs normalized = a;
    normalized.x = a.norm->scratch;
    normalized.norm.reset();
    normalized.kernel = path;
    ExpertsMatMul(g, normalized, label);
    return;
  }
  Require(a.groups.has_value(), "experts_matmul",
          fmt::format("{} tokens need their pairs grouped by expert (GroupByExpert)", a.tokens));
  Require(a.groups->offsets.size >= uint64_t{4} * (experts + 1) && a.groups->sorted.size >= uint64_t{4} * pairs,
          "experts_matmul", "expert groups too small");
  const bool coopmat = path == MatMulKernel::CoopMat;
  const KernelId kernel =
      RequireKernel(g,
                    coopmat ? (a.swiglu ? KernelOp::MatMulCoopmatExpertsSwiGlu : KernelOp::MatMulCoopmatExperts)
                            : KernelOp::MatMulExperts,
                    a.w.dtype, "experts_matmul");
  const uint32_t tile_rows = coopmat ? QVK_COOPMAT_WIDE_ROWS : kMatMulTile;
  const uint32_t tile_tokens = coopmat ? QVK_COOPMAT_TOKENS : kMatMulTile;
  // X rounded to f16 once, where the kernel reads it so (ExpertsRoundedXBytes).
  BufferRange x = a.x;
  uint32_t x_stride = a.w.cols;
  uint64_t x_bytes = uint64_t{4} * x_rows * a.w.cols;
  if (coopmat && RoundedToF16(a.w.dtype)) {
    x_stride = static_cast<uint32_t>(AlignUp(a.w.cols, 8));
    x_bytes = uint64_t{2} * x_rows * x_stride;
    Require(a.x_f16.has_value() && a.x_f16->size >= x_bytes, "experts_matmul",
            fmt::format("{} experts on matrix units need room for X rounded to f16 (ExpertsRoundedXBytes)",
                        DTypeName(a.w.dtype)));
    x = SubRange(*a.x_f16, 0, x_bytes);
    RoundToF16(g, a.x, a.w.cols, static_cast<uint32_t>(x_rows), a.w.cols, x, fmt::format("{}_x_f16", label));
  }
  const push::MatMulExpertsPush push{
      .matmul = {a.expert_rows, a.w.cols, pairs, a.y_offset, x_stride, y_stride, a.swiglu ? QVK_FLAG_SWIGLU : 0u},
      .experts = experts_push};
  // Workgroups by (row tile, pair tile, expert): a token chooses an expert at most once, so an
  // expert has at most `tokens` pairs; tiles past an expert's pairs exit at once. Every expert
  // with a pair reads its rows once per tile of its pairs. A SwiGLU tile holds half as many
  // outputs' gate rows, then their up rows. (A grid of the tiles an expert has on average, its
  // workgroups walking on through more, made Qwen1.5-MoE-A2.7B's pp512 15% slower: routing is
  // uneven, and a busy expert's tiles ran one after another; docs/speed.md, session 35.)
  const uint32_t row_tiles = a.swiglu ? CeilDiv(outputs, tile_rows / 2) : CeilDiv(a.expert_rows, tile_rows);
  g.Dispatch(kernel, {w, x, a.y, x, x, a.groups->sorted, a.groups->offsets}, push,
             Groups{row_tiles, CeilDiv(a.tokens, tile_tokens), experts}, label,
             {.bytes = std::min<uint64_t>(experts, pairs) * expert_bytes + x_bytes +
                       uint64_t{4} * (pairs * (outputs + 1) + experts + 1),
              .flops = 2 * products * a.w.cols});
}

void ExpertsMatVecSum(Graph& g, const ExpertsSumArgs& a, std::string_view label) {
  Require(
      a.tokens > 0 && a.tokens <= 65535 && a.k > 0 && a.k <= QVK_MAX_SEGMENTS && a.expert_rows > 0 && a.w.cols > 0 &&
          a.w.rows % a.expert_rows == 0,
      "experts_sum",
      fmt::format("W must stack whole experts of expert_rows rows, k be 1 to {}, tokens 1 to 65535", QVK_MAX_SEGMENTS));
  const uint32_t cols = a.k * a.w.cols;  // a token's row: its k experts' rows side by side
  // matvec.comp finds a column's expert by a float multiplication, exact below 2^20 columns.
  Require(uint64_t{a.k} * a.w.cols < (uint64_t{1} << 20), "experts_sum",
          "a token's experts' rows must hold fewer than 2^20 columns");
  const uint64_t pairs = uint64_t{a.tokens} * a.k;
  Require(a.m.size >= uint64_t{4} * a.tokens * cols && a.ids.size >= 4 * pairs && a.weights.size >= 4 * pairs &&
              a.y.size >= uint64_t{4} * a.tokens * a.expert_rows,
          "experts_sum", "buffer too small");
  const uint64_t outputs = uint64_t{a.tokens} * a.expert_rows;
  Require(!a.shared || (a.shared->out.size >= 4 * outputs && a.shared->gate.size >= uint64_t{4} * a.tokens),
          "experts_sum", "shared expert buffers too small");
  const BufferRange w = ExpertsBinding(g, a.w, "experts_sum");
  const KernelId kernel = RequireKernel(g, KernelOp::MatVecExperts, a.w.dtype, "experts_sum");
  const ExpertsMatVecPlan plan =
      PlanExpertsMatVec(g.device().info(), a.w.dtype, {a.expert_rows, a.k, 1}, cols, a.tokens, false, a.expert_rows, 0,
                        QVK_FLAG_RESIDUAL | QVK_FLAG_ROUTER_WEIGHT | (a.shared ? QVK_FLAG_SHARED : 0u));
  const uint64_t expert_bytes = RowBytes(a.w.dtype, a.w.cols) * a.expert_rows;
  const uint64_t shared_bytes = a.shared ? uint64_t{4} * (outputs + a.tokens) : 0;
  g.Dispatch(
      kernel,
      {w, a.m, a.y, a.m, a.y, a.m, a.ids, a.weights, a.shared ? a.shared->out : a.m, a.shared ? a.shared->gate : a.m},
      plan.push, plan.grid, label,
      {.bytes =
           pairs * expert_bytes + uint64_t{4} * (uint64_t{a.tokens} * cols + 2 * pairs + 2 * outputs) + shared_bytes,
       .flops = 2 * outputs * cols + (a.shared ? 4 * outputs : 0)});
}

void MoeCombine(Graph& g, const MoeCombineArgs& a, std::string_view label) {
  Require(a.tokens > 0 && a.hidden > 0, "moe_combine", "empty shape");
  Require(a.shared_out.has_value() == a.shared_gate.has_value(), "moe_combine", "a shared expert needs its gate");
  Require(a.k > 0 && a.k <= QVK_MAX_SEGMENTS, "moe_combine", fmt::format("k must be 1 to {}", QVK_MAX_SEGMENTS));
  const uint64_t elements = uint64_t{a.tokens} * a.hidden;
  Require(a.x.size >= 4 * elements && a.weights.size >= uint64_t{4} * a.tokens * a.k &&
              a.expert_out.size >= 4 * elements * a.k,
          "moe_combine", "buffer too small");
  Require(!a.shared_out || (a.shared_out->size >= 4 * elements && a.shared_gate->size >= uint64_t{4} * a.tokens),
          "moe_combine", "shared expert buffers too small");
  const bool shared = a.shared_out.has_value();
  g.Dispatch(KernelId::MoeCombine,
             {a.x, a.weights, a.expert_out, a.shared_out.value_or(a.x), a.shared_gate.value_or(a.x)},
             push::MoeCombinePush{a.tokens, a.hidden, a.k, shared ? QVK_FLAG_SHARED : 0u},
             GridFor(CeilDiv(elements, Spec(KernelId::MoeCombine).local_size_x)), label,
             {.bytes = 4 * elements * (a.k + 2 + (shared ? 1 : 0)), .flops = 2 * elements * (a.k + (shared ? 2 : 0))});
}

// --- SwiGLU and embedding --------------------------------------------------------------------

void SwiGlu(Graph& g, BufferRange gate_up, BufferRange y, uint32_t tokens, uint32_t inter, std::string_view label) {
  RecordSwiGlu(g, gate_up, y, tokens, inter, inter, label);
}

void Embed(Graph& g, const Matrix& table, BufferRange ids, BufferRange y, uint32_t tokens, std::string_view label) {
  Require(ids.size >= tokens * 4ull && y.size >= static_cast<VkDeviceSize>(tokens) * table.cols * 4, "embed",
          "buffer too small");
  const KernelId kernel = RequireKernel(g, KernelOp::Embed, table.dtype, "embed");
  // The ids decide which slice gathers a row, so the rows gathered are counted once, on the
  // first slice; every slice reads the ids.
  bool first = true;
  for (const RowSlice& slice : SliceRows(g.device().info(), table)) {
    const uint64_t gathered = first ? uint64_t{tokens} * (RowBytes(table.dtype, table.cols) + 4 * table.cols) : 0;
    g.Dispatch(kernel, {slice.range, ids, y}, push::EmbedPush{tokens, table.cols, slice.first_row, slice.rows},
               GridFor(tokens), label,
               {.bytes = gathered + uint64_t{4} * tokens, .flops = first ? uint64_t{tokens} * table.cols : 0});
    first = false;
  }
}

// --- attention -------------------------------------------------------------------------------

namespace {

// The probabilities (or scores) an attention dispatch writes: every row's whole stride, or with
// scores kept up to the last query's position, and each row's max and sum.
uint64_t ProbsBytes(const AttentionArgs& a) {
  if (!a.probs) return 0;
  if (!a.scores) return uint64_t{4} * a.n_heads * a.tokens * a.probs_stride;
  const uint64_t cols = std::min<uint64_t>(a.probs_stride, uint64_t{a.first_position} + a.tokens);
  return uint64_t{4} * a.n_heads * a.tokens * (cols + 2);
}

}  // namespace

void Attention(Graph& g, const AttentionArgs& a, std::string_view label) {
  Require(a.n_heads > 0 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "attention",
          "query heads must be a multiple of KV heads");
  Require(a.n_heads <= 65535, "attention", "at most 65535 query heads");
  Require(a.head_dim > 0 && a.head_dim <= kMaxHeadDim, "attention", "head_dim above 256");
  Require(a.tokens > 0 && a.tokens <= 65535, "attention", "1..65535 query rows per dispatch");
  const uint32_t q_stride = a.q_stride ? a.q_stride : a.n_heads * a.head_dim;
  const uint32_t o_stride = a.o_stride ? a.o_stride : a.n_heads * a.head_dim;
  const VkDeviceSize cache_bytes = static_cast<VkDeviceSize>(a.n_kv_heads) * a.capacity * a.head_dim * 2;
  Require(a.k_cache.size >= cache_bytes && a.v_cache.size >= cache_bytes, "attention", "cache too small");
  Require(a.q.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * q_stride + a.n_heads * a.head_dim) * 4, "attention",
          "Q too small");
  Require(a.out.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * o_stride + a.n_heads * a.head_dim) * 4, "attention",
          "O too small");
  if (a.probs) {
    const uint64_t floats = a.scores ? AttentionScoresFloats(a.n_heads, a.tokens, a.probs_stride)
                                     : uint64_t{a.n_heads} * a.tokens * a.probs_stride;
    Require(a.probs_stride > 0 && a.probs->size >= 4 * floats, "attention", "probabilities buffer too small");
  }
  Require(!a.scores || a.probs, "attention", "scores kept without a probabilities buffer");
  const bool q_in_runs = q_stride % 4 == 0 && a.q.offset % 16 == 0;
  const uint32_t prefill_rows = PrefillBlockRows(g.device().info(), a.head_dim, q_in_runs, a.probs.has_value());
  const AttentionPlan plan = PlanAttention(a.tokens, a.n_heads, a.n_kv_heads, a.head_dim, a.capacity, prefill_rows);
  if (a.head_norm) {
    Require(AttentionNormsHeads(a.tokens, a.n_heads, a.n_kv_heads, a.head_dim), "attention",
            "the head norm is done in attention only for one token whose group's heads fit a narrow block");
    Require(q_stride >= (a.n_heads + 2 * a.n_kv_heads) * a.head_dim && a.q.size >= uint64_t{4} * q_stride, "attention",
            "Q must hold the token's whole q|k|v projection");
    Require(a.head_norm->weight.size >= uint64_t{8} * a.head_dim && a.head_norm->inv_freq.size >= 2ull * a.head_dim,
            "attention", "head norm weight or inv_freq too small");
  }
  const uint64_t partials_bytes = PartialsBytes(plan, a.tokens, a.n_heads, a.head_dim);
  if (partials_bytes > 0) {
    Require(a.scratch && a.scratch->size >= partials_bytes, "attention",
            fmt::format("{} query rows over a {}-row cache split their keys: scratch needs {} bytes "
                        "(AttentionScratchBytes)",
                        a.tokens, a.capacity, partials_bytes));
  }
  // A decode block's splits merge themselves where the kernel can (the narrow ones) and no P is
  // asked for (attention_combine makes its probabilities).
  const bool combine_in_splits =
      a.split_counters && plan.splits > 1 && plan.block_rows == kAttentionNarrowRows && !a.probs;
  Require(!combine_in_splits || a.split_counters->size >= AttentionSplitCounterBytes(a.tokens, a.n_heads), "attention",
          "split counters too small (AttentionSplitCounterBytes)");
  const float scale = a.scale != 0 ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  const push::AttentionPush push{a.tokens,
                                 a.n_heads,
                                 a.n_kv_heads,
                                 a.head_dim,
                                 q_stride,
                                 o_stride,
                                 a.capacity,
                                 a.window,
                                 scale,
                                 a.probs_stride,
                                 (a.probs ? QVK_FLAG_PROBS : 0u) | (a.scores ? QVK_FLAG_SCORES : 0u) |
                                     (combine_in_splits ? QVK_FLAG_COMBINE_IN_SPLITS : 0u),
                                 plan.splits,
                                 plan.block_rows,
                                 plan.heads_per_block,
                                 plan.tokens_per_block,
                                 plan.short_keys};
  // Absent outputs are bound to O, which the kernel then does not write through them.
  const BufferRange partials = partials_bytes > 0 ? SubRange(*a.scratch, 0, partials_bytes) : a.out;
  const BufferRange counters = combine_in_splits ? *a.split_counters : a.out;
  const Groups grid{plan.splits, plan.token_blocks, a.n_kv_heads * plan.head_blocks};
  if (a.head_norm) {
    const AttentionArgs::HeadNorm& n = *a.head_norm;
    DispatchCost cost = AttentionCost(a);
    // The token's k and v heads and both norm weights read, its k and v stored into the cache.
    cost.bytes +=
        uint64_t{4} * (2 * a.n_kv_heads * a.head_dim + 2 * a.head_dim) + uint64_t{4} * a.n_kv_heads * a.head_dim;
    g.Dispatch(KernelId::AttentionNarrowNorm,
               {a.q, a.positions, a.k_cache, a.v_cache, a.out, a.probs.value_or(a.out), partials, n.inv_freq, n.weight,
                counters},
               push::AttentionNormPush{push, n.eps, n.attention_factor}, grid, label, cost);
  } else {
    const KernelId kernel = plan.block_rows == kAttentionCoopmatRows
                                ? (a.head_dim == 64 ? KernelId::AttentionCoopmatD64 : KernelId::AttentionCoopmatD128)
                            : plan.block_rows == kAttentionNarrowRows ? KernelId::AttentionNarrow
                            : plan.block_rows != kAttentionWideRows   ? KernelId::Attention
                            : a.head_dim <= 64                        ? KernelId::AttentionWide
                                                                      : KernelId::AttentionWideD128;
    const BufferRange probs = a.probs.value_or(a.out);
    if (kernel == KernelId::AttentionNarrow) {
      g.Dispatch(kernel, {a.q, a.positions, a.k_cache, a.v_cache, a.out, probs, partials, counters}, push, grid, label,
                 AttentionCost(a));
    } else {
      g.Dispatch(kernel, {a.q, a.positions, a.k_cache, a.v_cache, a.out, probs, partials}, push, grid, label,
                 AttentionCost(a));
    }
  }
  if (plan.splits > 1 && !combine_in_splits) {
    // Reads each split's (max, sum, output), about two flops a float, and writes O; scales the
    // probabilities in place. Its own label, so that profiles show what the split costs.
    const uint64_t probs_bytes = 2 * ProbsBytes(a);
    g.Dispatch(KernelId::AttentionCombine, {a.positions, partials, a.out, a.probs.value_or(a.out)}, push,
               Groups{a.n_heads, a.tokens, 1}, fmt::format("{}_combine", label),
               {.bytes = partials_bytes + uint64_t{4} * a.tokens * a.n_heads * a.head_dim + probs_bytes,
                .flops = partials_bytes / 2 + probs_bytes / 8});
  }
}

bool AttentionNormsHeads(uint32_t tokens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim) {
  if (tokens != 1 || head_dim % 8 != 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0) return false;
  // One token takes decode's blocks on every device (PrefillBlockRows serves more tokens).
  return PlanAttention(tokens, n_heads, n_kv_heads, head_dim, 1, 0).block_rows == kAttentionNarrowRows;
}

uint64_t AttentionScoresFloats(uint32_t n_heads, uint32_t tokens, uint32_t probs_stride) {
  return uint64_t{n_heads} * tokens * (uint64_t{probs_stride} + 2);
}

uint64_t AttentionScratchBytes(uint32_t max_tokens, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                               uint32_t capacity, uint32_t min_tokens) {
  Require(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention",
          "query heads must be a multiple of KV heads");
  // Fewer rows may split more ways, so the largest need is over every row count (and every
  // block size, whichever the device allows).
  uint64_t bytes = 0;
  for (uint32_t tokens = std::max(min_tokens, 1u); tokens <= max_tokens; ++tokens) {
    for (const uint32_t prefill_rows : {0u, kAttentionWideRows, kAttentionCoopmatRows}) {
      const AttentionPlan plan = PlanAttention(tokens, n_heads, n_kv_heads, head_dim, capacity, prefill_rows);
      bytes = std::max(bytes, PartialsBytes(plan, tokens, n_heads, head_dim));
    }
  }
  return bytes;
}

DispatchCost AttentionCost(const AttentionArgs& a) {
  // Query t (at first_position + t) sees keys [lowest_t, its position]; the cache rows any query
  // sees are read once per KV head, as K and V.
  uint64_t visible = 0;  // sum over queries of the keys each sees
  for (uint64_t t = 0; t < a.tokens; ++t) {
    const uint64_t keys = a.first_position + t + 1;
    visible += a.window != 0 ? std::min<uint64_t>(keys, a.window) : keys;
  }
  const uint64_t last = uint64_t{a.first_position} + a.tokens;  // one past the last query's position
  const uint64_t lowest = a.window != 0 && a.first_position + 1 > a.window ? a.first_position + 1 - a.window : 0;
  const uint64_t rows = last - lowest;
  const uint64_t qo = uint64_t{a.tokens} * a.n_heads * a.head_dim;
  const uint64_t probs = ProbsBytes(a);
  // q.k and p.v: two multiply-adds per key and dimension of each head.
  return {.bytes = 2 * uint64_t{2} * a.n_kv_heads * rows * a.head_dim + 2 * 4 * qo + uint64_t{4} * a.tokens + probs,
          .flops = 4 * visible * a.n_heads * a.head_dim};
}

void AttentionReduce(Graph& g, const AttentionReduceArgs& a, std::string_view label) {
  Require(a.cell > 0 && a.plane_heads > 0 && a.planes > 0 && a.planes <= 65535, "attention_reduce",
          "cell, heads per plane and planes (at most 65535) must be positive");
  Require(uint64_t{a.head_first} + uint64_t{a.planes} * a.plane_heads <= a.n_heads, "attention_reduce",
          "planes past the last head");
  const uint32_t lo = std::max(a.band_begin, a.first_row);
  const uint32_t hi = std::min(a.band_end, a.first_row + a.rows);
  Require(a.rows > 0 && lo < hi, "attention_reduce", "no row of the band in P");
  Require(a.cols > 0 && a.cols <= a.probs_stride, "attention_reduce", "1..probs_stride key columns");
  Require(a.probs.size >= uint64_t{4} * a.n_heads * a.rows * a.probs_stride, "attention_reduce", "P too small");
  const uint64_t out_rows = CeilDiv(a.band_end - a.band_begin, a.cell);
  const uint64_t out_cols = CeilDiv(a.cols, a.cell);
  Require(a.out.size >= uint64_t{4} * (uint64_t{a.plane_base} + a.planes) * out_rows * out_cols, "attention_reduce",
          "output too small");
  const uint32_t wg = Spec(KernelId::AttentionReduce).local_size_x;
  const uint32_t cells_per_wg = std::max(1u, wg / a.cell);
  const uint32_t touched_rows = (hi - 1 - a.band_begin) / a.cell - (lo - a.band_begin) / a.cell + 1;
  const uint64_t read = uint64_t{4} * a.planes * a.plane_heads * (hi - lo) * a.cols;
  g.Dispatch(KernelId::AttentionReduce, {a.probs, a.out},
             push::AttentionReducePush{a.rows, a.probs_stride, a.first_row, a.band_begin, a.band_end, a.cols, a.cell,
                                       a.head_first, a.plane_heads, a.plane_base,
                                       (a.max ? QVK_FLAG_MAX : 0u) | (a.mute_sink ? QVK_FLAG_MUTE_SINK : 0u)},
             Groups{CeilDiv(out_cols, cells_per_wg), touched_rows, a.planes}, label,
             {.bytes = read + uint64_t{4} * a.planes * touched_rows * out_cols, .flops = read / 4});
}

void AttentionLive(Graph& g, const AttentionLiveArgs& a, std::string_view label) {
  const uint64_t layer_floats = AttentionScoresFloats(a.n_heads, 1, a.stride);
  Require(a.layers > 0 && a.n_heads > 0 && a.stride > 0 && a.layer_stride >= layer_floats, "attention_live",
          "layers, heads and a stride of at least one key, layers apart by their scores");
  Require(a.max_views > 0 && a.max_views <= 65535, "attention_live", "1 to 65535 views");
  Require(a.scores.size >= uint64_t{4} * ((uint64_t{a.layers} - 1) * a.layer_stride + layer_floats), "attention_live",
          "scores too small");
  Require(a.positions.size >= 4, "attention_live", "positions too small");
  Require(a.views.size >= uint64_t{16} * (1 + a.max_views), "attention_live", "views too small");
  Require(a.out.size >= uint64_t{4} * a.max_views * a.stride, "attention_live", "output too small");
  // Workgroups for 16384 keys in one sweep; a longer row takes a few.
  const uint32_t wg = Spec(KernelId::AttentionLive).local_size_x;
  const uint32_t groups = std::min(CeilDiv(a.stride, wg), 64u);
  // Each view head's scores read once, and its (m, l); an exp, a multiply and a sum a score.
  const uint64_t keys = uint64_t{a.position} + 1;
  const uint64_t read = uint64_t{4} * a.view_heads * (keys + 2);
  g.Dispatch(KernelId::AttentionLive, {a.scores, a.positions, a.views, a.out},
             push::AttentionLivePush{a.stride, a.layer_stride, a.n_heads}, Groups{groups, a.max_views, 1}, label,
             {.bytes = read + uint64_t{4} * a.max_views * keys, .flops = uint64_t{3} * a.view_heads * keys});
}

std::vector<uint32_t> LiveViewWords(std::span<const LiveView> views) {
  std::vector<uint32_t> words{static_cast<uint32_t>(views.size()), 0, 0, 0};
  for (const LiveView& v : views) {
    words.insert(words.end(), {v.layer, v.first_head, v.heads,
                               (v.max ? QVK_FLAG_MAX : 0u) | (v.mute_sink ? QVK_FLAG_MUTE_SINK : 0u)});
  }
  return words;
}

// --- ranking and copies ----------------------------------------------------------------------

uint32_t TopKScratchCount(uint32_t count, uint32_t k) {
  return CeilDiv(count, QVK_TOPK_CHUNK) * k;
}

void TopK(Graph& g, BufferRange values, uint32_t count, uint32_t k, BufferRange scratch_values,
          BufferRange scratch_indices, BufferRange out_values, BufferRange out_indices, std::string_view label) {
  Require(k >= 1 && k <= kTopKMax && k <= count, "topk", fmt::format("k must be in 1..min({}, count)", kTopKMax));
  Require(values.size >= count * 4ull && out_values.size >= k * 4ull && out_indices.size >= k * 4ull, "topk",
          "buffer too small");
  const uint32_t chunks = CeilDiv(count, QVK_TOPK_CHUNK);
  if (chunks == 1) {  // one chunk: its candidates are the answer
    g.Dispatch(KernelId::TopKChunks, {values, out_values, out_indices}, push::TopKPush{count, k, QVK_TOPK_CHUNK, 1},
               Groups{}, label, {.bytes = uint64_t{4} * count + uint64_t{8} * k, .flops = count});
    return;
  }
  const uint32_t candidates = chunks * k;
  Require(scratch_values.size >= candidates * 4ull && scratch_indices.size >= candidates * 4ull, "topk",
          "scratch too small");
  const BufferRange cand_values = SubRange(scratch_values, 0, candidates * 4ull);
  const BufferRange cand_indices = SubRange(scratch_indices, 0, candidates * 4ull);
  g.Dispatch(KernelId::TopKChunks, {values, cand_values, cand_indices}, push::TopKPush{count, k, QVK_TOPK_CHUNK, 1},
             GridFor(chunks), label, {.bytes = uint64_t{4} * count + uint64_t{8} * candidates, .flops = count});
  g.Dispatch(KernelId::TopKMerge, {cand_values, cand_indices, out_values, out_indices},
             push::TopKPush{candidates, k, QVK_TOPK_CHUNK, 2}, Groups{}, label,
             {.bytes = uint64_t{8} * candidates + uint64_t{8} * k, .flops = candidates});
}

void Copy(Graph& g, BufferRange x, BufferRange y, std::string_view label) {
  Require(x.size == y.size && x.size % 16 == 0 && x.size / 16 <= std::numeric_limits<uint32_t>::max(), "copy",
          "X and Y must be the same size, a multiple of 16 bytes");
  const auto words = static_cast<uint32_t>(x.size / 16);
  const uint32_t per_group = Spec(KernelId::CopyVec4).local_size_x * QVK_COPY_WORDS;
  g.Dispatch(KernelId::CopyVec4, {x, y}, push::CopyPush{words}, GridFor(CeilDiv(words, per_group)), label,
             {.bytes = 2 * x.size, .flops = 0});
}

// --- device peaks ----------------------------------------------------------------------------

void FmaChains(Graph& g, BufferRange y, uint32_t invocations, uint32_t iterations, float b, float c,
               std::string_view label) {
  Require(invocations > 0 && y.size >= invocations * 4ull, "fma", "Y must hold one float per invocation");
  const uint64_t fmas = uint64_t{invocations} * iterations * QVK_FMA_STEPS * QVK_FMA_CHAINS;
  g.Dispatch(KernelId::FmaChains, {y}, push::FmaPush{invocations, iterations, b, c},
             GridFor(CeilDiv(invocations, Spec(KernelId::FmaChains).local_size_x)), label,
             {.bytes = uint64_t{4} * invocations, .flops = 2 * fmas});
}

void FmaChainsF16(Graph& g, BufferRange y, uint32_t invocations, uint32_t iterations, float b, float c,
                  std::string_view label) {
  Require(invocations > 0 && y.size >= invocations * 4ull, "fma f16", "Y must hold one float per invocation");
  const uint64_t fmas = uint64_t{2} * invocations * iterations * QVK_FMA_STEPS * QVK_FMA_CHAINS;
  g.Dispatch(KernelId::FmaChainsF16, {y}, push::FmaPush{invocations, iterations, b, c},
             GridFor(CeilDiv(invocations, Spec(KernelId::FmaChainsF16).local_size_x)), label,
             {.bytes = uint64_t{4} * invocations, .flops = 2 * fmas});
}

namespace {
constexpr uint32_t kCoopmatSubgroupWidth = 32;  // DeviceInfo::coopmat_f16 holds only for these
constexpr uint64_t kCoopmatFragmentFmas = 16 * 16 * 16;
uint64_t CoopmatSubgroups(uint32_t groups) {
  return uint64_t{groups} * (Spec(KernelId::FmaCoopmat).local_size_x / kCoopmatSubgroupWidth);
}
}  // namespace

uint64_t CoopmatFmaFloats(uint32_t groups) {
  return CoopmatSubgroups(groups) * QVK_FMA_CHAINS * 16 * 16;
}

uint64_t CoopmatFmas(uint32_t groups, uint32_t iterations) {
  return CoopmatSubgroups(groups) * iterations * QVK_FMA_STEPS * QVK_FMA_CHAINS * kCoopmatFragmentFmas;
}

void CoopmatFmaChains(Graph& g, BufferRange y, uint32_t groups, uint32_t iterations, float b, float c,
                      std::string_view label) {
  Require(groups > 0 && y.size >= CoopmatFmaFloats(groups) * 4, "fma coopmat",
          "Y must hold a 16x16 tile of floats per subgroup and chain");
  g.Dispatch(KernelId::FmaCoopmat, {y}, push::FmaPush{groups, iterations, b, c}, GridFor(groups), label,
             {.bytes = CoopmatFmaFloats(groups) * 4, .flops = 2 * CoopmatFmas(groups, iterations)});
}

}  // namespace ops
}  // namespace qvk
