// The cooperative-matrix GEMM (shaders/matmul_coopmat.comp) against the double-precision
// reference for every weight type, on ragged and real Qwen2 shapes; and which kernel ops::MatMul
// picks. The GEMM runs only where DeviceInfo::coopmat_f16 holds (NVIDIA GPUs); elsewhere (lavapipe)
// its tests skip, saying why. On such a GPU: qwenvk_tests --gtest_filter='*Coopmat*'
//
// Sections: bounds / GEMM against the reference / dequantization to f16 / split along K / kernel and tile
// choice
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include <fmt/format.h>

#include "base/numeric.h"
#include "gpu/kernels.h"
#include "model/quantize.h"
#include "shaders/push_constants.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

// --- bounds --------------------------------------------------------------------------------
//
// What the kernel computes differs from the exact product of the stored weights by:
// - Operands rounded to f16. Where W is exact in f16 (F16, and BF16: 8 significant bits fit f16's
//   11), X goes in as f16 hi + lo, 2^-20 of |x| (lo's own rounding). Where W is rounded (F32 and
//   dequantized block weights), both W and X are rounded to nearest f16 (f16.glsl), 2^-11 each, so
//   2^-10 + 2^-22 of |w x| a product: kWeightRounding, with kHiLoRounding covering the 2^-22.
// - f16 subnormals: a value below 2^-14 keeps an absolute error up to 2^-24, for W, X and lo.
// - f32 accumulation inside the matrix units, in another order than the reference and truncating
//   where an FMA would round: 4e-5 * sum|w x|, twice the f32 kernels' bound.
// The norm bounds sum these over whole outputs: about 2^-11 relative where W is rounded (each
// output's errors partly cancel), and 1e-5 where it is exact.
constexpr double kWeightRounding = 0x1p-10;
constexpr double kHiLoRounding = 0x1p-20;
constexpr double kSubnormal = 0x1p-24;
constexpr double kAccumulation = 4e-5;

bool ExactInF16(DType type) {
  return type == DType::F16 || type == DType::BF16;
}

struct CoopmatCase {
  DType type;
  uint32_t rows, cols, tokens;
  bool bias = false;
  bool residual = false;
  std::optional<ops::CoopmatTile> tile = std::nullopt;  // unset: the one ops::ChooseCoopmatTile picks
  uint32_t x_padding = 0;                               // X rows of cols + x_padding floats
  bool split = false;  // split along K in a scratch of kSplitPlanes planes, as prefill's small products are
  // W dequantized to f16 first (MatMulArgs::dequant_scratch), in chunks of kDequantRows rows.
  bool dequantized = false;
  bool swiglu = false;  // W's rows: rows / 2 gate rows, then their up rows; Y = silu(gate) * up
};

constexpr uint32_t kDequantRows = 256;

constexpr uint32_t kSplitPlanes = 16;

std::string TileName(const std::optional<ops::CoopmatTile>& tile) {
  if (!tile) return "chosen";
  switch (*tile) {
    case ops::CoopmatTile::Wide:
      return "wide";
    case ops::CoopmatTile::Narrow:
      return "narrow";
    case ops::CoopmatTile::Tall:
      return "tall";
  }
  return "?";
}

void PrintTo(const CoopmatCase& c, std::ostream* os) {
  *os << DTypeName(c.type) << " " << c.rows << "x" << c.cols << " t" << c.tokens << " " << TileName(c.tile)
      << " x_stride " << c.cols + c.x_padding << (c.split ? " split along K" : "")
      << (c.dequantized ? " dequantized first" : "") << (c.swiglu ? " SwiGLU" : "");
}

constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                               DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
constexpr ops::CoopmatTile kTiles[] = {ops::CoopmatTile::Wide, ops::CoopmatTile::Narrow};

