#include "model/layer_split.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "base/error.h"

namespace qvk {

std::vector<uint32_t> ParseNumberList(std::string_view text, std::string_view option) {
  std::vector<uint32_t> numbers;
  size_t start = 0;
  while (true) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view part = text.substr(start, comma - start);
    uint32_t value = 0;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || error != std::errc() || end != part.data() + part.size()) {
      throw Error(fmt::format("{} {}: expected whole numbers separated by commas, such as 0,1", option, text));
    }
    numbers.push_back(value);
    if (comma == text.size()) return numbers;
    start = comma + 1;
  }
}

std::vector<double> ParseSplit(std::string_view text, std::string_view option) {
  std::vector<double> shares;
  for (uint32_t part : ParseNumberList(text, option)) {
    if (part == 0) throw Error(fmt::format("{} {}: every part must be at least 1", option, text));
    shares.push_back(part);
  }
  return shares;
}

std::vector<LayerRange> SplitLayers(uint32_t layers, std::span<const double> shares) {
  if (shares.empty()) throw Error("a split needs at least one part");
  if (shares.size() > layers) {
    throw Error(
        fmt::format("{} parts for a model of {} layers: each part needs at least one layer", shares.size(), layers));
  }
  double total = 0;
  for (double share : shares) {
    if (!(share > 0) || !std::isfinite(share)) {
      throw Error(fmt::format("a split part of {} holds no layers: every part must be more than 0", share));
    }
    total += share;
  }
  std::vector<LayerRange> ranges;
  double cumulative = 0;
  uint32_t begin = 0;
  const auto parts = static_cast<uint32_t>(shares.size());
  for (uint32_t i = 0; i < parts; ++i) {
    cumulative += shares[i];
    auto end = static_cast<uint32_t>(std::lround(layers * cumulative / total));
    // At least one layer here, and one left for each part after.
    end = std::clamp(end, begin + 1, layers - (parts - 1 - i));
    ranges.push_back({begin, end});
    begin = end;
  }
  return ranges;
}

}  // namespace qvk
