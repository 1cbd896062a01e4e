// RMSNorm, SwiGLU and the embedding gather against the C++ reference.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/numeric.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

void ExpectClose(const std::vector<float>& got, const std::vector<float>& expected, double rel, double abs,
                 const std::string& what) {
  ASSERT_EQ(got.size(), expected.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 10; ++i) {
    const double tolerance = abs + rel * std::abs(expected[i]);
    if (!(std::abs(got[i] - expected[i]) <= tolerance)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", expected " << expected[i];
      ++bad;
    }
  }
}

// rmsnorm, and rmsnorm_f16: the same rounded to f16 (2^-11 relative at most), as MatMul's products
// of rounded weights read it.
TEST_F(GpuTest, RmsNormMatchesReference) {
  // Hidden sizes of Qwen2 0.5B, 1.5B, 7B, 72B, plus odd ones; eps 1e-6 (Qwen2.5) and 1e-5.
  for (const auto& [tokens, cols, eps] : {std::tuple{1u, 896u, 1e-6f},
                                          {7u, 1536u, 1e-6f},
                                          {3u, 3584u, 1e-5f},
                                          {2u, 8192u, 1e-6f},
                                          {5u, 17u, 1e-6f},
                                          {1u, 1u, 1e-5f},
                                          {65u, 63u, 1e-6f}}) {
    const auto x = RandomFloats(static_cast<size_t>(tokens) * cols, cols, 3.0f);
    const auto w = RandomFloats(cols, cols + 1);
    const auto expected = ref::RmsNorm(x, w, tokens, cols, eps);
    Buffer xb = Upload(x), wb = Upload(w), yb = Poisoned(x.size() * 4), hb = Poisoned(x.size() * 2 + 4);
    Graph g(device());
    ops::RmsNorm(g, xb, wb, yb, tokens, cols, eps);
    const bool halves = info().fp16_arithmetic;
    if (halves) ops::RmsNormToF16(g, xb, wb, hb, tokens, cols, eps);
    g.Run();
    ExpectClose(Download<float>(yb, x.size()), expected, 1e-5, 1e-6, "rmsnorm cols " + std::to_string(cols));
    if (!halves) continue;  // no 16-bit float arithmetic (the kernel needs it)
    std::vector<float> rounded;
    for (uint16_t h : Download<uint16_t>(hb, x.size())) rounded.push_back(HalfToFloat(h));
    ExpectClose(rounded, expected, 1.0 / 2048 + 1e-5, 1e-6, "rmsnorm_f16 cols " + std::to_string(cols));
  }
}

// round_f16: every value a nearest f16 of X's (either neighbour at a tie or below f16's normal
// range: CountMisrounded), rows packed whatever X's stride, padded with zeros to whole runs of 8.
TEST_F(GpuTest, RoundToF16GivesTheNearestHalves) {
  if (!info().fp16_arithmetic) GTEST_SKIP() << info().name << " has no 16-bit float arithmetic";
  for (const auto& [tokens, cols, x_stride] : {std::tuple{1u, 8u, 8u},
                                               {3u, 896u, 900u},
                                               {65u, 24u, 27u},
                                               {5u, 3584u, 3584u},
                                               {2u, 1536u, 1541u},
                                               {4u, 13u, 13u},
                                               {3u, 5u, 9u}}) {
    auto x = RandomFloats(size_t{tokens - 1} * x_stride + cols, cols, 3.0f);
    x[0] = 1e-6f;            // an f16 subnormal
    x[1] = 70000.0f;         // past f16's range: its largest value
    x[2] = 1.0f + 0x1p-11f;  // a tie
    const uint32_t padded = static_cast<uint32_t>(AlignUp(cols, 8));
    Buffer xb = Upload(x), yb = Poisoned(size_t{tokens} * padded * 2 + 4);
    Graph g(device());
    ops::RoundToF16(g, xb, x_stride, tokens, cols, yb);
    g.Run();
    // X's rows packed, held to f16's range, zeros past `cols`.
    std::vector<float> expected;
    for (uint32_t t = 0; t < tokens; ++t) {
      for (uint32_t c = 0; c < padded; ++c)
        expected.push_back(c < cols ? std::clamp(x[size_t{t} * x_stride + c], -65504.0f, 65504.0f) : 0.0f);
    }
    EXPECT_EQ(CountMisrounded(Download<uint16_t>(yb, expected.size()), expected,
                              std::to_string(cols) + " columns of stride " + std::to_string(x_stride)),
              0u);
  }
}