// Per type, with the tile the product would get: T = 1, 17, 255, 256 (ragged and whole 64-token
// tiles); 1, 100 and 4864 rows; inner sizes of one block (odd for float types) and of many; the
// Qwen2 projections at prefill sizes. Then per type and tile: rows, tokens and inner sizes that no
// tile divides; X rows wider than W's, at 16-byte steps (staged by units) and not (by elements);
// float rows of whole units that end inside a 32-column stage. Then per type the Qwen2 projections
// as prefill tiles them (0.5B q|k|v, o and down narrow, gate|up wide) and down also the other way;
// 1.5B gate|up and down; 7B gate|up with a few tokens, the widest W.
std::vector<CoopmatCase> CoopmatCases() {
  using enum ops::CoopmatTile;
  std::vector<CoopmatCase> cases;
  for (DType type : kAllTypes) {
    const auto add = [&](uint32_t rows, uint32_t cols, uint32_t tokens, bool bias = false, bool residual = false) {
      cases.push_back({type, rows, cols, tokens, bias, residual});
    };
    const uint32_t block = BlockElements(type);
    const uint32_t one = block == 1 ? 17 : block;  // one block, or an inner size no step divides
    add(1, one, 1, true);
    add(100, one, 17, true, true);
    add(4864, one, 256);
    if (block <= 32) {
      add(100, block == 1 ? 100 : 96, 255, false, true);
      // Qwen2-0.5B (hidden 896, MLP 4864): q|k|v with bias, o with the residual, down.
      add(896 + 2 * 128, 896, 256, true);
      add(896, 896, 255, false, true);
      add(896, 4864, 64, false, true);
    } else {
      add(100, 512, 255, false, true);
      // 896 is not a whole number of 256-blocks: Qwen2-1.5B (hidden 1536, MLP 8960) instead.
      add(1536 + 2 * 256, 1536, 256, true);
      add(1536, 1536, 255, false, true);
      add(1536, 8960, 37, false, true);
    }

    // Three blocks, or 25 units of 8 floats: the last 32-column stage holds one unit.
    const uint32_t few = block == 1 ? 200 : 3 * block;
    for (ops::CoopmatTile tile : kTiles) {
      cases.push_back({type, 1, one, 1, true, false, tile});
      cases.push_back({type, 100, one, 17, true, true, tile});
      cases.push_back({type, 130, few, 65, false, false, tile, 4});
      cases.push_back({type, 200, few, 130, false, true, tile, 3});
      if (block == 1) cases.push_back({type, 100, 40, 255, true, false, tile});
    }

    if (block <= 32) {
      cases.push_back({type, 896 + 2 * 128, 896, 65, true, false, Narrow});
      cases.push_back({type, 2 * 4864, 896, 20, false, false, Wide});
    }
    cases.push_back({type, 896, 4864, 40, false, true, Narrow});
    cases.push_back({type, 896, 4864, 17, false, true, Wide});
    cases.push_back({type, 2 * 8960, 1536, 17, false, false, Wide});
    cases.push_back({type, 1536, 8960, 20, false, true, Narrow});
    cases.push_back({type, 2 * 18944, 3584, 5});

    // Split along K (PlanCoopmatSplitSteps), as prefill's q|k|v, o and down: 0.5B o (3 splits, the
    // last shorter) and down, 1.5B down with bias, ragged tokens, and X rows wider than W's.
    if (block <= 32) {
      cases.push_back({type, 896, 896, 256, false, true, Narrow, 0, true});
      cases.push_back({type, 896, 4864, 255, false, true, Narrow, 0, true});
      cases.push_back({type, 100, 1024, 65, true, true, Wide, 8, true});
    }
    cases.push_back({type, 1536, 8960, 130, true, true, Narrow, 0, true});

    // Dequantized to f16 first, as prefill runs every type but F16 and BF16 (PrefillDequantBytes):
    // several chunks of rows and a ragged last one, split along K or not, X rows wider than W's.
    if (type != DType::F16 && type != DType::BF16) {
      const uint32_t inner = block <= 32 ? 896 : 1536;
      cases.push_back({type, 2 * 300, inner, 255, true, false, std::nullopt, 0, false, true});
      cases.push_back({type, inner, 4 * inner, 130, false, true, Narrow, 8, true, true});
      cases.push_back({type, 700, 2 * std::max(block, 32u), 17, true, true, Wide, 0, false, true});
      // Tall tiles (128 tokens): a ragged second tile of tokens, rows and a chunk no tile fills,
      // X rows wider than W's, bias and residual; split along K; one token; the SwiGLU in chunks.
      // (320 outputs: the up rows then start where a binding may, at a whole number of regrouped
      // Q4_0's, Q5_0's, Q8_0's and Q6_K's 64-block groups and of 256 bytes; at 300, and for Q6_K
      // at 304, the product multiplied the blocks and refused tall tiles.)
      cases.push_back({type, 700, inner, 130, true, true, Tall, 4, false, true});
      cases.push_back({type, inner, 4 * inner, 200, true, true, Tall, 8, true, true});
      cases.push_back({type, 300, 2 * std::max(block, 32u), 1, true, false, Tall, 0, false, true});
      cases.push_back({.type = type,
                       .rows = 2 * 320,
                       .cols = inner,
                       .tokens = 255,
                       .tile = Tall,
                       .x_padding = 4,
                       .dequantized = true,
                       .swiglu = true});
    }
  }
  // SwiGLU in the epilogue (prefill's gate|up), per type and tile: outputs that fill no tile, ragged
  // tokens, X rows wider than W's; 0.5B's gate|up; dequantized in chunks with a ragged last one (320
  // outputs, as above).
  for (DType type : kAllTypes) {
    const uint32_t block = BlockElements(type);
    const uint32_t few = block == 1 ? 200 : 3 * block;
    for (ops::CoopmatTile tile : kTiles) {
      cases.push_back(
          {.type = type, .rows = 2 * 100, .cols = few, .tokens = 65, .tile = tile, .x_padding = 4, .swiglu = true});
    }
    if (block <= 32) cases.push_back({.type = type, .rows = 2 * 4864, .cols = 896, .tokens = 70, .swiglu = true});
    if (type != DType::F16 && type != DType::BF16) {
      cases.push_back({.type = type,
                       .rows = 2 * 320,
                       .cols = block <= 32 ? 896u : 1536u,
                       .tokens = 255,
                       .dequantized = true,
                       .swiglu = true});
    }
  }
  cases.push_back(
      {.type = DType::Q4_K, .rows = 2 * 18944, .cols = 3584, .tokens = 130, .dequantized = true, .swiglu = true});
  cases.push_back({.type = DType::Q4_0,
                   .rows = 2 * 2048,
                   .cols = 896,
                   .tokens = 512,
                   .tile = ops::CoopmatTile::Tall,
                   .dequantized = true,
                   .swiglu = true});
  // Qwen2-7B's gate|up and down as prefill runs them in Q4_K: dequantized, down split along K.
  cases.push_back({DType::Q4_K, 2 * 18944, 3584, 256, false, false, std::nullopt, 0, false, true});
  cases.push_back({DType::Q4_K, 3584, 18944, 256, false, true, std::nullopt, 0, true, true});
  // Qwen2-7B's down projection split: the longest inner size.
  cases.push_back({DType::Q4_K, 3584, 18944, 256, false, true, std::nullopt, 0, true});
  // A mixture-of-experts layer's router and shared expert's gate as prefill runs them: a few long
  // F32 rows (Qwen1.5-MoE-A2.7B's 60 experts, one gate), split along K to fill the GPU.
  cases.push_back({DType::F32, 60, 2048, 512, false, false, std::nullopt, 0, true});
  cases.push_back({DType::F32, 1, 2048, 512, false, false, std::nullopt, 0, true});
  // Qwen2-7B's down projection: the longest inner size.
  cases.push_back({DType::F16, 3584, 18944, 17, false, true});
  // F16 rows as long as are summed without promotion (ops::CoopmatSumsUnpromoted): its drift at most.
  cases.push_back({DType::F16, 512, ops::kCoopmatUnpromotedCols, 64, false, true});
  cases.push_back({DType::Q4_K, 3584, 18944, 17, false, true});
  return cases;
}

// --- GEMM against the reference ------------------------------------------------------------

class CoopmatTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (!IsSkipped() && !info().coopmat_f16) {
      GTEST_SKIP() << "no cooperative-matrix GEMM on " << info().name << ": " << info().coopmat_f16_problem;
    }
  }
};

class CoopmatMatMulTest : public CoopmatTest, public ::testing::WithParamInterface<CoopmatCase> {};

