#pragma once
// A model split by layers across devices: the device list and split a user writes ("0,1",
// "3,1"), read with every refusal, and the layer ranges a split gives. No GPU.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace qvk {

// "0,1" -> {0, 1}: comma-separated whole numbers. Throws Error naming `option` for anything else.
std::vector<uint32_t> ParseNumberList(std::string_view text, std::string_view option);

// "3,1" -> {3, 1}: each device's share of the layers, whole numbers of at least 1. Throws Error
// naming `option` for anything else.
std::vector<double> ParseSplit(std::string_view text, std::string_view option);

// Consecutive layer ranges covering all `layers`, one per share, each's size proportional to its
// share and at least one layer. Throws Error when a share is not positive or there are more
// shares than layers.
std::vector<LayerRange> SplitLayers(uint32_t layers, std::span<const double> shares);

}  // namespace qvk
