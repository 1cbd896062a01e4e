#pragma once
// Runs a loaded Qwen2 model: keeps the KV cache and the tokens it holds, prefills prompts
// (computing only what the cache does not already hold), and decodes one token at a time by
// replaying a step recorded once. Logits stay on the GPU, which ranks the best of them; the host
// reads what it asks for (the argmax's 4 bytes, the ranked candidates, or the whole row).
// Attention maps come from the same kernels: a prefill with the probabilities on, reduced on the
// GPU to the maps asked for, and while generating each step's row, reduced on the GPU to the views
// a viewer chose.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "model/attention_capture.h"
#include "model/config.h"
#include "model/forward.h"
#include "model/stage_link.h"
#include "model/weights.h"

namespace qvk {

class Device;

// The context a model gets unless the user asks otherwise: min(32768, max_position_embeddings).
uint32_t DefaultContext(const ModelConfig& config);

struct EngineOptions {
  uint32_t context = 0;  // KV cache rows; 0: min(32768, max_position_embeddings)
  // Tokens per prefill dispatch sequence: llama.cpp's ubatch. 512 rather than 256 doubles the tiles
  // of a prefill's products, which small models' q|k|v, o and down need to fill a big GPU.
  uint32_t prefill_chunk = 512;
  // A split model's devices share what they can to hand the hidden state on (model/stage_link.h);
  // the tests turn sharing off to run the host copy and the host wait on devices that could share.
  LinkSharing sharing;
};

// What the host reads of the logits at the last position of a step.
struct LogitsReadout {
  uint32_t ranked = 1;    // best (logit, id) pairs ranked on the GPU, 1..kMaxRanked; 1: the argmax
  bool full_row = false;  // the whole row too (Engine::logits)
  bool operator==(const LogitsReadout&) const = default;
};

// What a prefill is for, besides filling the KV cache:
// - the last position's logits, to continue the sequence: the longest prefix the cache already
//   holds is kept (at least the last token is recomputed);
// - the logits of every position, each row handed to `on_row` in order (from an empty cache).
struct LastLogits {
  LogitsReadout readout;
};
struct AllLogits {
  std::function<void(uint32_t position, std::span<const float> logits)> on_row;
};
using PrefillRequest = std::variant<LastLogits, AllLogits>;

// The best logits of a step, descending, ties to the lower id.
struct RankedLogits {
  std::span<const float> logits;
  std::span<const uint32_t> ids;
};

// One device's part of a model split by layers: `weights` holds `layers` (LoadOptions::layers),
// with the embedding on the stage of layer 0 and the final norm and lm_head on the last stage.
struct EngineStage {
  Device* device = nullptr;
  const ModelWeights* weights = nullptr;
  LayerRange layers;
};

class Engine {
 public:
  Engine(Device& device, const ModelConfig& config, const ModelWeights& weights, const EngineOptions& options = {});
  // A model split across devices: `stages` in layer order, covering every layer once. Each step
  // runs the stages one after another, each handed the previous one's hidden state through a
  // StageLink, so the results are those of one device. Throws Error for stages that do not cover
  // the model.
  Engine(std::span<const EngineStage> stages, const ModelConfig& config, const EngineOptions& options = {});
  ~Engine();

  // GPU memory an engine needs besides the weights and the KV cache (a prefill chunk's
  // activations and the logits rows, with room to spare), so a budget can be planned before loading.
  static uint64_t WorkingMemoryBytes(const ModelConfig& config, const EngineOptions& options = {});

  // Makes the cache hold exactly `ids` (see PrefillRequest), computing them in chunks.
  void Prefill(std::span<const uint32_t> ids, const PrefillRequest& request);
  // Appends one token and computes the logits after it.
  void Decode(uint32_t id, const LogitsReadout& readout = {});

  // The attention maps `requests` ask for (model/attention_capture.h; each checked first), from a
  // prefill of `ids` with the probabilities on, in chunks of PlanCapture's rows, each chunk's
  // reduced on the GPU before the next. The cache keeps the longest prefix of `ids` it holds up to
  // the first row a request needs, and holds ids[0, the last row one needs) after.
  std::vector<AttentionMap> CaptureAttention(std::span<const uint32_t> ids, std::span<const AttentionRequest> requests);
  // How CaptureAttention would run `tokens` tokens on this device (its memory, its chunk rows).
  CapturePlan PlanAttentionCapture(uint32_t tokens, std::span<const AttentionRequest> requests) const;

  // While `views` is not empty, every step whose logits a caller reads (Decode, and a LastLogits
  // prefill, whose last token then runs as a decode step) also reduces the attention of its last
  // token to each view (plane 0 of its request: its layer and heads), on the GPU: attention_row(),
  // valid until the next step. Every layer's attention leaves its scores in device memory, one
  // dispatch after the last layer makes the probabilities the views read and reduces them, and
  // only the views' rows reach host memory. Other views, no more of them than ever, take effect from the next step in
  // the same recording; the decode step is recorded again when live attention goes on or off, or more views than ever
  // come. Costs GPU memory: LiveAttentionBytes. Throws an Error, changing nothing, for a view outside the model or a
  // context whose rows one binding cannot hold.
  void set_live_attention(std::span<const AttentionRequest> views);
  bool live_attention() const { return live_ != nullptr; }
  // The views the last set_live_attention chose (none while off).
  std::span<const AttentionRequest> live_views() const;
  // The last step's row of each view; throws when live attention is off or no step ran since the
  // views were set.
  AttentionRow attention_row() const;