TEST_P(CoopmatMatMulTest, MatchesTheReferenceWithinF16Rounding) {
  const CoopmatCase& c = GetParam();
  const uint32_t seed = c.rows * 31 + c.cols * 7 + c.tokens;
  // Realistic block scales only: an extreme one (65504) dequantizes past f16's range, which no
  // weight of a real checkpoint reaches.
  const std::vector<std::byte> w =
      IsQuantized(c.type) ? RandomBlocks(c.type, c.rows, c.cols, seed, false)
                          : Encode(RandomFloats(static_cast<size_t>(c.rows) * c.cols, seed, 0.05f), c.type);
  const uint32_t x_stride = c.cols + c.x_padding;
  const auto x_rows = RandomFloats(static_cast<size_t>(c.tokens) * x_stride, 2);
  std::vector<float> x;  // the rows' first cols floats, as the reference reads X
  for (uint32_t t = 0; t < c.tokens; ++t) {
    const auto row = x_rows.begin() + static_cast<ptrdiff_t>(t) * x_stride;
    x.insert(x.end(), row, row + c.cols);
  }
  const uint32_t outputs = c.swiglu ? c.rows / 2 : c.rows;
  const auto bias = RandomFloats(c.rows, 3);
  const auto residual = RandomFloats(static_cast<size_t>(c.tokens) * outputs, 4);
  Buffer w_buf = UploadWeights(c.type, w, c.rows, c.cols);
  Buffer x_buf = Upload(x_rows);
  Buffer bias_buf = Upload(bias);
  Buffer y_buf = c.residual ? Upload(residual) : Poisoned(residual.size() * 4);

  Graph g(device());
  ops::MatMulArgs args{.w = {&w_buf, 0, c.type, c.rows, c.cols},
                       .x = x_buf,
                       .y = y_buf,
                       .tokens = c.tokens,
                       .x_stride = x_stride,
                       .kernel = ops::MatMulKernel::CoopMat,
                       .coopmat_tile = c.tile};
  if (c.bias) args.bias = BufferRange(bias_buf);
  if (c.residual) args.residual = BufferRange(y_buf);
  if (c.swiglu) args.swiglu = ops::SwiGluOutput{};  // no scratch: the epilogue forms it
  Buffer split_buf = Poisoned(c.split ? size_t{4} * kSplitPlanes * c.tokens * c.rows : 4);
  if (c.split) {
    args.split_scratch = BufferRange(split_buf);
    ASSERT_GT(ops::PlanCoopmat({.rows = c.rows,
                                .cols = c.cols,
                                .tokens = c.tokens,
                                .swiglu = c.swiglu,
                                .rounded = c.dequantized,
                                .split_room = split_buf.size(),
                                .tile = c.tile})
                  .split_steps,
              0u)
        << "not split";
  }
  Buffer dequant_buf =
      Poisoned(c.dequantized ? size_t{2} * kDequantRows * c.cols + ops::RoundedXBytes(c.tokens, c.cols) : 4);
  if (c.dequantized) {
    ASSERT_TRUE(ops::DequantizesToF16(c.type, c.cols));
    args.dequant_scratch = BufferRange(dequant_buf);
  }
  ops::MatMul(g, args);
  g.Run();

  const std::vector<float> w_values = DequantizeRows(c.type, w, c.rows, c.cols);
  std::vector<double> magnitude;
  const auto expected = ref::MatMul(w_values, x, c.rows, c.cols, c.tokens, c.bias ? &bias : nullptr,
                                    c.residual ? &residual : nullptr, &magnitude);
  std::vector<double> w_abs(c.rows), x_abs(c.tokens);
  for (size_t i = 0; i < w_values.size(); ++i) w_abs[i / c.cols] += std::abs(w_values[i]);
  for (size_t i = 0; i < x.size(); ++i) x_abs[i / c.cols] += std::abs(x[i]);

  const double relative = (ExactInF16(c.type) ? 0.0 : kWeightRounding) + kHiLoRounding + kAccumulation;
  // Product j's bound (token j / rows, row j % rows).
  const auto tolerance_of = [&](size_t j) {
    return relative * magnitude[j] + kSubnormal * (w_abs[j % c.rows] + x_abs[j / c.rows]) + 1e-6;
  };
  const size_t count = size_t{c.tokens} * outputs;
  const auto got = Download<float>(y_buf, count);
  double error_sq = 0, expected_sq = 0;
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t t = i / outputs, r = i % outputs;
    const size_t product = t * c.rows + r;
    double want = expected[product], tolerance = tolerance_of(product);
    if (c.swiglu) {
      const size_t up = product + outputs;
      const ref::BoundedValue swiglu = ref::SwiGluBound(want, expected[up], tolerance, tolerance_of(up));
      want = swiglu.value;
      tolerance = swiglu.tolerance;
    }
    const double error = static_cast<double>(got[i]) - want;
    if (!(std::abs(error) <= tolerance) && ++bad <= 10) {
      ADD_FAILURE() << "output " << i << " (token " << t << ", row " << r << "): got " << got[i] << ", expected "
                    << want << ", tolerance " << tolerance;
    }
    error_sq += error * error;
    expected_sq += want * want;
  }
  EXPECT_EQ(bad, 0u) << "outputs past their bound";
  // Over many outputs the errors average out to well inside the per-element bounds; a SwiGLU
  // output meets two sums' errors.
  const double relative_error = std::sqrt(error_sq / expected_sq);
  RecordProperty("relative_error", fmt::format("{:.3g}", relative_error));
  if (count >= 1000) {
    EXPECT_LE(relative_error, (ExactInF16(c.type) ? 1e-5 : 0x1p-10) * (c.swiglu ? 2 : 1))
        << "|out - ref| / |ref| over all outputs";
  }
}

INSTANTIATE_TEST_SUITE_P(Coopmat, CoopmatMatMulTest, ::testing::ValuesIn(CoopmatCases()), [](const auto& param_info) {
  const CoopmatCase& c = param_info.param;
  return std::string(DTypeName(c.type)) + "_" + std::to_string(c.rows) + "x" + std::to_string(c.cols) + "_t" +
         std::to_string(c.tokens) + "_" + TileName(c.tile) + (c.bias ? "_bias" : "") + (c.residual ? "_residual" : "") +
         (c.x_padding ? "_xpad" + std::to_string(c.x_padding) : "") + (c.split ? "_split" : "") +
         (c.dequantized ? "_dequantized" : "") + (c.swiglu ? "_swiglu" : "");
});

