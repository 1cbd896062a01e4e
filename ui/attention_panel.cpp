// Sections: token labels / the heatmap and its legend / controls / the overview grid / the panel
// The attention panel beside the chat: one map of a message's attention (a layer's head, or the
// mean or max over its heads or a GQA group) as a heatmap, query rows down and keys across, with
// the causal mask in grey; what the cell under the mouse is; a legend; every layer and head as
// thumbnails. ImGui 1.86's Vulkan backend binds only the font texture (user textures came in
// 1.87), so maps are drawn as rectangles, pooled to at most kDrawnCells a side.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <imgui.h>

#include "chat/attention_export.h"
#include "ui/actions.h"
#include "ui/panels.h"

namespace qvk::ui {
namespace {

constexpr uint32_t kDrawnCells = 128;  // rectangles a side of the heatmap, at most
const char* const kHeadsNames[] = {"One head", "Mean over heads", "Max over heads", "Mean over a KV group",
                                   "Max over a KV group"};

ImU32 ToImColor(const chat::Rgb& c) {
  return IM_COL32(c[0], c[1], c[2], 255);
}

uint32_t CeilDiv(uint32_t a, uint32_t b) {
  return (a + b - 1) / b;
}

// --- token labels --------------------------------------------------------------------------------

// Tokens [first, end) of the message that map row or column `index` covers.
std::pair<uint32_t, uint32_t> CoveredTokens(const AttentionMap& map, uint32_t index, bool row) {
  const uint32_t offset = row ? map.request.first_row : 0;
  const uint32_t first = offset + index * map.request.cell;
  return {first, std::min(first + map.request.cell, map.tokens)};
}

std::string TokensLabel(const chat::MessageAttention& tokens, std::pair<uint32_t, uint32_t> range) {
  if (range.second - range.first == 1 && range.first < tokens.pieces.size()) {
    return fmt::format("{} \"{}\"", range.first, AttentionTokenLabel(tokens.pieces[range.first]));
  }
  return fmt::format("tokens {}-{}", range.first, range.second - 1);
}

// --- the heatmap and its legend ---------------------------------------------------------------

chat::PngOptions ScaleOptions(const AttentionPanel& panel) {
  return {.pixels_per_value = 1, .scale_max = 0, .log_decades = panel.log_scale ? kAttentionLogDecades : 0.0f};
}

// Plane `plane` of `map` in the rectangle at `origin`, `cell` pixels a drawn cell, each drawn cell
// the max of `block` x `block` values (a thin line of attention stays visible when pooled).
void DrawCells(ImDrawList* draw, const AttentionMap& map, uint32_t plane, ImVec2 origin, float cell, uint32_t block,
               float top, const chat::PngOptions& options) {
  const std::span<const float> values = map.plane(plane);
  for (uint32_t i = 0; i * block < map.rows; ++i) {
    const uint32_t row_end = std::min((i + 1) * block, map.rows);
    for (uint32_t j = 0; j * block < map.cols; ++j) {
      const uint32_t col_end = std::min((j + 1) * block, map.cols);
      // Wholly masked when its lowest row's first key is.
      const bool masked = map.masked(row_end - 1, j * block);
      float value = 0;
      for (uint32_t r = i * block; r < row_end && !masked; ++r) {
        for (uint32_t c = j * block; c < col_end; ++c) value = std::max(value, values[size_t{r} * map.cols + c]);
      }
      const chat::Rgb colour = masked ? chat::kMaskedColor : chat::HeatColor(chat::ScalePosition(value, top, options));
      const ImVec2 p0(origin.x + static_cast<float>(j) * cell, origin.y + static_cast<float>(i) * cell);
      draw->AddRectFilled(p0, ImVec2(p0.x + cell, p0.y + cell), ToImColor(colour));
    }
  }
}

void DrawHeatmap(AppState& state, const AttentionMap& map, float side) {
  AttentionPanel& panel = state.attention;
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const uint32_t block = CeilDiv(std::max(map.rows, map.cols), kDrawnCells);
  const float cell = side / static_cast<float>(CeilDiv(std::max(map.rows, map.cols), block));
  const chat::PngOptions options = ScaleOptions(panel);
  DrawCells(draw, map, 0, origin, cell, block, chat::ScaleTop(map, 0, options), options);
  const ImVec2 size(cell * static_cast<float>(CeilDiv(map.cols, block)),
                    cell * static_cast<float>(CeilDiv(map.rows, block)));
  // Where the message's own text starts: the rows above it are the conversation before it.
  if (panel.tokens && panel.tokens->message_begin > map.request.first_row) {
    const uint32_t row = (panel.tokens->message_begin - map.request.first_row) / map.request.cell;
    if (row < map.rows) {
      const float y = origin.y + static_cast<float>(row / block) * cell;
      draw->AddLine(ImVec2(origin.x - 6, y), ImVec2(origin.x + size.x, y), IM_COL32(255, 120, 80, 200), 1.5f);
    }
  }
  ImGui::InvisibleButton("##heatmap", size);
  // The mouse points at a cell once it moves over the map; until then a cell a script pointed at
  // stays (the pointer of a headless display sits still wherever it is).
  const ImVec2 delta = ImGui::GetIO().MouseDelta;
  const bool moved = delta.x != 0 || delta.y != 0;
  if (ImGui::IsItemHovered() && (panel.hover_from_mouse || !panel.hover || moved)) {
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const auto at = [&](float offset, uint32_t count) {
      return std::min(static_cast<uint32_t>(std::max(0.0f, offset) / cell) * block, count - 1);
    };
    panel.hover = {at(mouse.y - origin.y, map.rows), at(mouse.x - origin.x, map.cols)};
    panel.hover_from_mouse = true;
  } else if (panel.hover_from_mouse) {
    panel.hover.reset();
    panel.hover_from_mouse = false;
  }
  if (panel.hover && panel.hover->first < map.rows && panel.hover->second < map.cols) {
    const ImVec2 p0(origin.x + static_cast<float>(panel.hover->second / block) * cell,
                    origin.y + static_cast<float>(panel.hover->first / block) * cell);
    draw->AddRect(p0, ImVec2(p0.x + cell, p0.y + cell), IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
  }
}

void DrawLegend(const AttentionPanel& panel, const AttentionMap& map, float width) {
  const chat::PngOptions options = ScaleOptions(panel);
  const float top = chat::ScaleTop(map, 0, options);
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float height = ImGui::GetTextLineHeight();
  constexpr int kSteps = 64;
  for (int i = 0; i < kSteps; ++i) {
    const float x0 = origin.x + width * static_cast<float>(i) / kSteps;
    const float x1 = origin.x + width * static_cast<float>(i + 1) / kSteps;
    draw->AddRectFilled(ImVec2(x0, origin.y), ImVec2(x1, origin.y + height),
                        ToImColor(chat::HeatColor((static_cast<float>(i) + 0.5f) / kSteps)));
  }
  ImGui::Dummy(ImVec2(width, height));
  const std::string low = panel.log_scale ? fmt::format("{:.2g}", top * std::pow(10.0f, -kAttentionLogDecades)) : "0";
  const std::string high = fmt::format("{:.3g}", top);
  ImGui::TextUnformatted(low.c_str());
  ImGui::SameLine(std::max(0.0f, width - ImGui::CalcTextSize(high.c_str()).x));
  ImGui::TextUnformatted(high.c_str());
  ImGui::SameLine(width + ImGui::GetStyle().ItemSpacing.x * 2);
  const ImVec2 swatch = ImGui::GetCursorScreenPos();
  draw->AddRectFilled(swatch, ImVec2(swatch.x + height, swatch.y + height), ToImColor(chat::kMaskedColor));
  ImGui::Dummy(ImVec2(height, height));
  ImGui::SameLine();
  ImGui::TextDisabled("causal mask (later keys)");
}

// What the cell under the mouse (or the one a script points at) is: its query, key and value.
void DrawHoverLine(AppState& state, const AttentionMap& map) {
  const AttentionPanel& panel = state.attention;
  if (!panel.hover || !panel.tokens || panel.hover->first >= map.rows || panel.hover->second >= map.cols) {
    ImGui::TextDisabled("Point at a cell: its query token, key token and value.");
    return;
  }
  const auto [row, col] = *panel.hover;
  const std::string query = TokensLabel(*panel.tokens, CoveredTokens(map, row, true));
  const std::string key = TokensLabel(*panel.tokens, CoveredTokens(map, col, false));
  const std::string value =
      map.masked(row, col) ? std::string("masked") : fmt::format("{:.4f}", map.values[size_t{row} * map.cols + col]);
  const std::string line = fmt::format("query {}  ->  key {}:  {}", query, key, value);
  state.glyphs.Note(line, state.fonts.regular);
  ImGui::TextUnformatted(line.c_str());
  if (panel.hover_from_mouse) ImGui::SetTooltip("%s", line.c_str());
}

// --- controls ------------------------------------------------------------------------------------

void DrawControls(AppState& state, const ModelConfig& config) {
  AttentionPanel& panel = state.attention;
  AttentionView view = panel.view;
  const float width = std::min(ImGui::GetFontSize() * 12, ImGui::GetContentRegionAvail().x * 0.35f);
  int layer = static_cast<int>(view.layer);
  ImGui::SetNextItemWidth(width);
  if (ImGui::SliderInt("Layer", &layer, 0, static_cast<int>(config.num_layers) - 1)) {
    view.layer = static_cast<uint32_t>(layer);
  }
  ImGui::SameLine();
  int heads = static_cast<int>(view.heads);
  ImGui::SetNextItemWidth(width);
  if (ImGui::Combo("##heads", &heads, kHeadsNames, IM_ARRAYSIZE(kHeadsNames))) {
    view.heads = static_cast<AttentionHeads>(heads);
    view.index = 0;
  }
  const bool grouped = view.heads == AttentionHeads::GroupMean || view.heads == AttentionHeads::GroupMax;
  if (view.heads == AttentionHeads::One || grouped) {
    int index = static_cast<int>(view.index);
    const int count = static_cast<int>(grouped ? config.num_kv_heads : config.num_heads);
    ImGui::SetNextItemWidth(width);
    if (ImGui::SliderInt(grouped ? "KV head" : "Head", &index, 0, count - 1)) view.index = static_cast<uint32_t>(index);
  }
  if (!(view == panel.view)) ShowAttentionView(state, view);

  if (ImGui::RadioButton("Linear", !panel.log_scale)) panel.log_scale = false;
  ImGui::SameLine();
  if (ImGui::RadioButton("Log", panel.log_scale)) panel.log_scale = true;
  ImGui::SameLine();
  // A pooled map's first column holds more keys than the sink.
  const bool whole = !panel.map || panel.map->request.cell == 1;
  bool mute = panel.mute_sink && whole;
  if (!whole) ImGui::BeginDisabled();
  if (ImGui::Checkbox("Mute first token", &mute)) SetAttentionSinkMuted(state, mute);
  if (!whole) ImGui::EndDisabled();
  if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled)) {
    ImGui::SetTooltip(whole ? "Leave out key 0 (the attention sink) and renormalize each row"
                            : "Needs the whole map: this one is pooled");
  }
  float threshold = panel.threshold;
  ImGui::SetNextItemWidth(width);
  if (ImGui::SliderFloat("Threshold", &threshold, 0.0f, 1.0f, "%.3f", ImGuiSliderFlags_Logarithmic)) {
    SetAttentionThreshold(state, threshold);
  }
  ImGui::SameLine();
  ImGui::TextUnformatted("  Export:");
  const std::pair<const char*, AttentionFormat> formats[] = {
      {"PNG", AttentionFormat::Png}, {"CSV", AttentionFormat::Csv}, {"NPY", AttentionFormat::Npy}};
  for (const auto& [label, format] : formats) {
    ImGui::SameLine();
    if (ImGui::SmallButton(label)) ExportAttention(state, DefaultAttentionExportPath(state, format), format);
  }
}

// --- the overview grid ---------------------------------------------------------------------------

// Layers down, heads across, each a pooled thumbnail; a click opens that head.
void DrawOverview(AppState& state, const ModelConfig& config) {
  AttentionPanel& panel = state.attention;
  if (panel.thumbnails.size() != config.num_layers) return;
  const float label = ImGui::CalcTextSize("L00 ").x;
  const float spacing = ImGui::GetStyle().ItemSpacing.x * 0.5f;
  const float avail = ImGui::GetContentRegionAvail().x - label;
  const float side = std::clamp(avail / static_cast<float>(config.num_heads) - spacing, 16.0f, 72.0f);
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const chat::PngOptions options{};
  for (uint32_t layer = 0; layer < config.num_layers; ++layer) {
    const AttentionMap& map = panel.thumbnails[layer];
    ImGui::AlignTextToFramePadding();
    ImGui::Text("L%u", layer);
    for (uint32_t head = 0; head < map.planes; ++head) {
      ImGui::SameLine(label + static_cast<float>(head) * (side + spacing));
      const ImVec2 origin = ImGui::GetCursorScreenPos();
      const std::span<const float> values = map.plane(head);
      // The top of each thumbnail's scale leaves out its first row of cells: the first queries
      // see only the first keys, which take all of their attention and would darken the rest.
      const auto from = values.begin() + (map.rows > 1 ? map.cols : 0);
      const float top = from == values.end() ? 0.0f : *std::max_element(from, values.end());
      DrawCells(draw, map, head, origin, side / static_cast<float>(std::max(map.rows, map.cols)), 1, top, options);
      ImGui::PushID(static_cast<int>(layer * config.num_heads + head));
      if (ImGui::InvisibleButton("##thumbnail", ImVec2(side, side))) {
        ShowAttentionView(state, {.layer = layer, .heads = AttentionHeads::One, .index = head});
      }
      if (ImGui::IsItemHovered())
        ImGui::SetTooltip("Layer %u, head %u (KV head %u)", layer, head,
                          head / (config.num_heads / config.num_kv_heads));
      ImGui::PopID();
      const AttentionView& view = panel.view;
      if (view.heads == AttentionHeads::One && view.layer == layer && view.index == head) {
        draw->AddRect(origin, ImVec2(origin.x + side, origin.y + side), IM_COL32(255, 200, 60, 255), 0, 0, 2.0f);
      }
    }
  }
}

}  // namespace

