#include "gpu/ops.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <iterator>
#include <numeric>

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

// A sub-range of r, for kernels that see only part of a buffer.
BufferRange Sub(const BufferRange& r, VkDeviceSize offset, VkDeviceSize size) {
  return BufferRange(*r.buffer, r.offset + offset, size);
}

void Require(bool condition, std::string_view op, std::string_view what) {
  if (!condition) throw Error(fmt::format("{}: {}", op, what));
}

constexpr uint32_t kMatMulTile = 64;      // TILE in matmul.comp
constexpr uint32_t kMatVecMaxTokens = 4;  // above this, the tiled kernel reads weights once
constexpr uint32_t kMaxHeadDim = 256;     // MAX_HEAD_DIM in attention.comp

// The kernels that read each weight type, indexed by DType.
struct TypeKernels {
  KernelId matvec, matmul, embed, matmul_coopmat;
};
constexpr TypeKernels kTypeKernels[] = {
    {KernelId::MatVecF32, KernelId::MatMulF32, KernelId::EmbedF32, KernelId::MatMulCoopmatF32},
    {KernelId::MatVecF16, KernelId::MatMulF16, KernelId::EmbedF16, KernelId::MatMulCoopmatF16},
    {KernelId::MatVecBF16, KernelId::MatMulBF16, KernelId::EmbedBF16, KernelId::MatMulCoopmatBF16},
    {KernelId::MatVecQ8_0, KernelId::MatMulQ8_0, KernelId::EmbedQ8_0, KernelId::MatMulCoopmatQ8_0},
    {KernelId::MatVecQ4_0, KernelId::MatMulQ4_0, KernelId::EmbedQ4_0, KernelId::MatMulCoopmatQ4_0},
    {KernelId::MatVecQ4_1, KernelId::MatMulQ4_1, KernelId::EmbedQ4_1, KernelId::MatMulCoopmatQ4_1},
    {KernelId::MatVecQ5_0, KernelId::MatMulQ5_0, KernelId::EmbedQ5_0, KernelId::MatMulCoopmatQ5_0},
    {KernelId::MatVecQ5_1, KernelId::MatMulQ5_1, KernelId::EmbedQ5_1, KernelId::MatMulCoopmatQ5_1},
    {KernelId::MatVecQ4_K, KernelId::MatMulQ4_K, KernelId::EmbedQ4_K, KernelId::MatMulCoopmatQ4_K},
    {KernelId::MatVecQ5_K, KernelId::MatMulQ5_K, KernelId::EmbedQ5_K, KernelId::MatMulCoopmatQ5_K},
    {KernelId::MatVecQ6_K, KernelId::MatMulQ6_K, KernelId::EmbedQ6_K, KernelId::MatMulCoopmatQ6_K},
};
static_assert(std::size(kTypeKernels) == kDTypeCount, "one kTypeKernels row per DType");

const TypeKernels& KernelsFor(DType type) {
  const auto index = static_cast<size_t>(type);
  if (index >= std::size(kTypeKernels)) throw Error(fmt::format("unknown weight type {}", index));
  return kTypeKernels[index];
}

// The quantized kernels read their blocks byte by byte.
void RequireWeightSupport(const Graph& g, DType type, std::string_view op) {
  if (IsQuantized(type) && !g.device().info().storage_8bit) {
    throw Error(
        fmt::format("{}: {} weights: this device cannot read 8-bit storage buffers, which quantized weights need", op,
                    DTypeName(type)));
  }
}

}  // namespace

std::vector<RowSlice> SliceRows(const DeviceInfo& device, const Matrix& m, VkDeviceSize max_range) {
  if (max_range == 0) max_range = device.max_storage_buffer_range;
  const VkDeviceSize row_bytes = RowBytes(m.dtype, m.cols);
  const VkDeviceSize align = device.storage_offset_alignment;
  if (m.offset % align != 0) throw Error("matrix offset is not aligned for binding");
  // Slices start at multiples of `step` rows so that every slice offset stays aligned.
  const VkDeviceSize step = align / std::gcd(row_bytes, align);
  VkDeviceSize rows_per_slice = max_range / row_bytes / step * step;
  if (rows_per_slice == 0) throw Error(fmt::format("a {}-byte matrix row does not fit one binding", row_bytes));
  std::vector<RowSlice> slices;
  for (VkDeviceSize first = 0; first < m.rows; first += rows_per_slice) {
    const auto rows = static_cast<uint32_t>(std::min<VkDeviceSize>(rows_per_slice, m.rows - first));
    slices.push_back(
        {BufferRange(*m.buffer, m.offset + first * row_bytes, rows * row_bytes), static_cast<uint32_t>(first), rows});
  }
  return slices;
}