// A dense layer's MLP in prefill (forward.cpp's MlpRounded): m rounded to f16 in its own rows
// (RoundToF16InPlace) and down reading those halves as they are (MatMulArgs::x_rounded, rows of
// 2 * inter halves). Down's output equals, bit for bit, what it gives from m in f32 rounded by
// round_f16 at the end of its scratch: the same values, in no room of their own.
TEST_F(CoopmatTest, MlpRoundsItsMiddleInPlaceForDown) {
  const uint32_t hidden = 512, inter = 768, tokens = 130;  // a ragged token tile; K-quant rows
  for (const DType type : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(DTypeName(type));
    const auto gate_up = RandomBlocks(type, 2 * inter, hidden, 11, false);
    const auto down = RandomBlocks(type, hidden, inter, 12, false);
    Buffer gate_up_buf = UploadWeights(type, gate_up, 2 * inter, hidden);
    Buffer down_buf = UploadWeights(type, down, hidden, inter);
    Buffer x_buf = Upload(RandomFloats(size_t{tokens} * hidden, 13));
    const Matrix gate_up_w{&gate_up_buf, 0, type, 2 * inter, hidden}, down_w{&down_buf, 0, type, hidden, inter};
    // Room for down's rows dequantized at once, and after them its X rounded (the widest).
    Buffer dequant_buf = Poisoned(size_t{2} * 2 * inter * hidden + ops::RoundedXBytes(tokens, inter));
    ASSERT_TRUE(ops::MultipliesRoundedRows(info(), down_w, tokens, dequant_buf.size(), true));
    Buffer m32 = Poisoned(size_t{4} * tokens * inter), m16 = Poisoned(size_t{4} * tokens * inter);
    Buffer y32 = Poisoned(size_t{4} * tokens * hidden), y16 = Poisoned(size_t{4} * tokens * hidden);
    Graph g(device());
    for (const bool rounded : {false, true}) {
      Buffer& m = rounded ? m16 : m32;
      ops::MatMul(g, {.w = gate_up_w,
                      .x = x_buf,
                      .y = m,
                      .tokens = tokens,
                      .swiglu = ops::SwiGluOutput{},
                      .dequant_scratch = BufferRange(dequant_buf)});
      if (rounded) ops::RoundToF16InPlace(g, m, tokens, inter);
      ops::MatMul(g, {.w = down_w,
                      .x = m,
                      .y = rounded ? y16 : y32,
                      .tokens = tokens,
                      .x_stride = rounded ? 2 * inter : 0,
                      .x_rounded = rounded,
                      .dequant_scratch = BufferRange(dequant_buf)});
    }
    g.Run();
    const auto m = Download<float>(m32, size_t{tokens} * inter);
    const auto m_rows = Download<uint16_t>(m16, size_t{2} * tokens * inter);
    std::vector<float> m_in_range;
    std::vector<uint16_t> halves;
    for (size_t t = 0; t < tokens; ++t) {
      for (size_t c = 0; c < inter; ++c) {
        m_in_range.push_back(std::clamp(m[t * inter + c], -65504.0f, 65504.0f));
        halves.push_back(m_rows[t * 2 * inter + c]);
      }
    }
    EXPECT_EQ(CountMisrounded(halves, m_in_range, "m"), 0u);
    const auto want = Download<uint32_t>(y32, size_t{tokens} * hidden);
    const auto got = Download<uint32_t>(y16, want.size());
    size_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += got[i] != want[i];
    EXPECT_EQ(differ, 0u) << "down's outputs from m rounded in place, not by round_f16";
  }
}

// What cannot read X rounded says so, on any device: a product with no dequantization scratch to
// multiply rows rounded to f16 in, and rows rounded in place that are not whole runs of 8.
TEST_F(GpuTest, RoundedMlpRefusesWhatItCannotTake) {
  const uint32_t hidden = 256, tokens = 64;
  const auto w = RandomBlocks(DType::Q8_0, 72, hidden, 14, false);
  Buffer w_buf = UploadWeights(DType::Q8_0, w, 72, hidden);
  Buffer x_buf = Upload(RandomFloats(size_t{tokens} * hidden, 15));
  Buffer y_buf = Poisoned(size_t{4} * tokens * hidden);
  Graph g(device());
  EXPECT_THROW(
      ops::MatMul(
          g, {.w = {&w_buf, 0, DType::Q8_0, 72, hidden}, .x = x_buf, .y = y_buf, .tokens = tokens, .x_rounded = true}),
      Error);
  if (info().fp16_arithmetic) {
    EXPECT_THROW(ops::RoundToF16InPlace(g, x_buf, tokens, 36), Error);
  }
}

// Projections side by side (q|k|v, gate|up): W's outputs land at a column offset inside wider Y
// rows, bias indexed from that offset, X rows wider than W's; nothing else in Y is written.
TEST_F(CoopmatTest, WritesItsColumnsOfWiderRows) {
  const uint32_t rows = 70, cols = 96, tokens = 65, x_stride = 101, y_stride = 200, y_offset = 37;
  const auto w = RandomFloats(rows * cols, 5, 0.05f);
  const auto x = RandomFloats(tokens * x_stride, 6);
  const auto bias = RandomFloats(y_stride, 7);
  Buffer w_buf = Upload(Encode(w, DType::F16));
  Buffer x_buf = Upload(x);
  Buffer bias_buf = Upload(bias);
  Buffer y_buf = Poisoned(tokens * y_stride * 4);
  Graph g(device());
  ops::MatMul(g, {.w = {&w_buf, 0, DType::F16, rows, cols},
                  .x = x_buf,
                  .y = y_buf,
                  .tokens = tokens,
                  .x_stride = x_stride,
                  .y_stride = y_stride,
                  .y_offset = y_offset,
                  .bias = BufferRange(bias_buf),
                  .kernel = ops::MatMulKernel::CoopMat});
  g.Run();
  const auto got = Download<float>(y_buf, tokens * y_stride);
  const auto w_seen = RoundTrip(w, DType::F16);
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t col = 0; col < y_stride; ++col) {
      const float v = got[t * y_stride + col];
      if (col < y_offset || col >= y_offset + rows) {
        ASSERT_TRUE(std::isnan(v)) << "token " << t << " column " << col << " outside W's outputs was written";
        continue;
      }
      const uint32_t r = col - y_offset;
      double sum = bias[col], magnitude = 0;
      for (uint32_t k = 0; k < cols; ++k) {
        sum += static_cast<double>(w_seen[r * cols + k]) * x[t * x_stride + k];
        magnitude += std::abs(static_cast<double>(w_seen[r * cols + k]) * x[t * x_stride + k]);
      }
      ASSERT_NEAR(v, sum, (kHiLoRounding + kAccumulation) * magnitude + 1e-6) << "token " << t << " row " << r;
    }
  }
}

