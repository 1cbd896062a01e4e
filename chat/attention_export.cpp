#include "chat/attention_export.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
// Private to this file: the desktop window has its own copy for screenshots.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "base/error.h"

namespace qvk::chat {
namespace {

// viridis (matplotlib) at t = 0, 1/8, ..., 1.
constexpr Rgb kViridis[] = {{68, 1, 84},    {71, 44, 122}, {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                            {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}};

std::ofstream OpenForWriting(const std::filesystem::path& path, std::ios::openmode mode = std::ios::trunc) {
  std::ofstream out(path, std::ios::binary | std::ios::out | mode);
  if (!out) throw Error(fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  return out;
}

void Finish(std::ofstream& out, const std::filesystem::path& path) {
  out.close();
  if (!out) throw Error(fmt::format("could not write {} (disk full or not writable?)", path.string()));
}

void CheckPlane(const AttentionMap& map, uint32_t plane) {
  if (plane >= map.planes) throw Error(fmt::format("plane {} of an attention map of {}", plane, map.planes));
}

}  // namespace

Rgb HeatColor(float t) {
  const float x = std::clamp(std::isnan(t) ? 0.0f : t, 0.0f, 1.0f) * (std::size(kViridis) - 1);
  const auto i = std::min(static_cast<size_t>(x), std::size(kViridis) - 2);
  const float f = x - static_cast<float>(i);
  Rgb c{};
  for (size_t k = 0; k < 3; ++k) {
    c[k] = static_cast<uint8_t>(std::lround(kViridis[i][k] + f * (kViridis[i + 1][k] - kViridis[i][k])));
  }
  return c;
}

float ScaleTop(const AttentionMap& map, uint32_t plane, const PngOptions& options) {
  CheckPlane(map, plane);
  if (options.scale_max > 0) return options.scale_max;
  const std::span<const float> values = map.plane(plane);
  const bool first_query_alone = map.request.first_row == 0 && map.request.cell == 1 && map.rows > 1;
  const auto from = values.begin() + (first_query_alone ? map.cols : 0);
  return from == values.end() ? 0.0f : *std::max_element(from, values.end());
}

float ScalePosition(float value, float top, const PngOptions& options) {
  if (top <= 0 || value <= 0) return 0;
  if (options.log_decades <= 0) return value / top;
  return 1 + std::log10(value / top) / options.log_decades;
}

float WriteAttentionPng(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane,
                        const PngOptions& options) {
  CheckPlane(map, plane);
  const std::span<const float> values = map.plane(plane);
  const float top = ScaleTop(map, plane, options);
  const uint64_t scale = std::max(options.pixels_per_value, 1u);
  const uint64_t width = map.cols * scale, height = map.rows * scale;
  // stb_image_write takes int sizes and strides.
  if (width * 3 > INT32_MAX || height > INT32_MAX || width * height * 3 > (uint64_t{1} << 32)) {
    throw Error(fmt::format("a heatmap of {} x {} pixels is too large for a PNG: use fewer pixels per value or a band",
                            width, height));
  }
  std::vector<uint8_t> pixels(width * height * 3);
  for (uint32_t r = 0; r < map.rows; ++r) {
    uint8_t* line = &pixels[r * scale * width * 3];
    for (uint32_t c = 0; c < map.cols; ++c) {
      const Rgb color =
          map.masked(r, c) ? kMaskedColor : HeatColor(ScalePosition(values[size_t{r} * map.cols + c], top, options));
      for (uint64_t x = 0; x < scale; ++x) std::copy(color.begin(), color.end(), line + (c * scale + x) * 3);
    }
    for (uint64_t y = 1; y < scale; ++y) std::copy_n(line, width * 3, line + y * width * 3);
  }
  const std::string file = path.string();
  if (stbi_write_png(file.c_str(), static_cast<int>(width), static_cast<int>(height), 3, pixels.data(),
                     static_cast<int>(width * 3)) == 0) {
    throw Error(fmt::format("could not write {} (not writable, or the disk is full?)", file));
  }
  return top;
}

void WriteAttentionCsv(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane) {
  CheckPlane(map, plane);
  std::ofstream out = OpenForWriting(path);
  const std::span<const float> values = map.plane(plane);
  std::string line;
  char number[32];
  for (uint32_t r = 0; r < map.rows; ++r) {
    line.clear();
    for (uint32_t c = 0; c < map.cols; ++c) {
      if (c > 0) line += ',';
      const auto printed = std::to_chars(number, number + sizeof number, values[size_t{r} * map.cols + c]);
      line.append(number, printed.ptr);
    }
    line += '\n';
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  Finish(out, path);
}

void WriteAttentionNpy(const std::filesystem::path& path, const AttentionMap& map, uint32_t plane) {
  CheckPlane(map, plane);
  static_assert(std::endian::native == std::endian::little, "NPY '<f4' is written as the host stores floats");
  // Magic, version 1.0, the header's length, then a Python dict literal padded with spaces to a
  // multiple of 64 bytes and ended by a newline.
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", map.rows, map.cols);
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out = OpenForWriting(path);
  const auto length = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char length_bytes[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  out.write(length_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  const std::span<const float> values = map.plane(plane);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
  Finish(out, path);
}

void CheckWritable(const std::filesystem::path& path) {
  std::ofstream out = OpenForWriting(path, std::ios::app);
}

}  // namespace qvk::chat
