#pragma once
// Qwen weights on the GPU, in the layout the forward pass wants: the Q, K and V projections
// stacked into one matrix (rows q | k | v, one dispatch computes all three) and gate and up
// stacked (rows gate | up, the layout the SwiGLU kernel reads), norms and biases as f32.
// Matrices keep their stored type (BF16, F16, F32 or a ggml block type; the kernels read each
// directly) or are quantized while they load. Projections of different types, as some GGUF
// files mix them, stay separate matrices writing side by side into the same output rows.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "gpu/memory.h"
#include "gpu/ops.h"
#include "model/config.h"

namespace qvk {

class Device;
class WeightSource;

// A matrix whose outputs land at column `y_offset` of a wider activation row.
struct Projection {
  Matrix w;
  uint32_t y_offset = 0;
};

// A mixture-of-experts FFN (Qwen2-MoE, Qwen3-MoE). Each projection stacks every expert's rows,
// expert e's at e * rows, so the kernels pick an expert by the router's id.
struct MoeLayerWeights {
  Matrix router;  // [experts, hidden]
  // Expert e's gate rows then its up rows from row e * 2 * inter_e, [experts * 2 * inter_e, hidden],
  // so that one product forms the SwiGLU; where gate and up are stored as different types, two
  // parts instead: every gate [experts * inter_e, hidden] (y_offset 0), every up (y_offset inter_e).
  std::vector<Projection> gate_up;
  Matrix down;                             // [experts * hidden, inter_e]
  std::vector<Projection> shared_gate_up;  // [2 * inter_s, hidden] in one or two parts (Qwen2-MoE)
  Matrix shared_down;                      // [hidden, inter_s]
  Matrix shared_gate;                      // [1, hidden]: the shared expert's sigmoid gate
};

struct LayerWeights {
  std::vector<Projection> qkv;      // [(H + 2 Hkv) * D, hidden] in one or three parts
  Buffer qkv_bias;                  // f32 [(H + 2 Hkv) * D]; empty without QKV bias (Qwen3)
  Buffer qk_norm;                   // f32 [2 * D]: q_norm | k_norm (Qwen3); empty otherwise
  Matrix o;                         // [hidden, H * D]
  std::vector<Projection> gate_up;  // [2 * inter, hidden] in one or two parts (dense layers)
  Matrix down;                      // [hidden, inter] (dense layers)
  std::optional<MoeLayerWeights> moe;
  Buffer input_norm;  // f32 [hidden]
  Buffer post_norm;   // f32 [hidden]
};

struct ModelWeights {
  std::vector<Buffer> matrix_storage;  // owns the buffers the Matrix views point into
  uint32_t host_layers = 0;            // layers whose matrices stay in host memory the GPU reads
  Matrix embed;                        // [vocab, hidden]
  Matrix lm_head;                      // [vocab, hidden]; the embedding itself when tied
  Buffer final_norm;                   // f32 [hidden]
  std::vector<LayerWeights> layers;
  uint64_t device_bytes = 0;
  uint64_t host_bytes = 0;
};

// Called as bytes reach the GPU: (done, total).
using LoadProgress = std::function<void(uint64_t, uint64_t)>;

struct LoadOptions {
  // Matrices go to GPU memory while this many bytes last: the output projection first (read in
  // full every token), then the embedding, then layers in order; the layers that do not fit stay
  // in host memory that the GPU reads over the bus, computing the same results more slowly.
  uint64_t device_budget = UINT64_MAX;
  // Q8_0 or Q4_0: float matrices are quantized while they stream (ggml's block formats).
  std::optional<DType> quantize;
  // Only these layers (a stage of a model split across devices), with the embedding when they
  // start at layer 0 and the final norm and lm_head when they end at the last; none: everything.
  // ModelWeights::layers keeps one entry per model layer, empty outside the range.
  std::optional<LayerRange> layers;
};

// `source` holds a valid model of `config` (ModelFiles checks that when it opens a model).
ModelWeights LoadWeights(Device& device, const ModelConfig& config, const WeightSource& source,
                         const LoadOptions& options = {}, const LoadProgress& progress = {});

}  // namespace qvk