// F16 sums up to kCoopmatUnpromotedCols long, a whole row's or a split's, multiply without
// promotion, as dequantized weights do; longer ones, and BF16 sums of any length, keep it.
TEST_F(CoopmatTest, PromotesOnlyLongExactSums) {
  if (!info().compute_timestamps) GTEST_SKIP() << "no compute timestamps, which name the kernels run";
  // The kernel of the product's (first) dispatch, split along K where `split`.
  const auto kernel_of = [&](DType type, uint32_t rows, uint32_t cols, uint32_t tokens, bool split) {
    Buffer w_buf = UploadWeights(type, Encode(RandomFloats(size_t{rows} * cols, 8, 0.05f), type), rows, cols);
    Buffer x_buf = Upload(RandomFloats(size_t{tokens} * cols, 9));
    Buffer y_buf = Poisoned(size_t{tokens} * rows * 4);
    Buffer split_buf = Poisoned(split ? size_t{4} * kSplitPlanes * tokens * rows : 4);
    Graph g(device(), /*profile=*/true);
    ops::MatMulArgs args{.w = {&w_buf, 0, type, rows, cols},
                         .x = x_buf,
                         .y = y_buf,
                         .tokens = tokens,
                         .kernel = ops::MatMulKernel::CoopMat};
    if (split) args.split_scratch = BufferRange(split_buf);
    ops::MatMul(g, args);
    g.Run();
    const std::vector<DispatchTiming> timings = g.Timings();
    return timings.empty() ? std::string("no dispatch") : std::string(timings[0].kernel);
  };
  // Too few tiles for wide ones (ops::ChooseCoopmatTile).
  EXPECT_EQ(kernel_of(DType::F16, 256, 896, 64, false), "matmul_coopmat_short_narrow_f16");
  EXPECT_EQ(kernel_of(DType::F16, 256, ops::kCoopmatUnpromotedCols, 64, false), "matmul_coopmat_short_narrow_f16");
  EXPECT_EQ(kernel_of(DType::F16, 256, ops::kCoopmatUnpromotedCols + 32, 64, false), "matmul_coopmat_narrow_f16");
  EXPECT_EQ(kernel_of(DType::BF16, 256, 896, 64, false), "matmul_coopmat_narrow_bf16");
  // 0.5B's down at 512 tokens: 2 narrow splits of 76 steps (2 432 columns) each.
  EXPECT_EQ(kernel_of(DType::F16, 896, 4864, 512, true), "matmul_coopmat_short_narrow_f16");
  EXPECT_EQ(kernel_of(DType::F16, 896, 4864, 512, false), "matmul_coopmat_narrow_f16");
  // 7B's down: 4 wide splits of 148 steps (4 736 columns).
  EXPECT_EQ(kernel_of(DType::F16, 3584, 18944, 512, true), "matmul_coopmat_f16");
}

// Rows dequantized to f16 take tall tiles (128 tokens) where the split planner's estimate of them
// beats the other tile's (0.5B's gate|up rows at 512 and 256 tokens, 7B's o and down at 512), and
// not at 64 tokens, where the narrow tiles' 152 workgroups run in one wave as the tall tiles' 76 do.
TEST_F(CoopmatTest, TallTilesWhereTheyAreFaster) {
  if (!info().compute_timestamps) GTEST_SKIP() << "no compute timestamps, which name the kernels run";
  // The kernels of a Q8_0 product dequantized first, split along K where `split` allows.
  const auto kernel_of = [&](uint32_t rows, uint32_t cols, uint32_t tokens, bool split = false) {
    Buffer w_buf = UploadWeights(DType::Q8_0, RandomBlocks(DType::Q8_0, rows, cols, 5, false), rows, cols);
    Buffer x_buf = Upload(RandomFloats(size_t{tokens} * cols, 9));
    Buffer y_buf = Poisoned(size_t{tokens} * rows * 4);
    Buffer dequant_buf = Poisoned(size_t{2} * rows * cols + ops::RoundedXBytes(tokens, cols));
    Buffer split_buf = Poisoned(split ? size_t{4} * kSplitPlanes * tokens * rows : 4);
    Graph g(device(), /*profile=*/true);
    ops::MatMul(g, {.w = {&w_buf, 0, DType::Q8_0, rows, cols},
                    .x = x_buf,
                    .y = y_buf,
                    .tokens = tokens,
                    .kernel = ops::MatMulKernel::CoopMat,
                    .split_scratch = split ? std::optional(BufferRange(split_buf)) : std::nullopt,
                    .dequant_scratch = BufferRange(dequant_buf)});
    g.Run();
    std::set<std::string> kernels;
    for (const DispatchTiming& t : g.Timings()) kernels.insert(std::string(t.kernel));
    return kernels;
  };
  EXPECT_EQ(kernel_of(2 * 4864, 896, 512),
            (std::set<std::string>{"dequantize_f16_q8_0", "round_f16", "matmul_coopmat_rounded_tall_f16"}));
  EXPECT_EQ(kernel_of(2 * 4864, 896, 256),
            (std::set<std::string>{"dequantize_f16_q8_0", "round_f16", "matmul_coopmat_rounded_tall_f16"}));
  EXPECT_EQ(kernel_of(2 * 4864, 896, 64),
            (std::set<std::string>{"dequantize_f16_q8_0", "round_f16", "matmul_coopmat_rounded_narrow_f16"}));
  // 7B's o at 512 tokens: 28 x 4 tall tiles, one wave unsplit, where wide ones took two.
  EXPECT_EQ(kernel_of(3584, 3584, 512, true),
            (std::set<std::string>{"dequantize_f16_q8_0", "round_f16", "matmul_coopmat_rounded_tall_f16"}));
  // 7B's down at 512 tokens: 28 x 4 tall tiles, split along K into whole waves.
  EXPECT_EQ(kernel_of(3584, 18944, 512, true),
            (std::set<std::string>{"dequantize_f16_q8_0", "round_f16", "matmul_coopmat_rounded_tall_f16",
                                   "matmul_split_sum"}));
}

// --- dequantization to f16 ------------------------------------------------------------------

// dequantize_f16 on its own (it runs on every device with f16 arithmetic, though only prefill on
// matrix units records it): every value is the host dequantizer's, rounded to the nearest f16.
// Only where that is not one value may the other neighbour pass: a tie (the kernel rounds ties away
// from zero, the host to even) and an f16 subnormal (Vulkan lets that conversion round toward zero).
class DequantizeF16Test : public GpuTest, public ::testing::WithParamInterface<DType> {};

TEST_P(DequantizeF16Test, RoundsTheHostDequantizersValues) {
  const DType type = GetParam();
  if (!info().fp16_arithmetic) GTEST_SKIP() << info().name << " has no 16-bit float arithmetic";
  const uint32_t block = BlockElements(type);
  // One unit's row, a few rows of two blocks, and Qwen2-0.5B's q|k|v (1.5B's where 896 is not
  // whole 256-blocks).
  for (const auto& [rows, cols] : {std::pair{1u, block == 1 ? 8u : block}, std::pair{37u, 2 * std::max(block, 8u)},
                                   std::pair{1152u, block <= 32 ? 896u : 1536u}}) {
    const std::vector<std::byte> w = IsQuantized(type) ? RandomBlocks(type, rows, cols, rows + cols, false)
                                                       : Encode(RandomFloats(size_t{rows} * cols, rows, 0.05f), type);
    Buffer w_buf = UploadWeights(type, w, rows, cols);
    Buffer y_buf = Poisoned(size_t{2} * rows * cols);
    Graph g(device());
    ops::DequantizeToF16(g, {&w_buf, 0, type, rows, cols}, y_buf);
    g.Run();
    const std::vector<float> values = DequantizeRows(type, w, rows, cols);
    EXPECT_EQ(CountMisrounded(Download<uint16_t>(y_buf, values.size()), values,
                              fmt::format("{} {}x{}", DTypeName(type), rows, cols)),
              0u);
  }
}

