// Sections: axes / the speed chart / the depth chart / the kernel chart / the roofline / the comparison /
// the run form / the table / the panel
// The benchmark workbench: a benchmark of the loaded model (or a model file) run on the chat's
// worker with a progress bar, the stored runs as a table to filter, order and select from, and
// charts of the selection drawn with ImGui's draw lists (ImGui 1.86 has no plotting, and no
// plotting library is packaged for Debian): tokens/s by run with error bars, tokens/s against the
// KV cache's depth, where one run's GPU time goes, the roofline, and the selected runs side by side.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include "chat/bench.h"
#include "ui/actions.h"
#include "ui/bench_view.h"
#include "ui/panels.h"

namespace qvk::ui {
namespace {

// Runs drawn in a chart when none is selected: the newest of the table.
constexpr size_t kUnselectedChartRuns = 6;

// Distinct on the dark theme, in the order runs take them.
constexpr ImU32 kSeriesColors[] = {
    IM_COL32(86, 180, 233, 255),  IM_COL32(230, 159, 0, 255), IM_COL32(0, 158, 115, 255), IM_COL32(240, 228, 66, 255),
    IM_COL32(204, 121, 167, 255), IM_COL32(213, 94, 0, 255),  IM_COL32(0, 114, 178, 255), IM_COL32(170, 170, 170, 255)};
constexpr ImU32 kAxisColor = IM_COL32(200, 200, 200, 255);
constexpr ImU32 kGridColor = IM_COL32(255, 255, 255, 28);
constexpr ImU32 kTextColor = IM_COL32(225, 225, 225, 255);

ImU32 SeriesColor(size_t index) {
  return kSeriesColors[index % std::size(kSeriesColors)];
}

// --- axes ----------------------------------------------------------------------------------------

// 1234 -> "1.23k": tick labels short enough to sit under a tick.
std::string Short(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e3) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:.3g}", v);
}

// A rate of flops with its prefix, as a roof's label: "22.5 GFLOP/s", "61.1 TFLOP/s".
std::string FlopRate(double flops) {
  if (flops >= 1e12) return fmt::format("{:.3g} TFLOP/s", flops / 1e12);
  if (flops >= 1e9) return fmt::format("{:.3g} GFLOP/s", flops / 1e9);
  return fmt::format("{:.3g} MFLOP/s", flops / 1e6);
}

