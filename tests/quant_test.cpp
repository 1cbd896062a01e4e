// ggml block formats: the host dequantizers against hand-made blocks (the layouts, independent
// of the shaders), the reference quantizers against known answers and error bounds, and the
// quantized matvec / matmul / embedding kernels against DequantizeRows + the float reference.
//
// Sections: helpers / layouts / quantizers / GPU matrix kernels / GPU embedding
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "base/numeric.h"
#include "model/quantize.h"
#include "shaders/push_constants.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

// --- helpers -------------------------------------------------------------------------------

constexpr DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                 DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<std::byte> Bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

void Append(std::vector<std::byte>& out, std::initializer_list<int> values) {
  const auto more = Bytes(values);
  out.insert(out.end(), more.begin(), more.end());
}

uint8_t ByteAt(const std::vector<std::byte>& b, size_t i) {
  return std::to_integer<uint8_t>(b[i]);
}
float HalfAt(const std::vector<std::byte>& b, size_t i) {
  return HalfToFloat(static_cast<uint16_t>(ByteAt(b, i) | ByteAt(b, i + 1) << 8));
}

void ExpectAllEqual(const std::vector<float>& got, const std::vector<float>& expected, const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 10; ++i) {
    if (!(got[i] == expected[i] || (std::isnan(got[i]) && std::isnan(expected[i])))) {
      ADD_FAILURE() << what << " element " << i << ": got " << got[i] << ", expected " << expected[i];
      ++bad;
    }
  }
}

// --- layouts: DequantizeRows against blocks written by hand ----------------------------------

TEST(QuantLayout, BlockSizesAreGgmls) {
  const std::pair<DType, std::pair<uint32_t, uint32_t>> expected[] = {
      {DType::Q8_0, {32, 34}}, {DType::Q4_0, {32, 18}},   {DType::Q4_1, {32, 20}},   {DType::Q5_0, {32, 22}},
      {DType::Q5_1, {32, 24}}, {DType::Q4_K, {256, 144}}, {DType::Q5_K, {256, 176}}, {DType::Q6_K, {256, 210}},
      {DType::F32, {1, 4}},    {DType::F16, {1, 2}},      {DType::BF16, {1, 2}}};
  for (const auto& [type, size] : expected) {
    EXPECT_EQ(BlockElements(type), size.first) << DTypeName(type);
    EXPECT_EQ(BlockBytes(type), size.second) << DTypeName(type);
    EXPECT_EQ(RowBytes(type, 3 * size.first), 3u * size.second) << DTypeName(type);
  }
  EXPECT_EQ(IsQuantized(DType::Q8_0), true);
  EXPECT_EQ(IsQuantized(DType::BF16), false);
  EXPECT_STREQ(DTypeName(DType::Q4_K), "Q4_K");
  // Qwen2-0.5B's hidden size is not a whole number of K-quant blocks.
  EXPECT_THROW(RowBytes(DType::Q4_K, 896), Error);
  EXPECT_THROW(RowBytes(DType::Q8_0, 33), Error);
}

TEST(QuantLayout, Q8_0IsAnF16ScaleAndSignedBytes) {
  // 8 blocks: scale 0.5 (f16 0x3800) except -2 (0xc000) in block 1; quants -128..127 in order.
  std::vector<std::byte> blocks;
  for (int b = 0; b < 8; ++b) {
    Append(blocks, {0x00, b == 1 ? 0xc0 : 0x38});
    for (int j = 0; j < 32; ++j) Append(blocks, {(32 * b + j - 128) & 0xff});
  }
  const auto y = DequantizeRows(DType::Q8_0, blocks, 1, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], (i - 128) * (i / 32 == 1 ? -2.0f : 0.5f)) << i;
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[32], 192.0f);  // -96 * -2
  EXPECT_EQ(y[255], 63.5f);
}

