#pragma once
// The Qwen forward pass as recorded GPU work, and the buffers it runs in.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "gpu/graph.h"
#include "gpu/memory.h"
#include "gpu/ops.h"
#include "model/config.h"
#include "model/weights.h"

namespace qvk {

class Device;

// The most logits a step ranks on the GPU for the host (the top-k kernel's limit).
inline constexpr uint32_t kMaxRanked = ops::kTopKMax;

// Activations for up to `max_tokens` tokens processed together (a prefill chunk; 1 for decode)
// against a KV cache of `context` rows, sized for the products of `weights` on `device`.
struct RunState {
  RunState(Device& device, const ModelConfig& config, const ModelWeights& weights, uint32_t max_tokens,
           uint32_t host_logits_rows, uint32_t context);

  uint32_t max_tokens;
  uint32_t host_logits_rows;
  Buffer x;  // f32 [T, hidden]                  residual stream
  // Attention's activations (q|k|v and its output, read last by the o projection) and the MLP's
  // (written first by gate|up) are never live at once, so they share this allocation: on
  // Qwen2.5-0.5B at 512 tokens, 4 MiB of prefill's working memory never allocated. xn lies past
  // both q|k|v and the MLP's ranges, which the products that read it write, and may overlap
  // attention's output, which is written after q|k|v's product and read before the next norm:
  // where q|k|v is the wider side (Qwen3-0.6B) it costs nothing.
  Buffer attention_or_mlp;
  BufferRange xn() const;    // f32 [T, hidden]            RMS-normalized block input (prefill; decode's norms apart)
  BufferRange qkv() const;   // f32 [T, (H + 2 Hkv) * D]   fused q | k | v projections (q rotated in place)
  BufferRange attn() const;  // f32 [T, H * D]             attention output, heads side by side
  BufferRange mlp() const;   // f32 [T, inter]             silu(gate) * up (then each row's f16 halves at its
                             //                            start where down reads them: prefill on matrix units)
  // f32 [T, 2 * inter]  gate | up projections, only where the SwiGLU cannot fold into their product
  // (GateUpNeedsScratch); otherwise none.
  std::optional<BufferRange> gate_up() const;
  Buffer splits;          // f32 [T, H, splits, D + 2]   attention's KV splits: acc, then (m, l); or
                          // f32 [splits, T, rows]       a product's splits along K (prefill's q|k|v, o,
                          //                             down, a MoE layer's router and shared gate)
  Buffer split_counters;  // u32 [T * H]                 decode attention's splits counted, a block each
                          //                             (zero between dispatches)
  Buffer dequant;         // f16 [rows, cols]            a chunk of a weight's rows, dequantized (prefill:
                          //                             PrefillDequantBytes)
  // Mixture-of-experts layers only (4 bytes each otherwise); k = experts per token, I_e and I_s the
  // expert and shared-expert FFN sizes:
  Buffer router_logits;  // f32 [T, experts]                h Wr^T
  Buffer route_counter;  // u32 [1]                         one token's router workgroups counted (zero
                         //                                 between dispatches)
  // Each layer routes into its own slice (a dense layer's stays unused), so every layer's choice
  // is still there after a forward, for a test to compare with transformers'.
  Buffer expert_ids;            // u32 [L, stride / 4]: [T, k]     the chosen experts
  Buffer expert_weights;        // f32 [L, stride / 4]: [T, k]     their router weights
  Buffer expert_offsets;        // u32 [experts + 1]               prefill: expert e's pairs start
  Buffer expert_pairs;          // u32 [T * k]                     at offsets[e] here (pair t * k + j)
  Buffer expert_gate_up;        // f32 [T * k, 2 * I_e]            gate | up (of two types only)
  Buffer expert_mlp;            // f32 [T * k, I_e]                silu(gate) * up
  Buffer expert_out;            // f32 [T * k, hidden]             each chosen expert's output
  Buffer expert_x_f16;          // f16 [T, hidden] or [T * k, I_e] prefill: h or m rounded, as the
                                //                                 experts' products on matrix units
                                //                                 read it (ExpertsRoundedXBytes)
  Buffer shared_gate_up;        // f32 [T, 2 * I_s]                the shared expert's gate | up (as gate_up)
  Buffer shared_mlp;            // f32 [T, I_s]                    silu(gate) * up
  Buffer shared_out;            // f32 [T, hidden]                 the shared expert's output
  Buffer shared_gate;           // f32 [T]                         h . w_shared_gate
  Buffer ids;                   // u32 [T]                         token ids (host-written)
  Buffer positions;             // u32 [T]                         absolute position of each token
  Buffer inv_freq;              // f32 [D / 2]                     RoPE inverse frequencies
  Buffer logits;                // f32 [vocab]                     one position's logits, kept on the GPU
  Buffer host_logits;           // f32 [host_logits_rows, vocab]   logits rows the host reads whole (host-readable)
  Buffer topk_scratch_values;   // f32 [TopKScratchCount(vocab, kMaxRanked)]
  Buffer topk_scratch_indices;  // u32 [TopKScratchCount(vocab, kMaxRanked)]
  Buffer ranked_logits;         // f32 [kMaxRanked]                the best logits, descending (host-readable)
  Buffer ranked_ids;            // u32 [kMaxRanked]                their token ids (host-readable)
  float attention_factor = 1.0f;
  VkDeviceSize routing_layer_stride = 0;  // bytes from one layer's expert_ids (expert_weights) to the next

  // Makes host_logits hold `rows` rows at least, replacing it (and its contents) if it holds fewer.
  // No recorded graph may bind it then: only a prefill's all-logits stream asks for more than one.
  void GrowHostLogits(Device& device, uint32_t vocab, uint32_t rows);