// A value range mapped onto pixels [from, to] (to < from for a y axis, which grows upwards).
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  float from = 0, to = 1;
  float At(double v) const {
    const double t =
        log ? (std::log10(std::max(v, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return from + static_cast<float>(t) * (to - from);
  }
  // Round values across the range: 1-2-5 steps, or each decade on a log axis.
  std::vector<double> Ticks() const {
    std::vector<double> ticks;
    if (log) {
      for (double d = std::pow(10, std::floor(std::log10(lo))); d <= hi * 1.0001; d *= 10) {
        if (d >= lo * 0.9999) ticks.push_back(d);
      }
      return ticks;
    }
    const double raw = (hi - lo) / 5, magnitude = std::pow(10, std::floor(std::log10(raw)));
    const double step = raw / magnitude <= 1   ? magnitude
                        : raw / magnitude <= 2 ? 2 * magnitude
                        : raw / magnitude <= 5 ? 5 * magnitude
                                               : 10 * magnitude;
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-6; v += step) ticks.push_back(v);
    return ticks;
  }
};

// A log axis from a decade at or below `lo` to one at or above `hi`.
Axis LogAxis(double lo, double hi) {
  lo = std::pow(10, std::floor(std::log10(lo)));
  hi = std::pow(10, std::ceil(std::log10(hi)));
  if (hi <= lo) hi = lo * 10;
  return {.lo = lo, .hi = hi, .log = true};
}

// The chart's plot rectangle inside the space left, with room for tick labels and axis titles.
struct Plot {
  ImDrawList* draw = nullptr;
  ImVec2 min, max;  // the plot area
  Axis x, y;
};

Plot BeginPlot(ImVec2 size, const char* id) {
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton(id, size);
  const float line = ImGui::GetTextLineHeight();
  Plot plot{.draw = ImGui::GetWindowDrawList(),
            .min = ImVec2(origin.x + 4.5f * line, origin.y + 1.8f * line),
            .max = ImVec2(origin.x + size.x - 1.0f * line, origin.y + size.y - 2.6f * line)};
  return plot;
}

void DrawYAxis(Plot& plot, const char* title) {
  plot.y.from = plot.max.y;
  plot.y.to = plot.min.y;
  ImDrawList* d = plot.draw;
  for (const double v : plot.y.Ticks()) {
    const float y = plot.y.At(v);
    d->AddLine(ImVec2(plot.min.x, y), ImVec2(plot.max.x, y), kGridColor);
    d->AddLine(ImVec2(plot.min.x - 4, y), ImVec2(plot.min.x, y), kAxisColor);
    const std::string label = Short(v);
    const ImVec2 size = ImGui::CalcTextSize(label.c_str());
    d->AddText(ImVec2(plot.min.x - 6 - size.x, y - size.y / 2), kTextColor, label.c_str());
  }
  d->AddLine(plot.min, ImVec2(plot.min.x, plot.max.y), kAxisColor);
  // The title above the tick labels, left-aligned (ImGui draws no rotated text).
  d->AddText(ImVec2(plot.min.x - 4.3f * ImGui::GetTextLineHeight(), plot.min.y - ImGui::GetTextLineHeight() * 1.8f),
             kTextColor, title);
}

void DrawXAxis(Plot& plot, const char* title) {
  plot.x.from = plot.min.x;
  plot.x.to = plot.max.x;
  ImDrawList* d = plot.draw;
  for (const double v : plot.x.Ticks()) {
    const float x = plot.x.At(v);
    d->AddLine(ImVec2(x, plot.min.y), ImVec2(x, plot.max.y), kGridColor);
    d->AddLine(ImVec2(x, plot.max.y), ImVec2(x, plot.max.y + 4), kAxisColor);
    const std::string label = Short(v);
    d->AddText(ImVec2(x - ImGui::CalcTextSize(label.c_str()).x / 2, plot.max.y + 5), kTextColor, label.c_str());
  }
  d->AddLine(ImVec2(plot.min.x, plot.max.y), plot.max, kAxisColor);
  const ImVec2 size = ImGui::CalcTextSize(title);
  d->AddText(ImVec2((plot.min.x + plot.max.x - size.x) / 2, plot.max.y + 5 + ImGui::GetTextLineHeight() * 1.2f),
             kTextColor, title);
}

void DashedLine(ImDrawList* d, ImVec2 a, ImVec2 b, ImU32 color, float thickness) {
  const float length = std::hypot(b.x - a.x, b.y - a.y), dash = 6;
  for (float t = 0; t < length; t += 2 * dash) {
    const float t1 = std::min(t + dash, length);
    d->AddLine(ImVec2(a.x + (b.x - a.x) * t / length, a.y + (b.y - a.y) * t / length),
               ImVec2(a.x + (b.x - a.x) * t1 / length, a.y + (b.y - a.y) * t1 / length), color, thickness);
  }
}

// One swatch and label per series, wrapped to the width.
void DrawLegend(const std::vector<std::pair<std::string, ImU32>>& series) {
  const float width = ImGui::GetContentRegionAvail().x, line = ImGui::GetTextLineHeight();
  float used = 0;
  for (const auto& [label, color] : series) {
    const float item = line * 1.4f + ImGui::CalcTextSize(label.c_str()).x + line;
    if (used > 0 && used + item <= width) {
      ImGui::SameLine(0, 0);
    } else {
      used = 0;
    }
    used += item;
    const ImVec2 at = ImGui::GetCursorScreenPos();
    ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(at.x, at.y + line * 0.2f),
                                              ImVec2(at.x + line * 0.9f, at.y + line * 0.9f), color);
    ImGui::SetCursorScreenPos(ImVec2(at.x + line * 1.3f, at.y));
    ImGui::TextUnformatted(label.c_str());
    ImGui::SameLine(0, line);
    ImGui::Dummy(ImVec2(0, 0));
  }
}

// The runs a chart draws: the selected ones, or the newest of the table when none is.
std::vector<const store::BenchRun*> ChartRuns(const BenchPanel& panel) {
  std::vector<const store::BenchRun*> runs = SelectedBenchRuns(panel);
  if (runs.empty()) {
    runs = ShownBenchRuns(panel);
    std::sort(runs.begin(), runs.end(), [](const auto* a, const auto* b) { return a->id > b->id; });
    if (runs.size() > kUnselectedChartRuns) runs.resize(kUnselectedChartRuns);
  }
  return runs;
}

std::vector<std::pair<std::string, ImU32>> RunLegend(const std::vector<const store::BenchRun*>& runs) {
  std::vector<std::pair<std::string, ImU32>> legend;
  for (size_t i = 0; i < runs.size(); ++i) legend.emplace_back(BenchRunLabel(*runs[i]), SeriesColor(i));
  return legend;
}

// --- the speed chart -----------------------------------------------------------------------------