// The 32-element types share one quant layout: element j < 16 is the low nibble of byte j,
// element j + 16 its high nibble; Q5 types add bit j of a little-endian u32 as the fifth bit.
TEST(QuantLayout, Q4_0AndQ4_1NibblesSplitTheBlockInHalves) {
  std::vector<std::byte> q4_0 = Bytes({0x00, 0x40});              // d = 2
  std::vector<std::byte> q4_1 = Bytes({0x00, 0x34, 0x00, 0xbe});  // d = 0.25, m = -1.5
  for (int j = 0; j < 16; ++j) {
    Append(q4_0, {j | (15 - j) << 4});
    Append(q4_1, {j | (15 - j) << 4});
  }
  const auto y0 = DequantizeRows(DType::Q4_0, q4_0, 1, 32);
  const auto y1 = DequantizeRows(DType::Q4_1, q4_1, 1, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y0[j], (j - 8) * 2.0f) << j;
    EXPECT_EQ(y0[j + 16], (7 - j) * 2.0f) << j;
    EXPECT_EQ(y1[j], j * 0.25f - 1.5f) << j;
    EXPECT_EQ(y1[j + 16], (15 - j) * 0.25f - 1.5f) << j;
  }
  EXPECT_EQ(y0[0], -16.0f);
  EXPECT_EQ(y0[31], -16.0f);
  EXPECT_EQ(y1[16], 2.25f);
}

TEST(QuantLayout, Q5_0AndQ5_1TakeTheFifthBitFromALittleEndianWord) {
  // High bits 0, 17 and 31 set: bytes 01 00 02 80.
  const auto qh = {0x01, 0x00, 0x02, 0x80};
  std::vector<std::byte> q5_0 = Bytes({0x00, 0x3c});              // d = 1
  std::vector<std::byte> q5_1 = Bytes({0x00, 0x38, 0x00, 0x49});  // d = 0.5, m = 10
  Append(q5_0, qh);
  Append(q5_1, qh);
  for (int j = 0; j < 16; ++j) {
    Append(q5_0, {j | (15 - j) << 4});
    Append(q5_1, {j | (15 - j) << 4});
  }
  const auto y0 = DequantizeRows(DType::Q5_0, q5_0, 1, 32);
  const auto y1 = DequantizeRows(DType::Q5_1, q5_1, 1, 32);
  for (int j = 0; j < 32; ++j) {
    const int high = (j == 0 || j == 17 || j == 31) ? 16 : 0;
    const int low = j < 16 ? j : 31 - j;
    EXPECT_EQ(y0[j], static_cast<float>(low + high - 16)) << j;
    EXPECT_EQ(y1[j], (low + high) * 0.5f + 10.0f) << j;
  }
  EXPECT_EQ(y0[0], 0.0f);
  EXPECT_EQ(y0[1], -15.0f);
  EXPECT_EQ(y0[16], -1.0f);
  EXPECT_EQ(y0[17], 14.0f);
  EXPECT_EQ(y1[31], 18.0f);
}

// Sub-block scales {1, 2, 3, 4, 33, 40, 50, 63} and mins {0, 5, 10, 15, 20, 25, 30, 63}, packed
// by hand: bytes 0-3 and 4-7 hold sub-blocks 0-3 in their low 6 bits and the top 2 bits of
// sub-blocks 4-7 in their top bits; bytes 8-11 hold the low 4 bits of sub-blocks 4-7.
constexpr int kScales[8] = {1, 2, 3, 4, 33, 40, 50, 63};
constexpr int kMins[8] = {0, 5, 10, 15, 20, 25, 30, 63};
const auto kPackedScales = {0x81, 0x82, 0xc3, 0xc4, 0x40, 0x45, 0x4a, 0xcf, 0x41, 0x98, 0xe2, 0xff};

// Each 64 elements share 32 quant bytes: low nibbles first, then high nibbles.
TEST(QuantLayout, Q4_KPacksSixBitScalesAndMins) {
  std::vector<std::byte> block = Bytes({0x00, 0x38, 0x00, 0x34});  // d = 0.5, dmin = 0.25
  Append(block, kPackedScales);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) Append(block, {(l % 16) | (15 - l % 16) << 4});
  }
  const auto y = DequantizeRows(DType::Q4_K, block, 1, 256);
  for (int j = 0; j < 256; ++j) {
    const int s = j / 32, l = j % 32;
    const int q = s % 2 == 0 ? l % 16 : 15 - l % 16;
    EXPECT_EQ(y[j], 0.5f * kScales[s] * q - 0.25f * kMins[s]) << j;
  }
  EXPECT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[32], 13.75f);    // 0.5 * 2 * 15 - 0.25 * 5
  EXPECT_EQ(y[160], 293.75f);  // 0.5 * 40 * 15 - 0.25 * 25
  EXPECT_EQ(y[197], 117.5f);   // 0.5 * 50 * 5 - 0.25 * 30
  EXPECT_EQ(y[255], -15.75f);  // 0 - 0.25 * 63
}