  uint64_t bytes() const;  // GPU memory of every buffer above

 private:
  // Where the ranges of attention_or_mlp lie: q|k|v from 0, then attn; mlp from 0, then gate|up;
  // xn after the longer of q|k|v and the MLP's ranges.
  VkDeviceSize qkv_bytes_ = 0, attn_offset_ = 0, attn_bytes_ = 0, mlp_bytes_ = 0, gate_up_offset_ = 0,
               gate_up_bytes_ = 0, xn_offset_ = 0, xn_bytes_ = 0;
};

// Room for a prefill run state of `tokens` tokens to dequantize the dense projections' weights
// in, as chunks of rows rounded to f16 for the cooperative-matrix GEMM (ops::MatMulArgs::
// dequant_scratch): the largest chunk a product needs, capped at kMaxPrefillDequantBytes, and after
// it the widest such product's X rounded to f16 (ops::RoundedXBytes; not down's, whose m is rounded
// in place, MlpRounded in forward.cpp); 0 where the device has no cooperative-matrix GEMM, the
// tokens go to matvec, or every weight is F16 or BF16. A chunk of ops::CoopmatFillRows rows
// already keeps every SM busy, so a product with more rows runs in chunks (Qwen2.5-1.5B's
// gate|up: 2 of 8 960 rows, 27.5 MB of f16 rather than 55).
// Past the cap the products run in shorter chunks (7B's down, of 18 944 columns: 2 of 1 792 rows)
// rather than the run state growing by a whole MLP weight (136 MB at 7B).
inline constexpr VkDeviceSize kMaxPrefillDequantBytes = VkDeviceSize{64} << 20;
VkDeviceSize PrefillDequantBytes(const DeviceInfo& device, const ModelWeights& w, uint32_t tokens);
// The f16 bytes of the longest chunk a prefill of `tokens` tokens dequantizes a `rows` x `cols`
// weight in (ops::CoopmatFillRows rows at most), before kMaxPrefillDequantBytes caps it.
VkDeviceSize PrefillDequantChunkBytes(uint64_t rows, uint64_t cols, uint32_t tokens);

// Whether gate|up `parts` (one fused product, or one per stored type) need their products in a
// scratch before the SwiGLU: parts of two types, or a W bigger than one binding of `device`.
// Otherwise the product's epilogue applies it (on Qwen2.5-0.5B at 512 tokens, 19 MiB of prefill's
// working memory never allocated).
bool GateUpNeedsScratch(const DeviceInfo& device, const std::vector<Projection>& parts);

// Bytes of a run state's splits: attention's partials for up to `tokens` query rows against
// `context` cache rows, or the q|k|v, o and down products' (a MoE layer's router and shared gate
// for down) splits along K, whichever is more (one buffer: neither outlives its dispatches).
uint64_t SplitsBytes(const DeviceInfo& device, const ModelConfig& config, const ModelWeights& weights, uint32_t tokens,
                     uint32_t context);

// Bytes of an F16 KV cache for `tokens` positions: keys and values of every layer.
uint64_t KvCacheBytes(const ModelConfig& config, uint64_t tokens);

// Per-layer F16 keys and values: [Hkv, capacity, D] each, row = absolute position. Only the layers
// in `layers` get theirs (a stage of a split model); the others' stay empty.
struct KvCache {
  KvCache(Device& device, const ModelConfig& config, uint32_t capacity);
  KvCache(Device& device, const ModelConfig& config, uint32_t capacity, LayerRange layers);
  uint32_t capacity;
  std::vector<Buffer> k, v;
  uint64_t bytes() const;
};

// Attention probabilities captured during a forward pass: each layer marked in `layers` writes
// its own into `probs`, [H, tokens, stride], at (layer - the first layer recorded) * layer_bytes (0: every layer over
// the last's), and `consume(g, layer)`, where set, then records what reads them (attention maps before the next marked
// layer writes over them; live rows after the last layer).
struct AttentionProbs {
  BufferRange probs;
  uint32_t stride = 0;
  VkDeviceSize layer_bytes = 0;
  bool scores = false;  // the scores and each row's max and sum kept instead (AttentionArgs::scores)
  std::vector<bool> layers;
  std::function<void(Graph& g, uint32_t layer)> consume;
};

// Records the forward pass of `tokens` tokens whose ids and positions are already in the run
// state: through `layers` (none: every layer), writing their K and V into the cache; x ends as the
// last of them's output. The embedding runs only when the range starts at layer 0; otherwise x
// already holds the previous layer's output (a split model's stage, handed it by the previous
// device). `first_position` is the first token's position when recording, which only the
// dispatches' costs use (a replay reads the positions buffer).
void RecordForward(Graph& g, const ModelConfig& c, const ModelWeights& w, RunState& s, KvCache& kv, uint32_t tokens,
                   uint32_t first_position, const AttentionProbs* probs = nullptr,
                   std::optional<LayerRange> layers = std::nullopt);

// out[0 .. rows) = (rmsnorm(x[first_row .. first_row + rows)) * final_norm) . lm_head^T, where
// out is host_logits (on_host) or logits (one row, for ranking on the GPU only).
void RecordLogits(Graph& g, const ModelConfig& c, const ModelWeights& w, RunState& s, uint32_t first_row, uint32_t rows,
                  bool on_host);

// ranked_logits, ranked_ids = the k best of row 0 of host_logits (on_host) or logits, descending,
// ties to the lower id.
void RecordRanking(Graph& g, const ModelConfig& c, RunState& s, uint32_t k, bool on_host);

}  // namespace qvk