namespace ops {

MatMulKernel ChooseMatMulKernel(const DeviceInfo& device, uint32_t tokens) {
  if (tokens <= kMatVecMaxTokens) return MatMulKernel::MatVec;
  // Past matvec's few tokens the matrix units win even on a mostly empty 64-token tile.
  return device.coopmat_f16 ? MatMulKernel::CoopMat : MatMulKernel::Tiled;
}

void MatMul(Graph& g, const MatMulArgs& a, std::string_view label) {
  Require(a.tokens > 0 && a.w.rows > 0 && a.w.cols > 0, "matmul", "empty shape");
  const uint32_t x_stride = a.x_stride ? a.x_stride : a.w.cols;
  const uint32_t y_stride = a.y_stride ? a.y_stride : a.w.rows;
  Require(a.x.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * x_stride + a.w.cols) * 4, "matmul", "X too small");
  Require(a.y_offset + a.w.rows <= y_stride, "matmul", "outputs past the end of a Y row");
  Require(a.y.size >= (static_cast<VkDeviceSize>(a.tokens - 1) * y_stride + a.y_offset + a.w.rows) * 4, "matmul",
          "Y too small");
  Require(!a.bias || a.bias->size >= (a.y_offset + a.w.rows) * 4ull, "matmul", "bias too small");
  Require(!a.residual || a.residual->size >= a.y.size, "matmul", "residual smaller than Y");
  RequireWeightSupport(g, a.w.dtype, "matmul");
  const DeviceInfo& device = g.device().info();
  const MatMulKernel path = a.kernel.value_or(ChooseMatMulKernel(device, a.tokens));
  if (path == MatMulKernel::CoopMat && !device.coopmat_f16) {
    throw Error(fmt::format("matmul: the cooperative-matrix kernel cannot run on {}: {}", device.name,
                            device.coopmat_f16_problem));
  }
  const TypeKernels& kernels = KernelsFor(a.w.dtype);
  const KernelId kernel = path == MatMulKernel::MatVec  ? kernels.matvec
                          : path == MatMulKernel::Tiled ? kernels.matmul
                                                        : kernels.matmul_coopmat;
  const uint32_t flags = (a.bias ? QVK_FLAG_BIAS : 0u) | (a.residual ? QVK_FLAG_RESIDUAL : 0u);
  // Absent optional inputs are bound to X, which the kernel then never reads.
  const BufferRange bias = a.bias.value_or(a.x);
  const BufferRange residual = a.residual.value_or(a.x);
  // Matvec lanes per row: about 16 inner elements per lane, between 4 and 32 lanes.
  const uint32_t wg = Spec(kernel).local_size_x;
  const uint32_t lanes = std::clamp(std::bit_ceil(CeilDiv(a.w.cols, 16)), 4u, 32u);
  for (const RowSlice& slice : SliceRows(device, a.w)) {
    const push::MatMulPush push{slice.rows, a.w.cols, a.tokens, a.y_offset + slice.first_row,
                                x_stride,   y_stride, flags,    lanes};
    Groups groups;
    switch (path) {
      case MatMulKernel::MatVec:
        groups = GridFor(CeilDiv(slice.rows, wg / lanes));
        break;
      case MatMulKernel::Tiled:
        groups = {CeilDiv(slice.rows, kMatMulTile), CeilDiv(a.tokens, kMatMulTile), 1};
        break;
      case MatMulKernel::CoopMat:
        groups = {CeilDiv(slice.rows, QVK_COOPMAT_TILE), CeilDiv(a.tokens, QVK_COOPMAT_TILE), 1};
        break;
    }
    g.Dispatch(kernel, {slice.range, a.x, a.y, bias, residual}, push, groups, label);
  }
}

void RmsNorm(Graph& g, BufferRange x, BufferRange weight, BufferRange y, uint32_t tokens, uint32_t cols, float eps,
             std::string_view label) {
  Require(tokens > 0 && cols > 0, "rmsnorm", "empty shape");
  Require(x.size >= tokens * cols * 4ull && y.size >= tokens * cols * 4ull && weight.size >= cols * 4ull, "rmsnorm",
          "buffer too small");
  g.Dispatch(KernelId::RmsNorm, {x, weight, y}, push::RmsNormPush{cols, cols, cols, eps}, GridFor(tokens), label);
}