// round_f16_in_place: each row's halves, bit for bit round_f16's, at the start of its own f32 row,
// the rest of the row as it was. Rows of one block of 256 runs and of several (257 runs: a block
// of one), at Qwen2.5's 0.5B, 1.5B and 7B intermediate sizes, one row and many.
TEST_F(GpuTest, RoundToF16InPlaceGivesRoundF16sHalvesInEachRow) {
  if (!info().fp16_arithmetic) GTEST_SKIP() << info().name << " has no 16-bit float arithmetic";
  for (const auto& [tokens, cols] :
       {std::pair{1u, 8u}, {3u, 2056u}, {65u, 24u}, {5u, 4864u}, {2u, 8960u}, {1u, 18944u}, {130u, 4096u}}) {
    SCOPED_TRACE(fmt::format("{} rows of {}", tokens, cols));
    auto x = RandomFloats(size_t{tokens} * cols, cols, 3.0f);
    x[0] = 70000.0f;  // past f16's range
    Buffer xb = Upload(x), yb = Poisoned(size_t{tokens} * cols * 2);
    Graph g(device());
    ops::RoundToF16(g, xb, cols, tokens, cols, yb);
    ops::RoundToF16InPlace(g, xb, tokens, cols);
    g.Run();
    const auto want = Download<uint16_t>(yb, size_t{tokens} * cols);
    const auto got = Download<uint16_t>(xb, size_t{tokens} * cols * 2);
    const auto got_floats = Download<float>(xb, x.size());
    size_t differ = 0, changed = 0;
    for (size_t t = 0; t < tokens; ++t) {
      for (size_t c = 0; c < cols; ++c) differ += got[t * 2 * cols + c] != want[t * cols + c];
      for (size_t c = cols / 2; c < cols; ++c) changed += got_floats[t * cols + c] != x[t * cols + c];
    }
    EXPECT_EQ(differ, 0u) << "halves unlike round_f16's";
    EXPECT_EQ(changed, 0u) << "floats of a row's second half changed";
  }
}

TEST_F(GpuTest, SwiGluMatchesReference) {
  for (const auto& [tokens, inter] : {std::pair{1u, 4864u}, {3u, 8960u}, {1u, 18944u}, {5u, 17u}, {2u, 29568u}}) {
    const auto gu = RandomFloats(static_cast<size_t>(tokens) * inter * 2, inter, 4.0f);
    Buffer gub = Upload(gu), yb = Poisoned(static_cast<size_t>(tokens) * inter * 4);
    Graph g(device());
    ops::SwiGlu(g, gub, yb, tokens, inter);
    g.Run();
    ExpectClose(Download<float>(yb, static_cast<size_t>(tokens) * inter), ref::SwiGlu(gu, tokens, inter), 2e-6, 1e-6,
                "swiglu inter " + std::to_string(inter));
  }
}

class EmbedTest : public GpuTest, public ::testing::WithParamInterface<DType> {};

TEST_P(EmbedTest, GathersRowsOfEveryType) {
  const DType type = GetParam();
  const uint32_t rows = 1000, cols = 17;
  const auto table = RandomFloats(static_cast<size_t>(rows) * cols, 7);
  const std::vector<uint32_t> ids = {0, 999, 5, 5, 123, 998, 1};
  Buffer tb = Upload(Encode(table, type)), ib = Upload(ids), yb = Poisoned(ids.size() * cols * 4);
  Graph g(device());
  ops::Embed(g, {&tb, 0, type, rows, cols}, ib, yb, static_cast<uint32_t>(ids.size()));
  g.Run();
  const auto seen = RoundTrip(table, type);
  std::vector<float> expected;
  for (uint32_t id : ids) expected.insert(expected.end(), seen.begin() + id * cols, seen.begin() + (id + 1) * cols);
  ExpectClose(Download<float>(yb, expected.size()), expected, 0, 0, "embed");
}

INSTANTIATE_TEST_SUITE_P(Types, EmbedTest, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

// Qwen2.5-0.5B's f16 embedding (272 MB) is bigger than lavapipe's 128 MiB binding limit: rows
// on both sides of every slice boundary must come out right.
TEST_F(GpuTest, EmbedsFromATableLargerThanOneBinding) {
  const uint32_t rows = 151936, cols = 896;
  const auto table = RandomFloats(static_cast<size_t>(rows) * cols, 11, 0.02f);
  Buffer tb = Upload(Encode(table, DType::F16));
  const Matrix m{&tb, 0, DType::F16, rows, cols};
  std::vector<uint32_t> ids = {0, rows - 1, 151643, 151645, 12345};
  for (const auto& s : SliceRows(info(), m)) {
    ids.push_back(s.first_row);
    if (s.first_row > 0) ids.push_back(s.first_row - 1);
  }
  Buffer ib = Upload(ids), yb = Poisoned(ids.size() * cols * 4);
  Graph g(device());
  ops::Embed(g, m, ib, yb, static_cast<uint32_t>(ids.size()));
  g.Run();
  const auto got = Download<float>(yb, ids.size() * cols);
  for (size_t t = 0; t < ids.size(); ++t) {
    for (uint32_t c = 0; c < cols; ++c) {
      const float expected = RoundTrip(std::span(&table[static_cast<size_t>(ids[t]) * cols + c], 1), DType::F16)[0];
      ASSERT_EQ(got[t * cols + c], expected) << "token " << t << " id " << ids[t] << " col " << c;
    }
  }
}

}  // namespace
}  // namespace qvk::test
