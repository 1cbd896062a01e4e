#include "ui/bench_view.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

namespace qvk::ui {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

bool Contains(const std::string& field, const std::string& filter) {
  return filter.empty() || Lower(field).find(Lower(filter)) != std::string::npos;
}

std::string Joined(const std::vector<std::string>& parts) {
  std::string text;
  for (const std::string& part : parts) text += (text.empty() ? "" : ", ") + part;
  return text;
}

// The column's value as the table sorts it.
std::tuple<int64_t, std::string> SortKey(const store::BenchRun& run, BenchColumn column) {
  switch (column) {
    case BenchColumn::Id:
      return {run.id, ""};
    case BenchColumn::Measured:
      return {run.created_ms, ""};
    case BenchColumn::Source:
      return {0, store::BenchSourceName(run.source)};
    case BenchColumn::Device:
      return {0, Lower(run.device.name)};
    case BenchColumn::Model:
      return {0, Lower(run.model.name)};
    case BenchColumn::Weights:
      return {0, Lower(Joined(run.model.weight_types))};
  }
  return {0, ""};
}

}  // namespace

std::string BenchRunLabel(const store::BenchRun& run) {
  const std::string weights = run.model.weight_types.empty() ? "?" : run.model.weight_types.front();
  return fmt::format("#{} {} \xC2\xB7 {}{}", run.id, run.DeviceName(), weights,
                     run.source == store::BenchSource::LlamaBench ? " (llama.cpp)" : "");
}

std::vector<const store::BenchRun*> ShownBenchRuns(const BenchPanel& panel) {
  std::vector<const store::BenchRun*> shown;
  for (const store::BenchRun& run : panel.runs) {
    if (Contains(run.device.name, panel.device_filter) && Contains(run.model.name, panel.model_filter) &&
        Contains(Joined(run.model.weight_types), panel.weights_filter)) {
      shown.push_back(&run);
    }
  }
  std::stable_sort(shown.begin(), shown.end(), [&](const store::BenchRun* a, const store::BenchRun* b) {
    const auto ka = SortKey(*a, panel.sort), kb = SortKey(*b, panel.sort);
    return panel.ascending ? ka < kb : kb < ka;
  });
  return shown;
}

std::vector<const store::BenchRun*> SelectedBenchRuns(const BenchPanel& panel) {
  std::vector<const store::BenchRun*> selected;
  for (const store::Id id : panel.selected) {
    const auto it = std::find_if(panel.runs.begin(), panel.runs.end(), [&](const auto& r) { return r.id == id; });
    if (it != panel.runs.end()) selected.push_back(&*it);
  }
  return selected;
}

BenchComparison CompareBenchRuns(const std::vector<const store::BenchRun*>& runs) {
  BenchComparison comparison{.runs = runs, .lines = {}};
  // Lines in the order pp before tg, then by size and depth.
  std::map<std::tuple<store::BenchKind, uint32_t, uint32_t>, size_t> index;
  for (const store::BenchRun* run : runs) {
    for (const store::BenchRow& row : run->rows) index.try_emplace({row.kind, row.tokens, row.depth}, 0);
  }
  for (auto& [key, line] : index) {
    line = comparison.lines.size();
    store::BenchRow name{.kind = std::get<0>(key), .tokens = std::get<1>(key), .depth = std::get<2>(key)};
    comparison.lines.push_back({.test = name.Name(),
                                .rows = std::vector<std::optional<store::BenchRow>>(runs.size()),
                                .ratio = std::vector<std::optional<double>>(runs.size())});
  }
  for (size_t r = 0; r < runs.size(); ++r) {
    for (const store::BenchRow& row : runs[r]->rows) {
      comparison.lines[index.at({row.kind, row.tokens, row.depth})].rows[r] = row;
    }
  }
  for (BenchComparison::Line& line : comparison.lines) {
    if (!line.rows[0] || line.rows[0]->mean_tokens_per_s <= 0) continue;
    for (size_t r = 0; r < runs.size(); ++r) {
      if (line.rows[r]) line.ratio[r] = line.rows[r]->mean_tokens_per_s / line.rows[0]->mean_tokens_per_s;
    }
  }
  return comparison;
}

}  // namespace qvk::ui
