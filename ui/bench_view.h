#pragma once
// What the benchmark workbench shows, worked out from the runs it read (AppState::bench), for its
// panel and for the script's dump alike: the table's runs as filtered and ordered, the selection,
// the comparison of selected runs and each run's label.
#include <optional>
#include <string>
#include <vector>

#include "store/bench_runs.h"
#include "ui/app_state.h"

namespace qvk::ui {

// "#3 NVIDIA H200 · Q4_0": how a chart's legend and the comparison name a run.
std::string BenchRunLabel(const store::BenchRun& run);
// The runs the table lists: each filter a substring of its field (in any case), in its order.
std::vector<const store::BenchRun*> ShownBenchRuns(const BenchPanel& panel);
// The selected runs still stored, in the order picked.
std::vector<const store::BenchRun*> SelectedBenchRuns(const BenchPanel& panel);

// Selected runs side by side: one line per test (kind, tokens, depth) any of them has, each
// run's tokens/s where it has that test, and its ratio to the first run's.
struct BenchComparison {
  struct Line {
    std::string test;  // "pp512", "tg128 @ d4096"
    std::vector<std::optional<store::BenchRow>> rows;
    std::vector<std::optional<double>> ratio;  // to the first run's tokens/s
  };
  std::vector<const store::BenchRun*> runs;
  std::vector<Line> lines;
};
BenchComparison CompareBenchRuns(const std::vector<const store::BenchRun*>& runs);

}  // namespace qvk::ui