  // The logits of the last Decode or LastLogits prefill, valid until the next step:
  uint32_t argmax() const;      // the best token (4 bytes read)
  RankedLogits ranked() const;  // the `readout.ranked` best
  // The whole row: read as the step left it when its readout asked for it, else computed again
  // from the step's final hidden state (the same numbers, one more lm_head product).
  std::span<const float> logits();
  // True where the GPU shares host memory (lavapipe, integrated GPUs): the host reads a whole
  // logits row in place, with no transfer to save.
  bool logits_in_host_memory() const;

  // Forgets everything after the first `keep` cached tokens.
  void Truncate(size_t keep);
  const std::vector<uint32_t>& cached_tokens() const { return cached_; }
  uint32_t context() const { return context_; }
  uint64_t kv_cache_bytes() const;
  // GPU memory of the run states (prefill chunk and decode step activations, logits, ranking).
  uint64_t working_bytes() const;
  // The devices the model runs on, one a stage, and the layers each holds.
  size_t stage_count() const { return stages_.size(); }
  EngineStage stage(size_t index) const;
  // How the hidden state goes from stage `index`'s device to the next one's
  // (StageLink::description).
  std::string hand_off(size_t index) const { return links_.at(index)->description(); }

  // While on, the graphs of every step write a GPU timestamp after each dispatch, and
  // last_profile() holds the dispatches of the last Prefill or Decode (all its chunks) with their
  // times and costs. A profiled decode step is recorded for that step alone, since its attention
  // cost depends on the position; the replayed step returns when profiling goes off. Devices
  // without compute timestamps give an empty profile. Each timing's `stage` says which device ran it.
  void set_profiling(bool on) { profiling_ = on; }
  const std::vector<DispatchTiming>& last_profile() const { return last_profile_; }
  const ModelConfig& config() const { return config_; }

 private:
  // One device's layers: their weights and KV cache, the run states, the recorded decode step.
  struct Stage {
    Stage(const EngineStage& stage, const ModelConfig& config, uint32_t chunk, uint32_t context, bool last);
    Device& device;
    const ModelWeights& weights;
    LayerRange layers;
    KvCache kv;
    RunState prefill;
    RunState decode;
    std::unique_ptr<Graph> decode_graph;  // recorded for decode_readout_, then replayed
  };
  using StateOf = RunState Stage::*;

  Stage& last_stage() const { return *stages_.back(); }
  void WriteStep(RunState& s, std::span<const uint32_t> ids, uint32_t first_position);
  // Stage i's part of a forward over `tokens` tokens in its run state `state`: x from the previous
  // stage, its layers (with `probs` where a capture asks), x out to the next stage.
  void RecordStage(Graph& g, size_t i, StateOf state, uint32_t tokens, uint32_t first_position,
                   const AttentionProbs* probs = nullptr);
  // Runs one step's graphs, stage i's `graphs[i]`, each handing its `tokens` rows of x to the
  // next through their link, and returns once all have finished; keeps their timings.
  void RunStages(std::span<Graph* const> graphs, uint32_t tokens);
  void RecordReadout(Graph& g, RunState& s, uint32_t row, const LogitsReadout& readout);
  void StreamLogitsRows(uint32_t first_position, uint32_t tokens, const AllLogits& request);
  // One decode step: token `id` at the next position, its logits read out as `readout` asks.
  void DecodeStep(uint32_t id, const LogitsReadout& readout);
  void RecordDecode(Graph& g, size_t i, uint32_t position, const LogitsReadout& readout);
  void CheckFits(size_t tokens) const;
  void CheckReadout(const LogitsReadout& readout) const;
  const RunState& ReadoutState() const;

  const ModelConfig& config_;
  uint32_t chunk_;
  uint32_t context_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<std::unique_ptr<StageLink>> links_;  // links_[i]: from stage i to stage i + 1
  LogitsReadout decode_readout_;
  std::unique_ptr<Graph> decode_row_graph_;  // the decode step's logits row into host memory
  std::vector<uint32_t> cached_;             // tokens whose K and V the cache holds, by position
  RunState* readout_state_ = nullptr;        // where the last step's logits readout lives (last stage)
  uint32_t readout_row_ = 0;                 // its row of xn
  LogitsReadout readout_;
  bool profiling_ = false;
  std::vector<DispatchTiming> last_profile_;

  // Live attention: every layer's probabilities of the decode token, and each view's row of them,
  // on each stage for its layers and the views on them.
  struct LiveStage {
    Buffer probs;  // f32 [stage layers, H, context + 2]: scores, then (max, sum) a head (LiveLayerBytes)
    Buffer views;  // u32 [4 * (1 + max_views)]: ops::LiveViewWords of the views on the stage's layers
    Buffer rows;   // f32 [stage views, position + 1]: each of their rows (host-readable)
    std::vector<size_t> view_index;  // which of the requests each is
  };
  struct LiveAttention {
    std::vector<LiveStage> stages;
    uint32_t max_views = 0;  // the most views a recorded step reduces
    std::vector<AttentionRequest> requests;
    uint32_t position = 0;
    bool valid = false;
    mutable std::vector<float> gathered;  // f32 [views, position + 1]: a split model's rows in order
  };
  std::unique_ptr<LiveAttention> live_;
};

}  // namespace qvk