// A SwiGLU chunk's gate rows and then its up rows, further on in the same buffer, in one dispatch:
// Y is each part's rows rounded as above, the rows between them skipped.
TEST_P(DequantizeF16Test, TakesTwoPartsOfOneBufferInOneDispatch) {
  const DType type = GetParam();
  if (!info().fp16_arithmetic) GTEST_SKIP() << info().name << " has no 16-bit float arithmetic";
  const uint32_t cols = 2 * std::max(BlockElements(type), 8u), part = 37, gap = 5, rows = 2 * part + gap;
  const std::vector<std::byte> w = IsQuantized(type) ? RandomBlocks(type, rows, cols, rows, false)
                                                     : Encode(RandomFloats(size_t{rows} * cols, rows, 0.05f), type);
  Buffer w_buf = UploadWeights(type, w, rows, cols);
  Buffer y_buf = Poisoned(size_t{4} * part * cols);
  Graph g(device(), /*profile=*/true);
  ops::DequantizeToF16(g, {&w_buf, 0, type, part, cols}, y_buf, "two_parts", RowBytes(type, cols) * (part + gap));
  g.Run();
  if (g.profiled()) {
    EXPECT_EQ(g.Timings().size(), 1u);
  }
  // W's rows [0, part) and [part + gap, rows).
  std::vector<float> expected = DequantizeRows(type, w, rows, cols);
  expected.erase(expected.begin() + size_t{part} * cols, expected.begin() + size_t{part + gap} * cols);
  EXPECT_EQ(CountMisrounded(Download<uint16_t>(y_buf, expected.size()), expected,
                            fmt::format("{} two parts of {}x{}", DTypeName(type), part, cols)),
            0u);
}

INSTANTIATE_TEST_SUITE_P(Types, DequantizeF16Test,
                         ::testing::Values(DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

TEST_F(GpuTest, DequantizeF16RefusesWhatItCannotTake) {
  Buffer w_buf = Poisoned(4096);
  Buffer y_buf = Poisoned(4096);
  Graph g(device());
  EXPECT_THROW(ops::DequantizeToF16(g, {&w_buf, 0, DType::F16, 4, 64}, y_buf), Error);   // exact in f16 already
  EXPECT_THROW(ops::DequantizeToF16(g, {&w_buf, 0, DType::F32, 4, 12}, y_buf), Error);   // not whole units
  EXPECT_THROW(ops::DequantizeToF16(g, {&w_buf, 0, DType::F32, 64, 64}, y_buf), Error);  // Y too small
}

// --- split along K -------------------------------------------------------------------------

// matmul_split_sum on its own (it runs on every device, though only the coopmat GEMM records it):
// the planes summed in order with the bias and residual, at a column offset of wider Y rows, each
// output exactly the f32 sum the reference adds in the same order; nothing else of Y written.
TEST_F(GpuTest, SplitSumAddsThePlanesInOrder) {
  for (const auto& [rows, tokens, splits, flags] :
       {std::tuple{1u, 1u, 2u, 0u}, std::tuple{17u, 3u, 3u, QVK_FLAG_BIAS},
        std::tuple{896u, 255u, 5u, QVK_FLAG_RESIDUAL}, std::tuple{3584u, 64u, 7u, QVK_FLAG_BIAS | QVK_FLAG_RESIDUAL}}) {
    const uint32_t y_offset = 5, y_stride = rows + 9;
    const auto planes = RandomFloats(size_t{splits} * tokens * rows, 11);
    const auto bias = RandomFloats(y_offset + rows, 12);
    const auto residual = RandomFloats(size_t{tokens} * y_stride, 13);
    Buffer planes_buf = Upload(planes), bias_buf = Upload(bias);
    Buffer y_buf = (flags & QVK_FLAG_RESIDUAL) != 0 ? Upload(residual) : Poisoned(residual.size() * 4);
    Graph g(device());
    const uint64_t outputs = uint64_t{tokens} * rows;
    g.Dispatch(KernelId::MatMulSplitSum, {planes_buf, y_buf, bias_buf, y_buf},
               push::MatMulSplitSumPush{rows, tokens, splits, y_offset, y_stride, flags},
               GridFor((outputs + Spec(KernelId::MatMulSplitSum).local_size_x - 1) /
                       Spec(KernelId::MatMulSplitSum).local_size_x));
    g.Run();
    const auto got = Download<float>(y_buf, residual.size());
    for (uint32_t t = 0; t < tokens; ++t) {
      for (uint32_t col = 0; col < y_stride; ++col) {
        const float v = got[t * y_stride + col];
        if (col < y_offset || col >= y_offset + rows) {
          if ((flags & QVK_FLAG_RESIDUAL) != 0) {
            ASSERT_EQ(v, residual[t * y_stride + col]) << "column " << col << " outside the rows was written";
          } else {
            ASSERT_TRUE(std::isnan(v)) << "column " << col << " outside the rows was written";
          }
          continue;
        }
        const uint32_t r = col - y_offset;
        float sum = 0;
        for (uint32_t s = 0; s < splits; ++s) sum += planes[(size_t{s} * tokens + t) * rows + r];
        if ((flags & QVK_FLAG_BIAS) != 0) sum += bias[col];
        if ((flags & QVK_FLAG_RESIDUAL) != 0) sum += residual[t * y_stride + col];
        ASSERT_EQ(v, sum) << rows << " rows, " << splits << " splits: token " << t << " row " << r;
      }
    }
  }
}

// Splits into whole waves of workgroups (132 wide tiles at once, 264 narrow ones), each split at
// least 8 steps of 32 columns, no more planes than the scratch holds; none where the tiles alone
// take least time.
TEST(CoopmatKernelChoice, SplitsAlongKIntoWholeWaves) {
  using enum ops::CoopmatTile;
  const VkDeviceSize plenty = VkDeviceSize{1} << 30;
  // 1.5B's down at 512 tokens (12 x 8 wide tiles, 280 steps): 4 splits of 70 steps, 384
  // workgroups in 3 waves, where 6 splits (576 workgroups of 47 steps) would take 5.
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(96, 8960, 512, 1536, plenty, Wide), 70u);
  // 7B's down (28 x 8 tiles, 592 steps): 4 splits, 896 workgroups in 7 waves of 148 steps.
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(224, 18944, 512, 3584, plenty, Wide), 148u);
  // A 1 280-row chunk of 7B's down (10 x 8 tiles): 8 splits, 640 workgroups in 5 waves of 74 steps.
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(80, 18944, 512, 1280, plenty, Wide), 74u);
  // Narrow tiles, 0.5B's o and down (14 x 8): 2 splits, 224 workgroups in one wave.
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(112, 896, 512, 896, plenty, Narrow), 14u);
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(112, 4864, 512, 896, plenty, Narrow), 76u);
  // Tiles that fill their waves unsplit stay so: 1.5B's q|k|v (32 x 8 narrow tiles, one wave) and
  // a 33 x 8 chunk of 7B's gate|up (two waves); and an inner size under two splits of 8 steps.
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(256, 1536, 512, 2048, plenty, Narrow), 0u);
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(264, 3584, 512, 4224, plenty, Wide), 0u);
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(112, 480, 512, 896, plenty, Narrow), 0u);
  // The scratch bounds the planes: with room for one, no split; with room for 3, 1.5B's down runs
  // unsplit (one wave of 280 steps, where 3 splits would take 3 waves of 94).
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(112, 4864, 512, 896, VkDeviceSize{4} * 512 * 896, Narrow), 0u);
  EXPECT_EQ(ops::PlanCoopmatSplitSteps(96, 8960, 512, 1536, VkDeviceSize{12} * 512 * 1536, Wide), 0u);
}

