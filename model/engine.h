#pragma once
// Runs a loaded Qwen2 model: keeps the KV cache and the tokens it holds, prefills prompts
// (computing only what the cache does not already hold), and decodes one token at a time by
// replaying a step recorded once.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/forward.h"
#include "model/weights.h"

namespace qvk {

class Device;

// The context a model gets unless the user asks otherwise: min(32768, max_position_embeddings).
uint32_t DefaultContext(const ModelConfig& config);

struct EngineOptions {
  uint32_t context = 0;          // KV cache rows; 0: min(32768, max_position_embeddings)
  uint32_t prefill_chunk = 256;  // tokens per prefill dispatch sequence
};

class Engine {
 public:
  Engine(Device& device, const ModelConfig& config, const ModelWeights& weights, const EngineOptions& options = {});
  ~Engine();

  // GPU memory an engine needs besides the weights and the KV cache (a prefill chunk's
  // activations and the logits rows, with room to spare), so a budget can be planned before loading.
  static uint64_t WorkingMemoryBytes(const ModelConfig& config, const EngineOptions& options = {});

  // Makes the cache hold exactly `ids`: keeps the longest prefix it already holds and computes
  // the rest in chunks. Returns the logits at the last position (valid until the next call).
  std::span<const float> Prefill(std::span<const uint32_t> ids);
  // Appends one token; returns the logits after it. argmax() is the greedy next token.
  std::span<const float> Decode(uint32_t id);
  uint32_t argmax() const { return argmax_; }

  // Logits at every position of `ids` from one batched prefill on an empty cache;
  // `row(position, logits)` is called in order.
  void PrefillAllLogits(std::span<const uint32_t> ids,
                        const std::function<void(uint32_t, std::span<const float>)>& row);
  // Post-softmax attention of a prefill of `ids` on an empty cache: [layers, heads, T, T].
  std::vector<float> PrefillAttention(std::span<const uint32_t> ids);

  // Forgets everything after the first `keep` cached tokens.
  void Truncate(size_t keep);
  const std::vector<uint32_t>& cached_tokens() const { return cached_; }
  uint32_t context() const { return kv_.capacity; }
  uint64_t kv_cache_bytes() const { return kv_.bytes(); }
  const ModelConfig& config() const { return config_; }

 private:
  void WriteStep(RunState& s, std::span<const uint32_t> ids, uint32_t first_position);
  std::span<const float> LogitsRow(const RunState& s, uint32_t row) const;
  void CheckFits(size_t tokens) const;

  Device& device_;
  const ModelConfig& config_;
  const ModelWeights& weights_;
  uint32_t chunk_;
  KvCache kv_;
  RunState prefill_;
  RunState decode_;
  std::unique_ptr<Graph> decode_graph_;  // recorded on first use, then replayed
  std::vector<uint32_t> cached_;         // tokens whose K and V the cache holds, by position
  uint32_t argmax_ = 0;
};

}  // namespace qvk
