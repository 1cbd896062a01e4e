// The decode matrix x vector kernel beyond what matmul_test and quant_test check: every weight
// type's values bit for bit, the RMSNorm and SwiGLU it folds in (and the separate dispatches that
// stand in for them in prefill and for weights bound in several slices) for every type and token
// count, Qwen2's decode products, and each way its work split has its lanes meet in sums.
#include <cmath>
#include <set>
#include <string>

#include <fmt/format.h>

#include "model/quantize.h"
#include "shaders/push_constants.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                               DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Stored weights of any type: floats of a trained model's scale, or random blocks.
std::vector<std::byte> RandomWeights(DType type, uint32_t rows, uint32_t cols, uint32_t seed) {
  if (IsQuantized(type)) return RandomBlocks(type, rows, cols, seed);
  return Encode(RandomFloats(static_cast<size_t>(rows) * cols, seed, 0.05f), type);
}

std::string TypeName(const ::testing::TestParamInfo<DType>& param_info) {
  return DTypeName(param_info.param);
}

// --- values --------------------------------------------------------------------------------

class MatVecValuesTest : public GpuTest, public ::testing::WithParamInterface<DType> {};

// With one-hot rows of X, output (t, r) is the weight at row r and column t's hot one: each value
// the kernel dequantizes, at every position of a block, must be DequantizeRows' (ggml's) exactly,
// in the several-token kernel (4 columns a dispatch) and decode's one-token one (a column each).
TEST_P(MatVecValuesTest, ReadsEveryWeightExactly) {
  const DType type = GetParam();
  const uint32_t rows = 17;  // four row groups and one row
  const uint32_t cols = IsQuantized(type) ? std::max(64u, BlockElements(type)) : 24;
  const auto bytes = RandomWeights(type, rows, cols, 21);
  const auto values = DequantizeRows(type, bytes, rows, cols);
  Buffer wb = UploadWeights(type, bytes, rows, cols);
  for (const uint32_t tokens : {4u, 1u}) {
    for (uint32_t first = 0; first < cols; first += tokens) {
      std::vector<float> x(tokens * cols, 0.0f);
      for (uint32_t t = 0; t < tokens; ++t) x[t * cols + first + t] = 1.0f;
      Buffer xb = Upload(x), yb = Poisoned(tokens * rows * 4);
      Graph g(device());
      ops::MatMul(g, {.w = {&wb, 0, type, rows, cols}, .x = xb, .y = yb, .tokens = tokens});
      g.Run();
      const auto got = Download<float>(yb, tokens * rows);
      for (uint32_t t = 0; t < tokens; ++t) {
        for (uint32_t r = 0; r < rows; ++r) {
          ASSERT_EQ(got[t * rows + r], values[r * cols + first + t])
              << tokens << " tokens: row " << r << " column " << first + t;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatVecValuesTest, ::testing::ValuesIn(kAllTypes), TypeName);

// --- folded norm and SwiGLU ----------------------------------------------------------------

struct FoldCase {
  std::string name;
  DType type;
  uint32_t outputs, cols, tokens;
  bool norm = false;
  bool swiglu = false;  // the weight holds 2 * outputs rows: gate, then up
  bool bias = false;
  bool residual = false;
  uint32_t x_pad = 0;         // floats between X rows beyond cols
  bool store_normed = false;  // one token: the product also leaves rmsnorm(X) * weight in the scratch
};

void PrintTo(const FoldCase& c, std::ostream* os) {
  *os << c.name;
}

// Columns: a whole number of blocks for every type, whole units for the float ones.
uint32_t Cols(DType type, uint32_t blocks) {
  return IsQuantized(type) ? blocks * BlockElements(type) : blocks * 32;
}

std::vector<FoldCase> FoldCases() {
  std::vector<FoldCase> cases;
  for (DType type : kAllTypes) {
    const std::string t = DTypeName(type);
    // The decode projections (tokens 1..4) and one prefill chunk (5 tokens: the tiled kernel after
    // a separate RMSNorm, the SwiGLU in its epilogue).
    cases.push_back({t + "_qkv_norm_bias_t1", type, 65, Cols(type, 6), 1, true, false, true});
    cases.push_back({t + "_gate_up_norm_swiglu_t2", type, 63, Cols(type, 6), 2, true, true});
    cases.push_back({t + "_swiglu_t3", type, 17, Cols(type, 2), 3, false, true});
    cases.push_back({t + "_norm_residual_t4", type, 33, Cols(type, 1), 4, true, false, false, true});
    cases.push_back({t + "_prefill_norm_swiglu_t5", type, 17, Cols(type, 2), 5, true, true});
  }
  // X rows not at 16-byte steps, float rows that are not whole units: read an element at a time.
  cases.push_back({"F16_unaligned_x_norm_t2", DType::F16, 17, 256, 2, true, false, false, false, 1});
  cases.push_back({"Q4_K_unaligned_x_swiglu_t3", DType::Q4_K, 9, 512, 3, false, true, false, false, 3});
  cases.push_back({"F32_odd_63_norm_swiglu_t2", DType::F32, 17, 63, 2, true, true});
  cases.push_back({"BF16_odd_1_norm_t1", DType::BF16, 5, 1, 1, true});
  // Row groups narrower than a subgroup (2 lanes for 2 units a row), as wide as lavapipe's 8 (12
  // units), wider (Qwen2 rows).
  cases.push_back({"Q8_0_two_units_norm_t1", DType::Q8_0, 65, 32, 1, true});
  cases.push_back({"F16_twelve_units_swiglu_t2", DType::F16, 65, 96, 2, false, true});
  cases.push_back({"Q4_0_twelve_units_norm_t1", DType::Q4_0, 130, 192, 1, true});
  // One token's K-quant gate|up, its norm folded in (small) and apart (1.5B's, ops' NormApart).
  cases.push_back({"Q4_K_gate_up_norm_swiglu_t1", DType::Q4_K, 63, Cols(DType::Q4_K, 6), 1, true, true});
  // Qwen2 shapes: 0.5B qkv and gate|up, 7B gate|up, and the 0.5B output projection in Q4_0.
  cases.push_back({"q05_qkv_norm_bias_bf16", DType::BF16, 896 + 2 * 128, 896, 1, true, false, true});
  cases.push_back({"q05_gate_up_norm_swiglu_f16", DType::F16, 4864, 896, 1, true, true});
  cases.push_back({"q05_gate_up_norm_swiglu_q8_0_t2", DType::Q8_0, 4864, 896, 2, true, true});
  cases.push_back({"q7_gate_up_norm_swiglu_q4_0", DType::Q4_0, 18944, 3584, 1, true, true});
  cases.push_back({"q05_lm_head_norm_q4_0", DType::Q4_0, 151936, 896, 1, true});
  // The tiled kernel's SwiGLU over several row and token tiles, the last of each ragged, and on
  // 0.5B's gate|up.
  cases.push_back({"F16_prefill_swiglu_t70", DType::F16, 100, 96, 70, false, true});
  cases.push_back({"Q4_K_prefill_norm_swiglu_t65", DType::Q4_K, 70, 512, 65, true, true});
  cases.push_back({"q05_gate_up_prefill_norm_swiglu_q8_0_t37", DType::Q8_0, 4864, 896, 37, true, true});
  // 2 x 18944 x 896 f32 is 136 MB: two slices on lavapipe (128 MiB bindings), so the gate and up
  // products go through scratch and a separate SwiGLU there.
  cases.push_back({"q05_gate_up_sliced_norm_swiglu_f32", DType::F32, 18944, 896, 1, true, true});
  // The work split's other ways (SplitsCoverEveryWayTheKernelSums): very many one-unit rows, whose
  // groups take fewer lanes than a subgroup; one row per group read an element at a time; and
  // decode's other Qwen2 products, K-quants as Q4_K_M files store them.
  cases.push_back({"tall_narrow_norm_residual_t2", DType::F16, 400000, 8, 2, true, false, false, true});
  cases.push_back({"F32_odd_999_residual_t1", DType::F32, 300, 999, 1, false, false, false, true});
  cases.push_back({"q05_o_proj_residual_f16", DType::F16, 896, 896, 1, false, false, false, true});
  cases.push_back({"q05_down_residual_f16", DType::F16, 896, 4864, 1, false, false, false, true});
  cases.push_back({"q05_down_residual_q4_k", DType::Q4_K, 896, 4864, 1, false, false, false, true});
  cases.push_back({"q15_o_proj_residual_q4_k", DType::Q4_K, 1536, 1536, 1, false, false, false, true});
  cases.push_back({"q15_gate_up_norm_apart_swiglu_q4_k", DType::Q4_K, 8960, 1536, 1, true, true});
  cases.push_back({"q15_down_residual_q6_k", DType::Q6_K, 1536, 8960, 1, false, false, false, true});
  cases.push_back({"q7_qkv_norm_bias_q4_k", DType::Q4_K, 3584 + 2 * 512, 3584, 1, true, false, true});
  // The normalized input left in the scratch by the first workgroup (a MoE layer's router, whose
  // experts read it): Qwen1.5-MoE's router and shared gate (F32), a K-quant, odd columns.
  cases.push_back({.name = "moe_router_store_normed_f32",
                   .type = DType::F32,
                   .outputs = 61,
                   .cols = 2048,
                   .tokens = 1,
                   .norm = true,
                   .store_normed = true});
  cases.push_back({.name = "Q4_K_store_normed_t1",
                   .type = DType::Q4_K,
                   .outputs = 130,
                   .cols = Cols(DType::Q4_K, 8),
                   .tokens = 1,
                   .norm = true,
                   .bias = true,
                   .store_normed = true});
  cases.push_back({.name = "F32_odd_63_store_normed_t1",
                   .type = DType::F32,
                   .outputs = 17,
                   .cols = 63,
                   .tokens = 1,
                   .norm = true,
                   .store_normed = true});
  cases.push_back({"q7_down_residual_q4_k", DType::Q4_K, 3584, 18944, 1, false, false, false, true});
  cases.push_back({"q7_down_residual_q6_k_t2", DType::Q6_K, 3584, 18944, 2, false, false, false, true});
  return cases;
}

class MatVecFoldTest : public GpuTest, public ::testing::WithParamInterface<FoldCase> {};

TEST_P(MatVecFoldTest, MatchesReference) {
  const FoldCase& c = GetParam();
  const uint32_t w_rows = c.swiglu ? 2 * c.outputs : c.outputs;
  const uint32_t x_stride = c.cols + c.x_pad;
  const float eps = 1e-6f;
  const auto w = RandomWeights(c.type, w_rows, c.cols, w_rows * 7 + c.cols);
  const auto x_rows = RandomFloats(static_cast<size_t>(c.tokens) * c.cols, 2, 3.0f);
  const auto norm_weight = RandomFloats(c.cols, 3);
  const auto bias = RandomFloats(c.outputs, 4);
  const auto residual = RandomFloats(static_cast<size_t>(c.tokens) * c.outputs, 5);
  std::vector<float> x(static_cast<size_t>(c.tokens) * x_stride, NAN);  // the padding must not be read
  for (uint32_t t = 0; t < c.tokens; ++t) {
    std::copy_n(&x_rows[static_cast<size_t>(t) * c.cols], c.cols, &x[static_cast<size_t>(t) * x_stride]);
  }

  Buffer wb = UploadWeights(c.type, w, w_rows, c.cols), xb = Upload(x), nb = Upload(norm_weight), bb = Upload(bias);
  Buffer yb = c.residual ? Upload(residual) : Poisoned(residual.size() * 4);
  Buffer norm_scratch = Poisoned(x_rows.size() * 4);
  Buffer swiglu_scratch = Poisoned(static_cast<size_t>(c.tokens) * w_rows * 4);
  const Matrix m{&wb, 0, c.type, w_rows, c.cols};
  if (c.name.find("sliced") != std::string::npos && info().max_storage_buffer_range < w.size()) {
    EXPECT_GT(SliceRows(info(), m).size(), 1u);
  }
  ops::MatMulArgs args{.w = m, .x = xb, .y = yb, .tokens = c.tokens, .x_stride = x_stride};
  // Past matvec's tokens, the tiled kernel on every device: the cooperative-matrix one, which a
  // device with matrix units would choose, rounds to f16 and has its own test and tolerance.
  if (c.tokens > QVK_MATVEC_MAX_TOKENS) args.kernel = ops::MatMulKernel::Tiled;
  if (c.norm) args.norm = ops::RmsNormInput{.weight = nb, .eps = eps, .scratch = norm_scratch, .store = c.store_normed};
  if (c.swiglu) args.swiglu = ops::SwiGluOutput{swiglu_scratch};
  if (c.bias) args.bias = BufferRange(bb);
  if (c.residual) args.residual = BufferRange(yb);
  Graph g(device());
  ops::MatMul(g, args);
  g.Run();

  const auto in = c.norm ? ref::RmsNorm(x_rows, norm_weight, c.tokens, c.cols, eps) : x_rows;
  if (c.store_normed) {  // f32 in another order: within a few ulps of the reference's
    const auto normed = Download<float>(norm_scratch, in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      EXPECT_NEAR(normed[i], in[i], 1e-5 * std::abs(in[i]) + 1e-7) << "normalized input " << i;
    }
  }
  std::vector<double> magnitude;
  const auto products = ref::StoredMatMul(c.type, w, w_rows, c.cols, in, c.tokens, c.bias ? &bias : nullptr,
                                          c.residual ? &residual : nullptr, &magnitude);
  const auto got = Download<float>(yb, residual.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 10; ++i) {
    const size_t t = i / c.outputs, o = i % c.outputs;
    const size_t gate = t * w_rows + o;
    // f32 sums in another order: within a small multiple of eps * sum|w in| (as in matmul_test).
    const auto tolerance_of = [&](size_t j) { return 2e-5 * magnitude[j] + 1e-6; };
    double expected = products[gate];
    double tolerance = tolerance_of(gate);
    if (c.swiglu) {
      const size_t up = gate + c.outputs;
      const ref::BoundedValue swiglu = ref::SwiGluBound(products[gate], products[up], tolerance, tolerance_of(up));
      expected = swiglu.value;
      tolerance = swiglu.tolerance;
    }
    if (!(std::abs(got[i] - expected) <= tolerance)) {
      ADD_FAILURE() << "output " << i << " (token " << t << ", row " << o << "): got " << got[i] << ", expected "
                    << expected << ", tolerance " << tolerance;
      ++bad;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, MatVecFoldTest, ::testing::ValuesIn(FoldCases()),
                         [](const auto& param_info) { return param_info.param.name; });

// --- work split ----------------------------------------------------------------------------

// The fold cases that run as one matvec dispatch take, on this device, every way matvec.comp
// splits and sums: lanes of one subgroup (subgroupAdd), fewer (shared memory, one partial per
// invocation) and more (one per subgroup); one, two or four rows per group, paired rows two or
// four; several rounds with a last one partly past the row's end; rows read a unit or an element
// at a time with each group size; and several tokens through shared memory.
TEST_F(GpuTest, SplitsCoverEveryWayTheKernelSums) {
  const uint32_t subgroup = info().subgroup_size;
  std::set<std::string> seen;
  for (const FoldCase& c : FoldCases()) {
    const uint32_t w_rows = c.swiglu ? 2 * c.outputs : c.outputs;
    const Matrix m{nullptr, 0, c.type, w_rows, c.cols};
    if (c.tokens > 4 || SliceRows(info(), m).size() > 1) continue;
    const ops::MatVecSplit split = ops::PlanMatVec(info(), {.type = c.type,
                                                            .rows = w_rows,
                                                            .cols = c.cols,
                                                            .x_stride = c.cols + c.x_pad,
                                                            .tokens = c.tokens,
                                                            .norm = c.norm,
                                                            .paired = c.swiglu});
    ASSERT_GE(split.lanes, split.group_rows) << c.name;
    const std::string sums = split.lanes == subgroup ? "subgroup" : split.lanes < subgroup ? "narrow" : "wide";
    const std::string reads = split.units == c.cols ? "elements" : "units";
    seen.insert(sums);
    seen.insert(fmt::format("{}_rows{}", c.swiglu ? "paired" : "single", split.group_rows));
    seen.insert(fmt::format("{}_rows{}", reads, split.group_rows));
    const uint32_t round_units = split.slots / split.group_rows * split.lanes;
    if (split.rounds > 1 && split.units % round_units != 0) seen.insert("partial_last_round");
    if (c.tokens > 1 && sums != "subgroup") seen.insert("tokens_shared");
  }
  for (const char* way : {"subgroup", "narrow", "wide", "single_rows1", "single_rows2", "single_rows4", "paired_rows2",
                          "paired_rows4", "units_rows1", "units_rows2", "units_rows4", "elements_rows1",
                          "elements_rows2", "elements_rows4", "partial_last_round", "tokens_shared"}) {
    EXPECT_TRUE(seen.contains(way)) << "no fold case splits as " << way << " on a device with " << subgroup
                                    << "-wide subgroups";
  }
}

// One token's K-quant product of 16M weights or more without RoPE (a SwiGLU gate|up, an LM head)
// normalizes X in an rmsnorm dispatch of its own and runs the matvec without the norm (2
// dispatches); a smaller one, other types and more tokens keep the norm inside the matvec (1).
TEST_F(GpuTest, LargeKQuantProductHasItsNormApart) {
  const auto dispatches = [&](DType type, uint32_t rows, uint32_t cols, uint32_t tokens, bool swiglu) {
    Buffer w = device().allocator().CreateBuffer(RowBytes(type, cols) * rows, MemoryKind::Device);
    Buffer x = Poisoned(size_t{4} * tokens * cols), y = Poisoned(size_t{4} * tokens * rows);
    Buffer norm_weight = Poisoned(size_t{4} * cols), scratch = Poisoned(size_t{4} * tokens * cols);
    Graph g(device());
    ops::MatMul(g, {.w = {&w, 0, type, rows, cols},
                    .x = x,
                    .y = y,
                    .tokens = tokens,
                    .norm = ops::RmsNormInput{.weight = norm_weight, .eps = 1e-6f, .scratch = scratch},
                    .swiglu = swiglu ? std::optional(ops::SwiGluOutput{}) : std::nullopt});
    return g.dispatch_count();
  };
  EXPECT_EQ(dispatches(DType::Q4_K, 2 * 8960, 1536, 1, true), 2u);  // 1.5B's gate|up: 27.5M weights
  EXPECT_EQ(dispatches(DType::Q6_K, 2 * 8192, 1024, 1, true), 2u);  // 16M
  EXPECT_EQ(dispatches(DType::Q6_K, 16384, 1024, 1, false), 2u);    // an LM head of 16M
  EXPECT_EQ(dispatches(DType::Q4_K, 2 * 8192, 1024 - 256, 1, true), 1u);
  EXPECT_EQ(dispatches(DType::Q4_K, 16384, 1024 - 256, 1, false), 1u);
  EXPECT_EQ(dispatches(DType::Q4_K, 2 * 8960, 1536, 2, true), 1u);
  EXPECT_EQ(dispatches(DType::Q4_0, 2 * 8960, 1536, 1, true), 1u);
}

// One token's residual product that also stores its output times the next norm's weight
// (ScaledOutput) gives the product after it its input: the stored values exactly, and read
// prescaled (its 1 / rms summed once a workgroup), that product's outputs are those of the same
// product normalizing the stored output itself, to float rounding (one dispatch each, no
// rmsnorm), for row lengths of whole units and not, and X rows of whole vec4s and not; ScaleByWeight
// stores what the product does.
TEST_F(GpuTest, ScaledOutputGivesTheNextProductItsInput) {
  for (const DType type : {DType::F32, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    for (const uint32_t n : {512u, 510u}) {
      if (n % BlockElements(type) != 0) continue;
      SCOPED_TRACE(fmt::format("{} rows of {}", DTypeName(type), n));
      const uint32_t k = 96, rows = 37;
      const auto w1 = RandomWeights(DType::F32, n, k, 3), w2 = RandomWeights(type, rows, n, 4);
      Buffer w1b = UploadWeights(DType::F32, w1, n, k), w2b = UploadWeights(type, w2, rows, n);
      const std::vector<float> norm_weight = RandomFloats(n, 5, 1.0f);
      Buffer a = Upload(RandomFloats(k, 6, 1.0f)), x = Upload(RandomFloats(n, 7, 1.0f));
      Buffer nw = Upload(norm_weight), scaled = Poisoned(n * 4), scratch = Poisoned(n * 4);
      Buffer prescaled_y = Poisoned(rows * 4), folded_y = Poisoned(rows * 4);
      Graph g(device());
      ops::MatMul(g, {.w = {&w1b, 0, DType::F32, n, k},
                      .x = a,
                      .y = x,
                      .residual = BufferRange(x),
                      .scaled_out = ops::ScaledOutput{.weight = nw, .out = scaled}});
      ops::MatMul(g, {.w = {&w2b, 0, type, rows, n},
                      .x = x,
                      .y = prescaled_y,
                      .norm = ops::RmsNormInput{.weight = nw, .eps = 1e-6f, .scratch = scaled, .prescaled = true}});
      ops::MatMul(g, {.w = {&w2b, 0, type, rows, n},
                      .x = x,
                      .y = folded_y,
                      .norm = ops::RmsNormInput{.weight = nw, .eps = 1e-6f, .scratch = scratch}});
      // The dispatch that stands in for a product's scaled output where none ran stores the same.
      Buffer scaled_alone = Poisoned(n * 4);
      ops::ScaleByWeight(g, x, nw, scaled_alone, 1, n);
      EXPECT_EQ(g.dispatch_count(), 4u);
      g.Run();
      const auto xs = Download<float>(x, n), got_scaled = Download<float>(scaled, n),
                 got_alone = Download<float>(scaled_alone, n);
      for (uint32_t i = 0; i < n; ++i) {
        ASSERT_EQ(got_scaled[i], xs[i] * norm_weight[i]) << "column " << i;
        ASSERT_EQ(got_alone[i], got_scaled[i]) << "column " << i;
      }
      const auto prescaled_out = Download<float>(prescaled_y, rows), folded_out = Download<float>(folded_y, rows);
      for (uint32_t r = 0; r < rows; ++r) {
        ASSERT_TRUE(std::isfinite(folded_out[r])) << "row " << r;
        ASSERT_NEAR(prescaled_out[r], folded_out[r], 1e-5f * std::max(1.0f, std::abs(folded_out[r]))) << "row " << r;
      }
    }
  }
}

// One token's products of a projection stored in parts of two types (q|k and v, gate and up) each
// bind only the Y columns they write (and their bias), so that neither waits on the other: no
// barrier between them, and each part's outputs are those it gives recorded alone.
TEST_F(GpuTest, OneTokenPartsOfAProjectionRunSideBySide) {
  const uint32_t cols = 256, rows = 128;  // a part's 512 bytes of Y: aligned for any device
  const auto w1 = RandomWeights(DType::Q8_0, rows, cols, 1), w2 = RandomWeights(DType::F16, rows, cols, 2);
  Buffer w1b = UploadWeights(DType::Q8_0, w1, rows, cols), w2b = UploadWeights(DType::F16, w2, rows, cols);
  Buffer x = Upload(RandomFloats(cols, 3, 1.0f)), nw = Upload(RandomFloats(cols, 4, 1.0f));
  Buffer bias = Upload(RandomFloats(2 * rows, 5, 1.0f)), scratch = Poisoned(cols * 4);
  const auto part = [&](const Buffer& w, DType type, BufferRange y, uint32_t y_offset) {
    return ops::MatMulArgs{.w = {&w, 0, type, rows, cols},
                           .x = x,
                           .y = y,
                           .y_stride = 2 * rows,
                           .y_offset = y_offset,
                           .bias = BufferRange(bias),
                           .norm = ops::RmsNormInput{.weight = nw, .eps = 1e-6f, .scratch = scratch}};
  };
  Buffer together = Poisoned(2 * rows * 4), first = Poisoned(2 * rows * 4), second = Poisoned(2 * rows * 4);
  Graph g(device());
  ops::MatMul(g, part(w1b, DType::Q8_0, together, 0));
  ops::MatMul(g, part(w2b, DType::F16, together, rows));
  EXPECT_EQ(g.dispatch_count(), 2u);
  EXPECT_EQ(g.barrier_count(), 0u);
  g.Run();
  Graph alone(device());
  ops::MatMul(alone, part(w1b, DType::Q8_0, first, 0));
  alone.Run();
  Graph alone2(device());
  ops::MatMul(alone2, part(w2b, DType::F16, second, rows));
  alone2.Run();
  const auto got = Download<float>(together, 2 * rows), a = Download<float>(first, 2 * rows),
             b = Download<float>(second, 2 * rows);
  for (uint32_t r = 0; r < rows; ++r) {
    ASSERT_TRUE(std::isfinite(got[r]) && std::isfinite(got[rows + r])) << "row " << r;
    ASSERT_EQ(got[r], a[r]) << "row " << r;
    ASSERT_EQ(got[rows + r], b[rows + r]) << "row " << rows + r;
  }
}

// Row groups of K-quant units take at least 8 lanes, so that a round reads a row's units in pieces
// of at least a 128-byte line, even where the estimate ties at the DRAM bound (1.5B's LM head,
// whose plan was 2 lanes).
TEST_F(GpuTest, KQuantMatVecRowGroupsTakeEightLanesOrMore) {
  for (const DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    for (const auto& [rows, cols] : {std::pair{151936u, 1536u}, {152064u, 3584u}, {8u, 256u}, {3584u, 18944u}}) {
      const ops::MatVecSplit split =
          ops::PlanMatVec(info(), {.type = type, .rows = rows, .cols = cols, .x_stride = cols, .tokens = 1});
      EXPECT_GE(split.lanes, 8u) << DTypeName(type) << " " << rows << " x " << cols;
    }
  }
}

// A MoE layer's decode asks the same rule of the experts' gate|up rows one token reads (k experts'
// rows): Qwen3-30B-A3B's (8 x 1 536 x 2 048, 25M) and Qwen1.5-MoE-A2.7B's (4 x 2 816 x 2 048, 23M)
// take their norm apart as K-quants, not as Q8_0, and not for more tokens.
TEST(NormApartTest, AppliesToTheExpertsRowsATokenReads) {
  EXPECT_TRUE(ops::NormApartFor(DType::Q4_K, 1, uint64_t{8} * 1536 * 2048));
  EXPECT_TRUE(ops::NormApartFor(DType::Q5_K, 1, uint64_t{4} * 2816 * 2048));
  EXPECT_FALSE(ops::NormApartFor(DType::Q8_0, 1, uint64_t{8} * 1536 * 2048));
  EXPECT_FALSE(ops::NormApartFor(DType::Q4_K, 2, uint64_t{8} * 1536 * 2048));
  EXPECT_FALSE(ops::NormApartFor(DType::Q4_K, 1, uint64_t{2} * 1536 * 2048));  // 2 of 8 experts' rows
}

TEST_F(GpuTest, MatMulRejectsSwiGluItCannotForm) {
  Buffer w = device().allocator().CreateBuffer(1 << 16, MemoryKind::Device);
  Buffer x = Poisoned(64 * 4), y = Poisoned(64 * 4), scratch = Poisoned(64 * 4);
  Graph g(device());
  const ops::SwiGluOutput swiglu{scratch};
  const auto error = [&](ops::MatMulArgs args) { return ErrorOf([&] { ops::MatMul(g, args); }); };
  const ops::MatMulArgs odd{.w = {&w, 0, DType::F16, 17, 32}, .x = x, .y = y, .swiglu = swiglu};
  const ops::MatMulArgs with_bias{.w = {&w, 0, DType::F16, 16, 32}, .x = x, .y = y, .bias = x, .swiglu = swiglu};
  const ops::MatMulArgs offset{.w = {&w, 0, DType::F16, 16, 32}, .x = x, .y = y, .y_offset = 1, .swiglu = swiglu};
  EXPECT_NE(error(odd).find("as many up rows"), std::string::npos) << error(odd);
  EXPECT_NE(error(with_bias).find("no bias, residual or Y offset"), std::string::npos) << error(with_bias);
  EXPECT_NE(error(offset).find("no bias, residual or Y offset"), std::string::npos) << error(offset);
}

// Only one token's matvec leaves its normalized input behind without a dispatch of its own; more
// tokens (matvec_tokens) have no such binding, and the scratch must hold the row.
TEST_F(GpuTest, MatMulStoresItsNormalizedInputForOneTokenOnly) {
  Buffer w = device().allocator().CreateBuffer(1 << 16, MemoryKind::Device);
  Buffer x = Poisoned(64 * 4), y = Poisoned(64 * 4), weight = Poisoned(32 * 4), scratch = Poisoned(64 * 4);
  Graph g(device());
  const auto error = [&](ops::MatMulArgs args) { return ErrorOf([&] { ops::MatMul(g, args); }); };
  const ops::RmsNormInput store{.weight = weight, .eps = 1e-6f, .scratch = scratch, .store = true};
  ops::MatMulArgs two{.w = {&w, 0, DType::F16, 16, 32}, .x = x, .y = y, .tokens = 2, .norm = store};
  EXPECT_NE(error(two).find("only one token's matvec"), std::string::npos) << error(two);
  ops::MatMulArgs small{.w = {&w, 0, DType::F16, 16, 32}, .x = x, .y = y, .tokens = 1, .norm = store};
  small.norm->scratch = SubRange(BufferRange(scratch), 0, 16 * 4);
  EXPECT_NE(error(small).find("norm scratch too small"), std::string::npos) << error(small);
}

}  // namespace
}  // namespace qvk::test
