#pragma once
// Plain C++ references for every kernel, accumulating in double. Layouts match the kernels'
// (see shaders/push_constants.h); each returns what the kernel should write.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/dtype.h"

namespace qvk::ref {

// Y[t, r] = sum_k W[r, k] X[t, k] + bias[r] + residual[t, r]; also returns sum_k |W X| per
// output in `magnitude` (the scale of the rounding error a float32 sum can make).
std::vector<float> MatMul(std::span<const float> w, std::span<const float> x, uint32_t rows, uint32_t cols,
                          uint32_t tokens, const std::vector<float>* bias, const std::vector<float>* residual,
                          std::vector<double>* magnitude);

// MatMul of weights stored as `type` (any DType), as DequantizeRows reads them, 4096 rows at a
// time so that a vocabulary-sized matrix is never held dequantized in full.
std::vector<float> StoredMatMul(DType type, std::span<const std::byte> w, uint32_t rows, uint32_t cols,
                                std::span<const float> x, uint32_t tokens, const std::vector<float>* bias,
                                const std::vector<float>* residual, std::vector<double>* magnitude);

std::vector<float> RmsNorm(std::span<const float> x, std::span<const float> weight, uint32_t tokens, uint32_t cols,
                           float eps);

// NeoX rotation of one head vector in place: angle = float(pos) * inv_freq[i] in float32 (as
// transformers multiplies), cos and sin in double, times attention_factor.
void RopeHead(float* head, uint32_t head_dim, uint32_t pos, std::span<const float> inv_freq, float attention_factor);

std::vector<float> SwiGlu(std::span<const float> gate_up, uint32_t tokens, uint32_t inter);

// silu(g) * u from exact sums g and u, and how far a kernel's may lie from it when its own sums lie
// within g_tolerance and u_tolerance: silu's slope lies within [-0.1, 1.1], and kernels' exp is an
// f32 one (1e-5 relative).
struct BoundedValue {
  double value, tolerance;
};
BoundedValue SwiGluBound(double g, double u, double g_tolerance, double u_tolerance);

struct AttentionResult {
  std::vector<float> out;    // [T, H * D]
  std::vector<float> probs;  // [H, T, probs_stride]
};
// k and v: [Hkv, capacity, D] as float (already rounded to f16 by the caller).
AttentionResult Attention(std::span<const float> q, std::span<const uint32_t> positions, std::span<const float> k,
                          std::span<const float> v, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                          uint32_t capacity, uint32_t window, uint32_t probs_stride);

// What attention_reduce computes (AttentionReducePush): from P [heads, rows, stride] holding every
// row of the band (P's row r is map row first_row + r), plane k reduces heads
// head_first + k * plane_heads ..; value (i, j) map rows band_begin + [i * cell, (i + 1) * cell)
// and key columns [j * cell, (j + 1) * cell), clipped to the band and to cols: max or mean (over
// every cell, key 0 counting as 0 when muted).
struct MapReduction {
  uint32_t heads, rows, stride, first_row;
  uint32_t band_begin, band_end, cols, cell;
  uint32_t head_first, plane_heads, planes;
  bool max;
  bool mute_sink = false;  // key 0 out of each head's row, the row renormalized
};
// [planes, ceil(band / cell), ceil(cols / cell)]
std::vector<float> AttentionReduce(std::span<const float> p, const MapReduction& r);

// Qwen3's q/k norm (before HeadNormRopePush's rotation): every q and k head of QKV rows [T, (H + 2 Hkv) * D] by its RMS
// and weight [2 * D] (q_norm | k_norm); v is left as it is.
std::vector<float> HeadNorm(std::span<const float> qkv, std::span<const float> weight, uint32_t tokens,
                            uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim, float eps);

// The router (MoeRoutePush): per token the k best experts of softmax(logits), descending, ties to
// the lower expert, and their probabilities (divided by their sum with `normalize`).
struct Routing {
  std::vector<uint32_t> ids;  // [T, k]
  std::vector<float> weights;
};
Routing MoeRoute(std::span<const float> logits, uint32_t tokens, uint32_t experts, uint32_t k, bool normalize);

// regroup_blocks.comp: each `group` consecutive blocks of `block_bytes` bytes (an f16 scale at byte
// scale_offset, and the rest) as their scales, then the rest of each in its order; the last group
// made whole with zero blocks.
std::vector<std::byte> RegroupedBlocks(std::span<const std::byte> blocks, uint32_t block_bytes, uint32_t scale_offset,
                                       uint32_t group);

// The experts' products (ops::ExpertsMatMul without SwiGLU) for W [experts * rows, cols] stored as
// `type`: row pair * rows + r = W[ids[pair] * rows + r] . X[x_per_pair ? pair : pair / k], and
// each one's sum |w x| in `magnitude`.
std::vector<float> ExpertProducts(DType type, std::span<const std::byte> w, uint32_t rows, uint32_t cols,
                                  std::span<const float> x, bool x_per_pair, std::span<const uint32_t> ids, uint32_t k,
                                  std::vector<double>* magnitude = nullptr);

// X[t] + sum_j weights[t, j] E[t * k + j] (+ sigmoid(gate[t]) * S[t]).
std::vector<float> MoeCombine(std::span<const float> x, std::span<const float> weights, std::span<const float> experts,
                              const std::vector<float>* shared, const std::vector<float>* gate, uint32_t tokens,
                              uint32_t hidden, uint32_t k);

// Indices of the k largest values, descending, ties to the lower index.
std::vector<uint32_t> TopK(std::span<const float> values, uint32_t k);

// The FMA probe (shaders/fma.comp): per invocation, the sum of chains_per_invocation chains
// a = a * b + c of `steps` steps, chain k of invocation i starting at (i * chains + k) % 17.
std::vector<float> FmaChains(uint32_t invocations, uint32_t chains, uint32_t steps, float b, float c);

}  // namespace qvk::ref
