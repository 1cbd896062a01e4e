// The Qwen forward pass, top to bottom, one dispatch per line of math (as transformers'
// Qwen2ForCausalLM, Qwen2MoeForCausalLM, Qwen3ForCausalLM and Qwen3MoeForCausalLM compute it):
//
//   x = embed[ids]
//   for each layer:
//     q|k|v = (rmsnorm(x) * w_in) Wqkv^T [+ bqkv]            (one fused projection; no bias in Qwen3)
//     [q_h, k_h = rmsnorm(q_h) * w_qn, rmsnorm(k_h) * w_kn]  (Qwen3, per head)
//     q, k = rope(q, k, positions)       (k and v stored into the KV cache; folded into the projection)
//     a = softmax(q k^T / sqrt(D) + causal mask [+ window]) v   (grouped-query; p = the softmax, when captured)
//     x = x + a Wo^T
//     dense layer:
//       m = silu(h Wg^T) * (h Wu^T),  h = rmsnorm(x) * w_post   (one fused projection)
//       x = x + m Wdown^T
//     mixture-of-experts layer:
//       ids, w = top-k(softmax(h Wr^T))                       (renormalized with norm_topk_prob)
//       x = x + sum_j w_j (silu(h Wg[e_j]^T) * (h Wu[e_j]^T)) Wd[e_j]^T
//             [+ sigmoid(h . w_sg) (silu(h Wsg^T) * (h Wsu^T)) Wsd^T]   (Qwen2-MoE's shared expert)
//   logits = (rmsnorm(x) * w_final) Wlm^T
//
// The SwiGLU folds into the gate|up product's epilogue, whose gate and up rows are never stored. A
// norm folds into the projection that reads it and RoPE (with the KV cache store) into the q|k|v
// projection, when that runs as a matrix x vector (decode; a large K-quant gate|up, whose row
// groups would each repeat the norm's work, reads x * w_post that the o product stored beside x,
// a large K-quant q|k|v likewise x * w_in from the down product before, and the LM head has its
// norm apart: ops::MatMul); for prefill, ops
// records the norm (into xn) and RoPE as dispatches of their own, and q|k|v, o and down, whose few
// outputs leave a big GPU's SMs idle, may split along K, their splits in `splits` (attention's
// partials otherwise) and summed by one more dispatch.
// Qwen3's head norm and RoPE go with attention in decode (its kernel norms and rotates the heads
// as it stages them) and are a dispatch of their own in prefill.
// In a mixture-of-experts layer decode also folds the router's top-k into the router product (its
// last workgroup makes the choice), and the router weights, the sum over experts and a shared
// expert's gated output into the experts' down product; prefill groups the (token, expert) pairs
// by expert first, so that each expert's rows multiply all its tokens at once.
//
// Sections: the FFN pieces / run state and KV cache / the forward pass / logits and ranking
#include "model/forward.h"

#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/ops.h"
#include "model/input_limits.h"
#include "model/rope_frequencies.h"
#include "shaders/push_constants.h"

