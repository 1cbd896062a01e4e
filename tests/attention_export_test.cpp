// The attention map files (chat/attention_export.h) written and read back: the PNG through
// stb_image, pixel by pixel against the colour scale with the causal mask grey; the CSV's text
// giving back every float exactly; the NPY's header as numpy reads it and its values.
#include <cmath>

#include <gtest/gtest.h>
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#include "chat/attention_export.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

using chat::Rgb;

// A causal-looking map of `tokens` tokens: row r spreads over keys 0..r, with awkward floats.
AttentionMap MakeMap(const AttentionRequest& request, uint32_t tokens) {
  AttentionMap map(request, tokens);
  for (uint32_t k = 0; k < map.planes; ++k) {
    for (uint32_t r = 0; r < map.rows; ++r) {
      for (uint32_t c = 0; c < map.cols; ++c) {
        const float v =
            map.masked(r, c) ? 0.0f : 1.0f / static_cast<float>(3 + r + c + k) + 1e-9f * static_cast<float>(c);
        map.values[(size_t{k} * map.rows + r) * map.cols + c] = v;
      }
    }
  }
  return map;
}

struct Image {
  int width = 0, height = 0;
  std::vector<Rgb> pixels;
  Rgb at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

Image ReadPng(const std::filesystem::path& path) {
  Image image;
  int channels = 0;
  unsigned char* data = stbi_load(path.string().c_str(), &image.width, &image.height, &channels, 3);
  EXPECT_NE(data, nullptr) << path;
  if (data == nullptr) return image;
  for (int i = 0; i < image.width * image.height; ++i)
    image.pixels.push_back({data[3 * i], data[3 * i + 1], data[3 * i + 2]});
  stbi_image_free(data);
  return image;
}

TEST(AttentionExportTest, HeatColorRunsFromVioletToYellow) {
  EXPECT_EQ(chat::HeatColor(0), (Rgb{68, 1, 84}));
  EXPECT_EQ(chat::HeatColor(0.5f), (Rgb{33, 144, 141}));
  EXPECT_EQ(chat::HeatColor(1), (Rgb{253, 231, 37}));
  EXPECT_EQ(chat::HeatColor(-3), chat::HeatColor(0));
  EXPECT_EQ(chat::HeatColor(7), chat::HeatColor(1));
  EXPECT_EQ(chat::HeatColor(std::nanf("")), chat::HeatColor(0));
  // Green rises all the way: each step up the scale is lighter.
  for (int i = 1; i <= 100; ++i) {
    EXPECT_GE(chat::HeatColor(i / 100.0f)[1], chat::HeatColor((i - 1) / 100.0f)[1]) << i;
    if (i % 10 == 0) {
      EXPECT_GT(chat::HeatColor(i / 100.0f)[1], chat::HeatColor((i - 10) / 100.0f)[1]) << i;
    }
  }
}

// Every pixel of a 3-pixels-per-value heatmap is its value's colour (the scale's top the largest
// value after the first query row) or the mask's grey; a log scale and a given top likewise.
TEST(AttentionExportTest, PngShowsEachValueOnTheScaleAndTheMaskGrey) {
  const TempDir dir;
  const AttentionMap map =
      MakeMap(EveryHead({.num_layers = 1, .num_heads = 2, .num_kv_heads = 1}, 0, HeadReduce::Mean), 9);
  float top = 0;
  for (uint32_t r = 1; r < 9; ++r) {
    for (uint32_t c = 0; c < 9; ++c) top = std::max(top, map.plane(1)[r * 9 + c]);
  }
  for (const chat::PngOptions& options :
       {chat::PngOptions{.pixels_per_value = 3}, chat::PngOptions{.pixels_per_value = 3, .log_decades = 2},
        chat::PngOptions{.pixels_per_value = 3, .scale_max = 0.05f}}) {
    const float used = chat::WriteAttentionPng(dir.path() / "map.png", map, 1, options);
    EXPECT_EQ(used, options.scale_max > 0 ? options.scale_max : top);
    const Image image = ReadPng(dir.path() / "map.png");
    ASSERT_EQ(image.width, 27);
    ASSERT_EQ(image.height, 27);
    for (int y = 0; y < 27; ++y) {
      for (int x = 0; x < 27; ++x) {
        const uint32_t r = y / 3, c = x / 3;
        const Rgb expected =
            c > r ? chat::kMaskedColor : chat::HeatColor(chat::ScalePosition(map.plane(1)[r * 9 + c], used, options));
        ASSERT_EQ(image.at(x, y), expected) << x << ", " << y;
      }
    }
  }
  EXPECT_EQ(chat::ScalePosition(0.01f, 1, {.log_decades = 2}), 0.0f);
  EXPECT_NEAR(chat::ScalePosition(0.1f, 1, {.log_decades = 2}), 0.5f, 1e-6);
}

// A pooled band: a cell is masked only when every key it holds comes after every query it holds.
TEST(AttentionExportTest, PooledBandMasksOnlyCellsWhollyAboveTheDiagonal) {
  const TempDir dir;
  AttentionRequest request{.first_row = 5, .end_row = 17, .cell = 4};
  const AttentionMap map = MakeMap(request, 20);
  ASSERT_EQ(map.rows, 3u);         // rows 5-8, 9-12, 13-16
  ASSERT_EQ(map.cols, 5u);         // keys 0-3, ..., 16-19
  EXPECT_FALSE(map.masked(0, 2));  // keys 8-11 against queries 5-8: key 8 is seen by query 8
  EXPECT_TRUE(map.masked(0, 3));
  EXPECT_FALSE(map.masked(2, 4));  // keys 16-19 against queries 13-16
  chat::WriteAttentionPng(dir.path() / "band.png", map, 0);
  const Image image = ReadPng(dir.path() / "band.png");
  ASSERT_EQ(image.width, 5);
  ASSERT_EQ(image.height, 3);
  EXPECT_EQ(image.at(3, 0), chat::kMaskedColor);
  EXPECT_NE(image.at(2, 0), chat::kMaskedColor);
}

// A sliding-window layer: keys the window left behind are masked like later ones, in the PNG too;
// a pooled cell only when its last key is behind the window for its first query.
TEST(AttentionExportTest, KeysOutsideTheSlidingWindowAreMasked) {
  const TempDir dir;
  AttentionMap map(AttentionRequest{}, 12, 4);
  EXPECT_TRUE(map.masked(2, 3));   // causal
  EXPECT_FALSE(map.masked(5, 2));  // keys 2..5 are query 5's window
  EXPECT_TRUE(map.masked(6, 2));
  EXPECT_TRUE(map.masked(11, 0));
  chat::WriteAttentionPng(dir.path() / "window.png", map, 0);
  const Image image = ReadPng(dir.path() / "window.png");
  ASSERT_EQ(image.width, 12);
  EXPECT_EQ(image.at(2, 6), chat::kMaskedColor);
  EXPECT_NE(image.at(2, 5), chat::kMaskedColor);
  const AttentionMap pooled(AttentionRequest{.cell = 4}, 12, 4);
  EXPECT_FALSE(pooled.masked(1, 0));  // keys 0-3, queries 4-7: query 4 sees keys 1..4
  EXPECT_TRUE(pooled.masked(2, 0));   // queries 8-11: key 3 + 4 <= 8
}

TEST(AttentionExportTest, CsvAndNpyGiveBackEveryFloat) {
  const TempDir dir;
  const AttentionMap map = MakeMap({.planes = 3}, 7);
  for (uint32_t plane : {0u, 2u}) {
    chat::WriteAttentionCsv(dir.path() / "map.csv", map, plane);
    chat::WriteAttentionNpy(dir.path() / "map.npy", map, plane);
    const auto csv = ParseCsv(ReadFile(dir.path() / "map.csv"));
    const Npy npy = ReadNpy(dir.path() / "map.npy");
    ASSERT_EQ(csv.size(), 7u);
    EXPECT_EQ(npy.shape, (std::vector<size_t>{7, 7}));
    ASSERT_EQ(npy.values.size(), 49u);
    for (uint32_t r = 0; r < 7; ++r) {
      ASSERT_EQ(csv[r].size(), 7u);
      for (uint32_t c = 0; c < 7; ++c) {
        const float expected = map.plane(plane)[r * 7 + c];
        EXPECT_EQ(std::stof(csv[r][c]), expected) << r << ", " << c;
        EXPECT_EQ(npy.values[r * 7 + c], expected) << r << ", " << c;
      }
    }
  }
  // Exactly numpy's header for this shape: 118 bytes, so that the data starts at byte 128.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (7, 7), }";
  EXPECT_EQ(ReadFile(dir.path() / "map.npy").substr(8, 120),
            std::string("\x76\x00", 2) + dict + std::string(117 - dict.size(), ' ') + "\n");
}

TEST(AttentionExportTest, RefusesWhatCannotBeWritten) {
  const TempDir dir;
  const AttentionMap map = MakeMap({}, 4);
  ExpectMentions(ErrorOf([&] { chat::CheckWritable("/nonexistent-dir/map.png"); }),
                 {"cannot write /nonexistent-dir/map.png"});
  ExpectMentions(ErrorOf([&] { chat::CheckWritable(dir.path()); }), {"cannot write", dir.path().string()});
  ExpectMentions(ErrorOf([&] { chat::WriteAttentionPng("/nonexistent-dir/map.png", map, 0); }),
                 {"/nonexistent-dir/map.png"});
  ExpectMentions(ErrorOf([&] { chat::WriteAttentionCsv("/nonexistent-dir/map.csv", map, 0); }),
                 {"cannot write /nonexistent-dir/map.csv"});
  ExpectMentions(ErrorOf([&] { chat::WriteAttentionNpy(dir.path() / "map.npy", map, 1); }), {"plane 1"});
}

}  // namespace
}  // namespace qvk::test