// One kind's bars (pp or tg): a bar per run and test, the run's colour, ± one standard deviation.
void DrawSpeedPane(const std::vector<const store::BenchRun*>& runs, store::BenchKind kind, ImVec2 size) {
  struct Bar {
    const store::BenchRow* row;
    size_t run;
  };
  std::vector<Bar> bars;
  double top = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    for (const store::BenchRow& row : runs[r]->rows) {
      if (row.kind != kind) continue;
      bars.push_back({&row, r});
      top = std::max(top, row.mean_tokens_per_s + row.stddev_tokens_per_s);
    }
  }
  const std::string id = fmt::format("speed-{}", store::BenchKindName(kind));
  Plot plot = BeginPlot(size, id.c_str());
  plot.y = {.lo = 0, .hi = top > 0 ? top * 1.15 : 1};
  DrawYAxis(plot, kind == store::BenchKind::Prompt ? "prompt tokens/s" : "generated tokens/s");
  ImDrawList* d = plot.draw;
  d->AddLine(ImVec2(plot.min.x, plot.max.y), plot.max, kAxisColor);
  if (bars.empty()) {
    d->AddText(ImVec2(plot.min.x + 10, (plot.min.y + plot.max.y) / 2), kTextColor,
               kind == store::BenchKind::Prompt ? "no prompt (pp) tests" : "no generation (tg) tests");
    return;
  }
  const float slot = (plot.max.x - plot.min.x) / static_cast<float>(bars.size());
  const float width = std::min(slot * 0.7f, 5 * ImGui::GetTextLineHeight());
  for (size_t i = 0; i < bars.size(); ++i) {
    const store::BenchRow& row = *bars[i].row;
    const float centre = plot.min.x + slot * (static_cast<float>(i) + 0.5f);
    const float y = plot.y.At(row.mean_tokens_per_s);
    d->AddRectFilled(ImVec2(centre - width / 2, y), ImVec2(centre + width / 2, plot.max.y), SeriesColor(bars[i].run));
    if (row.stddev_tokens_per_s > 0) {
      const float hi = plot.y.At(row.mean_tokens_per_s + row.stddev_tokens_per_s);
      const float lo = plot.y.At(std::max(0.0, row.mean_tokens_per_s - row.stddev_tokens_per_s));
      const float cap = width / 4;
      d->AddLine(ImVec2(centre, hi), ImVec2(centre, lo), IM_COL32_WHITE, 1.5f);
      d->AddLine(ImVec2(centre - cap, hi), ImVec2(centre + cap, hi), IM_COL32_WHITE, 1.5f);
      d->AddLine(ImVec2(centre - cap, lo), ImVec2(centre + cap, lo), IM_COL32_WHITE, 1.5f);
    }
    const std::string value = fmt::format("{:.1f}", row.mean_tokens_per_s);
    const ImVec2 value_size = ImGui::CalcTextSize(value.c_str());
    const float above = plot.y.At(row.mean_tokens_per_s + row.stddev_tokens_per_s) - value_size.y - 2;
    d->AddText(ImVec2(centre - value_size.x / 2, above), kTextColor, value.c_str());
    const std::string name = row.Name();
    d->AddText(ImVec2(centre - ImGui::CalcTextSize(name.c_str()).x / 2, plot.max.y + 5), kTextColor, name.c_str());
  }
}

void DrawSpeedChart(const std::vector<const store::BenchRun*>& runs) {
  ImGui::TextWrapped(
      "Tokens per second of each run's tests, mean of the timed runs; the error bars are one "
      "standard deviation.");
  DrawLegend(RunLegend(runs));
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const ImVec2 pane(avail.x / 2 - ImGui::GetStyle().ItemSpacing.x, avail.y);
  DrawSpeedPane(runs, store::BenchKind::Prompt, pane);
  ImGui::SameLine();
  DrawSpeedPane(runs, store::BenchKind::Generate, pane);
}

// --- the depth chart -----------------------------------------------------------------------------

void DrawDepthChart(const std::vector<const store::BenchRun*>& runs) {
  // One line per run and test size (pp512, tg128), through the depths it was measured at.
  struct Series {
    std::string label;
    std::vector<std::pair<double, double>> points;  // depth, tokens/s
  };
  std::vector<Series> series;
  double max_depth = 0, lo = 0, hi = 0;
  for (const store::BenchRun* run : runs) {
    std::map<std::pair<store::BenchKind, uint32_t>, size_t> index;
    for (const store::BenchRow& row : run->rows) {
      const auto [at, added] = index.try_emplace({row.kind, row.tokens}, series.size());
      if (added) {
        series.push_back({fmt::format("{} {}{}", BenchRunLabel(*run), store::BenchKindName(row.kind), row.tokens), {}});
      }
      series[at->second].points.emplace_back(row.depth, row.mean_tokens_per_s);
      max_depth = std::max<double>(max_depth, row.depth);
      if (row.mean_tokens_per_s > 0) {
        lo = lo == 0 ? row.mean_tokens_per_s : std::min(lo, row.mean_tokens_per_s);
        hi = std::max(hi, row.mean_tokens_per_s);
      }
    }
  }
  ImGui::TextWrapped(
      "Tokens per second against the tokens already in the KV cache (-d), one line per run and "
      "test; the tokens/s axis is logarithmic so prompt and generation rates fit together.");
  std::vector<std::pair<std::string, ImU32>> legend;
  for (size_t i = 0; i < series.size(); ++i) legend.emplace_back(series[i].label, SeriesColor(i));
  DrawLegend(legend);
  Plot plot = BeginPlot(ImGui::GetContentRegionAvail(), "depth");
  if (hi == 0) {
    plot.draw->AddText(plot.min, kTextColor, "no runs to draw");
    return;
  }
  plot.y = LogAxis(lo, hi);
  plot.x = {.lo = 0, .hi = max_depth > 0 ? max_depth : 1};
  DrawYAxis(plot, "tokens/s (log)");
  DrawXAxis(plot, "context depth (tokens in the KV cache before the test)");
  for (size_t i = 0; i < series.size(); ++i) {
    auto& points = series[i].points;
    std::sort(points.begin(), points.end());
    std::vector<ImVec2> at;
    for (const auto& [depth, rate] : points) {
      if (rate > 0) at.emplace_back(plot.x.At(depth), plot.y.At(rate));
    }
    if (at.size() > 1) plot.draw->AddPolyline(at.data(), static_cast<int>(at.size()), SeriesColor(i), 0, 2.0f);
    for (const ImVec2& p : at) plot.draw->AddCircleFilled(p, 4, SeriesColor(i));
  }
}