// Q5_K: the fifth bit of element l of sub-block s is bit s of high byte l.
TEST(QuantLayout, Q5_KAddsHighBitsPerSubBlock) {
  std::vector<std::byte> block = Bytes({0x00, 0x38, 0x00, 0x34});
  Append(block, kPackedScales);
  for (int l = 0; l < 32; ++l) Append(block, {(l * 37) & 0xff});
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) Append(block, {(l % 16) | (15 - l % 16) << 4});
  }
  const auto y = DequantizeRows(DType::Q5_K, block, 1, 256);
  for (int j = 0; j < 256; ++j) {
    const int s = j / 32, l = j % 32;
    const int q = (s % 2 == 0 ? l % 16 : 15 - l % 16) + (((l * 37) & 0xff) >> s & 1) * 16;
    EXPECT_EQ(y[j], 0.5f * kScales[s] * q - 0.25f * kMins[s]) << j;
  }
  EXPECT_EQ(y[33], 12.75f);    // high byte 1 = 0x25, bit 1 clear: 0.5 * 2 * 14 - 1.25
  EXPECT_EQ(y[66], 0.5f);      // high byte 2 = 0x4a, bit 2 clear: 0.5 * 3 * 2 - 2.5
  EXPECT_EQ(y[133], 341.5f);   // high byte 5 = 0xb9, bit 4 set: 0.5 * 33 * 21 - 5
  EXPECT_EQ(y[227], 362.25f);  // high byte 3 = 0x6f, bit 7 clear: 0.5 * 63 * 12 - 15.75
}

// Q6_K: 128 low-nibble bytes, 64 bytes of 2-bit high parts, int8 scales, and d last. Quarter r
// of each 128 elements takes nibble r / 2 of low byte 32 * (r % 2) + l and bits 2r, 2r + 1 of
// high byte l; element j uses scale j / 16.
TEST(QuantLayout, Q6_KSplitsSixBitsAndEndsWithTheScale) {
  std::vector<std::byte> block;
  for (int i = 0; i < 128; ++i) Append(block, {i});
  for (int i = 0; i < 64; ++i) Append(block, {(i * 29) & 0xff});
  for (int i = 0; i < 16; ++i) Append(block, {(i - 8) & 0xff});
  Append(block, {0x00, 0x38});  // d = 0.5
  const auto y = DequantizeRows(DType::Q6_K, block, 1, 256);
  for (int j = 0; j < 256; ++j) {
    const int n = j / 128, r = j % 128 / 32, l = j % 32;
    const int low = ((64 * n + 32 * (r % 2) + l) >> (4 * (r / 2))) & 15;
    const int high = (((32 * n + l) * 29 & 0xff) >> (2 * r)) & 3;
    EXPECT_EQ(y[j], 0.5f * (j / 16 - 8) * ((low | high << 4) - 32)) << j;
  }
  EXPECT_EQ(y[0], 128.0f);    // scale -8, q -32
  EXPECT_EQ(y[100], 14.0f);   // low 2 (byte 36's high nibble), high 1: scale -2, q -14
  EXPECT_EQ(y[170], -22.0f);  // low 10, high 0: scale 2, q -22
  EXPECT_EQ(y[255], -87.5f);  // scale 7, q -25
}