// --- the panel -----------------------------------------------------------------------------------

std::string AttentionTokenLabel(std::string_view piece) {
  if (piece.empty()) return "(empty)";
  std::string label;
  for (const char c : piece) {
    if (c == ' ')
      label += "\u2423";  // open box
    else if (c == '\n')
      label += "\u23CE";  // return symbol
    else if (c == '\t')
      label += "\u21E5";  // rightwards arrow to bar
    else if (static_cast<unsigned char>(c) < 0x20)
      label += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else
      label += c;
  }
  return label;
}

void DrawAttention(AppState& state) {
  AttentionPanel& panel = state.attention;
  TrackAttention(state);
  if (panel.message == 0) return;  // closed while a capture failed
  if (panel.capturing) state.this_frame.awaiting_results = true;
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted("Attention");
  ImGui::PopFont();
  ImGui::SameLine();
  if (panel.tokens) {
    ImGui::TextDisabled("%zu tokens, the reply from token %u", panel.tokens->ids.size(), panel.tokens->message_begin);
  }
  ImGui::SameLine(ImGui::GetContentRegionAvail().x + ImGui::GetCursorPosX() - ImGui::CalcTextSize("Close").x -
                  ImGui::GetStyle().FramePadding.x * 2);
  if (ImGui::SmallButton("Close")) {
    CloseAttention(state);
    return;
  }
  const std::optional<ModelConfig> config = state.chat().model_config();
  if (!config) {
    ImGui::TextDisabled("No model is loaded.");
    return;
  }
  DrawControls(state, *config);
  if (!panel.shown) {
    ImGui::TextDisabled("Capturing the attention of this message...");
    return;
  }
  if (panel.capturing) {
    ImGui::SameLine();
    ImGui::TextDisabled("(capturing...)");
  }
  const AttentionMap& map = *panel.shown;
  DrawHoverLine(state, map);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float side = std::max(160.0f, std::min(avail.x - 8.0f, avail.y * 0.6f));
  ImGui::SetCursorPosX(ImGui::GetCursorPosX() + 6.0f);  // room for the reply's marker
  DrawHeatmap(state, map, side);
  DrawLegend(panel, map, std::min(side, ImGui::GetFontSize() * 16));
  if (ImGui::CollapsingHeader("Every layer and head (click one to open it)", ImGuiTreeNodeFlags_DefaultOpen)) {
    DrawOverview(state, *config);
  }
}

}  // namespace qvk::ui
