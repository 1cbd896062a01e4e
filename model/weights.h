#pragma once
// Qwen2 weights on the GPU, in the layout the forward pass wants: Q, K and V projections fused
// into one matrix (rows q | k | v, so one dispatch computes all three), gate and up fused
// (rows gate | up, the layout the SwiGLU kernel reads), norms and biases as f32. Matrices keep
// the checkpoint's type (BF16, F16 or F32); the kernels read it directly.
#include <cstdint>
#include <functional>
#include <vector>

#include "gpu/memory.h"
#include "gpu/ops.h"
#include "model/config.h"

namespace qvk {

class Device;
class SafetensorsModel;

struct LayerWeights {
  Matrix qkv;         // [(H + 2 Hkv) * D, hidden]
  Buffer qkv_bias;    // f32 [(H + 2 Hkv) * D]
  Matrix o;           // [hidden, H * D]
  Matrix gate_up;     // [2 * inter, hidden]
  Matrix down;        // [hidden, inter]
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

// Matrices go to GPU memory while `device_budget` bytes last: the output projection first (read
// in full every token), then the embedding, then layers in order; the layers that do not fit
// stay in host memory that the GPU reads over the bus, computing the same results more slowly.
ModelWeights LoadWeights(Device& device, const ModelConfig& config, const SafetensorsModel& model,
                         uint64_t device_budget = UINT64_MAX, const LoadProgress& progress = {});

}  // namespace qvk