TEST(QuantLayout, FloatTypesAndSizeChecks) {
  const auto f16 = Bytes({0x00, 0x3c, 0x00, 0xc0});  // 1, -2
  EXPECT_EQ(DequantizeRows(DType::F16, f16, 1, 2), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(DequantizeRows(DType::BF16, Bytes({0x80, 0x3f, 0x00, 0xc0}), 2, 1), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(DequantizeRows(DType::F32, Bytes({0, 0, 0x80, 0x3f}), 1, 1), (std::vector<float>{1.0f}));
  EXPECT_THROW(DequantizeRows(DType::Q8_0, std::vector<std::byte>(33), 1, 32), Error);
  EXPECT_THROW(DequantizeRows(DType::Q8_0, std::vector<std::byte>(68), 1, 32), Error);
  EXPECT_THROW(DequantizeRows(DType::Q6_K, std::vector<std::byte>(210), 1, 128), Error);
  EXPECT_THROW(QuantizeRows(DType::Q8_0, std::vector<float>(31), 1, 32), Error);
  EXPECT_THROW(QuantizeRows(DType::Q4_K, std::vector<float>(256), 1, 256), Error);
  EXPECT_THROW(QuantizeRows(DType::F16, std::vector<float>(32), 1, 32), Error);
  EXPECT_THROW(QuantizeRows(DType::Q8_0, std::vector<float>(32, NAN), 1, 32), Error);
}

// --- quantizers ----------------------------------------------------------------------------

// ggml's choices, each visible in one byte: Q8_0 divides the largest magnitude by 127 and
// rounds halves away from zero (roundf).
TEST(QuantRoundTrip, Q8_0MatchesGgmlsReferenceBytes) {
  std::vector<float> x(32, 0.0f);
  const float head[] = {127, 2.5f, -0.5f, -2.5f, 1.4999f, 0.5f, 3, -127, 126.5f};
  std::copy(std::begin(head), std::end(head), x.begin());
  std::vector<std::byte> expected = Bytes({0x00, 0x3c, 127, 3, 0xff, 0xfd, 1, 1, 3, 0x81, 127});
  expected.resize(34);
  EXPECT_EQ(QuantizeRows(DType::Q8_0, x, 1, 32), expected);
}

// Q4_0 divides the value of largest magnitude (the first one, sign kept) by -8, truncates
// x / d + 8.5 and clamps at 15.
TEST(QuantRoundTrip, Q4_0MatchesGgmlsReferenceBytes) {
  std::vector<float> x(64, 0.0f);
  const float block0[] = {-8, 8, 7.5f, 6.5f, -0.5f, 0.49f, -3.6f};
  std::copy(std::begin(block0), std::end(block0), x.begin());
  x[16] = 2.5f;
  x[17] = -7.6f;
  x[32] = 4;  // positive maximum: d = -0.5
  x[33] = -4;
  x[34] = 1;
  std::vector<std::byte> expected = Bytes({0x00, 0x3c, 0xb0, 0x0f, 0x8f, 0x8f, 0x88, 0x88, 0x84});
  expected.resize(18, std::byte{0x88});
  Append(expected, {0x00, 0xb8, 0x80, 0x8f, 0x86});
  expected.resize(36, std::byte{0x88});
  const auto got = QuantizeRows(DType::Q4_0, x, 2, 32);
  EXPECT_EQ(got, expected);
  const auto y = DequantizeRows(DType::Q4_0, got, 2, 32);
  EXPECT_EQ(y[1], 7.0f);    // 8 clamps to 15 - 8
  EXPECT_EQ(y[33], -3.5f);  // (15 - 8) * -0.5
}

struct RoundTripCase {
  DType type;
  float levels;  // quant values: 0..levels-1 (asymmetric) or -levels/2..levels/2-1 (Q8_0: +-127)
  bool with_min;
};

// Each element is within half a step of the grid the block's exact scale defines, plus what
// rounding the scale (and min) to f16 moves the grid; clamped elements within a full step.
TEST(QuantRoundTrip, ErrorsStayWithinHalfAStep) {
  const RoundTripCase cases[] = {{DType::Q8_0, 255, false},
                                 {DType::Q4_0, 16, false},
                                 {DType::Q4_1, 16, true},
                                 {DType::Q5_0, 32, false},
                                 {DType::Q5_1, 32, true}};
  for (const auto& c : cases) {
    const uint32_t rows = 9, cols = 256;
    auto x = RandomFloats(rows * cols, 5, 1.0f);
    for (uint32_t r = 0; r < rows; ++r) {  // magnitudes from 1e-4 to 1e4, and a row of zeros
      for (uint32_t k = 0; k < cols; ++k) x[r * cols + k] *= r == 8 ? 0.0f : std::pow(10.0f, static_cast<float>(r) - 4);
    }
    const auto bytes = QuantizeRows(c.type, x, rows, cols);
    ASSERT_EQ(bytes.size(), rows * RowBytes(c.type, cols));
    const auto y = DequantizeRows(c.type, bytes, rows, cols);
    const uint32_t block_bytes = BlockBytes(c.type);
    double worst = 0;
    for (size_t b = 0; b < x.size() / 32; ++b) {
      const float* xb = &x[b * 32];
      const float amax =
          std::abs(*std::max_element(xb, xb + 32, [](float a, float v) { return std::abs(a) < std::abs(v); }));
      const float min = *std::min_element(xb, xb + 32), max = *std::max_element(xb, xb + 32);
      const double d = c.with_min              ? (max - min) / (c.levels - 1)
                       : c.type == DType::Q8_0 ? amax / 127.0
                                               : amax / (c.levels / 2);
      const double d16 = std::abs(HalfAt(bytes, b * block_bytes));
      const double m_error = c.with_min ? std::abs(HalfAt(bytes, b * block_bytes + 2) - min) : 0.0;
      for (int j = 0; j < 32; ++j) {
        // Symmetric types put the largest magnitude on -levels/2; the other end clamps.
        const bool clamped = !c.with_min && c.type != DType::Q8_0 && std::abs(xb[j]) > d * (c.levels / 2 - 0.501);
        // 1e-5 of a step: x / d itself is rounded.
        const double bound = d * ((clamped ? 1.0 : 0.5) + 1e-5) + c.levels * std::abs(d - d16) + m_error + 1e-30;
        const double error = std::abs(static_cast<double>(y[b * 32 + j]) - xb[j]);
        ASSERT_LE(error, bound) << DTypeName(c.type) << " block " << b << " element " << j << ": " << xb[j] << " -> "
                                << y[b * 32 + j];
        if (d > 0) worst = std::max(worst, error / d);
      }
    }
    // Not a looser quantizer that happens to stay in bounds: the error reaches close to half a step.
    EXPECT_GT(worst, 0.45) << DTypeName(c.type);
  }
}

// --- GPU matrix kernels --------------------------------------------------------------------

struct QuantCase {
  DType type;
  uint32_t rows, cols, tokens;
  bool bias = false;
  bool residual = false;
};

void PrintTo(const QuantCase& c, std::ostream* os) {
  *os << DTypeName(c.type) << " " << c.rows << "x" << c.cols;
}

std::vector<QuantCase> QuantCases() {
  std::vector<QuantCase> cases;
  for (DType type : kQuantTypes) {
    const auto add = [&](uint32_t rows, uint32_t cols, uint32_t tokens, bool bias = false, bool residual = false) {
      cases.push_back({type, rows, cols, tokens, bias, residual});
    };
    // Odd row counts; matvec for 1..4 tokens, the tiled kernel for 37 and 65.
    add(17, 256, 1);
    add(63, 512, 2, true);
    add(65, 256, 3, false, true);
    add(17, 512, 4);
    add(63, 256, 37, true, true);
    add(65, 512, 65);
    if (BlockElements(type) == 32) {
      add(17, 32, 1);
      add(65, 96, 4, true);
      add(63, 32, 37);
      add(17, 96, 65, false, true);
      // Qwen2-0.5B: hidden 896, MLP 4864.
      add(896, 896, 1, true);
      add(4864, 896, 1);
      add(896, 4864, 2, false, true);
      add(896, 896, 37);
    } else {
      // 896 is not a whole number of 256-blocks (llama.cpp falls back to other types there):
      // Qwen2-1.5B (hidden 1536, MLP 8960) and 7B (3584, 18944) instead.
      add(1536, 1536, 1, true);
      add(8960, 1536, 1);
      add(1536, 8960, 3, false, true);
      add(1536, 1536, 37);
      add(3584, 18944, 1, false, true);
      add(18944, 3584, 1);
    }
  }
  return cases;
}

class QuantGpuTest : public GpuTest {
 protected:
  // Y = X W^T (+ bias) (+ residual) on the GPU against the reference; f32 accumulation in another
  // order, so within a small multiple of eps * sum|w x|, as for float weights.
  void CheckMatMul(const QuantCase& c, const std::vector<std::byte>& w, const Buffer& w_buf) {
    const auto x = RandomFloats(static_cast<size_t>(c.tokens) * c.cols, 2);
    const auto bias = RandomFloats(c.rows, 3);
    const auto residual = RandomFloats(static_cast<size_t>(c.tokens) * c.rows, 4);
    Buffer x_buf = Upload(x);
    Buffer bias_buf = Upload(bias);
    Buffer y_buf = c.residual ? Upload(residual) : Poisoned(residual.size() * 4);
    Graph g(device());
    ops::MatMulArgs args{.w = {&w_buf, 0, c.type, c.rows, c.cols}, .x = x_buf, .y = y_buf, .tokens = c.tokens};
    args.kernel = F32MatMulKernel(c.tokens);  // matmul_coopmat_test.cpp holds the coopmat GEMM to its own bounds
    if (c.bias) args.bias = BufferRange(bias_buf);
    if (c.residual) args.residual = BufferRange(y_buf);
    ops::MatMul(g, args);
    g.Run();
    std::vector<double> magnitude;
    const auto expected = ref::StoredMatMul(c.type, w, c.rows, c.cols, x, c.tokens, c.bias ? &bias : nullptr,
                                            c.residual ? &residual : nullptr, &magnitude);
    const auto got = Download<float>(y_buf, expected.size());
    size_t bad = 0;
    for (size_t i = 0; i < expected.size() && bad < 10; ++i) {
      const double tolerance = 2e-5 * magnitude[i] + 1e-6;
      if (!(std::abs(got[i] - expected[i]) <= tolerance)) {
        ADD_FAILURE() << "output " << i << " (token " << i / c.rows << ", row " << i % c.rows << "): got " << got[i]
                      << ", expected " << expected[i] << ", tolerance " << tolerance;
        ++bad;
      }
    }
  }
};

class QuantMatMulTest : public QuantGpuTest, public ::testing::WithParamInterface<QuantCase> {};

TEST_P(QuantMatMulTest, MatchesDequantizedReference) {
  const QuantCase& c = GetParam();
  const auto w = RandomBlocks(c.type, c.rows, c.cols, c.rows * 31 + c.cols);
  CheckMatMul(c, w, UploadWeights(c.type, w, c.rows, c.cols));
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantMatMulTest, ::testing::ValuesIn(QuantCases()), [](const auto& param_info) {
  const QuantCase& c = param_info.param;
  return std::string(DTypeName(c.type)) + "_" + std::to_string(c.rows) + "x" + std::to_string(c.cols) + "_t" +
         std::to_string(c.tokens) + (c.bias ? "_bias" : "") + (c.residual ? "_residual" : "");
});

TEST_F(QuantGpuTest, RejectsRowsThatAreNotWholeBlocks) {
  Buffer w = device().allocator().CreateBuffer(1 << 20, MemoryKind::Device);
  Buffer x = Poisoned(896 * 4), y = Poisoned(896 * 4);
  Graph g(device());
  EXPECT_THROW(ops::MatMul(g, {.w = {&w, 0, DType::Q4_K, 896, 896}, .x = x, .y = y}), Error);
  EXPECT_THROW(ops::Embed(g, {&w, 0, DType::Q8_0, 10, 48}, x, y, 1), Error);
}

// --- regrouped blocks ----------------------------------------------------------------------

// Q8_0, Q4_0, Q5_0 and Q6_K weights are regrouped in place after their upload: a matrix of two
// whole groups and two blocks over (a last group padded with zeros), one of a group exactly, and
// one of three blocks. Q6_K's scale is its block's last halfword, the others' their first.
TEST_F(QuantGpuTest, RegroupsBlocksInPlace) {
  for (const DType type : {DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q6_K}) {
    ASSERT_TRUE(IsRegrouped(type));
    const uint32_t qk = BlockElements(type);
    for (const auto& [rows, cols] : {std::pair{2u, (QVK_REGROUP_BLOCKS + 1) * qk},
                                     std::pair{2u, QVK_REGROUP_BLOCKS * qk / 2}, std::pair{1u, 3 * qk}}) {
      const auto bytes = RandomBlocks(type, rows, cols, rows + cols);
      const auto expected =
          ref::RegroupedBlocks(bytes, BlockBytes(type), 2 * RegroupScaleHalfword(type), QVK_REGROUP_BLOCKS);
      ASSERT_EQ(expected.size(), MatrixBytes(type, rows, cols));
      Buffer b = UploadWeights(type, bytes, rows, cols);
      EXPECT_EQ(Download<std::byte>(b, expected.size()), expected) << DTypeName(type) << " " << rows << " x " << cols;
    }
  }
}

// --- GPU embedding -------------------------------------------------------------------------

// The gather writes exactly DequantizeRows' values: the kernels round as ggml does.
class QuantEmbedTest : public QuantGpuTest, public ::testing::WithParamInterface<DType> {
 protected:
  void CheckEmbed(const Matrix& table, const std::vector<std::byte>& bytes, const std::vector<uint32_t>& ids) {
    Buffer ib = Upload(ids), yb = Poisoned(ids.size() * table.cols * 4);
    Graph g(device());
    ops::Embed(g, table, ib, yb, static_cast<uint32_t>(ids.size()));
    g.Run();
    const VkDeviceSize row_bytes = RowBytes(table.dtype, table.cols);
    std::vector<float> expected;
    for (uint32_t id : ids) {
      const auto row = DequantizeRows(table.dtype, std::span(bytes).subspan(id * row_bytes, row_bytes), 1, table.cols);
      expected.insert(expected.end(), row.begin(), row.end());
    }
    ExpectAllEqual(Download<float>(yb, expected.size()), expected, std::string("embed ") + DTypeName(table.dtype));
  }
};

TEST_P(QuantEmbedTest, GathersDequantizedRows) {
  const DType type = GetParam();
  const uint32_t rows = 257, cols = BlockElements(type) == 32 ? 96 : 512;
  const auto bytes = RandomBlocks(type, rows, cols, 9);
  Buffer tb = UploadWeights(type, bytes, rows, cols);
  CheckEmbed({&tb, 0, type, rows, cols}, bytes, {0, 256, 5, 5, 100, 255, 1});
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantEmbedTest, ::testing::ValuesIn(kQuantTypes),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

// Vocabulary-sized LM head and embedding (Qwen2-0.5B in Q8_0 is 145 MB, Qwen2-1.5B in Q6_K
// 191 MB; lavapipe binds 128 MiB): row slices of blocks, and rows on both sides of each slice
// boundary, must come out right.
class QuantVocabularyTest : public QuantEmbedTest {};

TEST_P(QuantVocabularyTest, LmHeadAndEmbeddingLargerThanOneBinding) {
  const DType type = GetParam();
  const uint32_t rows = 151936, cols = type == DType::Q8_0 ? 896 : 1536;
  const auto bytes = RandomBlocks(type, rows, cols, 13);
  Buffer tb = UploadWeights(type, bytes, rows, cols);
  const Matrix m{&tb, 0, type, rows, cols};
  const auto slices = SliceRows(info(), m);
  if (info().max_storage_buffer_range < bytes.size()) {
    EXPECT_GT(slices.size(), 1u);
  }
  CheckMatMul({type, rows, cols, 1}, bytes, tb);
  std::vector<uint32_t> ids = {0, rows - 1, 151643, 151645, 12345};
  for (const auto& s : slices) {
    ids.push_back(s.first_row);
    if (s.first_row > 0) ids.push_back(s.first_row - 1);
  }
  CheckEmbed(m, bytes, ids);
}

INSTANTIATE_TEST_SUITE_P(Quant, QuantVocabularyTest, ::testing::Values(DType::Q8_0, DType::Q6_K),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

}  // namespace
}  // namespace qvk::test