// --- kernel and tile choice ----------------------------------------------------------------

// A dequantized product's row chunks need be no longer than the fewest rows whose wide tiles
// alone fill the GPU: 33 row tiles of 8 token tiles at 512 tokens; one row tile fewer would not.
TEST(CoopmatKernelChoice, DequantizedChunksFillTheGpuWithWideTiles) {
  EXPECT_EQ(ops::CoopmatFillRows(512), 4224u);
  EXPECT_EQ(ops::ChooseCoopmatTile(ops::CoopmatFillRows(512), 512), ops::CoopmatTile::Wide);
  EXPECT_EQ(ops::ChooseCoopmatTile(ops::CoopmatFillRows(512) - 128, 512), ops::CoopmatTile::Narrow);
  for (uint32_t tokens : {5u, 64u, 65u, 300u, 4096u}) {
    EXPECT_EQ(ops::ChooseCoopmatTile(ops::CoopmatFillRows(tokens), tokens), ops::CoopmatTile::Wide) << tokens;
    EXPECT_EQ(ops::CoopmatFillRows(tokens) % 128, 0u) << tokens;
  }
}

// A dequantized product's chunks: as many whole waves of wide tiles as the scratch holds, the rest
// last; equal chunks where no whole wave fits; one where all fit.
TEST(CoopmatKernelChoice, DequantizedChunksInWholeWaves) {
  // gate|up at 512 tokens (8 token tiles): 33 row tiles of 64 gate and 64 up rows make 264
  // workgroups, two waves. 1.5B: 4 224 + 4 224 + 512 of 8 960 gate rows, where 4 480 fit; 7B: four
  // of 4 224 and 2 048, where 4 672 fit; 0.5B: 2 112 + 2 112 + 640, where 2 432 fit.
  EXPECT_EQ(ops::DequantChunkRows(8960, 4480, true, 512), 4224u);
  EXPECT_EQ(ops::DequantChunkRows(18944, 4672, true, 512), 4224u);
  EXPECT_EQ(ops::DequantChunkRows(4864, 2432, true, 512), 2112u);
  // 300 tokens (5 token tiles): whole waves take 132 row tiles, more than fit: two equal chunks.
  EXPECT_EQ(ops::DequantChunkRows(8960, 4480, true, 300), 4480u);
  // 7B's down (128-row tiles), 1 664 rows fitting: no whole waves, three chunks of 1 280.
  EXPECT_EQ(ops::DequantChunkRows(3584, 1664, false, 512), 1280u);
  // All rows fit: one chunk.
  EXPECT_EQ(ops::DequantChunkRows(1536, 1536, false, 512), 1536u);
  EXPECT_EQ(ops::DequantChunkRows(1000, 1024, false, 512), 1024u);
}

TEST(CoopmatKernelChoice, MatvecForFewTokensThenTheBestGemmTheDeviceHas) {
  DeviceInfo without;
  DeviceInfo with;
  with.coopmat_f16 = true;
  for (uint32_t tokens : {1u, 4u}) {
    EXPECT_EQ(ops::ChooseMatMulKernel(without, tokens), ops::MatMulKernel::MatVec) << tokens;
    EXPECT_EQ(ops::ChooseMatMulKernel(with, tokens), ops::MatMulKernel::MatVec) << tokens;
  }
  for (uint32_t tokens : {5u, 17u, 256u, 4096u}) {
    EXPECT_EQ(ops::ChooseMatMulKernel(without, tokens), ops::MatMulKernel::Tiled) << tokens;
    EXPECT_EQ(ops::ChooseMatMulKernel(with, tokens), ops::MatMulKernel::CoopMat) << tokens;
  }
}

// Wide tiles where they alone make two waves of workgroups on a 132-SM GPU, narrow ones otherwise:
// at 512 tokens, gate|up is wide and the other Qwen2 projections narrow up to 1.5B; 7B's q|k|v
// is wide and its gate|up too with a few tokens.
TEST(CoopmatKernelChoice, WideTilesWhereTheyFillTheGpu) {
  using enum ops::CoopmatTile;
  struct Product {
    uint32_t rows, tokens;
    ops::CoopmatTile tile;
  };
  const Product products[] = {
      {2 * 4864, 512, Wide},  {896 + 2 * 128, 512, Narrow},  {896, 512, Narrow},   // 0.5B gate|up, q|k|v, o and down
      {2 * 8960, 512, Wide},  {1536 + 2 * 256, 512, Narrow}, {1536, 512, Narrow},  // 1.5B
      {2 * 18944, 512, Wide}, {3584 + 2 * 512, 512, Wide},   {3584, 512, Narrow},  // 7B
      {2 * 18944, 5, Wide},   {2 * 4864, 64, Narrow},                              // few tokens
      {33 * 128, 512, Wide},  {32 * 128, 512, Narrow},       {33 * 128 - 1, 512, Wide},  // 264 workgroups
  };
  for (const Product& p : products) {
    EXPECT_EQ(ops::ChooseCoopmatTile(p.rows, p.tokens), p.tile) << p.rows << " rows, " << p.tokens << " tokens";
  }
}