// --- the kernel chart ----------------------------------------------------------------------------

// The row of the detail run the kernel chart and the roofline draw, and a choice of another.
const store::BenchRow* ChooseDetailRow(BenchPanel& panel) {
  if (!panel.detail) {
    ImGui::TextWrapped("No runs yet: run a benchmark above (with \"kernels\" checked) or import one.");
    return nullptr;
  }
  if (panel.selected.empty()) {
    ImGui::TextDisabled("The last run saved; select one in the table (its checkbox) to see another.");
  }
  const store::BenchRun& run = *panel.detail;
  if (panel.detail_row >= run.rows.size()) panel.detail_row = 0;
  if (run.rows.empty()) return nullptr;
  ImGui::TextUnformatted(BenchRunLabel(run).c_str());
  ImGui::SameLine();
  ImGui::SetNextItemWidth(14 * ImGui::GetFontSize());
  if (ImGui::BeginCombo("test##detail", run.rows[panel.detail_row].Name().c_str())) {
    for (size_t i = 0; i < run.rows.size(); ++i) {
      if (ImGui::Selectable(run.rows[i].Name().c_str(), i == panel.detail_row)) panel.detail_row = i;
    }
    ImGui::EndCombo();
  }
  const store::BenchRow& row = run.rows[panel.detail_row];
  if (row.kernels.empty()) {
    ImGui::TextWrapped(
        "This test was not profiled (run with \"kernels\" checked; llama-bench files have no "
        "kernel times).");
    return nullptr;
  }
  return &row;
}

void DrawKernelChart(BenchPanel& panel) {
  const store::BenchRow* row = ChooseDetailRow(panel);
  if (!row) return;
  ImGui::TextWrapped(
      "Share of one %s step's GPU time by kernel (model/forward.cpp's labels), from GPU timestamps; \"waited\": "
      "dispatches that started after a barrier, a wait for all the work before.",
      row->Name().c_str());
  if (!row->device_us.empty()) ImGui::TextWrapped("%s", store::DeviceTimesLine(row->device_us).c_str());
  float label_width = 0;
  for (const store::BenchKernel& k : row->kernels)
    label_width = std::max(label_width, ImGui::CalcTextSize(k.label.c_str()).x);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float line = ImGui::GetTextLineHeightWithSpacing();
  const float bar_height =
      std::clamp((avail.y - 2.5f * line) / static_cast<float>(row->kernels.size()), line, 1.6f * line);
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float height = bar_height * static_cast<float>(row->kernels.size()) + 2.2f * line;
  ImGui::InvisibleButton("kernels", ImVec2(avail.x, height));
  Plot plot{.draw = ImGui::GetWindowDrawList(),
            .min = ImVec2(origin.x + label_width + 12, origin.y),
            .max = ImVec2(origin.x + avail.x - 20 * ImGui::GetFontSize(), origin.y + height - 2.2f * line)};
  plot.x = {.lo = 0, .hi = 100};
  DrawXAxis(plot, "% of the step's GPU time");
  ImDrawList* d = plot.draw;
  for (size_t i = 0; i < row->kernels.size(); ++i) {
    const store::BenchKernel& k = row->kernels[i];
    const float top = plot.min.y + bar_height * static_cast<float>(i), mid = top + bar_height / 2;
    const float text_y = mid - ImGui::GetTextLineHeight() / 2;
    d->AddText(ImVec2(plot.min.x - 8 - ImGui::CalcTextSize(k.label.c_str()).x, text_y), kTextColor, k.label.c_str());
    const float end = plot.x.At(100 * k.share);
    d->AddRectFilled(ImVec2(plot.min.x, top + bar_height * 0.15f), ImVec2(end, top + bar_height * 0.85f),
                     SeriesColor(0));
    std::string value = fmt::format("{:.1f}%  {:.0f} us  {:.1f} GB/s  {} disp.", 100 * k.share, k.us_per_step,
                                    k.gigabytes_per_s(), k.dispatches);
    // How many of them started after a barrier, where the run recorded it (session 37 on).
    if (k.waits) value += fmt::format(" ({} waited)", *k.waits);
    d->AddText(ImVec2(end + 6, text_y), kTextColor, value.c_str());
  }
}

// --- the roofline --------------------------------------------------------------------------------

ImU32 LimiterColor(store::Limiter limiter) {
  switch (limiter) {
    case store::Limiter::Bandwidth:
      return SeriesColor(0);
    case store::Limiter::Math:
      return SeriesColor(1);
    case store::Limiter::Overhead:
      return SeriesColor(7);
  }
  return SeriesColor(7);
}