void Rope(Graph& g, const RopeArgs& a, std::string_view label) {
  Require(a.head_dim % 2 == 0 && a.head_dim > 0, "rope", "head_dim must be even");
  Require(a.n_heads > 0 && a.n_kv_heads > 0, "rope", "no heads");
  Require(a.k_cache.has_value() == a.v_cache.has_value(), "rope", "K and V caches go together");
  const uint32_t stride = (a.n_heads + 2 * a.n_kv_heads) * a.head_dim;
  Require(a.qkv.size >= static_cast<VkDeviceSize>(a.tokens) * stride * 4, "rope", "QKV too small");
  Require(a.inv_freq.size >= a.head_dim / 2 * 4ull, "rope", "inv_freq too small");
  const bool store = a.k_cache.has_value();
  if (store) {
    const VkDeviceSize cache_bytes = static_cast<VkDeviceSize>(a.n_kv_heads) * a.capacity * a.head_dim * 2;
    Require(a.k_cache->size >= cache_bytes && a.v_cache->size >= cache_bytes, "rope", "cache too small");
  }
  const push::RopePush push{a.tokens,
                            a.n_heads,
                            a.n_kv_heads,
                            a.head_dim,
                            stride,
                            a.n_heads * a.head_dim,
                            (a.n_heads + a.n_kv_heads) * a.head_dim,
                            a.capacity,
                            a.attention_factor,
                            store ? QVK_FLAG_STORE_KV : 0u};
  // Without a cache the cache bindings are never written; QKV stands in for them.
  const BufferRange k_cache = a.k_cache.value_or(a.qkv);
  const BufferRange v_cache = a.v_cache.value_or(a.qkv);
  const uint64_t items = static_cast<uint64_t>(a.tokens) * (a.n_heads + 2 * a.n_kv_heads) * (a.head_dim / 2);
  g.Dispatch(KernelId::Rope, {a.qkv, a.positions, a.inv_freq, k_cache, v_cache}, push,
             GridFor(CeilDiv(items, Spec(KernelId::Rope).local_size_x)), label);
}

void SwiGlu(Graph& g, BufferRange gate_up, BufferRange y, uint32_t tokens, uint32_t inter, std::string_view label) {
  Require(gate_up.size >= tokens * inter * 8ull && y.size >= tokens * inter * 4ull, "swiglu", "buffer too small");
  const uint64_t items = static_cast<uint64_t>(tokens) * inter;
  g.Dispatch(KernelId::SwiGlu, {gate_up, y}, push::SwiGluPush{tokens, inter, 2 * inter, inter},
             GridFor(CeilDiv(items, Spec(KernelId::SwiGlu).local_size_x)), label);
}

void Embed(Graph& g, const Matrix& table, BufferRange ids, BufferRange y, uint32_t tokens, std::string_view label) {
  Require(ids.size >= tokens * 4ull && y.size >= static_cast<VkDeviceSize>(tokens) * table.cols * 4, "embed",
          "buffer too small");
  RequireWeightSupport(g, table.dtype, "embed");
  const KernelId kernel = KernelsFor(table.dtype).embed;
  for (const RowSlice& slice : SliceRows(g.device().info(), table)) {
    g.Dispatch(kernel, {slice.range, ids, y}, push::EmbedPush{tokens, table.cols, slice.first_row, slice.rows},
               GridFor(tokens), label);
  }
}

void Attention(Graph& g, const AttentionArgs& a, std::string_view label) {
  Require(a.n_heads > 0 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "attention",
          "query heads must be a multiple of KV heads");
  const uint32_t wg = Spec(KernelId::Attention).local_size_x;
  Require(a.head_dim > 0 && a.head_dim <= std::min(kMaxHeadDim, 2 * wg), "attention", "head_dim above 256");
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
    Require(a.probs_stride > 0 && a.probs->size >= static_cast<VkDeviceSize>(a.n_heads) * a.tokens * a.probs_stride * 4,
            "attention", "probabilities buffer too small");
  }
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
                                 a.probs ? QVK_FLAG_PROBS : 0u};
  g.Dispatch(KernelId::Attention, {a.q, a.positions, a.k_cache, a.v_cache, a.out, a.probs.value_or(a.out)}, push,
             Groups{a.tokens, a.n_heads, 1}, label);
}

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
               Groups{}, label);
    return;
  }
  const uint32_t candidates = chunks * k;
  Require(scratch_values.size >= candidates * 4ull && scratch_indices.size >= candidates * 4ull, "topk",
          "scratch too small");
  const BufferRange cand_values = Sub(scratch_values, 0, candidates * 4ull);
  const BufferRange cand_indices = Sub(scratch_indices, 0, candidates * 4ull);
  g.Dispatch(KernelId::TopKChunks, {values, cand_values, cand_indices}, push::TopKPush{count, k, QVK_TOPK_CHUNK, 1},
             GridFor(chunks), label);
  g.Dispatch(KernelId::TopKMerge, {cand_values, cand_indices, out_values, out_indices},
             push::TopKPush{candidates, k, QVK_TOPK_CHUNK, 2}, Groups{}, label);
}

}  // namespace ops
}  // namespace qvk
