#include "model/attention_capture.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/error.h"
#include "gpu/ops.h"

namespace qvk {
namespace {

// The probabilities of one prefill chunk with capture on: enough rows to keep the GPU busy,
// small beside the KV cache of a long context.
constexpr uint64_t kCaptureProbsBytes = uint64_t{64} << 20;

uint32_t CeilDiv(uint32_t a, uint32_t b) {
  return (a + b - 1) / b;
}

uint32_t EndRow(const AttentionRequest& r, uint32_t tokens) {
  return r.end_row != 0 ? r.end_row : tokens;
}

double Mib(uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

uint32_t MapRows(const AttentionRequest& r, uint32_t tokens) {
  return CeilDiv(EndRow(r, tokens) - r.first_row, r.cell);
}

}  // namespace

uint32_t LayerWindow(const ModelConfig& c, uint32_t layer) {
  return layer < c.layer_window.size() ? c.layer_window[layer] : 0;
}

AttentionRequest OneHead(uint32_t layer, uint32_t head) {
  return {.layer = layer, .first_head = head};
}

AttentionRequest AllHeads(const ModelConfig& c, uint32_t layer, HeadReduce reduce) {
  return {.layer = layer, .plane_heads = c.num_heads, .reduce = reduce};
}

AttentionRequest KvGroup(const ModelConfig& c, uint32_t layer, uint32_t kv_head, HeadReduce reduce) {
  const uint32_t group = c.num_heads / c.num_kv_heads;
  return {.layer = layer, .first_head = kv_head * group, .plane_heads = group, .reduce = reduce};
}

AttentionRequest EveryHead(const ModelConfig& c, uint32_t layer, HeadReduce reduce) {
  return {.layer = layer, .planes = c.num_heads, .reduce = reduce};
}

AttentionRequest EveryKvGroup(const ModelConfig& c, uint32_t layer, HeadReduce reduce) {
  return {.layer = layer, .plane_heads = c.num_heads / c.num_kv_heads, .planes = c.num_kv_heads, .reduce = reduce};
}

AttentionRequest Pooled(AttentionRequest request, uint32_t tokens, uint32_t size) {
  request.cell = CeilDiv(std::max(tokens, 1u), std::max(size, 1u));
  return request;
}

void CheckAttentionRequest(const ModelConfig& c, uint32_t tokens, const AttentionRequest& r) {
  if (r.layer >= c.num_layers) {
    throw Error(fmt::format("layer {} is out of range: the model has {} layers (0 to {})", r.layer, c.num_layers,
                            c.num_layers - 1));
  }
  if (r.plane_heads == 0 || r.planes == 0) throw Error("an attention map needs at least one head in one plane");
  const uint64_t last_head = r.first_head + uint64_t{r.planes} * r.plane_heads;
  if (last_head > c.num_heads) {
    throw Error(fmt::format("head {} is out of range: the model has {} attention heads (0 to {})",
                            std::max(r.first_head, c.num_heads), c.num_heads, c.num_heads - 1));
  }
  const uint32_t end = EndRow(r, tokens);
  if (end > tokens || r.first_row >= end) {
    throw Error(fmt::format("query rows {} to {} are not a band of the {} tokens", r.first_row, end, tokens));
  }
  if (r.cell == 0) throw Error("an attention map's cells hold at least one query row and one key");
}

AttentionMap::AttentionMap(const AttentionRequest& r, uint32_t t, uint32_t w)
    : request(r),
      tokens(t),
      window(w),
      planes(r.planes),
      rows(MapRows(r, t)),
      cols(CeilDiv(t, r.cell)),
      values(static_cast<size_t>(planes) * rows * cols) {
  request.end_row = EndRow(r, t);
}

std::span<const float> AttentionMap::plane(uint32_t k) const {
  return std::span(values).subspan(static_cast<size_t>(k) * rows * cols, static_cast<size_t>(rows) * cols);
}

bool AttentionMap::masked(uint32_t row, uint32_t col) const {
  const uint32_t first_query = request.first_row + row * request.cell;
  const uint32_t last_query = std::min(first_query + request.cell, request.end_row) - 1;
  if (col * request.cell > last_query) return true;
  const uint32_t last_key = std::min((col + 1) * request.cell, tokens) - 1;
  return window != 0 && uint64_t{last_key} + window <= first_query;
}

CapturePlan PlanCapture(const ModelConfig& c, uint32_t tokens, std::span<const AttentionRequest> requests,
                        uint32_t max_chunk, uint64_t max_binding) {
  CapturePlan plan;
  uint32_t first = tokens, end = 0;  // the rows some request needs
  for (const AttentionRequest& r : requests) {
    CheckAttentionRequest(c, tokens, r);
    first = std::min(first, r.first_row);
    end = std::max(end, EndRow(r, tokens));
    const uint32_t rows = MapRows(r, tokens), cols = CeilDiv(tokens, r.cell);
    const uint64_t bytes = uint64_t{4} * r.planes * rows * cols;
    if (bytes > max_binding) {
      throw Error(fmt::format(
          "an attention map of {} planes of {} x {} values ({:.0f} MiB) is more than this GPU binds at once "
          "({:.0f} MiB): ask for fewer query rows, fewer planes or larger cells",
          r.planes, rows, cols, Mib(bytes), Mib(max_binding)));
    }
    plan.map_bytes += bytes;
  }
  const uint64_t row_bytes = uint64_t{4} * c.num_heads * tokens;
  if (row_bytes > max_binding) {
    throw Error(
        fmt::format("the attention rows of {} tokens in {} heads ({:.0f} MiB) are more than this GPU binds "
                    "at once ({:.0f} MiB)",
                    tokens, c.num_heads, Mib(row_bytes), Mib(max_binding)));
  }
  const uint32_t most = std::max(1u, std::min(max_chunk, end > first ? end - first : 1));
  plan.chunk_rows =
      static_cast<uint32_t>(std::clamp<uint64_t>(std::min(kCaptureProbsBytes, max_binding) / row_bytes, 1, most));
  plan.probs_bytes = row_bytes * plan.chunk_rows;
  return plan;
}

AttentionMap MapOfRows(AttentionRequest request, uint32_t first_row, std::span<const std::vector<float>> rows,
                       uint32_t window) {
  const auto tokens = static_cast<uint32_t>(first_row + rows.size());
  request.first_row = first_row;
  request.end_row = tokens;
  request.planes = 1;
  AttentionMap map(request, tokens, window);
  const bool max = request.reduce == HeadReduce::Max;
  for (size_t k = 0; k < rows.size(); ++k) {
    float* out = map.values.data() + (k / request.cell) * map.cols;
    for (size_t key = 0; key < rows[k].size(); ++key) {
      float& cell = out[key / request.cell];
      cell = max ? std::max(cell, rows[k][key]) : cell + rows[k][key];
    }
  }
  if (!max && request.cell > 1) {
    for (uint32_t i = 0; i < map.rows; ++i) {
      const uint32_t cell_rows = std::min(request.cell, tokens - first_row - i * request.cell);
      for (uint32_t j = 0; j < map.cols; ++j) {
        const uint32_t cell_cols = std::min(request.cell, tokens - j * request.cell);
        map.values[size_t{i} * map.cols + j] /= static_cast<float>(cell_rows * cell_cols);
      }
    }
  }
  return map;
}

uint64_t LiveLayerBytes(const ModelConfig& c, uint32_t context) {
  constexpr uint64_t kMostOffsetAlignment = 256;
  const uint64_t bytes = 4 * ops::AttentionScoresFloats(c.num_heads, 1, context);
  return (bytes + kMostOffsetAlignment - 1) / kMostOffsetAlignment * kMostOffsetAlignment;
}

uint64_t LiveAttentionBytes(const ModelConfig& c, uint32_t context, uint32_t views) {
  return c.num_layers * LiveLayerBytes(c, context) + uint64_t{4} * views * context + uint64_t{16} * (1 + views);
}

std::span<const float> AttentionRow::view(uint32_t v) const {
  const size_t keys = size_t{position} + 1;
  return values.subspan(v * keys, keys);
}

}  // namespace qvk