void DrawRoofline(BenchPanel& panel) {
  const store::BenchRow* row = ChooseDetailRow(panel);
  if (!row) return;
  const store::BenchDevice& device = panel.detail->device;
  const std::vector<store::RooflinePoint> points = store::Roofline(*row, device);
  if (!device.peaks || points.empty()) {
    ImGui::TextWrapped(
        "%s has no measured peaks, so there are no roofs: run a benchmark with \"Device peak\" "
        "checked on it.",
        device.name.c_str());
    return;
  }
  const store::DevicePeaks& peaks = *device.peaks;
  ImGui::TextWrapped(
      "Each kernel's arithmetic intensity (flops per byte moved) against the rate it attained, under "
      "%s's measured roofs: copy %.1f GB/s, FP32 FMA %.2f TFLOP/s.",
      device.name.c_str(), peaks.copy_gbps, peaks.f32_tflops);
  DrawLegend({{"limited by bandwidth", LimiterColor(store::Limiter::Bandwidth)},
              {"by math", LimiterColor(store::Limiter::Math)},
              {"by overhead (under a quarter of the roof)", LimiterColor(store::Limiter::Overhead)}});
  // GFLOP/s throughout: GB/s times flops per byte.
  const double f32 = peaks.f32_tflops * 1e3;
  std::vector<std::pair<std::string, double>> roofs = {{"FP32 FMA", f32}};
  if (peaks.f16_tflops) roofs.emplace_back("FP16 FMA", *peaks.f16_tflops * 1e3);
  if (peaks.coopmat_tflops) roofs.emplace_back("coopmat", *peaks.coopmat_tflops * 1e3);
  double x_lo = f32 / peaks.copy_gbps, x_hi = x_lo, y_lo = f32, y_hi = f32;
  size_t without_flops = 0;
  for (const store::RooflinePoint& p : points) {
    if (p.intensity <= 0 || p.teraflops <= 0) {
      ++without_flops;
      continue;
    }
    x_lo = std::min(x_lo, p.intensity);
    x_hi = std::max(x_hi, p.intensity);
    y_lo = std::min(y_lo, p.teraflops * 1e3);
  }
  for (const auto& roof : roofs) y_hi = std::max(y_hi, roof.second);
  Plot plot = BeginPlot(ImGui::GetContentRegionAvail(), "roofline");
  plot.x = LogAxis(x_lo / 2, x_hi * 2);
  plot.y = LogAxis(y_lo / 2, y_hi * 2);
  DrawYAxis(plot, "attained GFLOP/s (log)");
  DrawXAxis(plot, "arithmetic intensity, flops per byte moved (log)");
  ImDrawList* d = plot.draw;
  d->PushClipRect(plot.min, plot.max, true);
  // The bandwidth roof up to where it meets the FP32 roof, then the FP32 roof; the 16-bit roofs dashed.
  const double ridge = f32 / peaks.copy_gbps;
  const ImVec2 left(plot.min.x, plot.y.At(plot.x.lo * peaks.copy_gbps));
  const ImVec2 knee(plot.x.At(ridge), plot.y.At(f32));
  d->AddLine(left, knee, kAxisColor, 2.5f);
  d->AddLine(knee, ImVec2(plot.max.x, knee.y), kAxisColor, 2.5f);
  for (size_t i = 1; i < roofs.size(); ++i) {
    const float y = plot.y.At(roofs[i].second);
    DashedLine(d, ImVec2(plot.x.At(roofs[i].second / peaks.copy_gbps), y), ImVec2(plot.max.x, y), kAxisColor, 1.5f);
  }
  // Text rectangles (x0, y0, x1, y1) drawn so far, which the kernels' labels keep clear of.
  std::vector<ImVec4> taken;
  // Each roof's label above its line, from the highest roof down; a label that would leave the plot
  // or cover the one above it moves down (FP32 and FP16 FMA are often a few percent apart).
  auto labelled = roofs;
  std::sort(labelled.begin(), labelled.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  float free_from = plot.min.y + 1;
  for (const auto& [name, gflops] : labelled) {
    const std::string label = fmt::format("{} {}", name, FlopRate(gflops * 1e9));
    const ImVec2 size = ImGui::CalcTextSize(label.c_str());
    const ImVec2 place(plot.max.x - size.x - 4, std::max(plot.y.At(gflops) - size.y - 2, free_from));
    d->AddText(place, kTextColor, label.c_str());
    taken.emplace_back(place.x, place.y, place.x + size.x, place.y + size.y);
    free_from = place.y + size.y + 1;
  }
  const std::string bandwidth = fmt::format("copy {:.0f} GB/s", peaks.copy_gbps);
  const double label_x = plot.x.lo * 1.6;
  const ImVec2 bandwidth_size = ImGui::CalcTextSize(bandwidth.c_str());
  const ImVec2 bandwidth_at(plot.x.At(label_x) + 4, plot.y.At(label_x * peaks.copy_gbps) - bandwidth_size.y - 6);
  d->AddText(bandwidth_at, kTextColor, bandwidth.c_str());
  taken.emplace_back(bandwidth_at.x, bandwidth_at.y, bandwidth_at.x + bandwidth_size.x,
                     bandwidth_at.y + bandwidth_size.y);
  // Each label right, left, above or below its dot, inside the plot where it covers no dot and no
  // text drawn before; a dot in a crowd whose label fits nowhere keeps only its dot (the kernel
  // chart lists them all).
  const auto free = [&](ImVec2 a, ImVec2 size) {
    if (a.x < plot.min.x || a.y < plot.min.y || a.x + size.x > plot.max.x || a.y + size.y > plot.max.y) return false;
    for (const ImVec4& t : taken) {
      if (a.x < t.z && a.x + size.x > t.x && a.y < t.w && a.y + size.y > t.y) return false;
    }
    return true;
  };
  std::vector<std::pair<const store::RooflinePoint*, ImVec2>> dots;
  for (const store::RooflinePoint& p : points) {
    if (p.intensity <= 0 || p.teraflops <= 0) continue;
    const ImVec2 dot(plot.x.At(p.intensity), plot.y.At(p.teraflops * 1e3));
    d->AddCircleFilled(dot, 5, LimiterColor(p.limiter));
    d->AddCircle(dot, 5, IM_COL32_BLACK);
    dots.emplace_back(&p, dot);
    taken.emplace_back(dot.x - 5, dot.y - 5, dot.x + 5, dot.y + 5);
  }
  for (const auto& [point, dot] : dots) {
    const store::RooflinePoint& p = *point;
    const std::string label = fmt::format("{} ({:.0f}% of roof)", p.label, 100 * p.of_roof);
    const ImVec2 size = ImGui::CalcTextSize(label.c_str());
    const float h = size.y;
    for (const ImVec2 place : {ImVec2(dot.x + 8, dot.y - h / 2), ImVec2(dot.x - 8 - size.x, dot.y - h / 2),
                               ImVec2(dot.x - size.x / 2, dot.y - 6 - h), ImVec2(dot.x - size.x / 2, dot.y + 6)}) {
      if (!free(place, size)) continue;
      taken.emplace_back(place.x, place.y, place.x + size.x, place.y + size.y);
      d->AddText(place, kTextColor, label.c_str());
      break;
    }
  }
  d->PopClipRect();
  if (without_flops > 0) {
    const std::string note =
        fmt::format("{} kernel{} without arithmetic (copies) not drawn", without_flops, without_flops == 1 ? "" : "s");
    d->AddText(ImVec2(plot.min.x + 6, plot.min.y + 4), kTextColor, note.c_str());
  }
}

// --- the comparison ------------------------------------------------------------------------------

void DrawComparison(const BenchPanel& panel) {
  const std::vector<const store::BenchRun*> runs = SelectedBenchRuns(panel);
  if (runs.size() < 2) {
    ImGui::TextWrapped(
        "Select two or more runs in the table to see them side by side; the first selected is the "
        "one the others are divided by.");
    return;
  }
  const BenchComparison comparison = CompareBenchRuns(runs);
  ImGui::TextWrapped("Tokens/s of each test the selected runs have, and each run's ratio to %s.",
                     BenchRunLabel(*runs[0]).c_str());
  const ImGuiTableFlags flags = ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollX |
                                ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingFixedFit;
  if (!ImGui::BeginTable("compare", 1 + static_cast<int>(runs.size()), flags)) return;
  ImGui::TableSetupScrollFreeze(1, 1);
  ImGui::TableSetupColumn("test");
  for (const store::BenchRun* run : runs) ImGui::TableSetupColumn(BenchRunLabel(*run).c_str());
  ImGui::TableHeadersRow();
  for (const BenchComparison::Line& line : comparison.lines) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(line.test.c_str());
    for (size_t r = 0; r < runs.size(); ++r) {
      ImGui::TableNextColumn();
      if (!line.rows[r]) {
        ImGui::TextDisabled("not measured");
        continue;
      }
      ImGui::Text("%.2f \xC2\xB1 %.2f", line.rows[r]->mean_tokens_per_s, line.rows[r]->stddev_tokens_per_s);
      if (r > 0 && line.ratio[r]) {
        ImGui::SameLine();
        ImGui::TextColored(*line.ratio[r] >= 1 ? ImVec4(0.5f, 0.9f, 0.5f, 1) : ImVec4(0.95f, 0.6f, 0.5f, 1),
                           "\xC3\x97%.2f", *line.ratio[r]);
      }
    }
  }
  ImGui::EndTable();
}