namespace qvk {
namespace {

constexpr VkDeviceSize F32 = 4;

// --- the FFN pieces ---------------------------------------------------------------------------

Buffer Make(Device& device, VkDeviceSize bytes, MemoryKind kind = MemoryKind::Device) {
  return device.allocator().CreateBuffer(std::max<VkDeviceSize>(bytes, 4), kind);
}

// m = silu(h Wg^T) * (h Wu^T), h = the input (normalized on the way with `norm`): one fused
// product when gate|up is one matrix, else one product per stored type into `scratch` and a SwiGLU
// (GateUpNeedsScratch: then, or where the matrix is bigger than one binding, the run state sized
// `scratch` for both products).
void RecordGateUp(Graph& g, const std::vector<Projection>& gate_up, BufferRange x,
                  std::optional<ops::RmsNormInput> norm, std::optional<BufferRange> scratch, BufferRange m,
                  uint32_t tokens, uint32_t inter, std::string_view label,
                  std::optional<BufferRange> dequant = std::nullopt) {
  if (gate_up.size() == 1) {
    ops::MatMul(g,
                {.w = gate_up[0].w,
                 .x = x,
                 .y = m,
                 .tokens = tokens,
                 .norm = norm,
                 .swiglu = ops::SwiGluOutput{scratch},
                 .dequant_scratch = dequant},
                label);
    return;
  }
  if (!scratch) throw Error("gate|up in parts of two types needs a scratch for both products");
  for (const Projection& part : gate_up) {
    ops::MatMul(g,
                {.w = part.w,
                 .x = x,
                 .y = *scratch,
                 .tokens = tokens,
                 .y_stride = 2 * inter,
                 .y_offset = part.y_offset,
                 .norm = norm,
                 .dequant_scratch = dequant},
                label);
  }
  ops::SwiGlu(g, *scratch, m, tokens, inter, fmt::format("{}_swiglu", label));
}

// Whether a dense layer's down product, which multiplies rows dequantized to f16 and so reads its X
// rounded (prefill on matrix units), reads m rounded in m's own range (RoundToF16InPlace: nothing
// reads its f32 form after) rather than at the end of the dequantization scratch, which then
// needs no room for it (0.5B's 4.75 MiB at 512 tokens; docs/speed.md, sessions 44-46).
bool MlpRounded(const DeviceInfo& device, const LayerWeights& L, uint32_t tokens) {
  return !L.moe && ops::ChooseMatMulKernel(device, tokens) == ops::MatMulKernel::CoopMat &&
         ops::DequantizesToF16(L.down.dtype, L.down.cols) && L.down.cols % 8 == 0;
}

// Every router the configuration admits fits the kernels' choice (moe_choice.glsl).
static_assert(input_limits::kMaxExperts <= QVK_MAX_EXPERTS && input_limits::kMaxExpertsPerToken <= QVK_MAX_SEGMENTS);

// The mixture-of-experts FFN of layer `l`, added to x. Decode (matvec's few tokens) reads only
// the chosen experts' rows, the choice never leaving the GPU: the norm folds into the products
// that read h (or runs once before them where the experts' rows are large K-quants), one token's
// top-k into the router product, the SwiGLU into the gate|up product, the router weights and the
// sum over experts into the down product, with a shared expert's gated output in its epilogue.
// Prefill groups the (token, slot) pairs by expert so that each expert's rows are read once per
// tile of its tokens.
void RecordMoe(Graph& g, const ModelConfig& c, const MoeLayerWeights& M, const Buffer& post_norm, RunState& s,
               uint32_t tokens, uint32_t l) {
  const MoeConfig& moe = *c.moe;
  const uint32_t k = moe.experts_per_token, inter = moe.expert_intermediate_size;
  const bool decode = ops::ChooseMatMulKernel(g.device().info(), tokens) == ops::MatMulKernel::MatVec;
  // This layer's slice of the routing every layer leaves behind.
  const VkDeviceSize pairs_bytes = VkDeviceSize{4} * tokens * k;
  const BufferRange expert_ids(s.expert_ids, l * s.routing_layer_stride, pairs_bytes);
  const BufferRange expert_weights(s.expert_weights, l * s.routing_layer_stride, pairs_bytes);
  // h = rmsnorm(x) * w_post   (decode: folded into each product that reads h, unless the experts'
  // fused gate|up rows that a token reads take it apart, by the rule of a dense gate|up; then,
  // without a shared expert, one token's router product makes h as it reads x and leaves it in xn
  // for the experts: a shared expert's gate|up reads h beside the router, at once, and would wait
  // for it instead)
  const Matrix& experts_gate_up = M.gate_up[0].w;
  const bool fold_norm =
      decode && !(M.gate_up.size() == 1 &&
                  ops::NormApartFor(experts_gate_up.dtype, tokens,
                                    uint64_t{k} * experts_gate_up.rows / moe.num_experts * experts_gate_up.cols));
  const std::optional<ops::RmsNormInput> norm =
      fold_norm ? std::optional(ops::RmsNormInput{.weight = post_norm, .eps = c.rms_norm_eps, .scratch = s.xn()})
                : std::nullopt;
  const BufferRange h = fold_norm ? s.x : s.xn();
  const bool shared = moe.shared_expert_intermediate_size > 0;
  const bool router_norms = decode && !fold_norm && tokens == 1 && !shared;
  if (!fold_norm && !router_norms) {
    ops::RmsNorm(g, s.x, post_norm, s.xn(), tokens, c.hidden_size, c.rms_norm_eps, "moe_norm");
  }
  // r = h Wr^T
  // ids, w = top-k(softmax(r))   (w renormalized to sum 1 with norm_topk_prob; one token: made by the
  // router product's last workgroup, no dispatch of its own)
  // (prefill: a few long rows, split along K so that more than a handful of workgroups run them)
  const bool route_in_router = decode && tokens == 1;
  ops::MatMul(g,
              {.w = M.router,
               .x = router_norms ? s.x : h,
               .y = s.router_logits,
               .tokens = tokens,
               .norm = router_norms ? std::optional(ops::RmsNormInput{
                                          .weight = post_norm, .eps = c.rms_norm_eps, .scratch = s.xn(), .store = true})
                                    : norm,
               .route = route_in_router ? std::optional(ops::RouteOutput{.ids = expert_ids,
                                                                         .weights = expert_weights,
                                                                         .counter = BufferRange(s.route_counter),
                                                                         .k = k,
                                                                         .normalize = moe.norm_topk_prob})
                                        : std::nullopt,
               .split_scratch = BufferRange(s.splits)},
              "router");
  if (!route_in_router) {
    ops::MoeRoute(g, s.router_logits, expert_ids, expert_weights, tokens, moe.num_experts, k, moe.norm_topk_prob,
                  "route");
  }
  if (shared) {  // before the experts' down product, which in decode adds to x (h's source) and o_s
    // m_s = silu(h Wsg^T) * (h Wsu^T)
    // (prefill: rows rounded to f16 in chunks first, as a dense layer's gate|up and down)
    RecordGateUp(g, M.shared_gate_up, h, norm, s.shared_gate_up, s.shared_mlp, tokens,
                 moe.shared_expert_intermediate_size, "shared_gate_up", BufferRange(s.dequant));
    // o_s = m_s Wsd^T
    ops::MatMul(g,
                {.w = M.shared_down,
                 .x = s.shared_mlp,
                 .y = s.shared_out,
                 .tokens = tokens,
                 .split_scratch = BufferRange(s.splits),
                 .dequant_scratch = BufferRange(s.dequant)},
                "shared_down");
    // g_s = h . w_sg
    ops::MatMul(g,
                {.w = M.shared_gate,
                 .x = h,
                 .y = s.shared_gate,
                 .tokens = tokens,
                 .norm = norm,
                 .split_scratch = BufferRange(s.splits)},
                "shared_gate");
  }
  std::optional<ops::ExpertGroups> groups;
  if (!decode) {
    // pairs sorted by expert: expert e's (t, j) at expert_pairs[offsets[e] .. offsets[e + 1])
    groups = ops::ExpertGroups{.offsets = s.expert_offsets, .sorted = s.expert_pairs};
    ops::GroupByExpert(g, expert_ids, tokens * k, moe.num_experts, *groups, "experts_group");
  }
  // m[t, j] = silu(h[t] Wg[e]^T) * (h[t] Wu[e]^T),  e = ids[t, j]   (one product, or one per stored type)
  for (const Projection& part : M.gate_up) {
    const bool fused = M.gate_up.size() == 1;
    ops::ExpertsMatMul(g,
                       {.w = part.w,
                        .expert_rows = part.w.rows / moe.num_experts,
                        .x = h,
                        .ids = expert_ids,
                        .y = fused ? s.expert_mlp : s.expert_gate_up,
                        .tokens = tokens,
                        .k = k,
                        .y_stride = fused ? inter : 2 * inter,
                        .y_offset = part.y_offset,
                        .norm = norm,
                        .swiglu = fused,
                        .groups = groups,
                        .x_f16 = s.expert_x_f16},
                       "experts_gate_up");
  }
  if (M.gate_up.size() > 1) ops::SwiGlu(g, s.expert_gate_up, s.expert_mlp, tokens * k, inter, "experts_swiglu");
  if (decode) {
    // x = x + sum_j w[t, j] m[t, j] Wd[ids[t, j]]^T   (the k experts' rows side by side: one product)
    //       [+ sigmoid(g_s) o_s]                       (the shared expert, in its epilogue)
    ops::ExpertsMatVecSum(
        g,
        {.w = M.down,
         .expert_rows = c.hidden_size,
         .m = s.expert_mlp,
         .ids = expert_ids,
         .weights = expert_weights,
         .y = s.x,
         .tokens = tokens,
         .k = k,
         .shared =
             shared ? std::optional(ops::SharedExpertOut{.out = s.shared_out, .gate = s.shared_gate}) : std::nullopt},
        "experts_down");
  } else {
    // o[t, j] = m[t, j] Wd[ids[t, j]]^T
    ops::ExpertsMatMul(g,
                       {.w = M.down,
                        .expert_rows = c.hidden_size,
                        .x = s.expert_mlp,
                        .x_per_pair = true,
                        .ids = expert_ids,
                        .y = s.expert_out,
                        .tokens = tokens,
                        .k = k,
                        .groups = groups,
                        .x_f16 = s.expert_x_f16},
                       "experts_down");
  }
  if (!decode) {
    // x = x + sum_j w[t, j] o[t, j]  [+ sigmoid(g_s) o_s]   (the shared expert)
    ops::MoeCombine(g,
                    {.x = s.x,
                     .weights = expert_weights,
                     .expert_out = s.expert_out,
                     .shared_out = shared ? std::optional(BufferRange(s.shared_out)) : std::nullopt,
                     .shared_gate = shared ? std::optional(BufferRange(s.shared_gate)) : std::nullopt,
                     .tokens = tokens,
                     .hidden = c.hidden_size,
                     .k = k},
                    "moe_combine");
  }
}

}  // namespace

// --- run state and KV cache -------------------------------------------------------------------

RunState::RunState(Device& device, const ModelConfig& c, const ModelWeights& w, uint32_t tokens, uint32_t rows,
                   uint32_t context)
    : max_tokens(tokens), host_logits_rows(rows) {
  const DeviceInfo& info = device.info();
  const VkDeviceSize qkv_width = (c.num_heads + 2 * c.num_kv_heads) * c.head_dim;
  // Which of the layers' gate|up products (dense, and MoE's shared expert) need a scratch.
  bool gate_up_scratch = false, shared_scratch = false, experts_scratch = false;
  for (const LayerWeights& L : w.layers) {
    if (L.moe) {
      shared_scratch = shared_scratch || GateUpNeedsScratch(info, L.moe->shared_gate_up);
      experts_scratch = experts_scratch || L.moe->gate_up.size() > 1;
    } else {
      gate_up_scratch = gate_up_scratch || GateUpNeedsScratch(info, L.gate_up);
    }
  }
  x = Make(device, F32 * tokens * c.hidden_size);
  // Each range starts where a binding may.
  qkv_bytes_ = F32 * tokens * qkv_width;
  attn_offset_ = AlignUp(qkv_bytes_, info.storage_offset_alignment);
  attn_bytes_ = F32 * tokens * c.num_heads * c.head_dim;
  mlp_bytes_ = F32 * tokens * c.intermediate_size;
  gate_up_offset_ = AlignUp(mlp_bytes_, info.storage_offset_alignment);
  gate_up_bytes_ = gate_up_scratch ? F32 * tokens * 2 * c.intermediate_size : 0;
  const VkDeviceSize mlp_end = gate_up_bytes_ > 0 ? gate_up_offset_ + gate_up_bytes_ : mlp_bytes_;
  xn_offset_ = AlignUp(std::max(qkv_bytes_, mlp_end), info.storage_offset_alignment);
  xn_bytes_ = F32 * tokens * c.hidden_size;
  attention_or_mlp = Make(device, std::max(attn_offset_ + attn_bytes_, xn_offset_ + xn_bytes_));
  splits = Make(device, SplitsBytes(info, c, w, tokens, context));
  // Zero once: each attention dispatch that counts on them leaves them zero.
  split_counters = Make(device, ops::AttentionSplitCounterBytes(tokens, c.num_heads));
  const std::vector<uint32_t> zeros(split_counters.size() / 4, 0);
  device.Upload(split_counters, 0, std::as_bytes(std::span(zeros)));
  dequant = Make(device, PrefillDequantBytes(info, w, tokens));
  if (c.moe) {
    const VkDeviceSize pairs = VkDeviceSize{tokens} * c.moe->experts_per_token;
    const VkDeviceSize expert_inter = c.moe->expert_intermediate_size;
    const VkDeviceSize shared_inter = c.moe->shared_expert_intermediate_size;
    router_logits = Make(device, F32 * tokens * c.moe->num_experts);
    // Zero once: each router product that counts on it leaves it zero.
    route_counter = Make(device, 4);
    const uint32_t zero = 0;
    device.Upload(route_counter, 0, std::as_bytes(std::span(&zero, 1)));
    // A multiple of 256 bytes, the largest storage-buffer offset alignment Vulkan allows.
    routing_layer_stride = AlignUp(4 * pairs, 256);
    expert_ids = Make(device, c.num_layers * routing_layer_stride);
    expert_weights = Make(device, c.num_layers * routing_layer_stride);
    expert_offsets = Make(device, VkDeviceSize{4} * (c.moe->num_experts + 1));
    expert_pairs = Make(device, 4 * pairs);
    expert_gate_up = Make(device, experts_scratch ? F32 * pairs * 2 * expert_inter : 0);
    expert_mlp = Make(device, F32 * pairs * expert_inter);
    expert_out = Make(device, F32 * pairs * c.hidden_size);
    VkDeviceSize x_f16_bytes = 0;
    for (const LayerWeights& L : w.layers) {
      if (!L.moe) continue;
      for (const Projection& part : L.moe->gate_up) {
        x_f16_bytes =
            std::max(x_f16_bytes, ops::ExpertsRoundedXBytes(info, part.w.dtype, c.hidden_size, tokens, tokens));
      }
      x_f16_bytes =
          std::max(x_f16_bytes, ops::ExpertsRoundedXBytes(info, L.moe->down.dtype, c.moe->expert_intermediate_size,
                                                          static_cast<uint32_t>(pairs), tokens));
    }
    expert_x_f16 = Make(device, x_f16_bytes);
    shared_gate_up = Make(device, shared_scratch ? F32 * tokens * 2 * shared_inter : 0);
    shared_mlp = Make(device, F32 * tokens * shared_inter);
    shared_out = Make(device, F32 * tokens * c.hidden_size * (shared_inter > 0 ? 1 : 0));
    shared_gate = Make(device, F32 * tokens * (shared_inter > 0 ? 1 : 0));
  } else {
    for (Buffer* b :
         {&router_logits, &route_counter, &expert_ids, &expert_weights, &expert_offsets, &expert_pairs, &expert_gate_up,
          &expert_mlp, &expert_out, &expert_x_f16, &shared_gate_up, &shared_mlp, &shared_out, &shared_gate}) {
      *b = Make(device, 0);
    }
  }
  ids = Make(device, 4 * tokens, MemoryKind::Upload);
  positions = Make(device, 4 * tokens, MemoryKind::Upload);
  logits = Make(device, F32 * c.vocab_size);
  host_logits = Make(device, F32 * rows * c.vocab_size, MemoryKind::Readback);
  const uint32_t scratch = ops::TopKScratchCount(c.vocab_size, kMaxRanked);
  topk_scratch_values = Make(device, F32 * scratch);
  topk_scratch_indices = Make(device, 4 * scratch);
  ranked_logits = Make(device, F32 * kMaxRanked, MemoryKind::Readback);
  ranked_ids = Make(device, 4 * kMaxRanked, MemoryKind::Readback);

  const RopeFrequencies freqs = ComputeRopeFrequencies(c.head_dim, c.rope_theta, c.yarn);
  inv_freq = Make(device, F32 * freqs.inv_freq.size());
  device.Upload(inv_freq, 0, std::as_bytes(std::span(freqs.inv_freq)));
  attention_factor = freqs.attention_factor;
}

BufferRange RunState::xn() const {
  return {attention_or_mlp, xn_offset_, xn_bytes_};
}
BufferRange RunState::qkv() const {
  return {attention_or_mlp, 0, qkv_bytes_};
}
BufferRange RunState::attn() const {
  return {attention_or_mlp, attn_offset_, attn_bytes_};
}
BufferRange RunState::mlp() const {
  return {attention_or_mlp, 0, mlp_bytes_};
}
std::optional<BufferRange> RunState::gate_up() const {
  if (gate_up_bytes_ == 0) return std::nullopt;
  return BufferRange(attention_or_mlp, gate_up_offset_, gate_up_bytes_);
}

void RunState::GrowHostLogits(Device& device, uint32_t vocab, uint32_t rows) {
  if (rows <= host_logits_rows) return;
  host_logits = Make(device, F32 * rows * vocab, MemoryKind::Readback);
  host_logits_rows = rows;
}

uint64_t RunState::bytes() const {
  uint64_t total = 0;
  for (const Buffer* b : {&x,
                          &attention_or_mlp,
                          &splits,
                          &split_counters,
                          &dequant,
                          &router_logits,
                          &route_counter,
                          &expert_ids,
                          &expert_weights,
                          &expert_offsets,
                          &expert_pairs,
                          &expert_gate_up,
                          &expert_mlp,
                          &expert_out,
                          &expert_x_f16,
                          &shared_gate_up,
                          &shared_mlp,
                          &shared_out,
                          &shared_gate,
                          &ids,
                          &positions,
                          &inv_freq,
                          &logits,
                          &host_logits,
                          &topk_scratch_values,
                          &topk_scratch_indices,
                          &ranked_logits,
                          &ranked_ids}) {
    total += b->size();
  }
  return total;
}

VkDeviceSize PrefillDequantBytes(const DeviceInfo& device, const ModelWeights& w, uint32_t tokens) {
  if (ops::ChooseMatMulKernel(device, tokens) != ops::MatMulKernel::CoopMat) return 0;
  VkDeviceSize bytes = 0;
  uint32_t widest = 0;  // the widest X such a product reads rounded at the scratch's end
  const auto need = [&](const Matrix& m, bool x_rounded = false) {
    if (ops::DequantizesToF16(m.dtype, m.cols)) {
      bytes = std::max(bytes, PrefillDequantChunkBytes(m.rows, m.cols, tokens));
      if (!x_rounded) widest = std::max(widest, m.cols);
    }
  };
  for (const LayerWeights& L : w.layers) {
    for (const Projection& part : L.qkv) need(part.w);
    need(L.o);
    for (const Projection& part : L.gate_up) need(part.w);
    if (!L.moe) {
      need(L.down, MlpRounded(device, L, tokens));
    } else if (L.moe->shared_down.buffer != nullptr) {  // Qwen2-MoE's shared expert
      for (const Projection& part : L.moe->shared_gate_up) need(part.w);
      need(L.moe->shared_down);
    }
  }
  return bytes == 0 ? 0 : std::min(bytes, kMaxPrefillDequantBytes) + ops::RoundedXBytes(tokens, widest);
}

VkDeviceSize PrefillDequantChunkBytes(uint64_t rows, uint64_t cols, uint32_t tokens) {
  // A product's chunks need be no longer than keeps the GPU busy.
  return VkDeviceSize{2} * std::min<uint64_t>(rows, ops::CoopmatFillRows(tokens)) * cols;
}

bool GateUpNeedsScratch(const DeviceInfo& device, const std::vector<Projection>& parts) {
  return parts.size() > 1 || (parts.size() == 1 && ops::SwiGluNeedsScratch(device, parts[0].w));
}

uint64_t SplitsBytes(const DeviceInfo& device, const ModelConfig& c, const ModelWeights& w, uint32_t tokens,
                     uint32_t context) {
  uint64_t bytes = ops::AttentionScratchBytes(tokens, c.num_heads, c.num_kv_heads, c.head_dim, context);
  const VkDeviceSize dequant = PrefillDequantBytes(device, w, tokens);
  const auto need = [&](const Matrix& m, bool x_rounded = false) {
    bytes = std::max(bytes, ops::SplitScratchBytes(device, m, tokens, dequant, x_rounded));
  };
  for (const LayerWeights& L : w.layers) {
    if (L.o.buffer == nullptr) continue;  // a layer another stage holds
    for (const Projection& part : L.qkv) need(part.w);
    need(L.o);
    if (!L.moe) {
      need(L.down, MlpRounded(device, L, tokens));
    } else {
      need(L.moe->router);
      if (L.moe->shared_gate.buffer != nullptr) need(L.moe->shared_gate);
      if (L.moe->shared_down.buffer != nullptr) need(L.moe->shared_down);
    }
  }
  return bytes;
}

uint64_t KvCacheBytes(const ModelConfig& c, uint64_t tokens) {
  return uint64_t{2} * 2 * c.num_layers * c.num_kv_heads * c.head_dim * tokens;
}

KvCache::KvCache(Device& device, const ModelConfig& c, uint32_t cap) : KvCache(device, c, cap, AllLayers(c)) {}

KvCache::KvCache(Device& device, const ModelConfig& c, uint32_t cap, LayerRange layers) : capacity(cap) {
  const VkDeviceSize bytes = KvCacheBytes(c, capacity) / (2 * c.num_layers);  // one of K or V, one layer
  k.resize(c.num_layers);
  v.resize(c.num_layers);
  for (uint32_t l = layers.begin; l < layers.end; ++l) {
    k[l] = Make(device, bytes);
    v[l] = Make(device, bytes);
  }
}

uint64_t KvCache::bytes() const {
  uint64_t total = 0;
  for (size_t l = 0; l < k.size(); ++l) total += k[l].size() + v[l].size();
  return total;
}

// --- the forward pass -------------------------------------------------------------------------

void RecordForward(Graph& g, const ModelConfig& c, const ModelWeights& w, RunState& s, KvCache& kv, uint32_t tokens,
                   uint32_t first_position, const AttentionProbs* probs, std::optional<LayerRange> layers) {
  if (tokens == 0 || tokens > s.max_tokens) throw Error(fmt::format("forward of {} tokens", tokens));
  const LayerRange range = layers.value_or(AllLayers(c));
  const uint32_t qkv_width = (c.num_heads + 2 * c.num_kv_heads) * c.head_dim;

  // x = embed[ids]   (the first stage only; a later one receives x from the stage before)
  if (range.begin == 0) ops::Embed(g, w.embed, s.ids, s.x, tokens, "embed");

  // One token: where gate|up's norm would be a dispatch of its own (ops::NormApartFor), the o
  // product that adds to x also stores x * w_post into xn (ops::ScaledOutput), which gate|up reads
  // as its input, summing x's squares itself for 1 / rms. Not where xn overlaps attention's output,
  // which o reads.
  const bool o_scales = tokens == 1 && Apart(s.xn(), s.attn());
  // And q|k|v, where its rows are large K-quants by the same rule (Qwen3-8B's, 25M weights; not
  // Qwen2.5-7B's 16.5M): the down product before stores x * w_in, or where none on this device did
  // (its first layer, or one after a MoE layer) a scale_by_weight dispatch, to the bit, so that a
  // model split across devices computes what one device would.
  const auto qkv_prescaled = [&](uint32_t l) {
    uint64_t weights = 0;
    for (const Projection& part : w.layers[l].qkv) weights += uint64_t{part.w.rows} * part.w.cols;
    bool all = tokens == 1;
    for (const Projection& part : w.layers[l].qkv) all = all && ops::NormApartFor(part.w.dtype, tokens, weights);
    return all;
  };
  bool x_scaled = false;  // xn holds x * this layer's w_in: the down product before stored it

  for (uint32_t l = range.begin; l < range.end; ++l) {
    const LayerWeights& L = w.layers[l];
    const bool in_prescaled = qkv_prescaled(l);
    // xn = x * w_in   (where q|k|v reads it so and no product before stored it)
    if (in_prescaled && !x_scaled) ops::ScaleByWeight(g, s.x, L.input_norm, s.xn(), tokens, c.hidden_size, "qkv_scale");
    std::vector<ops::MatMulArgs> qkv;
    for (const Projection& part : L.qkv) {
      qkv.push_back(
          {.w = part.w,
           .x = s.x,
           .y = s.qkv(),
           .tokens = tokens,
           .y_stride = qkv_width,
           .y_offset = part.y_offset,
           .bias = c.qkv_bias ? std::optional(BufferRange(L.qkv_bias)) : std::nullopt,
           .norm =
               ops::RmsNormInput{
                   .weight = L.input_norm, .eps = c.rms_norm_eps, .scratch = s.xn(), .prescaled = in_prescaled},
           .split_scratch = BufferRange(s.splits),
           .dequant_scratch = BufferRange(s.dequant)});
    }
    const ops::RopeArgs rope{.qkv = s.qkv(),
                             .positions = s.positions,
                             .inv_freq = s.inv_freq,
                             .tokens = tokens,
                             .n_heads = c.num_heads,
                             .n_kv_heads = c.num_kv_heads,
                             .head_dim = c.head_dim,
                             .attention_factor = s.attention_factor,
                             .k_cache = BufferRange(kv.k[l]),
                             .v_cache = BufferRange(kv.v[l]),
                             .capacity = kv.capacity};
    // Qwen3 decode: its head norm and RoPE are done by the attention kernel, as it stages the heads.
    const bool norm_in_attention =
        c.qk_norm && ops::AttentionNormsHeads(tokens, c.num_heads, c.num_kv_heads, c.head_dim);
    if (!c.qk_norm) {
      // q|k|v = (rmsnorm(x) * w_in) Wqkv^T + bqkv   (one product, or one per stored type);
      // q, k = rope(q, k); cache[k|v][positions] = k, v   (in the products' epilogue when decoding)
      ops::MatMulRope(g, qkv, rope, "qkv", "rope");
    } else {
      // q|k|v = (rmsnorm(x) * w_in) Wqkv^T   (one product, or one per stored type)
      for (const ops::MatMulArgs& part : qkv) ops::MatMul(g, part, "qkv");
      // q_h, k_h = rope(rmsnorm(q_h) * w_qn, rmsnorm(k_h) * w_kn)   (each head of q and k);
      // cache[k|v][positions] = k, v   (in decode: by the attention kernel below)
      if (!norm_in_attention) {
        ops::HeadNormRope(g, rope, {.weight = L.qk_norm, .eps = c.rms_norm_eps}, "qk_norm_rope");
      }
    }
    // a = softmax(q k^T / sqrt(D) + mask) v, over keys 0..position (within the layer's window);
    // p = that softmax (or its scores with each row's max and sum), where a capture asks for this layer
    ops::AttentionArgs attention{.q = s.qkv(),
                                 .positions = s.positions,
                                 .k_cache = kv.k[l],
                                 .v_cache = kv.v[l],
                                 .out = s.attn(),
                                 .tokens = tokens,
                                 .n_heads = c.num_heads,
                                 .n_kv_heads = c.num_kv_heads,
                                 .head_dim = c.head_dim,
                                 .capacity = kv.capacity,
                                 .q_stride = qkv_width,
                                 .window = c.layer_window[l],
                                 .scratch = BufferRange(s.splits),
                                 .split_counters = BufferRange(s.split_counters),
                                 .first_position = first_position};
    if (norm_in_attention) {
      attention.head_norm = ops::AttentionArgs::HeadNorm{
          .weight = L.qk_norm, .eps = c.rms_norm_eps, .inv_freq = s.inv_freq, .attention_factor = s.attention_factor};
    }
    const bool captured = probs != nullptr && probs->layers[l];
    if (captured) {
      attention.probs = SubRange(probs->probs, (l - range.begin) * probs->layer_bytes,
                                 probs->layer_bytes != 0 ? probs->layer_bytes : probs->probs.size);
      attention.probs_stride = probs->stride;
      attention.scores = probs->scores;
    }
    ops::Attention(g, attention, "attention");
    // maps = reduce(p): what the capture keeps of p (attention_reduce, attention_live)
    if (captured && probs->consume) probs->consume(g, l);
    // x = x + a Wo^T   (and xn = x * w_post, as above)
    const bool h_scaled =
        o_scales && !L.moe && L.gate_up.size() == 1 &&
        ops::NormApartFor(L.gate_up[0].w.dtype, tokens, uint64_t{L.gate_up[0].w.rows} * L.gate_up[0].w.cols);
    ops::MatMul(
        g,
        {.w = L.o,
         .x = s.attn(),
         .y = s.x,
         .tokens = tokens,
         .residual = BufferRange(s.x),
         .scaled_out = h_scaled ? std::optional(ops::ScaledOutput{.weight = L.post_norm, .out = s.xn()}) : std::nullopt,
         .split_scratch = BufferRange(s.splits),
         .dequant_scratch = BufferRange(s.dequant)},
        "o_proj");
    x_scaled = false;
    if (L.moe) {
      RecordMoe(g, c, *L.moe, L.post_norm, s, tokens, l);
      continue;
    }
    // m = silu(h Wg^T) * (h Wu^T),  h = rmsnorm(x) * w_post
    RecordGateUp(
        g, L.gate_up, s.x,
        ops::RmsNormInput{.weight = L.post_norm, .eps = c.rms_norm_eps, .scratch = s.xn(), .prescaled = h_scaled},
        s.gate_up(), s.mlp(), tokens, c.intermediate_size, "gate_up", BufferRange(s.dequant));
    // m = f16(m) in place, each row's halves at the start of its f32 row, where down reads it so
    const bool m_rounded = MlpRounded(g.device().info(), L, tokens) &&
                           ops::MultipliesRoundedRows(g.device().info(), L.down, tokens, s.dequant.size(), true);
    if (m_rounded) ops::RoundToF16InPlace(g, s.mlp(), tokens, c.intermediate_size, "down_x_f16");
    // x = x + m Wdown^T   (and xn = x * the next layer's w_in, as above)
    x_scaled = l + 1 < range.end && qkv_prescaled(l + 1);
    ops::MatMul(
        g,
        {.w = L.down,
         .x = s.mlp(),
         .y = s.x,
         .tokens = tokens,
         .x_stride = m_rounded ? 2 * c.intermediate_size : 0,
         .x_rounded = m_rounded,
         .residual = BufferRange(s.x),
         .scaled_out = x_scaled ? std::optional(ops::ScaledOutput{.weight = w.layers[l + 1].input_norm, .out = s.xn()})
                                : std::nullopt,
         .split_scratch = BufferRange(s.splits),
         .dequant_scratch = BufferRange(s.dequant)},
        "down");
  }
}

// --- logits and ranking -----------------------------------------------------------------------

void RecordLogits(Graph& g, const ModelConfig& c, const ModelWeights& w, RunState& s, uint32_t first_row, uint32_t rows,
                  bool on_host) {
  if (rows == 0 || rows > (on_host ? s.host_logits_rows : 1)) throw Error(fmt::format("logits for {} rows", rows));
  const VkDeviceSize row_bytes = F32 * c.hidden_size;
  // logits = (rmsnorm(x[rows]) * w_final) Wlm^T
  ops::MatMul(g,
              {.w = w.lm_head,
               .x = BufferRange(s.x, first_row * row_bytes, rows * row_bytes),
               .y = BufferRange(on_host ? s.host_logits : s.logits, 0, F32 * rows * c.vocab_size),
               .tokens = rows,
               .norm = ops::RmsNormInput{.weight = w.final_norm,
                                         .eps = c.rms_norm_eps,
                                         .scratch = SubRange(s.xn(), first_row * row_bytes, rows * row_bytes)}},
              "lm_head");
}

void RecordRanking(Graph& g, const ModelConfig& c, RunState& s, uint32_t k, bool on_host) {
  // ranked = top-k(logits[0])
  ops::TopK(g, BufferRange(on_host ? s.host_logits : s.logits, 0, F32 * c.vocab_size), c.vocab_size, k,
            s.topk_scratch_values, s.topk_scratch_indices, BufferRange(s.ranked_logits, 0, F32 * k),
            BufferRange(s.ranked_ids, 0, 4 * k), "ranking");
}

}  // namespace qvk