// A product that may split along K takes wide tiles where splits toward 528 workgroups each stay
// at least 1 024 columns long (32 steps): at 512 tokens 1.5B's down (6 of 47), 7B's o (3 of 37)
// and a 1 280-row chunk of 7B's down; not 1.5B's q|k|v and o (splits of 10 and 8 steps) or 0.5B's
// down (10 of 15), which keep narrow tiles.
TEST(CoopmatKernelChoice, WideTilesWhereLongSplitsFillTheGpu) {
  using enum ops::CoopmatTile;
  struct Product {
    uint32_t rows, cols;
    ops::CoopmatTile tile;
  };
  const Product products[] = {
      {1536, 8960, Wide},
      {3584, 3584, Wide},
      {1280, 18944, Wide},  // 1.5B down, 7B o, 7B down chunk
      {1536 + 2 * 256, 1536, Narrow},
      {1536, 1536, Narrow},
      {896, 4864, Narrow},  // 1.5B q|k|v, o; 0.5B down
      {896, 896, Narrow},
  };
  for (const Product& p : products) {
    EXPECT_EQ(ops::ChooseCoopmatTile(p.rows, 512, p.cols), p.tile) << p.rows << " x " << p.cols;
    EXPECT_EQ(ops::ChooseCoopmatTile(p.rows, 512), Narrow) << p.rows << " x " << p.cols << " unsplit";
  }
}

// A run state's splits (CoopmatSplitBytes) hold every plane PlanCoopmat plans where the room is
// unbounded, and no more: one plane less and the product splits fewer ways. At 512 tokens: 0.5B's
// o and down, 1.5B's down and 7B's down, stored or rounded to f16 (whose tall tiles split their own
// way); gate|up fills the GPU unsplit.
TEST(CoopmatKernelChoice, SplitBytesHoldEveryPlannedPlane) {
  struct Product {
    uint32_t rows, cols;
    bool rounded;
  };
  const uint32_t tokens = 512;
  const Product products[] = {{896, 896, false},    {896, 4864, false},  {1536, 8960, false},
                              {3584, 18944, false}, {3584, 18944, true}, {1536, 8960, true}};
  for (const Product& p : products) {
    const uint64_t bytes = ops::CoopmatSplitBytes(p.rows, p.cols, tokens, p.rounded);
    const uint64_t plane = uint64_t{4} * tokens * p.rows;
    ASSERT_GE(bytes, 2 * plane) << p.rows << " x " << p.cols;
    ASSERT_EQ(bytes % plane, 0u);
    const auto plan_in = [&](VkDeviceSize room) {
      return ops::PlanCoopmat(
          {.rows = p.rows, .cols = p.cols, .tokens = tokens, .rounded = p.rounded, .split_room = room});
    };
    const ops::CoopmatPlan unbounded = plan_in(~VkDeviceSize{0}), held = plan_in(bytes), fewer = plan_in(bytes - plane);
    EXPECT_EQ(held.tile, unbounded.tile) << p.rows << " x " << p.cols;
    EXPECT_EQ(held.split_steps, unbounded.split_steps) << p.rows << " x " << p.cols;
    EXPECT_EQ(uint64_t{4} * tokens * p.rows * ((p.cols / 32 + held.split_steps - 1) / held.split_steps), bytes);
    EXPECT_TRUE(fewer.tile != unbounded.tile || fewer.split_steps == 0 || fewer.split_steps > unbounded.split_steps)
        << p.rows << " x " << p.cols << ": another tile, fewer and longer splits, or none";
  }
  EXPECT_EQ(ops::CoopmatSplitBytes(2 * 4864, 896, tokens, false), 0u);
}

// Rows rounded to f16 take tall tiles (128 tokens by 128 features) where the planner's estimate
// of them is less than ChooseCoopmatTile's tile's; the products TallTilesWhereTheyAreFaster runs
// on matrix units, planned here on any machine.
TEST(CoopmatKernelChoice, TallTilesWhereTheEstimateIsLess) {
  using enum ops::CoopmatTile;
  const auto plan = [](uint32_t rows, uint32_t cols, uint32_t tokens, bool rounded, bool split) {
    return ops::PlanCoopmat({.rows = rows,
                             .cols = cols,
                             .tokens = tokens,
                             .rounded = rounded,
                             .split_room = split ? std::optional(VkDeviceSize{1} << 30) : std::nullopt});
  };
  // 0.5B's gate|up rows at 512 and 256 tokens; at 64 the narrow tiles' 152 workgroups run in one
  // wave as the tall tiles' 76 do.
  EXPECT_EQ(plan(2 * 4864, 896, 512, true, false).tile, Tall);
  EXPECT_EQ(plan(2 * 4864, 896, 256, true, false).tile, Tall);
  EXPECT_EQ(plan(2 * 4864, 896, 64, true, false).tile, Narrow);
  // 7B's down at 512 tokens: 28 x 4 tall tiles, split along K into whole waves.
  const ops::CoopmatPlan down = plan(3584, 18944, 512, true, true);
  EXPECT_EQ(down.tile, Tall);
  EXPECT_EQ(down.feature_tiles, 28u);
  EXPECT_EQ(down.token_tiles, 4u);
  EXPECT_GT(down.split_steps, 0u);
  // Stored rows never take them: the tall kernels multiply f16 rows only.
  EXPECT_EQ(plan(3584, 18944, 512, false, true).tile, Wide);
  EXPECT_EQ(plan(2 * 4864, 896, 512, false, false).tile, Wide);
  EXPECT_THROW(ops::PlanCoopmat({.rows = 3584, .cols = 3584, .tokens = 512, .tile = Tall}), Error);
  // A SwiGLU's tiles count its outputs (half the rows) and never split.
  const ops::CoopmatPlan swiglu = ops::PlanCoopmat(
      {.rows = 2 * 4864, .cols = 896, .tokens = 512, .swiglu = true, .rounded = true, .split_room = 1u << 30});
  EXPECT_EQ(swiglu.feature_tiles, 4864u / 64);
  EXPECT_EQ(swiglu.split_steps, 0u);
}

// The device the tests run on: without cooperative matrices (lavapipe) prefill takes the tiled
// kernel and the coopmat pipeline is never made, asking for it is an error that says why.
TEST_F(GpuTest, CoopmatOnlyWhereTheDeviceHasIt) {
  EXPECT_EQ(ops::ChooseMatMulKernel(info(), 256),
            info().coopmat_f16 ? ops::MatMulKernel::CoopMat : ops::MatMulKernel::Tiled);
  if (info().coopmat_f16) return;
  EXPECT_FALSE(info().coopmat_f16_problem.empty());
  Buffer w = Poisoned(64 * 64 * 2), x = Poisoned(64 * 64 * 4), y = Poisoned(64 * 64 * 4);
  Graph g(device());
  const std::string message = ErrorOf([&] {
    ops::MatMul(g,
                {.w = {&w, 0, DType::F16, 64, 64}, .x = x, .y = y, .tokens = 64, .kernel = ops::MatMulKernel::CoopMat});
  });
  ExpectMentions(message, {"cooperative-matrix", info().coopmat_f16_problem});
  EXPECT_EQ(g.dispatch_count(), 0u);
}

}  // namespace
}  // namespace qvk::test
