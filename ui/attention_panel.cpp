// Sections: token labels / the heatmap and its legend / controls / the overview grid / memory, zoom
// and token controls / token shading / the panel
// The attention panel beside the chat: one map of a message's attention (a layer's head, or the
// mean or max over its heads or a GQA group) as a heatmap, query rows down and keys across, with
// the causal mask in grey; what the cell under the mouse is; a legend; every layer and head as
// thumbnails. The heatmap is a texture (ui/texture.h) drawn a texel a pixel for the part of the
// map in view, so zooming and panning cost the pixels on screen, not the tokens.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <imgui.h>

#include "chat/attention_export.h"
#include "ui/actions.h"
#include "ui/panels.h"
#include "ui/texture.h"

namespace qvk::ui {
namespace {

const char* const kHeadsNames[] = {"One head", "Mean over heads", "Max over heads", "Mean over a KV group",
                                   "Max over a KV group"};

ImU32 ToImColor(const chat::Rgb& c) {
  return IM_COL32(c[0], c[1], c[2], 255);
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

bool IsSpecialPiece(std::string_view piece) {
  return piece.size() > 4 && piece.starts_with("<|") && piece.ends_with("|>");
}

// A token as the text shows it: its own spaces, a newline as the mark and then a new line, tabs
// and other control characters as AttentionTokenLabel writes them; an empty piece (bytes of a
// character split over tokens) as a thin box.
std::string InlinePiece(std::string_view piece) {
  std::string text;
  for (const char c : piece) {
    if (c == ' ')
      text += ' ';
    else if (c == '\n')
      text += "\u23CE";
    else
      text += AttentionTokenLabel(std::string_view(&c, 1));
  }
  return text;
}

// --- the heatmap and its legend ---------------------------------------------------------------

chat::PngOptions ScaleOptions(const AttentionPanel& panel) {
  return {.pixels_per_value = 1, .scale_max = 0, .log_decades = panel.log_scale ? kAttentionLogDecades : 0.0f};
}

// Plane `plane` of `map` (a thumbnail) as rectangles at `origin`, `cell` pixels a value.
void DrawCells(ImDrawList* draw, const AttentionMap& map, uint32_t plane, ImVec2 origin, float cell, float top,
               const chat::PngOptions& options) {
  const std::span<const float> values = map.plane(plane);
  for (uint32_t i = 0; i < map.rows; ++i) {
    for (uint32_t j = 0; j < map.cols; ++j) {
      const float value = values[size_t{i} * map.cols + j];
      const chat::Rgb colour =
          map.masked(i, j) ? chat::kMaskedColor : chat::HeatColor(chat::ScalePosition(value, top, options));
      const ImVec2 p0(origin.x + static_cast<float>(j) * cell, origin.y + static_cast<float>(i) * cell);
      draw->AddRectFilled(p0, ImVec2(p0.x + cell, p0.y + cell), ToImColor(colour));
    }
  }
}

// The heatmap's pixels for `zoom` at `pixels` a side, one per texel: each pixel the max of the
// cells it covers (a thin line of attention stays visible when a pixel holds many tokens), masked
// when every cell it covers is, the panel's background outside the map.
std::vector<uint32_t> HeatmapPixels(const AttentionMap& map, HeatmapZoom zoom, uint32_t pixels, float top,
                                    float threshold, const chat::PngOptions& options) {
  const std::span<const float> values = map.plane(0);
  const auto cell = static_cast<float>(map.request.cell);
  const float per_pixel = zoom.span / static_cast<float>(pixels);
  const float rows = static_cast<float>(map.request.end_row - map.request.first_row),
              cols = static_cast<float>(map.tokens);
  const ImU32 background = ImGui::GetColorU32(ImGuiCol_WindowBg);
  // The cells pixel i covers along an axis: [first, end).
  const auto cells = [&](float from, uint32_t i, float extent, uint32_t count) {
    const float t0 = std::max(0.0f, from + static_cast<float>(i) * per_pixel);
    const float t1 = std::min(t0 + per_pixel, extent);
    const auto first = static_cast<uint32_t>(t0 / cell);
    const uint32_t end = std::max(first + 1, static_cast<uint32_t>(std::ceil(t1 / cell)));
    return std::pair(std::min(first, count), std::min(end, count));
  };
  std::vector<uint32_t> rgba(size_t{pixels} * pixels, background);
  for (uint32_t y = 0; y < pixels; ++y) {
    const auto [r0, r1] = cells(zoom.row, y, rows, map.rows);
    if (r0 >= r1) continue;
    for (uint32_t x = 0; x < pixels; ++x) {
      const auto [c0, c1] = cells(zoom.col, x, cols, map.cols);
      if (c0 >= c1) continue;
      chat::Rgb colour = chat::kMaskedColor;
      if (!map.masked(r1 - 1, c0)) {
        float value = 0;
        for (uint32_t r = r0; r < r1; ++r) {
          for (uint32_t c = c0; c < c1; ++c) value = std::max(value, values[size_t{r} * map.cols + c]);
        }
        if (value < threshold) value = 0;
        colour = chat::HeatColor(chat::ScalePosition(value, top, options));
      }
      rgba[size_t{y} * pixels + x] = ToImColor(colour);
    }
  }
  return rgba;
}

// The map as a texture a texel a screen pixel, drawn again only when the map, the zoom or the
// scale changed. The wheel zooms about the token under the mouse, a drag pans.
void DrawHeatmap(AppState& state, const AttentionMap& map, float side) {
  AttentionPanel& panel = state.attention;
  ImGuiIO& io = ImGui::GetIO();
  if (!panel.texture) panel.texture = std::make_unique<Texture>(state.window);
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImVec2 cursor = ImGui::GetCursorScreenPos();
  // Whole pixels, so that texels fall on pixels.
  const ImVec2 origin(std::round(cursor.x), std::round(cursor.y));
  side = std::floor(side);
  ImGui::SetCursorScreenPos(origin);
  ImGui::InvisibleButton("##heatmap", ImVec2(side, side));
  const bool hovered = ImGui::IsItemHovered();
  HeatmapZoom zoom = ClampedZoom(panel);
  const auto token_at = [&](ImVec2 p) {
    return ImVec2(zoom.col + (p.x - origin.x) / side * zoom.span, zoom.row + (p.y - origin.y) / side * zoom.span);
  };
  if (hovered && io.MouseWheel != 0) {
    const ImVec2 under = token_at(io.MousePos);  // stays under the mouse
    const float span = zoom.span * std::pow(0.8f, io.MouseWheel);
    const float fraction_x = (io.MousePos.x - origin.x) / side, fraction_y = (io.MousePos.y - origin.y) / side;
    ZoomAttention(state, {under.y - fraction_y * span, under.x - fraction_x * span, span});
    zoom = ClampedZoom(panel);
  }
  if (ImGui::IsItemActive() && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 0.0f)) {
    const float per_pixel = zoom.span / side;
    ZoomAttention(state, {zoom.row - io.MouseDelta.y * per_pixel, zoom.col - io.MouseDelta.x * per_pixel, zoom.span});
    zoom = ClampedZoom(panel);
  }
  const chat::PngOptions options = ScaleOptions(panel);
  const auto pixels = static_cast<uint32_t>(std::max(1.0f, side * io.DisplayFramebufferScale.x));
  const bool zoom_moved = !(zoom == panel.texture_key.zoom) || pixels != panel.heatmap_pixels;
  panel.heatmap_pixels = pixels;
  const HeatmapTextureKey texture_key{panel.shown_revision, panel.detail_revision, zoom, pixels, panel.log_scale};
  if (!(texture_key == panel.texture_key) || panel.texture->width() != pixels) {
    // The finer capture of the rows in view where there is one, on the whole map's scale.
    const float top = chat::ScaleTop(map, 0, options);
    const AttentionMap* detail = AttentionDetailInView(state);
    HeatmapZoom from = zoom;
    if (detail) from.row -= static_cast<float>(detail->request.first_row - map.request.first_row);
    panel.texture->Update(HeatmapPixels(detail ? *detail : map, from, pixels, top, panel.threshold, options), pixels,
                          pixels);
    panel.texture_key = texture_key;
  }
  // Once the view stays still, a pooled map zoomed past its cells is captured again finer.
  if (!zoom_moved) RequestAttentionDetail(state);
  panel.texture->Draw(draw, origin, ImVec2(origin.x + side, origin.y + side));
  draw->PushClipRect(ImVec2(origin.x - 6, origin.y), ImVec2(origin.x + side, origin.y + side), true);
  const float per_token = side / zoom.span;
  const auto screen_y = [&](float query) {
    return origin.y + (query - static_cast<float>(map.request.first_row) - zoom.row) * per_token;
  };
  const auto screen_x = [&](float key) { return origin.x + (key - zoom.col) * per_token; };
  // Where the message's own text starts: the rows above it are the conversation before it.
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (tokens && tokens->message_begin > map.request.first_row) {
    const float y = screen_y(static_cast<float>(tokens->message_begin));
    draw->AddLine(ImVec2(origin.x - 6, y), ImVec2(origin.x + side, y), IM_COL32(255, 120, 80, 200), 1.5f);
  }
  // The mouse points at a cell once it moves over the map; until then a cell a script pointed at
  // stays (the pointer of a headless display sits still wherever it is).
  const bool moved = io.MouseDelta.x != 0 || io.MouseDelta.y != 0;
  if (hovered && (panel.hover_from_mouse || !panel.hover || moved)) {
    const ImVec2 at = token_at(io.MousePos);
    const auto cell = [&](float token, uint32_t count) {
      return std::min(static_cast<uint32_t>(std::max(0.0f, token) / static_cast<float>(map.request.cell)), count - 1);
    };
    panel.hover = {cell(at.y, map.rows), cell(at.x, map.cols)};
    panel.hover_from_mouse = true;
  } else if (panel.hover_from_mouse && !hovered) {
    panel.hover.reset();
    panel.hover_from_mouse = false;
  }
  // The token chosen in the text: its row (what it attends to) or its column (what attends to it).
  if (panel.token) {
    const auto chosen = static_cast<float>(*panel.token);
    const ImU32 colour = IM_COL32(80, 200, 255, 220);
    if (panel.direction == TokenDirection::AttendsTo) {
      draw->AddRect(ImVec2(origin.x, screen_y(chosen)), ImVec2(origin.x + side, screen_y(chosen + 1)), colour);
    } else {
      draw->AddRect(ImVec2(screen_x(chosen), origin.y), ImVec2(screen_x(chosen + 1), origin.y + side), colour);
    }
  }
  if (panel.hover && panel.hover->first < map.rows && panel.hover->second < map.cols) {
    const auto cell = static_cast<float>(map.request.cell);
    const float x = screen_x(static_cast<float>(panel.hover->second) * cell);
    const float y = screen_y(static_cast<float>(map.request.first_row) + static_cast<float>(panel.hover->first) * cell);
    const float size = std::max(cell * per_token, 3.0f);
    draw->AddRect(ImVec2(x, y), ImVec2(x + size, y + size), IM_COL32(255, 255, 255, 255), 0, 0, 2.0f);
  }
  draw->PopClipRect();
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
  if (map.window != 0) {
    ImGui::TextDisabled("masked: later keys, and keys outside the sliding window of %u", map.window);
  } else {
    ImGui::TextDisabled("causal mask (later keys)");
  }
}

// What the cell under the mouse (or the one a script points at) is: its query, key and value.
void DrawHoverLine(AppState& state, const AttentionMap& map) {
  const AttentionPanel& panel = state.attention;
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (!panel.hover || !tokens || panel.hover->first >= map.rows || panel.hover->second >= map.cols) {
    ImGui::TextDisabled("Point at a cell: its query token, key token and value.");
    return;
  }
  const auto [row, col] = *panel.hover;
  const std::string query = TokensLabel(*tokens, CoveredTokens(map, row, true));
  const std::string key = TokensLabel(*tokens, CoveredTokens(map, col, false));
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
  bool mute = panel.view.mute_sink;
  if (ImGui::Checkbox("Mute first token", &mute)) SetAttentionSinkMuted(state, mute);
  if (ImGui::IsItemHovered()) {
    ImGui::SetTooltip("Leave out key 0 (the attention sink) and renormalize each head's row, in every map");
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
      DrawCells(draw, map, head, origin, side / static_cast<float>(std::max(map.rows, map.cols)), top, options);
      ImGui::PushID(static_cast<int>(layer * config.num_heads + head));
      if (ImGui::InvisibleButton("##thumbnail", ImVec2(side, side))) {
        ShowAttentionView(
            state, {.layer = layer, .heads = AttentionHeads::One, .index = head, .mute_sink = panel.view.mute_sink});
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

// --- memory, zoom and token controls --------------------------------------------------------------

// What the maps cost on the GPU: the last capture (one chunk's probabilities and the maps), and
// the live rows replies write while the panel is open.
void DrawMemoryLine(AppState& state, const ModelConfig& config) {
  const double mib = 1 << 20;
  // The panel follows a reply with one view.
  const double live = static_cast<double>(LiveAttentionBytes(config, state.chat().context_length(), 1)) / mib;
  if (state.attention.capture_gpu_bytes != 0) {
    ImGui::TextDisabled("GPU memory: %.1f MiB for the capture, %.1f MiB for live rows",
                        static_cast<double>(state.attention.capture_gpu_bytes) / mib, live);
  } else {
    ImGui::TextDisabled("GPU memory: %.1f MiB for live rows", live);
  }
}

void DrawZoomControls(AppState& state) {
  const HeatmapZoom zoom = ClampedZoom(state.attention);
  if (ImGui::SmallButton("Fit")) ZoomAttention(state, {});
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("The whole map (the wheel zooms, a drag pans)");
  ImGui::SameLine();
  ImGui::TextDisabled("%.0f tokens a side, from query %.0f and key %.0f", zoom.span, zoom.row, zoom.col);
}

void DrawTokenControls(AppState& state) {
  AttentionPanel& panel = state.attention;
  ImGui::TextDisabled("Click a token:");
  ImGui::SameLine();
  if (ImGui::RadioButton("what it attends to", panel.direction == TokenDirection::AttendsTo)) {
    SelectAttentionToken(state, panel.token, TokenDirection::AttendsTo);
  }
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("Its row: the earlier tokens shaded by its attention (Alt+Up)");
  ImGui::SameLine();
  if (ImGui::RadioButton("what attends to it", panel.direction == TokenDirection::AttendedBy)) {
    SelectAttentionToken(state, panel.token, TokenDirection::AttendedBy);
  }
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Its column: the later tokens shaded by their attention to it (Alt+Down)");
  if (panel.token) {
    ImGui::SameLine();
    if (ImGui::SmallButton("Clear")) SelectAttentionToken(state, std::nullopt, panel.direction);
  }
}

}  // namespace

// --- token shading -------------------------------------------------------------------------------

void DrawAttentionTokens(AppState& state, uint32_t first, uint32_t end) {
  AttentionPanel& panel = state.attention;
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (!tokens) return;
  end = std::min<uint32_t>(end, static_cast<uint32_t>(tokens->pieces.size()));
  const std::vector<float> shading = AttentionTokenShading(panel);
  float top = 0;
  for (uint32_t i = first; i < end && !shading.empty(); ++i) top = std::max(top, shading[i]);
  state.glyphs.Note("\u23CE\u21E5", state.fonts.regular);
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = std::max(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 4);
  const float line = ImGui::GetTextLineHeightWithSpacing();
  const ImVec4 clip = draw->GetClipRectMax().y > 0 ? ImVec4(draw->GetClipRectMin().x, draw->GetClipRectMin().y,
                                                            draw->GetClipRectMax().x, draw->GetClipRectMax().y)
                                                   : ImVec4();
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  const bool hovered_window = ImGui::IsWindowHovered();
  const ImU32 text_colour = ImGui::GetColorU32(ImGuiCol_Text);
  const ImU32 special_colour = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  float x = 0, y = 0;
  for (uint32_t i = first; i < end; ++i) {
    std::string text = InlinePiece(tokens->pieces[i]);
    float w = std::max(ImGui::CalcTextSize(text.c_str()).x, ImGui::GetFontSize() * 0.3f);
    if (x > 0 && x + w > width) {
      x = 0;
      y += line;
      // A wrapped line starts at its word, as text wraps: the token's leading spaces are not drawn.
      const size_t word = text.find_first_not_of(' ');
      if (word != std::string::npos && word != 0) {
        text.erase(0, word);
        w = std::max(ImGui::CalcTextSize(text.c_str()).x, ImGui::GetFontSize() * 0.3f);
      }
    }
    const ImVec2 p0(origin.x + x, origin.y + y), p1(p0.x + w, p0.y + ImGui::GetTextLineHeight());
    if (p1.y >= clip.y && p0.y <= clip.w) {
      if (!shading.empty() && shading[i] >= 0 && top > 0) {
        // On the heatmap's scale (linear or log), so small shares show where the map shows them.
        const float strength = std::clamp(chat::ScalePosition(shading[i], top, ScaleOptions(panel)), 0.0f, 1.0f);
        draw->AddRectFilled(p0, p1, IM_COL32(255, 140, 30, static_cast<int>(230 * std::sqrt(strength))));
      }
      draw->AddText(p0, IsSpecialPiece(tokens->pieces[i]) ? special_colour : text_colour, text.c_str());
      if (panel.token == i) draw->AddRect(p0, p1, IM_COL32(80, 200, 255, 255), 0, 0, 2.0f);
      const bool over = hovered_window && mouse.x >= p0.x && mouse.x < p1.x && mouse.y >= p0.y && mouse.y < p1.y;
      if (over) {
        draw->AddRect(p0, p1, IM_COL32(255, 255, 255, 120));
        const std::string value = !shading.empty() && shading[i] >= 0 ? fmt::format(": {:.4f}", shading[i]) : "";
        ImGui::SetTooltip("token %u \"%s\"%s", i, AttentionTokenLabel(tokens->pieces[i]).c_str(), value.c_str());
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) SelectAttentionToken(state, i, panel.direction);
      }
    }
    x += w + 1.0f;
    if (tokens->pieces[i].find('\n') != std::string::npos) {
      x = 0;
      y += line;
    }
  }
  ImGui::Dummy(ImVec2(width, y + line));
}

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
  if (panel.live && !panel.live->ended) {
    ImGui::TextDisabled("the reply being written: %zu tokens, a row a token from token %u",
                        panel.live->tokens.ids.size(), panel.live->first_position);
  } else if (const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel)) {
    ImGui::TextDisabled("%zu tokens, the reply from token %u", tokens->ids.size(), tokens->message_begin);
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
    ImGui::TextDisabled(panel.live ? "Reading the prompt: the map grows from the first token of the reply..."
                                   : "Capturing the attention of this message...");
    return;
  }
  if (panel.capturing) {
    ImGui::SameLine();
    ImGui::TextDisabled("(capturing...)");
  }
  const AttentionMap& map = *panel.shown;
  DrawHoverLine(state, map);
  DrawMemoryLine(state, *config);
  DrawTokenControls(state);
  DrawZoomControls(state);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float side = std::max(160.0f, std::min(avail.x - 8.0f, avail.y * 0.6f));
  ImGui::SetCursorPosX(ImGui::GetCursorPosX() + 6.0f);  // room for the reply's marker
  DrawHeatmap(state, map, side);
  DrawLegend(panel, map, std::min(side, ImGui::GetFontSize() * 16));
  if (const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
      tokens && ImGui::CollapsingHeader("Tokens (the conversation as the model read it; click one)",
                                        ImGuiTreeNodeFlags_DefaultOpen)) {
    ImGui::BeginChild("tokens", ImVec2(0, ImGui::GetTextLineHeightWithSpacing() * 5), true);
    DrawAttentionTokens(state, 0, static_cast<uint32_t>(tokens->ids.size()));
    ImGui::EndChild();
  }
  if (ImGui::CollapsingHeader("Every layer and head (click one to open it)", ImGuiTreeNodeFlags_DefaultOpen)) {
    DrawOverview(state, *config);
  }
  if (panel.scroll_to) {
    ImGui::SetScrollY(*panel.scroll_to * ImGui::GetScrollMaxY());
    panel.scroll_to.reset();
  }
}

}  // namespace qvk::ui
