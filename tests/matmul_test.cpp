// Matrix x vector (decode) and matrix x matrix (prefill) against the C++ reference, for every
// weight type, on odd shapes, real Qwen2 shapes and weights larger than one binding.
#include <cmath>

#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

struct MatMulCase {
  const char* name;
  uint32_t rows, cols, tokens;
  DType dtype;
  bool bias = false;
  bool residual = false;
};

void PrintTo(const MatMulCase& c, std::ostream* os) { *os << c.name; }

class MatMulTest : public GpuTest, public ::testing::WithParamInterface<MatMulCase> {};

TEST_P(MatMulTest, MatchesReference) {
  const MatMulCase& c = GetParam();
  const auto w = RandomFloats(static_cast<size_t>(c.rows) * c.cols, 1, 0.05f);
  const auto x = RandomFloats(static_cast<size_t>(c.tokens) * c.cols, 2);
  const auto bias = RandomFloats(c.rows, 3);
  const auto residual = RandomFloats(static_cast<size_t>(c.tokens) * c.rows, 4);

  const auto w_bytes = Encode(w, c.dtype);
  Buffer w_buf = UploadWeights(c.dtype, w_bytes, c.rows, c.cols);
  Buffer x_buf = Upload(x);
  Buffer bias_buf = Upload(bias);
  // With a residual, Y starts as the residual and is updated in place (the residual stream).
  Buffer y_buf = c.residual ? Upload(residual) : Poisoned(residual.size() * 4);

  Graph g(device());
  ops::MatMulArgs args{.w = {&w_buf, 0, c.dtype, c.rows, c.cols}, .x = x_buf, .y = y_buf, .tokens = c.tokens};
  args.kernel = F32MatMulKernel(c.tokens);  // matmul_coopmat_test.cpp holds the coopmat GEMM to its own bounds
  if (c.bias) args.bias = BufferRange(bias_buf);
  if (c.residual) args.residual = BufferRange(y_buf);
  ops::MatMul(g, args);
  g.Run();

  std::vector<double> magnitude;
  const auto w_seen = RoundTrip(w, c.dtype);
  const auto expected = ref::MatMul(w_seen, x, c.rows, c.cols, c.tokens, c.bias ? &bias : nullptr,
                                    c.residual ? &residual : nullptr, &magnitude);
  const auto got = Download<float>(y_buf, expected.size());
  size_t bad = 0;
  for (size_t i = 0; i < expected.size() && bad < 10; ++i) {
    // f32 accumulation in another order: error bounded by a small multiple of eps * sum|w x|.
    const double tolerance = 2e-5 * magnitude[i] + 1e-6;
    if (!(std::abs(got[i] - expected[i]) <= tolerance)) {
      ADD_FAILURE() << "output " << i << " (token " << i / c.rows << ", row " << i % c.rows << "): got " << got[i]
                    << ", expected " << expected[i] << ", tolerance " << tolerance;
      ++bad;
    }
  }
}