// --- the run form --------------------------------------------------------------------------------

void DrawRunForm(AppState& state) {
  BenchForm& form = state.bench.form;
  const chat::BenchProgress progress = state.chat().bench_progress();
  const float field = 5 * ImGui::GetFontSize();
  bool loaded = form.model_path.empty();
  const std::string loaded_name = state.chat().model_name();
  if (ImGui::RadioButton(fmt::format("loaded model ({})", loaded_name.empty() ? "none" : loaded_name).c_str(),
                         loaded)) {
    form.model_path.clear();
  }
  ImGui::SameLine();
  if (ImGui::RadioButton("model file", !loaded) && loaded) form.model_path = ConfiguredModel(state).path;
  if (!form.model_path.empty()) {
    ImGui::SameLine();
    ImGui::SetNextItemWidth(-1);
    ImGui::InputTextWithHint("##bench-model", "a .gguf file or Hugging Face folder", &form.model_path);
  }
  const auto size_field = [&](const char* label, int* value, const char* tip) {
    ImGui::SetNextItemWidth(field);
    ImGui::InputInt(label, value, 0);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", tip);
    *value = std::max(0, *value);
    ImGui::SameLine();
  };
  size_field("prompt (-p)", &form.prompt, "tokens of the prompt test (pp); 0: none");
  size_field("generate (-n)", &form.generate, "tokens of the generation test (tg); 0: none");
  size_field("depth (-d)", &form.depth, "tokens already in the KV cache before each test");
  size_field("repetitions (-r)", &form.repetitions, "timed runs of each test, after one warm-up");
  form.repetitions = std::max(1, form.repetitions);
  ImGui::Checkbox("kernels", &form.kernels);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("profile each test once more: the kernel chart and the roofline");
  ImGui::SameLine();
  ImGui::Checkbox("device peak", &form.device_peak);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("measure the device's copy and FMA peaks first: the roofline's roofs");
  if (progress.running) {
    state.this_frame.awaiting_results = true;  // the progress bar moves without input
    const float fraction = progress.total ? static_cast<float>(progress.done) / static_cast<float>(progress.total) : 0;
    ImGui::SetNextItemWidth(-6 * ImGui::GetFontSize());
    ImGui::ProgressBar(fraction, ImVec2(-6 * ImGui::GetFontSize(), 0),
                       fmt::format("{}  {}/{}", progress.step, progress.done, progress.total).c_str());
    ImGui::SameLine();
    if (ImGui::Button("Cancel")) CancelBenchmark(state);
  } else {
    if (ImGui::Button("Run benchmark")) StartBenchmark(state);
    if (!progress.error.empty()) {
      ImGui::SameLine();
      ImGui::TextColored(ImVec4(0.95f, 0.6f, 0.5f, 1), "Last benchmark: %s", progress.error.c_str());
    } else if (progress.saved != 0) {
      ImGui::SameLine();
      ImGui::TextDisabled("Last benchmark saved as run #%lld", static_cast<long long>(progress.saved));
    }
  }
}

