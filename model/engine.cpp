#include "model/engine.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "gpu/device.h"
#include "base/error.h"

namespace qvk {
namespace {

constexpr uint32_t kMaxLogitsRows = 64;

// Rows of logits computed at once: at most one binding's worth (lavapipe binds 128 MiB).
uint32_t LogitsRowsPerBatch(const Device& device, const ModelConfig& c, uint32_t chunk) {
  const uint64_t fit = device.info().max_storage_buffer_range / (uint64_t{4} * c.vocab_size);
  return static_cast<uint32_t>(std::clamp<uint64_t>(fit, 1, std::min(chunk, kMaxLogitsRows)));
}

}  // namespace

uint32_t DefaultContext(const ModelConfig& c) {
  return std::min<uint32_t>(32768, c.max_position_embeddings);
}

Engine::Engine(Device& device, const ModelConfig& config, const ModelWeights& weights, const EngineOptions& options)
    : device_(device),
      config_(config),
      weights_(weights),
      chunk_(std::max<uint32_t>(1, options.prefill_chunk)),
      kv_(device, config, options.context != 0 ? options.context : DefaultContext(config)),
      prefill_(device, config, chunk_, LogitsRowsPerBatch(device, config, chunk_)),
      decode_(device, config, 1, 1) {}

Engine::~Engine() = default;

uint64_t Engine::WorkingMemoryBytes(const ModelConfig& c, const EngineOptions& options) {
  const uint64_t chunk = std::max<uint32_t>(1, options.prefill_chunk);
  const uint64_t logits_rows = std::min<uint64_t>(chunk, kMaxLogitsRows);
  return uint64_t{4} * chunk * (4 * uint64_t{c.hidden_size} + 3 * uint64_t{c.intermediate_size}) +
         uint64_t{4} * logits_rows * c.vocab_size + (uint64_t{16} << 20);
}

void Engine::CheckFits(size_t tokens) const {
  if (tokens > kv_.capacity) {
    throw Error(fmt::format("{} tokens do not fit the context of {} tokens", tokens, kv_.capacity));
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

std::span<const float> Engine::LogitsRow(const RunState& s, uint32_t row) const {
  s.logits.InvalidateMapped();
  return {reinterpret_cast<const float*>(s.logits.mapped()) + static_cast<size_t>(row) * config_.vocab_size,
          config_.vocab_size};
}

std::span<const float> Engine::Prefill(std::span<const uint32_t> ids) {
  if (ids.empty()) throw Error("empty prompt");
  CheckFits(ids.size());
  // Reuse the cached prefix; at least the last token is recomputed to get its logits.
  size_t keep = std::mismatch(cached_.begin(), cached_.end(), ids.begin(), ids.end()).first - cached_.begin();
  keep = std::min(keep, ids.size() - 1);
  Truncate(keep);
  for (size_t start = keep; start < ids.size(); start += chunk_) {
    const auto n = static_cast<uint32_t>(std::min<size_t>(chunk_, ids.size() - start));
    const bool last = start + n == ids.size();
    WriteStep(prefill_, ids.subspan(start, n), static_cast<uint32_t>(start));
    Graph g(device_);
    RecordForward(g, config_, weights_, prefill_, kv_, n);
    if (last) {
      RecordLogits(g, config_, weights_, prefill_, n - 1, 1);
      RecordArgmax(g, config_, prefill_);
    }
    g.Run();
    cached_.insert(cached_.end(), ids.begin() + start, ids.begin() + start + n);
  }
  prefill_.argmax_index.InvalidateMapped();
  std::memcpy(&argmax_, prefill_.argmax_index.mapped(), 4);
  return LogitsRow(prefill_, 0);
}

std::span<const float> Engine::Decode(uint32_t id) {
  CheckFits(cached_.size() + 1);
  WriteStep(decode_, std::span(&id, 1), static_cast<uint32_t>(cached_.size()));
  if (!decode_graph_) {
    // Recorded once: the token and its position come from buffers written before each replay.
    decode_graph_ = std::make_unique<Graph>(device_);
    RecordForward(*decode_graph_, config_, weights_, decode_, kv_, 1);
    RecordLogits(*decode_graph_, config_, weights_, decode_, 0, 1);
    RecordArgmax(*decode_graph_, config_, decode_);
    decode_graph_->End();
  }
  decode_graph_->Run();
  cached_.push_back(id);
  decode_.argmax_index.InvalidateMapped();
  std::memcpy(&argmax_, decode_.argmax_index.mapped(), 4);
  return LogitsRow(decode_, 0);
}

void Engine::PrefillAllLogits(std::span<const uint32_t> ids,
                              const std::function<void(uint32_t, std::span<const float>)>& row) {
  if (ids.empty()) throw Error("empty prompt");
  CheckFits(ids.size());
  Truncate(0);
  for (size_t start = 0; start < ids.size(); start += chunk_) {
    const auto n = static_cast<uint32_t>(std::min<size_t>(chunk_, ids.size() - start));
    WriteStep(prefill_, ids.subspan(start, n), static_cast<uint32_t>(start));
    {
      Graph g(device_);
      RecordForward(g, config_, weights_, prefill_, kv_, n);
      g.Run();
    }
    cached_.insert(cached_.end(), ids.begin() + start, ids.begin() + start + n);
    for (uint32_t r = 0; r < n; r += prefill_.logits_rows) {
      const uint32_t rows = std::min(prefill_.logits_rows, n - r);
      Graph g(device_);
      RecordLogits(g, config_, weights_, prefill_, r, rows);
      g.Run();
      for (uint32_t i = 0; i < rows; ++i) row(static_cast<uint32_t>(start) + r + i, LogitsRow(prefill_, i));
    }
  }
}

std::vector<float> Engine::PrefillAttention(std::span<const uint32_t> ids) {
  if (ids.empty()) throw Error("empty prompt");
  CheckFits(ids.size());
  const auto total = static_cast<uint32_t>(ids.size());
  const uint64_t chunk_bytes = uint64_t{4} * config_.num_heads * std::min<uint32_t>(chunk_, total) * total;
  if (chunk_bytes > device_.info().max_storage_buffer_range) {
    throw Error(fmt::format("an attention map of {} tokens is too large for this device", total));
  }
  Truncate(0);
  const size_t layer_elems = static_cast<size_t>(config_.num_heads) * total * total;
  std::vector<float> maps(config_.num_layers * layer_elems);
  std::vector<Buffer> probs;
  for (uint32_t l = 0; l < config_.num_layers; ++l) {
    probs.push_back(device_.allocator().CreateBuffer(chunk_bytes, MemoryKind::Device));
  }
  for (uint32_t start = 0; start < total; start += chunk_) {
    const uint32_t n = std::min(chunk_, total - start);
    WriteStep(prefill_, ids.subspan(start, n), start);
    Graph g(device_);
    RecordForward(g, config_, weights_, prefill_, kv_, n, &probs, total);
    g.Run();
    cached_.insert(cached_.end(), ids.begin() + start, ids.begin() + start + n);
    // Chunk rows [H, n, total] go to rows start..start+n of each head's [T, T] map.
    std::vector<float> chunk(static_cast<size_t>(config_.num_heads) * n * total);
    for (uint32_t l = 0; l < config_.num_layers; ++l) {
      device_.Download(probs[l], 0, std::as_writable_bytes(std::span(chunk)));
      for (uint32_t h = 0; h < config_.num_heads; ++h) {
        for (uint32_t t = 0; t < n; ++t) {
          std::copy_n(&chunk[(static_cast<size_t>(h) * n + t) * total], total,
                      &maps[l * layer_elems + (static_cast<size_t>(h) * total + start + t) * total]);
        }
      }
    }
  }
  return maps;
}

void Engine::Truncate(size_t keep) {
  // Rows past `keep` are simply overwritten by later tokens; attention never reads past a
  // query's own position.
  if (keep < cached_.size()) cached_.resize(keep);
}

}  // namespace qvk