// Qwen2 shapes: 0.5B hidden 896 / MLP 4864 / kv 128; 1.5B 1536 / 8960 / 256; 7B 3584 / 18944 / 512.
INSTANTIATE_TEST_SUITE_P(
    Shapes, MatMulTest,
    ::testing::Values(
        MatMulCase{"odd_17x63_f32", 17, 63, 1, DType::F32},
        MatMulCase{"odd_63x17_t3_f16", 63, 17, 3, DType::F16, true},
        MatMulCase{"odd_1x1_bf16", 1, 1, 1, DType::BF16},
        MatMulCase{"odd_130x100_t70_f32", 130, 100, 70, DType::F32, true, true},
        MatMulCase{"odd_17x31_t65_f16", 17, 31, 65, DType::F16},
        MatMulCase{"odd_65x129_t5_bf16", 65, 129, 5, DType::BF16, false, true},
        MatMulCase{"q05_q_proj_bias_f32", 896, 896, 1, DType::F32, true},
        MatMulCase{"q05_k_proj_bias_bf16", 128, 896, 1, DType::BF16, true},
        MatMulCase{"q05_gate_up_f16", 2 * 4864, 896, 1, DType::F16},
        MatMulCase{"q05_down_residual_bf16", 896, 4864, 1, DType::BF16, false, true},
        MatMulCase{"q05_gate_up_prefill_t37_bf16", 2 * 4864, 896, 37, DType::BF16},
        MatMulCase{"q05_o_proj_prefill_t37_f16", 896, 896, 37, DType::F16, false, true},
        MatMulCase{"q05_lm_head_sliced_f16", 151936, 896, 1, DType::F16},
        MatMulCase{"q15_qkv_bias_bf16", 1536 + 2 * 256, 1536, 1, DType::BF16, true},
        MatMulCase{"q15_down_prefill_t19_bf16", 1536, 8960, 19, DType::BF16, false, true},
        MatMulCase{"q15_lm_head_vocab_152064_bf16", 152064, 1536, 1, DType::BF16},
        MatMulCase{"q7_qkv_bias_prefill_t9_bf16", 3584 + 2 * 512, 3584, 9, DType::BF16, true},
        MatMulCase{"q7_up_f16", 18944, 3584, 1, DType::F16},
        MatMulCase{"q7_down_inner_18944_bf16", 3584, 18944, 2, DType::BF16, false, true}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(GpuTest, SliceRowsKeepsSlicesAlignedAndWithinRange) {
  Buffer b = device().allocator().CreateBuffer(1 << 20, MemoryKind::Device);
  for (uint32_t cols : {17u, 63u, 896u, 1000u}) {
    const Matrix m{&b, 0, DType::F16, 300, cols};
    const VkDeviceSize max_range = 64 * 1024 + 8;
    const auto slices = SliceRows(info(), m, max_range);
    uint32_t next_row = 0;
    for (const auto& s : slices) {
      EXPECT_EQ(s.first_row, next_row);
      EXPECT_LE(s.range.size, max_range);
      EXPECT_EQ(s.range.offset % info().storage_offset_alignment, 0u);
      EXPECT_EQ(s.range.size, RowBytes(m.dtype, cols) * s.rows);
      next_row += s.rows;
    }
    EXPECT_EQ(next_row, 300u) << "cols " << cols;
  }
}

// Slices of a regrouped matrix start at whole groups and end at one: the last slice's final group
// runs into the padding MatrixBytes adds, which a buffer without it lacks.
TEST_F(GpuTest, SliceRowsOfRegroupedBlocksCoverWholeGroups) {
  const uint32_t rows = 300, cols = 96;  // 900 blocks: 14 whole groups and 4 blocks
  const DType type = DType::Q4_0;
  const uint64_t group_bytes = RegroupBytes(type);
  Buffer b = device().allocator().CreateBuffer(MatrixBytes(type, rows, cols), MemoryKind::Device);
  EXPECT_EQ(b.size(), 15 * group_bytes);
  const Matrix m{&b, 0, type, rows, cols};
  const auto slices = SliceRows(info(), m, 8 * group_bytes + 100);
  ASSERT_GT(slices.size(), 1u);
  uint32_t next_row = 0;
  for (const auto& s : slices) {
    EXPECT_EQ(s.first_row, next_row);
    EXPECT_EQ(s.range.offset % group_bytes, 0u);
    EXPECT_EQ(s.range.size % group_bytes, 0u);
    EXPECT_LE(s.range.size, 8 * group_bytes + 100);
    EXPECT_GE(s.range.size, RowBytes(type, cols) * s.rows);
    next_row += s.rows;
  }
  EXPECT_EQ(next_row, rows);
  EXPECT_EQ(slices.back().range.offset + slices.back().range.size, b.size());
  Buffer unpadded = device().allocator().CreateBuffer(RowBytes(type, cols) * rows, MemoryKind::Device);
  EXPECT_THROW(SliceRows(info(), Matrix{&unpadded, 0, type, rows, cols}), Error);
}

}  // namespace
}  // namespace qvk::test
