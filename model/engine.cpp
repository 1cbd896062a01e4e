// Sections: engine / prefill / decode / attention capture / readout
#include "model/engine.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/memory.h"

namespace qvk {
namespace {

constexpr uint32_t kMaxLogitsRows = 64;

std::vector<Graph*> Pointers(const std::vector<std::unique_ptr<Graph>>& graphs) {
  std::vector<Graph*> pointers;
  for (const auto& g : graphs) pointers.push_back(g.get());
  return pointers;
}

// Rows of logits computed at once: at most one binding's worth (lavapipe binds 128 MiB).
uint32_t LogitsRowsPerBatch(const Device& device, const ModelConfig& c, uint32_t chunk) {
  const uint64_t fit = device.info().max_storage_buffer_range / (uint64_t{4} * c.vocab_size);
  return static_cast<uint32_t>(std::clamp<uint64_t>(fit, 1, std::min(chunk, kMaxLogitsRows)));
}

}  // namespace

uint32_t DefaultContext(const ModelConfig& c) {
  return std::min<uint32_t>(32768, c.max_position_embeddings);
}

// --- engine ----------------------------------------------------------------------------------

Engine::Stage::Stage(const EngineStage& stage, const ModelConfig& c, uint32_t chunk, uint32_t context, bool last)
    : device(*stage.device),
      weights(*stage.weights),
      layers(stage.layers),
      kv(device, c, context, layers),
      // Only the last stage computes logits, so only it keeps a row of them for the host; a prefill
      // that streams every position's logits grows it to LogitsRowsPerBatch rows (StreamLogitsRows),
      // so that chat and benchmarks keep 63 vocabulary-sized rows (36.5 MiB for Qwen2) free.
      prefill(device, c, weights, chunk, last ? 1 : 0, context),
      decode(device, c, weights, 1, last ? 1 : 0, context) {}

Engine::Engine(Device& device, const ModelConfig& config, const ModelWeights& weights, const EngineOptions& options)
    : Engine(std::array{EngineStage{&device, &weights, AllLayers(config)}}, config, options) {}

Engine::Engine(std::span<const EngineStage> stages, const ModelConfig& config, const EngineOptions& options)
    : config_(config),
      chunk_(std::max<uint32_t>(1, options.prefill_chunk)),
      context_(options.context != 0 ? options.context : DefaultContext(config)) {
  uint32_t next = 0;
  for (const EngineStage& stage : stages) {
    if (stage.layers.begin != next || stage.layers.end <= stage.layers.begin) break;
    next = stage.layers.end;
  }
  if (stages.empty() || next != config.num_layers) {
    throw Error(fmt::format("the stages of a split model must hold its {} layers in order, each at least one",
                            config.num_layers));
  }
  // The hidden state crosses devices as 16-byte words (ops::Copy).
  if (stages.size() > 1 && config.hidden_size % 4 != 0) {
    throw Error(fmt::format("a model split across devices needs a hidden size that is a multiple of 4, not {}",
                            config.hidden_size));
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    stages_.push_back(std::make_unique<Stage>(stages[i], config, chunk_, context_, i + 1 == stages.size()));
  }
  const VkDeviceSize x_bytes = uint64_t{4} * chunk_ * config.hidden_size;
  for (size_t i = 0; i + 1 < stages_.size(); ++i) {
    links_.push_back(std::make_unique<StageLink>(stages_[i]->device, stages_[i + 1]->device, x_bytes, options.sharing));
  }
}

Engine::~Engine() = default;

uint64_t Engine::kv_cache_bytes() const {
  uint64_t total = 0;
  for (const auto& stage : stages_) total += stage->kv.bytes();
  return total;
}

uint64_t Engine::working_bytes() const {
  uint64_t total = 0;
  for (const auto& stage : stages_) total += stage->prefill.bytes() + stage->decode.bytes();
  return total;
}

EngineStage Engine::stage(size_t index) const {
  const Stage& s = *stages_.at(index);
  return {&s.device, &s.weights, s.layers};
}

uint64_t Engine::WorkingMemoryBytes(const ModelConfig& c, const EngineOptions& options) {
  const uint64_t chunk = std::max<uint32_t>(1, options.prefill_chunk);
  // The rows of logits for the host a prefill that streams every position's logits grows to.
  const uint64_t logits_rows = std::min<uint64_t>(chunk, kMaxLogitsRows);
  // Prefill and decode each keep one logits row and the ranking's scratch on the GPU.
  const uint64_t ranking = uint64_t{4} * c.vocab_size + uint64_t{8} * ops::TopKScratchCount(c.vocab_size, kMaxRanked);
  // Prefill and decode each keep attention's split partials; prefill's also hold a product's
  // splits along K (RunState::splits; as matrix units split them, whatever the device).
  const uint32_t context = options.context != 0 ? options.context : DefaultContext(c);
  const auto tokens = static_cast<uint32_t>(chunk);
  const uint64_t qkv_rows = uint64_t{c.num_heads + 2 * c.num_kv_heads} * c.head_dim;
  const uint64_t attention_width = uint64_t{c.num_heads} * c.head_dim;
  // (as rounded weights' products split, the most any type's take)
  const uint64_t product_splits = std::max({ops::CoopmatSplitBytes(qkv_rows, c.hidden_size, tokens, true),
                                            ops::CoopmatSplitBytes(c.hidden_size, attention_width, tokens, true),
                                            ops::CoopmatSplitBytes(c.hidden_size, c.intermediate_size, tokens, true)});
  const uint64_t splits =
      std::max(ops::AttentionScratchBytes(tokens, c.num_heads, c.num_kv_heads, c.head_dim, context), product_splits) +
      ops::AttentionScratchBytes(1, c.num_heads, c.num_kv_heads, c.head_dim, context);
  // A mixture-of-experts layer's buffers (RunState): the router's logits and every layer's choice
  // (its 256-byte alignment within the 16 MiB spare), each chosen expert's gate|up, SwiGLU and
  // output, the shared expert's.
  uint64_t moe = 0;
  if (c.moe) {
    const uint64_t k = c.moe->experts_per_token;
    moe = c.moe->num_experts +
          k * (2 * uint64_t{c.num_layers} + 3 * uint64_t{c.moe->expert_intermediate_size} + c.hidden_size) +
          3 * uint64_t{c.moe->shared_expert_intermediate_size} + c.hidden_size + 1;
  }
  // Prefill on matrix units may dequantize a chunk of the dense products' weights to f16
  // (PrefillDequantBytes; counted whatever the weights' types, as this sees only the config).
  const auto chunk_bytes = [&](uint64_t rows, uint64_t cols) { return PrefillDequantChunkBytes(rows, cols, tokens); };
  const uint64_t largest = std::max({chunk_bytes(qkv_rows, c.hidden_size), chunk_bytes(c.hidden_size, attention_width),
                                     chunk_bytes(uint64_t{2} * c.intermediate_size, c.hidden_size),
                                     chunk_bytes(c.hidden_size, c.intermediate_size)});
  const uint64_t dequant =
      std::min<uint64_t>(largest, kMaxPrefillDequantBytes) +
      ops::RoundedXBytes(
          tokens,
          static_cast<uint32_t>(std::max<uint64_t>({c.hidden_size, attention_width, uint64_t{c.intermediate_size}})));
  // A split model's stage also keeps two chunks of x for the hand-off (StageLink's buffers). A
  // token's x, then RunState::attention_or_mlp: attention's q|k|v and output, or xn after the
  // longer of q|k|v and the MLP's 3 * inter, whichever is more (gate|up's 2 of those only where its
  // parts are of two types, GateUpNeedsScratch, which this counts whatever the types).
  const uint64_t activations =
      uint64_t{c.hidden_size} +
      std::max(qkv_rows + attention_width, std::max(qkv_rows, 3 * uint64_t{c.intermediate_size}) + c.hidden_size);
  return uint64_t{4} * chunk * (activations + moe) + uint64_t{4} * logits_rows * c.vocab_size + 2 * ranking + splits +
         dequant + (uint64_t{16} << 20);
}

void Engine::CheckFits(size_t tokens) const {
  if (tokens > context_) {
    throw Error(fmt::format("{} tokens do not fit the context of {} tokens", tokens, context_));
  }
}

void Engine::CheckReadout(const LogitsReadout& readout) const {
  const uint32_t most = std::min(kMaxRanked, config_.vocab_size);
  if (readout.ranked == 0 || readout.ranked > most) {
    throw Error(fmt::format("{} ranked logits asked for; a step ranks 1 to {}", readout.ranked, most));
  }
}

void Engine::WriteStep(RunState& s, std::span<const uint32_t> ids, uint32_t first_position) {
  for (uint32_t id : ids) {
    if (id >= config_.vocab_size)
      throw Error(fmt::format("token id {} is outside the vocabulary ({})", id, config_.vocab_size));
  }
  std::memcpy(s.ids.mapped(), ids.data(), ids.size_bytes());
  s.ids.FlushMapped();
  auto* positions = reinterpret_cast<uint32_t*>(s.positions.mapped());
  for (uint32_t i = 0; i < ids.size(); ++i) positions[i] = first_position + i;
  s.positions.FlushMapped();
}

void Engine::RecordStage(Graph& g, size_t i, StateOf state, uint32_t tokens, uint32_t first_position,
                         const AttentionProbs* probs) {
  Stage& stage = *stages_[i];
  RunState& s = stage.*state;
  const BufferRange x(s.x, 0, uint64_t{4} * tokens * config_.hidden_size);
  if (i > 0) links_[i - 1]->RecordReceive(g, x);
  RecordForward(g, config_, stage.weights, s, stage.kv, tokens, first_position, probs, stage.layers);
  if (i + 1 < stages_.size()) links_[i]->RecordSend(g, x);
}

void Engine::RunStages(std::span<Graph* const> graphs, uint32_t tokens) {
  const size_t x_bytes = size_t{4} * tokens * config_.hidden_size;
  TimelinePoint wait;
  for (size_t i = 0; i + 1 < graphs.size(); ++i) wait = links_[i]->Send(*graphs[i], wait, x_bytes);
  graphs.back()->Submit(wait);
  // The last stage started after every earlier one had finished (the GPU or the host waited), so
  // once it is done all are: their fences are signalled already, and are waited for only so that
  // their graphs may be submitted again or freed. Then the host may write the next step's inputs.
  for (auto it = graphs.rbegin(); it != graphs.rend(); ++it) (*it)->Wait();
  for (size_t i = 0; i < graphs.size(); ++i) {
    for (DispatchTiming& timing : graphs[i]->Timings()) {
      timing.stage = static_cast<uint32_t>(i);
      last_profile_.push_back(std::move(timing));
    }
  }
}

void Engine::RecordReadout(Graph& g, RunState& s, uint32_t row, const LogitsReadout& readout) {
  RecordLogits(g, config_, last_stage().weights, s, row, 1, readout.full_row);
  RecordRanking(g, config_, s, readout.ranked, readout.full_row);
}

// --- prefill ---------------------------------------------------------------------------------

void Engine::Prefill(std::span<const uint32_t> ids, const PrefillRequest& request) {
  if (ids.empty()) throw Error("empty prompt");
  CheckFits(ids.size());
  const auto* last = std::get_if<LastLogits>(&request);
  const auto* all = std::get_if<AllLogits>(&request);
  if (last) CheckReadout(last->readout);
  const auto total = static_cast<uint32_t>(ids.size());

  // Only a continuation reuses the cached prefix (the other outputs cover every position), and
  // it recomputes at least the last token to get its logits.
  size_t keep = 0;
  if (last) {
    keep = std::mismatch(cached_.begin(), cached_.end(), ids.begin(), ids.end()).first - cached_.begin();
    keep = std::min(keep, ids.size() - 1);
  }
  Truncate(keep);
  readout_state_ = nullptr;
  if (live_) live_->valid = false;
  last_profile_.clear();
  // With live attention on, the last token runs as a decode step, which captures its row.
  const bool last_as_decode = last && live_;
  const uint32_t end = last_as_decode ? total - 1 : total;
  for (auto start = static_cast<uint32_t>(keep); start < end; start += chunk_) {
    const uint32_t n = std::min(chunk_, end - start);
    std::vector<std::unique_ptr<Graph>> graphs;
    for (size_t i = 0; i < stages_.size(); ++i) {
      Stage& stage = *stages_[i];
      WriteStep(stage.prefill, ids.subspan(start, n), start);
      Graph& g = *graphs.emplace_back(std::make_unique<Graph>(stage.device, profiling_));
      RecordStage(g, i, &Stage::prefill, n, start);
      if (last && start + n == total && i + 1 == stages_.size()) {
        RecordReadout(g, stage.prefill, n - 1, last->readout);
        readout_row_ = n - 1;
      }
    }
    RunStages(Pointers(graphs), n);
    cached_.insert(cached_.end(), ids.begin() + start, ids.begin() + start + n);
    if (all) StreamLogitsRows(start, n, *all);
  }
  if (last_as_decode) {
    DecodeStep(ids.back(), last->readout);
  } else if (last) {
    readout_state_ = &last_stage().prefill;
    readout_ = last->readout;
  }
}

void Engine::StreamLogitsRows(uint32_t first_position, uint32_t tokens, const AllLogits& request) {
  const uint32_t vocab = config_.vocab_size;
  Stage& stage = last_stage();
  RunState& s = stage.prefill;
  s.GrowHostLogits(stage.device, vocab, LogitsRowsPerBatch(stage.device, config_, chunk_));
  for (uint32_t r = 0; r < tokens; r += s.host_logits_rows) {
    const uint32_t rows = std::min(s.host_logits_rows, tokens - r);
    Graph g(stage.device);
    RecordLogits(g, config_, stage.weights, s, r, rows, /*on_host=*/true);
    g.Run();
    s.host_logits.InvalidateMapped();
    const auto* data = reinterpret_cast<const float*>(s.host_logits.mapped());
    for (uint32_t i = 0; i < rows; ++i) request.on_row(first_position + r + i, {data + size_t{i} * vocab, vocab});
  }
}

// --- decode ----------------------------------------------------------------------------------

void Engine::Decode(uint32_t id, const LogitsReadout& readout) {
  CheckReadout(readout);
  CheckFits(cached_.size() + 1);
  readout_state_ = nullptr;
  last_profile_.clear();
  DecodeStep(id, readout);
}

void Engine::DecodeStep(uint32_t id, const LogitsReadout& readout) {
  const auto position = static_cast<uint32_t>(cached_.size());
  if (readout != decode_readout_) {
    for (auto& stage : stages_) stage->decode_graph.reset();
    decode_readout_ = readout;
  }
  std::vector<std::unique_ptr<Graph>> profiled;
  std::vector<Graph*> graphs;
  for (size_t i = 0; i < stages_.size(); ++i) {
    Stage& stage = *stages_[i];
    WriteStep(stage.decode, std::span(&id, 1), position);
    if (profiling_) {
      graphs.push_back(profiled.emplace_back(std::make_unique<Graph>(stage.device, /*profile=*/true)).get());
      RecordDecode(*graphs.back(), i, position, readout);
    } else {
      if (!stage.decode_graph) {
        // Recorded once per readout (and live attention setting): the token and its position come
        // from buffers written before each replay.
        stage.decode_graph = std::make_unique<Graph>(stage.device);
        RecordDecode(*stage.decode_graph, i, position, readout);
        stage.decode_graph->End();
      }
      graphs.push_back(stage.decode_graph.get());
    }
  }
  RunStages(graphs, 1);
  cached_.push_back(id);
  readout_state_ = &last_stage().decode;
  readout_row_ = 0;
  readout_ = readout;
  if (live_) {
    live_->position = position;
    live_->valid = true;
  }
}

void Engine::RecordDecode(Graph& g, size_t i, uint32_t position, const LogitsReadout& readout) {
  if (live_) {
    // Each of the stage's layers' scores to its own place, as long as the position (read on the
    // GPU) makes them; after its last layer, the rows of the views on its layers.
    Stage& stage = *stages_[i];
    LiveStage& live = live_->stages[i];
    uint32_t view_heads = 0;
    for (size_t v : live.view_index) view_heads += live_->requests[v].plane_heads;
    const uint64_t layer_bytes = LiveLayerBytes(config_, context_);
    const AttentionProbs probs{
        .probs = live.probs,
        .stride = context_,
        .layer_bytes = layer_bytes,
        .scores = true,
        .layers = std::vector<bool>(config_.num_layers, true),
        .consume = [this, &stage, &live, position, view_heads, layer_bytes](Graph& graph, uint32_t layer) {
          if (layer + 1 != stage.layers.end) return;
          ops::AttentionLive(graph,
                             {.scores = live.probs,
                              .positions = stage.decode.positions,
                              .views = live.views,
                              .out = live.rows,
                              .layers = stage.layers.size(),
                              .n_heads = config_.num_heads,
                              .stride = context_,
                              .layer_stride = static_cast<uint32_t>(layer_bytes / 4),
                              .max_views = live_->max_views,
                              .position = position,
                              .view_heads = view_heads},
                             "attention_live");
        }};
    RecordStage(g, i, &Stage::decode, 1, position, &probs);
  } else {
    RecordStage(g, i, &Stage::decode, 1, position);
  }
  if (i + 1 == stages_.size()) RecordReadout(g, last_stage().decode, 0, readout);
}

void Engine::set_live_attention(std::span<const AttentionRequest> views) {
  if (views.empty()) {
    if (live_) {
      for (auto& stage : stages_) stage->decode_graph.reset();  // they were recorded with the rows
    }
    live_.reset();
    return;
  }
  for (const AttentionRequest& view : views) {
    CheckAttentionRequest(config_, 1,
                          {.layer = view.layer, .first_head = view.first_head, .plane_heads = view.plane_heads});
  }
  for (const auto& stage : stages_) {
    const uint64_t probs_bytes = stage->layers.size() * LiveLayerBytes(config_, context_);
    if (probs_bytes > stage->device.info().max_storage_buffer_range) {
      throw Error(
          fmt::format("live attention rows of {} layers x {} heads over a context of {} tokens ({} MiB) are "
                      "more than this GPU binds at once: use a shorter context",
                      stage->layers.size(), config_.num_heads, context_, probs_bytes >> 20));
    }
  }
  const auto count = static_cast<uint32_t>(views.size());
  if (!live_ || count > live_->max_views) {
    // Each stage reduces the views on its layers, up to all of them.
    auto live = std::make_unique<LiveAttention>();
    for (size_t i = 0; i < stages_.size(); ++i) {
      Stage& stage = *stages_[i];
      Allocator& allocator = stage.device.allocator();
      LiveStage& part = live->stages.emplace_back();
      part.probs =
          live_ ? std::move(live_->stages[i].probs)
                : allocator.CreateBuffer(stage.layers.size() * LiveLayerBytes(config_, context_), MemoryKind::Device);
      part.views = allocator.CreateBuffer(uint64_t{16} * (1 + count), MemoryKind::Device);
      part.rows = allocator.CreateBuffer(uint64_t{4} * count * context_, MemoryKind::Readback);
      stage.decode_graph.reset();  // it reduces fewer views, or none
    }
    live->max_views = count;
    live_ = std::move(live);
  }
  live_->requests.assign(views.begin(), views.end());
  for (size_t i = 0; i < stages_.size(); ++i) {
    Stage& stage = *stages_[i];
    LiveStage& part = live_->stages[i];
    part.view_index.clear();
    std::vector<ops::LiveView> gpu_views;
    for (size_t v = 0; v < views.size(); ++v) {
      const AttentionRequest& view = views[v];
      if (!stage.layers.contains(view.layer)) continue;
      part.view_index.push_back(v);
      // The stage's scores start at its first layer.
      gpu_views.push_back({.layer = view.layer - stage.layers.begin,
                           .first_head = view.first_head,
                           .heads = view.plane_heads,
                           .max = view.reduce == HeadReduce::Max,
                           .mute_sink = view.mute_sink});
    }
    const std::vector<uint32_t> view_words = ops::LiveViewWords(gpu_views);
    stage.device.Upload(part.views, 0, std::as_bytes(std::span(view_words)));
  }
  live_->valid = false;
}

std::span<const AttentionRequest> Engine::live_views() const {
  if (!live_) return {};
  return live_->requests;
}

AttentionRow Engine::attention_row() const {
  if (!live_ || !live_->valid) {
    throw Error("no attention row: live attention is off, or no step has run since its views were set");
  }
  const auto views = static_cast<uint32_t>(live_->requests.size());
  const size_t row = live_->position + 1;
  if (stages_.size() == 1) {
    const Buffer& rows = live_->stages[0].rows;
    rows.InvalidateMapped();
    return {.position = live_->position,
            .views = views,
            .values = {reinterpret_cast<const float*>(rows.mapped()), size_t{views} * row}};
  }
  // A split model's rows are each on the device of its layer: gathered in the order asked.
  live_->gathered.resize(size_t{views} * row);
  for (const LiveStage& part : live_->stages) {
    part.rows.InvalidateMapped();
    const auto* values = reinterpret_cast<const float*>(part.rows.mapped());
    for (size_t k = 0; k < part.view_index.size(); ++k) {
      std::copy_n(values + k * row, row, live_->gathered.begin() + static_cast<ptrdiff_t>(part.view_index[k] * row));
    }
  }
  return {.position = live_->position, .views = views, .values = live_->gathered};
}

// --- attention capture -----------------------------------------------------------------------

CapturePlan Engine::PlanAttentionCapture(uint32_t tokens, std::span<const AttentionRequest> requests) const {
  uint32_t binding = UINT32_MAX;
  for (const auto& stage : stages_) binding = std::min(binding, stage->device.info().max_storage_buffer_range);
  return PlanCapture(config_, tokens, requests, chunk_, binding);
}

std::vector<AttentionMap> Engine::CaptureAttention(std::span<const uint32_t> ids,
                                                   std::span<const AttentionRequest> requests) {
  if (ids.empty()) throw Error("empty prompt");
  CheckFits(ids.size());
  const auto total = static_cast<uint32_t>(ids.size());
  const CapturePlan plan = PlanAttentionCapture(total, requests);
  std::vector<AttentionMap> maps;
  // Each map's output and the probabilities it reduces are on the device holding its layer.
  std::vector<size_t> map_stage;
  std::vector<Buffer> outputs;                // f32 [planes, rows, cols] each, as the maps
  std::vector<Buffer> probs(stages_.size());  // f32 [H, rows, T] on each stage some map is on
  uint32_t first = total, end = 0;            // the rows some map needs
  for (const AttentionRequest& r : requests) {
    const AttentionMap& map = maps.emplace_back(r, total, LayerWindow(config_, r.layer));
    const auto on = static_cast<size_t>(
        std::find_if(stages_.begin(), stages_.end(), [&](const auto& s) { return s->layers.contains(r.layer); }) -
        stages_.begin());
    Allocator& allocator = stages_[on]->device.allocator();
    map_stage.push_back(on);
    outputs.push_back(allocator.CreateBuffer(std::max<uint64_t>(4 * map.values.size(), 4), MemoryKind::Device));
    if (probs[on].size() == 0) probs[on] = allocator.CreateBuffer(plan.probs_bytes, MemoryKind::Device);
    first = std::min(first, map.request.first_row);
    end = std::max(end, map.request.end_row);
  }
  if (maps.empty()) return maps;

  size_t keep = std::mismatch(cached_.begin(), cached_.end(), ids.begin(), ids.end()).first - cached_.begin();
  Truncate(std::min<size_t>(keep, first));
  readout_state_ = nullptr;
  if (live_) live_->valid = false;
  last_profile_.clear();
  for (auto start = static_cast<uint32_t>(cached_.size()); start < end;) {
    // Rows before the first map's run as any prefill; from there on, in chunks whose
    // probabilities fit, each layer's reduced into the maps before the next layer's.
    const uint32_t n = start < first ? std::min(chunk_, first - start) : std::min(plan.chunk_rows, end - start);
    const auto wants = [&](const AttentionRequest& r) { return r.first_row < start + n && start < r.end_row; };
    std::vector<bool> layers(config_.num_layers, false);
    for (const AttentionMap& map : maps) {
      if (wants(map.request)) layers[map.request.layer] = true;
    }
    std::vector<std::unique_ptr<Graph>> graphs;
    for (size_t on = 0; on < stages_.size(); ++on) {
      Stage& stage = *stages_[on];
      AttentionProbs capture{.probs = probs[on], .stride = total, .layers = layers};
      capture.consume = [&](Graph& g, uint32_t layer) {
        for (size_t i = 0; i < maps.size(); ++i) {
          const AttentionRequest& r = maps[i].request;
          if (r.layer != layer || !wants(r)) continue;
          ops::AttentionReduce(g,
                               {.probs = probs[on],
                                .out = outputs[i],
                                .n_heads = config_.num_heads,
                                .rows = n,
                                .probs_stride = total,
                                .first_row = start,
                                .band_begin = r.first_row,
                                .band_end = r.end_row,
                                .cols = total,
                                .cell = r.cell,
                                .head_first = r.first_head,
                                .plane_heads = r.plane_heads,
                                .planes = r.planes,
                                .max = r.reduce == HeadReduce::Max,
                                .mute_sink = r.mute_sink},
                               "attention_map");
        }
      };
      WriteStep(stage.prefill, ids.subspan(start, n), start);
      Graph& g = *graphs.emplace_back(std::make_unique<Graph>(stage.device, profiling_));
      const bool captures = start >= first && probs[on].size() != 0;
      RecordStage(g, on, &Stage::prefill, n, start, captures ? &capture : nullptr);
    }
    RunStages(Pointers(graphs), n);
    cached_.insert(cached_.end(), ids.begin() + start, ids.begin() + start + n);
    start += n;
  }
  for (size_t i = 0; i < maps.size(); ++i) {
    stages_[map_stage[i]]->device.Download(outputs[i], 0, std::as_writable_bytes(std::span(maps[i].values)));
  }
  return maps;
}

// --- readout ---------------------------------------------------------------------------------

const RunState& Engine::ReadoutState() const {
  if (readout_state_ == nullptr) throw Error("no logits to read: the last step was not a decode or a continuation");
  return *readout_state_;
}

uint32_t Engine::argmax() const {
  const RunState& s = ReadoutState();
  s.ranked_ids.InvalidateMapped();
  uint32_t id = 0;
  std::memcpy(&id, s.ranked_ids.mapped(), sizeof id);
  return id;
}

RankedLogits Engine::ranked() const {
  const RunState& s = ReadoutState();
  s.ranked_logits.InvalidateMapped();
  s.ranked_ids.InvalidateMapped();
  return {{reinterpret_cast<const float*>(s.ranked_logits.mapped()), readout_.ranked},
          {reinterpret_cast<const uint32_t*>(s.ranked_ids.mapped()), readout_.ranked}};
}

std::span<const float> Engine::logits() {
  const RunState& s = ReadoutState();
  if (!readout_.full_row) {
    Stage& stage = last_stage();
    if (readout_state_ == &stage.decode) {
      if (!decode_row_graph_) {
        decode_row_graph_ = std::make_unique<Graph>(stage.device);
        RecordLogits(*decode_row_graph_, config_, stage.weights, stage.decode, 0, 1, /*on_host=*/true);
        decode_row_graph_->End();
      }
      decode_row_graph_->Run();
    } else {
      Graph g(stage.device);
      RecordLogits(g, config_, stage.weights, *readout_state_, readout_row_, 1, /*on_host=*/true);
      g.Run();
    }
    readout_.full_row = true;
  }
  s.host_logits.InvalidateMapped();
  return {reinterpret_cast<const float*>(s.host_logits.mapped()), config_.vocab_size};
}

bool Engine::logits_in_host_memory() const {
  return last_stage().device.info().unified_memory;
}

void Engine::Truncate(size_t keep) {
  // Rows past `keep` are simply overwritten by later tokens; attention never reads past a
  // query's own position.
  if (keep < cached_.size()) cached_.resize(keep);
}

}  // namespace qvk
