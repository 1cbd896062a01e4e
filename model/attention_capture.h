#pragma once
// Attention maps as a viewer asks for them (Engine::CaptureAttention) and the rows a decode step
// captures live, reduced to the viewer's views (Engine::attention_row). A map is one head, or the
// max or mean over a layer's heads or over the query heads of one KV head (a GQA group); whole, a
// band of query rows, or pooled into square cells (the thumbnails of a layers x heads overview).
// The GPU reduces each chunk of a prefill's probabilities to what was asked for, so no capture
// holds T^2 values for every head: a 4096-token map of Qwen2.5-0.5B's 24 layers x 14 heads would
// be 22.5 GB.
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"

namespace qvk {

enum class HeadReduce { Mean, Max };

struct AttentionRequest {
  uint32_t layer = 0;
  // Plane k of the map reduces the query heads first_head + k * plane_heads .. + plane_heads.
  uint32_t first_head = 0;
  uint32_t plane_heads = 1;
  uint32_t planes = 1;
  HeadReduce reduce = HeadReduce::Mean;  // over a plane's heads and a cell's rows and columns
  // The band of query rows [first_row, end_row); end_row 0: through the last token.
  uint32_t first_row = 0;
  uint32_t end_row = 0;
  // Query rows and key columns per value (1: every cell of the map). Rows count from first_row,
  // columns from 0; the last cell of each may be cut short, and a mean is over what it holds.
  uint32_t cell = 1;
  // Key 0 (the attention sink, which takes much of most rows) left out of each head's row and the
  // row renormalized, before heads and cells are reduced.
  bool mute_sink = false;
};

// The sliding window of `layer` (0: full attention).
uint32_t LayerWindow(const ModelConfig& config, uint32_t layer);

// The maps a viewer shows:
AttentionRequest OneHead(uint32_t layer, uint32_t head);
AttentionRequest AllHeads(const ModelConfig& config, uint32_t layer, HeadReduce reduce);
AttentionRequest KvGroup(const ModelConfig& config, uint32_t layer, uint32_t kv_head, HeadReduce reduce);
// One plane per query head, or per KV group, of a layer: a row of the overview grid.
AttentionRequest EveryHead(const ModelConfig& config, uint32_t layer, HeadReduce reduce);
AttentionRequest EveryKvGroup(const ModelConfig& config, uint32_t layer, HeadReduce reduce);
// `request` with cells large enough that a `tokens` x `tokens` map fits `size` x `size` values.
AttentionRequest Pooled(AttentionRequest request, uint32_t tokens, uint32_t size);

// Throws an Error a user can act on when `request` does not fit the model or `tokens`: the layer
// or heads out of range, an empty band or one past the last token, cells of 0.
void CheckAttentionRequest(const ModelConfig& config, uint32_t tokens, const AttentionRequest& request);

struct AttentionMap {
  AttentionRequest request;  // as asked, end_row resolved
  uint32_t tokens = 0;       // the sequence: the whole map is tokens x tokens
  // The layer's sliding window (0: none): a query sees only its last `window` keys.
  uint32_t window = 0;
  uint32_t planes = 0, rows = 0, cols = 0;
  std::vector<float> values;  // [planes, rows, cols]

  // An empty map of the request's shape, of a layer with sliding window `window` (0: none).
  AttentionMap(const AttentionRequest& request, uint32_t tokens, uint32_t window = 0);
  std::span<const float> plane(uint32_t k) const;
  // Whether value (row, col) is hidden from every query it covers (0 in every plane): keys after
  // each of them (the causal mask), or keys the sliding window has left behind for each of them.
  bool masked(uint32_t row, uint32_t col) const;
};

// How a capture of `tokens` runs where a binding holds at most `max_binding` bytes: query rows per
// prefill chunk while probabilities are on (at most `max_chunk`, and no more than the requests'
// rows span), and the GPU memory it takes on
// top of the engine's: one chunk's probabilities [heads, chunk_rows, tokens], shared by every
// layer, and each request's map. Throws an Error when a map or one row of every head cannot fit.
struct CapturePlan {
  uint32_t chunk_rows = 0;
  uint64_t probs_bytes = 0;
  uint64_t map_bytes = 0;  // every request's map
};
CapturePlan PlanCapture(const ModelConfig& config, uint32_t tokens, std::span<const AttentionRequest> requests,
                        uint32_t max_chunk, uint64_t max_binding);

// Query rows first_row, first_row + 1, ... of plane 0 of `request` (rows[k] the values of keys
// 0 .. first_row + k, as live rows come), as the map `request` asks for over the tokens they span
// (first_row + rows.size()): its band and cells, each cell the mean or max of what it holds, as
// attention_reduce makes them. `window`: the layer's sliding window.
AttentionMap MapOfRows(AttentionRequest request, uint32_t first_row, std::span<const std::vector<float>> rows,
                       uint32_t window);

// Live attention (Engine::set_live_attention): bytes between layers in a decode step's scores, a
// layer's [heads, context] and each head's max and sum, rounded up to 256 (the largest storage
// offset alignment Vulkan allows), since each layer's attention binds its own; and the GPU memory
// it takes for `views` views: every layer's scores, each view's row [views, context] and the views.
uint64_t LiveLayerBytes(const ModelConfig& config, uint32_t context);
uint64_t LiveAttentionBytes(const ModelConfig& config, uint32_t context, uint32_t views);

// A decode step's attention reduced to each live view (Engine::set_live_attention): the row of
// the token at `position` in plane 0 of each view's request (its layer and heads; band and cells
// do not apply to a row), one value per key 0 .. position, [views, position + 1].
struct AttentionRow {
  uint32_t position = 0;
  uint32_t views = 0;
  std::span<const float> values;

  std::span<const float> view(uint32_t v) const;
};

}  // namespace qvk