// --- the table -----------------------------------------------------------------------------------

void DrawRunTable(AppState& state, float height) {
  BenchPanel& panel = state.bench;
  const float field = 11 * ImGui::GetFontSize();
  ImGui::SetNextItemWidth(field);
  ImGui::InputTextWithHint("##device-filter", "device", &panel.device_filter);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(field);
  ImGui::InputTextWithHint("##model-filter", "model", &panel.model_filter);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(field);
  ImGui::InputTextWithHint("##weights-filter", "weight type", &panel.weights_filter);
  const std::vector<const store::BenchRun*> shown = ShownBenchRuns(panel);
  ImGui::SameLine();
  ImGui::Text("%zu of %zu runs, %zu selected", shown.size(), panel.runs.size(), panel.selected.size());
  if (!panel.selected.empty()) {
    ImGui::SameLine();
    if (ImGui::SmallButton("Clear selection")) ClearBenchSelection(state);
  }
  const ImGuiTableFlags flags = ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY |
                                ImGuiTableFlags_Sortable | ImGuiTableFlags_Resizable |
                                ImGuiTableFlags_SizingStretchProp;
  if (!ImGui::BeginTable("runs", 8, flags, ImVec2(0, height))) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  const ImGuiTableColumnFlags fixed = ImGuiTableColumnFlags_WidthFixed;
  ImGui::TableSetupColumn("", fixed | ImGuiTableColumnFlags_NoSort, ImGui::GetFrameHeight());
  ImGui::TableSetupColumn("id", fixed | ImGuiTableColumnFlags_DefaultSort | ImGuiTableColumnFlags_PreferSortDescending,
                          0, static_cast<ImGuiID>(BenchColumn::Id));
  ImGui::TableSetupColumn("measured (UTC)", ImGuiTableColumnFlags_WidthStretch, 0.9f,
                          static_cast<ImGuiID>(BenchColumn::Measured));
  ImGui::TableSetupColumn("source", ImGuiTableColumnFlags_WidthStretch, 0.6f,
                          static_cast<ImGuiID>(BenchColumn::Source));
  ImGui::TableSetupColumn("device", ImGuiTableColumnFlags_WidthStretch, 1.2f,
                          static_cast<ImGuiID>(BenchColumn::Device));
  ImGui::TableSetupColumn("model", ImGuiTableColumnFlags_WidthStretch, 1.2f, static_cast<ImGuiID>(BenchColumn::Model));
  ImGui::TableSetupColumn("weights", ImGuiTableColumnFlags_WidthStretch, 0.8f,
                          static_cast<ImGuiID>(BenchColumn::Weights));
  ImGui::TableSetupColumn("tests (tokens/s)", ImGuiTableColumnFlags_NoSort | ImGuiTableColumnFlags_WidthStretch, 2.0f);
  ImGui::TableHeadersRow();
  if (ImGuiTableSortSpecs* sort = ImGui::TableGetSortSpecs(); sort && sort->SpecsDirty && sort->SpecsCount > 0) {
    panel.sort = static_cast<BenchColumn>(sort->Specs[0].ColumnUserID);
    panel.ascending = sort->Specs[0].SortDirection == ImGuiSortDirection_Ascending;
    sort->SpecsDirty = false;
  }
  for (const store::BenchRun* run : shown) {
    ImGui::TableNextRow();
    ImGui::PushID(static_cast<int>(run->id));
    ImGui::TableNextColumn();
    bool selected = std::find(panel.selected.begin(), panel.selected.end(), run->id) != panel.selected.end();
    if (ImGui::Checkbox("##select", &selected)) ToggleBenchRun(state, run->id);
    ImGui::TableNextColumn();
    ImGui::Text("%lld", static_cast<long long>(run->id));
    ImGui::TableNextColumn();
    const std::time_t seconds = static_cast<std::time_t>(run->created_ms / 1000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char date[24];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
    ImGui::TextUnformatted(date);
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(store::BenchSourceName(run->source));
    ImGui::TableNextColumn();
    const std::string device = run->DeviceName();
    ImGui::TextUnformatted(device.c_str());
    // The whole name (a narrow column cuts it), the driver and a split's devices and layers.
    if (ImGui::IsItemHovered()) {
      std::string tip = device;
      if (!run->device.driver.empty()) tip += "\n" + run->device.driver;
      for (const std::string& stage : run->stages) tip += "\n" + stage;
      ImGui::SetTooltip("%s", tip.c_str());
    }
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(run->model.name.c_str());
    if (ImGui::IsItemHovered()) {
      const store::BenchModel& m = run->model;
      std::string tip = m.name;
      if (!m.type.empty()) tip += "\n" + m.type;
      if (m.layers > 0) tip += fmt::format(", {} layers, hidden {}", m.layers, m.hidden);
      if (m.params > 0) tip += fmt::format(", {} parameters", chat::FormatParams(m.params));
      ImGui::SetTooltip("%s", tip.c_str());
    }
    ImGui::TableNextColumn();
    std::string weights;
    for (const std::string& w : run->model.weight_types) weights += (weights.empty() ? "" : ", ") + w;
    ImGui::TextUnformatted(weights.c_str());
    ImGui::TableNextColumn();
    std::string tests;
    for (const store::BenchRow& row : run->rows) {
      tests += fmt::format("{}{} {:.1f}", tests.empty() ? "" : "   ", row.Name(), row.mean_tokens_per_s);
    }
    ImGui::TextUnformatted(tests.c_str());
    ImGui::PopID();
  }
  ImGui::EndTable();
}

const char* const kChartNames[] = {"Tokens/s", "Against depth", "Kernels", "Roofline", "Compare"};

}  // namespace

