#pragma once
// One attention map written as files a user opens elsewhere: a PNG heatmap, CSV (a line per
// query row) and NPY (numpy's array format). `qwenvk attention` and the viewer's Export write
// through these, and the viewer draws with the same colour scale.
#include <array>
#include <cstdint>
#include <filesystem>

#include "model/attention_capture.h"

namespace qvk::chat {

using Rgb = std::array<uint8_t, 3>;

// The heatmap's colour at t in [0, 1] of its scale: viridis, dark violet through green to yellow,
// even in perceived lightness so equal steps of attention look equal.
Rgb HeatColor(float t);
// Cells the causal mask hides (keys after every query they cover): a grey outside the scale.
inline constexpr Rgb kMaskedColor{200, 200, 200};

struct PngOptions {
  uint32_t pixels_per_value = 1;  // each value drawn as a square of this many pixels a side
  // The value at the top of the scale; 0: the plane's largest, leaving out the whole map's first
  // query row, which sees only its own key (always 1) and would darken everything else.
  float scale_max = 0;
  // 0: a linear scale from 0; else logarithmic, over this many decades below the top.
  float log_decades = 0;
};

// The value at the top of the scale `options` gives plane `plane` of `map`: options.scale_max, or
// the plane's largest value as PngOptions describes.
float ScaleTop(const AttentionMap& map, uint32_t plane, const PngOptions& options);

// The position in [0, 1] of `value` on the scale `options` and `top` describe.
float ScalePosition(float value, float top, const PngOptions& options);

// Plane `plane` of `map`: query rows top to bottom, keys left to right, each value coloured by
// HeatColor(ScalePosition(value)) and masked cells kMaskedColor. Returns the scale's top.
float WriteAttentionPng(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane,
                        const PngOptions& options = {});
// One line per row, values separated by commas, each the shortest decimal that reads back as
// the same float (numpy.loadtxt(path, delimiter=",") reads it).
void WriteAttentionCsv(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane);
// NPY 1.0: little-endian float32, C order, shape (rows, cols) (numpy.load reads it).
void WriteAttentionNpy(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane);

// Throws an Error naming `path` when it cannot be opened for writing, so that a bad path is
// refused before a long capture rather than after it. Creates the file when it does not exist.
void CheckWritable(const std::filesystem::path& path);

}  // namespace qvk::chat