// --- the panel -----------------------------------------------------------------------------------

void DrawBenchmark(AppState& state) {
  RefreshBenchRuns(state);
  BenchPanel& panel = state.bench;
  if (ImGui::Button("< Chat")) OpenBenchmark(state, false);
  ImGui::SameLine();
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted("Benchmark workbench");
  ImGui::PopFont();
  ImGui::SameLine(ImGui::GetContentRegionAvail().x - 14 * ImGui::GetFontSize() + ImGui::GetCursorPosX());
  if (ImGui::Button("Import...")) {
    panel.file.clear();
    state.dialog = Dialog::BenchImport;
  }
  ImGui::SameLine();
  if (ImGui::Button(panel.selected.empty() ? "Export all..." : "Export selected...")) {
    panel.file = DefaultBenchExportPath(state).string();
    state.dialog = Dialog::BenchExport;
  }
  ImGui::Separator();
  DrawRunForm(state);
  ImGui::Separator();
  DrawRunTable(state, ImGui::GetContentRegionAvail().y * 0.3f);
  for (size_t i = 0; i < std::size(kChartNames); ++i) {
    if (i > 0) ImGui::SameLine();
    const bool current = panel.chart == static_cast<BenchChart>(i);
    if (current) ImGui::PushStyleColor(ImGuiCol_Button, ImGui::GetStyleColorVec4(ImGuiCol_ButtonActive));
    if (ImGui::Button(kChartNames[i])) panel.chart = static_cast<BenchChart>(i);
    if (current) ImGui::PopStyleColor();
  }
  ImGui::BeginChild("chart", ImVec2(0, 0), true);
  switch (panel.chart) {
    case BenchChart::Speed:
      DrawSpeedChart(ChartRuns(panel));
      break;
    case BenchChart::Depth:
      DrawDepthChart(ChartRuns(panel));
      break;
    case BenchChart::Kernels:
      DrawKernelChart(panel);
      break;
    case BenchChart::Roofline:
      DrawRoofline(panel);
      break;
    case BenchChart::Compare:
      DrawComparison(panel);
      break;
  }
  ImGui::EndChild();
}

}  // namespace qvk::ui
