// Qwen3's per-head q/k norm and the mixture-of-experts kernels (router, decode's expert products,
// prefill's grouping by expert and grouped products, combine) against the C++ reference, on odd
// shapes, Qwen3-30B-A3B's and Qwen1.5-MoE-A2.7B's (trimmed to a few stored experts) and every
// weight type.
//
// Sections: head norm and router / expert products / the router product's choice / prefill grouped by
// expert / combine
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "model/quantize.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

void ExpectClose(const std::vector<float>& got, const std::vector<float>& expected, double rel, double abs,
                 const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 10; ++i) {
    if (!(std::abs(got[i] - expected[i]) <= abs + rel * std::abs(expected[i]))) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", expected " << expected[i];
      ++bad;
    }
  }
}

// --- router ----------------------------------------------------------------------------------

TEST_F(GpuTest, MoeRouteChoosesAsTransformers) {
  // Qwen2-57B (64 experts, top 8, not renormalized), Qwen1.5-MoE (60, top 4), Qwen3-30B (128, top 8,
  // renormalized), a near tie broken by the lower expert, and 70 tokens (two workgroups).
  for (const auto& [tokens, experts, k, normalize] :
       {std::tuple{1u, 64u, 8u, false}, {3u, 60u, 4u, false}, {70u, 128u, 8u, true}, {2u, 8u, 2u, true}}) {
    auto logits = RandomFloats(static_cast<size_t>(tokens) * experts, experts + k, 2.0f);
    logits[1] = logits[0];  // a tie: the lower expert comes first
    Buffer lb = Upload(logits), ib = Poisoned(4ull * tokens * k), wb = Poisoned(4ull * tokens * k);
    Graph g(device());
    ops::MoeRoute(g, lb, ib, wb, tokens, experts, k, normalize);
    g.Run();
    const ref::Routing expected = ref::MoeRoute(logits, tokens, experts, k, normalize);
    EXPECT_EQ(Download<uint32_t>(ib, expected.ids.size()), expected.ids) << experts << " experts";
    ExpectClose(Download<float>(wb, expected.weights.size()), expected.weights, 1e-5, 1e-7, "route weights");
  }
}

// Ties across the whole workgroup go to the lower experts; -inf logits still rank above no expert,
// and NaN ones (a corrupt model's) rank as -inf, so every id names one of the experts.
TEST_F(GpuTest, MoeRouteRanksTiesInfinitiesAndNaNs) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> weights;
  const auto route_ids = [&](const std::vector<float>& logits, uint32_t experts, uint32_t k) {
    Buffer lb = Upload(logits), ib = Poisoned(4ull * k), wb = Poisoned(4ull * k);
    Graph g(device());
    ops::MoeRoute(g, lb, ib, wb, 1, experts, k, true);
    g.Run();
    weights = Download<float>(wb, k);
    return Download<uint32_t>(ib, k);
  };
  EXPECT_EQ(route_ids(std::vector<float>(128, 0.25f), 128, 8), (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  const std::vector<float> odd = {nan, 1.0f, nan, -inf, 0.5f, nan, 2.0f, -inf};
  EXPECT_EQ(route_ids(odd, 8, 4), (std::vector<uint32_t>{6, 1, 4, 0}));
  // NaN weighs as -inf too, so the softmax of the rest stays finite: 2, 1 and 0.5 share it.
  const float e1 = std::exp(-1.0f), e15 = std::exp(-1.5f), sum = 1.0f + e1 + e15;
  ExpectClose(weights, {1.0f / sum, e1 / sum, e15 / sum, 0.0f}, 1e-6, 1e-7, "weights beside NaN logits");
  EXPECT_EQ(route_ids(odd, 8, 8), (std::vector<uint32_t>{6, 1, 4, 0, 2, 3, 5, 7}));
  // 96 experts, every one past the first 64 at -inf but for one at +inf.
  std::vector<float> wide(96, -inf);
  for (uint32_t e = 0; e < 64; ++e) wide[e] = static_cast<float>(e % 5);
  wide[90] = inf;
  EXPECT_EQ(route_ids(wide, 96, 4), (std::vector<uint32_t>{90, 4, 9, 14}));
}

// --- expert products ------------------------------------------------------------------------

constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                               DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Stored weights of any type: floats of a trained model's scale, or random blocks.
std::vector<std::byte> ExpertWeights(DType type, uint32_t rows, uint32_t cols, uint32_t seed) {
  if (IsQuantized(type)) return RandomBlocks(type, rows, cols, seed, /*extreme_scales=*/false);
  return Encode(RandomFloats(static_cast<size_t>(rows) * cols, seed, 0.05f), type);
}

// Columns of an odd shape: a few units and a ragged end for floats, two blocks of a block type.
uint32_t OddCols(DType type) {
  return IsQuantized(type) ? 2 * BlockElements(type) : 37;
}

// Each token's k distinct experts of `experts`, as the router chooses them; token t's first is
// always `popular` when it is set, so that expert has a pair of every token.
std::vector<uint32_t> DistinctIds(uint32_t tokens, uint32_t k, uint32_t experts, uint32_t seed,
                                  std::optional<uint32_t> popular = std::nullopt) {
  std::vector<uint32_t> ids;
  uint32_t state = seed * 2654435761u + 1;
  for (uint32_t t = 0; t < tokens; ++t) {
    std::vector<uint32_t> chosen;
    if (popular) chosen.push_back(*popular);
    while (chosen.size() < k) {
      state = state * 1664525u + 1013904223u;
      const uint32_t e = (state >> 8) % experts;
      if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
    }
    ids.insert(ids.end(), chosen.begin(), chosen.end());
  }
  return ids;
}

// Within the matvec kernel's bar (README's kernel table): |got - expected| <= 2e-5 * sum|w x| + 1e-6,
// or with SwiGLU the bar of silu(g) * u derived from g's and u's (ref::SwiGluBound).
void ExpectWithinMatVecBar(const std::vector<float>& got, const std::vector<float>& products,
                           const std::vector<double>& magnitude, uint32_t pairs, uint32_t expert_rows, bool swiglu,
                           const std::string& what) {
  const uint32_t outputs = swiglu ? expert_rows / 2 : expert_rows;
  ASSERT_EQ(got.size(), size_t{pairs} * outputs) << what;
  const auto tolerance_of = [&](size_t j) { return 2e-5 * magnitude[j] + 1e-6; };
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && bad < 10; ++i) {
    const size_t pair = i / outputs, o = i % outputs;
    const size_t gate = pair * expert_rows + o;
    double expected = products[gate], tolerance = tolerance_of(gate);
    if (swiglu) {
      const size_t up = gate + outputs;
      const ref::BoundedValue bounded = ref::SwiGluBound(products[gate], products[up], tolerance, tolerance_of(up));
      expected = bounded.value;
      tolerance = bounded.tolerance;
    }
    if (!(std::abs(got[i] - expected) <= tolerance)) {
      ADD_FAILURE() << what << ": pair " << pair << " output " << o << ": got " << got[i] << ", expected " << expected
                    << ", tolerance " << tolerance;
      ++bad;
    }
  }
}

struct ExpertsCase {
  std::string name;
  uint32_t experts, k, tokens;
  uint32_t expert_rows, cols;  // cols 0: OddCols
  bool x_per_pair = false;
  bool swiglu = false;
  bool norm = false;  // X is rmsnorm(X) * weight per token
};

// X, or rmsnorm(X) * weight with c.norm, as the products see it.
template <class Case>
std::vector<float> ProductInput(const Case& c, const std::vector<float>& x, const std::vector<float>& norm_weight,
                                uint32_t cols) {
  if (!c.norm) return x;
  return ref::RmsNorm(x, norm_weight, static_cast<uint32_t>(x.size() / cols), cols, 1e-6f);
}

// Odd shapes (rows that leave row groups part full, units with a ragged end, duplicate choices
// the matvec kernel must take as they come), and Qwen3-30B-A3B's and Qwen1.5-MoE-A2.7B's gate|up
// decode products (fewer experts stored: only the chosen ones are read).
std::vector<ExpertsCase> DecodeCases() {
  return {{"odd_per_token", 5, 3, 2, 7, 0},
          {"odd_per_pair", 5, 3, 2, 33, 0, true},
          {"odd_swiglu", 5, 3, 1, 2 * 9, 0, false, true},
          {"odd_swiglu_t4", 6, 2, 4, 2 * 5, 0, false, true},
          {"odd_norm_t3", 4, 2, 3, 11, 0, false, false, true},
          {"qwen3_30b_gate_up", 9, 8, 1, 2 * 768, 2048, false, true, true},
          {"qwen15_moe_gate_up", 5, 4, 1, 2 * 1408, 2048, false, true, true}};
}

class ExpertsMatVecTest : public GpuTest, public ::testing::WithParamInterface<DType> {};

// Every pair reads its chosen expert's rows (the matvec kernel, decode's few tokens).
TEST_P(ExpertsMatVecTest, ReadsTheChosenExpertOfEveryPair) {
  const DType type = GetParam();
  if (IsQuantized(type) && !info().storage_8bit) GTEST_SKIP() << "no 8-bit storage buffers";
  for (const ExpertsCase& c : DecodeCases()) {
    // Real shapes in the types Q4_K_M files store them in and F16; odd ones in every type.
    const bool real = c.cols != 0;
    if (real && type != DType::Q4_K && type != DType::F16 && type != DType::Q8_0) continue;
    const uint32_t cols = real ? c.cols : OddCols(type);
    const uint32_t pairs = c.tokens * c.k;
    const auto w = ExpertWeights(type, c.experts * c.expert_rows, cols, c.expert_rows + cols);
    // A token may route twice to one expert here: the matvec kernel takes each pair alone.
    std::vector<uint32_t> ids = real ? DistinctIds(c.tokens, c.k, c.experts, 7) : std::vector<uint32_t>{};
    for (uint32_t q = 0; !real && q < pairs; ++q) ids.push_back((q * 3 + q / 2) % c.experts);
    if (!real) ids[1] = ids[0];
    const auto x = RandomFloats(static_cast<size_t>(c.x_per_pair ? pairs : c.tokens) * cols, cols, 2.0f);
    const auto norm_weight = RandomFloats(cols, cols + 1);
    // Y rows wider than the outputs, written at an offset (gate and up side by side).
    const uint32_t outputs = c.swiglu ? c.expert_rows / 2 : c.expert_rows;
    const uint32_t y_offset = c.swiglu ? 0 : 2, y_stride = outputs + y_offset + 1;
    Buffer wb = UploadWeights(type, w, c.experts * c.expert_rows, cols), xb = Upload(x), ib = Upload(ids),
           yb = Poisoned(4ull * pairs * y_stride);
    Buffer nb = Upload(norm_weight);
    Graph g(device());
    ops::ExpertsMatMul(
        g, {.w = {&wb, 0, type, c.experts * c.expert_rows, cols},
            .expert_rows = c.expert_rows,
            .x = xb,
            .x_per_pair = c.x_per_pair,
            .ids = ib,
            .y = yb,
            .tokens = c.tokens,
            .k = c.k,
            .y_stride = y_stride,
            .y_offset = y_offset,
            .norm = c.norm ? std::optional(ops::RmsNormInput{.weight = nb, .eps = 1e-6f, .scratch = yb}) : std::nullopt,
            .swiglu = c.swiglu,
            .kernel = ops::MatMulKernel::MatVec});
    g.Run();
    std::vector<double> magnitude;
    const auto products = ref::ExpertProducts(type, w, c.expert_rows, cols, ProductInput(c, x, norm_weight, cols),
                                              c.x_per_pair, ids, c.k, &magnitude);
    const auto all = Download<float>(yb, static_cast<size_t>(pairs) * y_stride);
    std::vector<float> got;
    for (uint32_t pair = 0; pair < pairs; ++pair) {
      const auto row = all.begin() + static_cast<ptrdiff_t>(pair) * y_stride + y_offset;
      got.insert(got.end(), row, row + outputs);
    }
    ExpectWithinMatVecBar(got, products, magnitude, pairs, c.expert_rows, c.swiglu,
                          c.name + " " + std::string(DTypeName(type)));
  }
}

// Decode's down product: each token's k experts' rows side by side, their inputs scaled by the
// router weights, added to the residual stream.
TEST_P(ExpertsMatVecTest, SumsTheChosenExpertsIntoTheResidual) {
  const DType type = GetParam();
  if (IsQuantized(type) && !info().storage_8bit) GTEST_SKIP() << "no 8-bit storage buffers";
  struct SumCase {
    std::string name;
    uint32_t experts, k, tokens, hidden, inter;  // inter 0: OddCols
    bool shared = false;                         // Qwen2-MoE's shared expert added in the epilogue
  };
  for (const SumCase& c :
       {SumCase{"odd", 5, 3, 2, 41, 0}, SumCase{"odd_k1_t3", 4, 1, 3, 9, 0},
        SumCase{"odd_shared_t2", 5, 2, 2, 23, 0, true}, SumCase{"qwen3_30b_down", 9, 8, 1, 2048, 768},
        SumCase{"qwen15_moe_down", 5, 4, 1, 2048, 1408, true}}) {
    const bool real = c.inter != 0;
    // Qwen1.5-MoE's 1408 columns are no whole number of K-quant blocks (its files store them as Q8_0).
    if (real && type != DType::Q6_K && type != DType::F16 && type != DType::Q8_0) continue;
    if (real && c.inter % BlockElements(type) != 0) continue;
    const uint32_t inter = real ? c.inter : OddCols(type);
    const uint32_t pairs = c.tokens * c.k;
    const auto w = ExpertWeights(type, c.experts * c.hidden, inter, c.hidden + inter);
    const auto ids = DistinctIds(c.tokens, c.k, c.experts, 11);
    const auto weights = RandomFloats(pairs, 12);
    const auto m = RandomFloats(static_cast<size_t>(pairs) * inter, 13, 2.0f);
    const auto residual = RandomFloats(static_cast<size_t>(c.tokens) * c.hidden, 14);
    const auto shared_out = RandomFloats(static_cast<size_t>(c.tokens) * c.hidden, 15);
    const auto shared_gate = RandomFloats(c.tokens, 16, 3.0f);
    Buffer wb = UploadWeights(type, w, c.experts * c.hidden, inter), mb = Upload(m), ib = Upload(ids),
           weights_b = Upload(weights), yb = Upload(residual), sb = Upload(shared_out), gb = Upload(shared_gate);
    Graph g(device());
    ops::ExpertsMatVecSum(
        g, {.w = {&wb, 0, type, c.experts * c.hidden, inter},
            .expert_rows = c.hidden,
            .m = mb,
            .ids = ib,
            .weights = weights_b,
            .y = yb,
            .tokens = c.tokens,
            .k = c.k,
            .shared = c.shared ? std::optional(ops::SharedExpertOut{.out = sb, .gate = gb}) : std::nullopt});
    g.Run();
    std::vector<double> magnitude;
    const auto products = ref::ExpertProducts(type, w, c.hidden, inter, m, /*x_per_pair=*/true, ids, c.k, &magnitude);
    const auto got = Download<float>(yb, residual.size());
    size_t bad = 0;
    for (uint32_t t = 0; t < c.tokens; ++t) {
      for (uint32_t o = 0; o < c.hidden && bad < 10; ++o) {
        double expected = residual[t * c.hidden + o], bound = std::abs(expected);
        for (uint32_t j = 0; j < c.k; ++j) {
          const size_t at = size_t{t * c.k + j} * c.hidden + o;
          expected += double{weights[t * c.k + j]} * products[at];
          bound += std::abs(double{weights[t * c.k + j]}) * magnitude[at];
        }
        if (c.shared) {
          const double gated = shared_out[t * c.hidden + o] / (1.0 + std::exp(-double{shared_gate[t]}));
          expected += gated;
          bound += std::abs(gated);
        }
        const double tolerance = 2e-5 * bound + 1e-6;
        if (!(std::abs(got[t * c.hidden + o] - expected) <= tolerance)) {
          ADD_FAILURE() << c.name << " " << DTypeName(type) << ": token " << t << " output " << o << ": got "
                        << got[t * c.hidden + o] << ", expected " << expected << ", tolerance " << tolerance;
          ++bad;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ExpertsMatVecTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

// --- the router product's choice ------------------------------------------------------------

// One token's router product that makes the choice in its last workgroup (decode's, matvec_route):
// its logits within the matvec bar of the reference, and the ids and weights it stores those
// MoeRoute makes of the same logits, bit for bit, for a norm folded in or not (and the normalized
// input stored, as Qwen3-MoE's router leaves it for the experts), one workgroup or many; two
// such products in one graph, the second counting on the counter the first set back to zero.
struct RouterCase {
  std::string name;
  uint32_t experts, k, cols;  // cols 0: OddCols
  bool norm = false;
  bool store_normed = false;
  bool normalize = false;  // norm_topk_prob
};
class RouterMatVecTest : public GpuTest, public ::testing::WithParamInterface<DType> {};
TEST_P(RouterMatVecTest, ChoosesAsMoeRouteInItsLastWorkgroup) {
  const DType type = GetParam();
  if (IsQuantized(type) && !info().storage_8bit) GTEST_SKIP() << "no 8-bit storage buffers";
  const std::vector<RouterCase> cases = {{"odd", 5, 3, 0},
                                         {"odd_norm_normalized", 7, 2, 0, true, false, true},
                                         {"many_workgroups_norm_stored", 300, 8, 0, true, true},
                                         {"qwen15_moe", 60, 4, 2048},  // its shared expert: h is apart
                                         {"qwen3_30b_norm_stored_normalized", 128, 8, 2048, true, true, true},
                                         {"qwen2_57b", 64, 8, 3584}};
  for (const RouterCase& c : cases) {
    const bool real = c.cols != 0;
    if (real && type != DType::F32 && type != DType::BF16 && type != DType::Q8_0) continue;
    const uint32_t cols = real ? c.cols : OddCols(type);
    const std::string what = c.name + " " + std::string(DTypeName(type));
    const auto w = ExpertWeights(type, c.experts, cols, c.experts + cols);
    const auto norm_weight = RandomFloats(cols, cols + 1);
    Buffer wb = UploadWeights(type, w, c.experts, cols), nb = Upload(norm_weight),
           counter = Upload(std::vector<uint32_t>{0});
    struct Product {
      std::vector<float> x;
      Buffer xb, yb, ib, wtb, normed, route_ib, route_wb;
    };
    std::vector<Product> products(2);
    Graph g(device());
    for (uint32_t i = 0; i < products.size(); ++i) {
      Product& p = products[i];
      p.x = RandomFloats(cols, cols + 2 + i, 2.0f);
      p.xb = Upload(p.x);
      p.yb = Poisoned(4ull * c.experts);
      p.ib = Poisoned(4ull * c.k);
      p.wtb = Poisoned(4ull * c.k);
      p.normed = Poisoned(4ull * cols);
      p.route_ib = Poisoned(4ull * c.k);
      p.route_wb = Poisoned(4ull * c.k);
      ops::MatMul(g, {.w = {&wb, 0, type, c.experts, cols},
                      .x = p.xb,
                      .y = p.yb,
                      .norm = c.norm ? std::optional(ops::RmsNormInput{
                                           .weight = nb, .eps = 1e-6f, .scratch = p.normed, .store = c.store_normed})
                                     : std::nullopt,
                      .route = ops::RouteOutput{
                          .ids = p.ib, .weights = p.wtb, .counter = counter, .k = c.k, .normalize = c.normalize}});
    }
    for (Product& p : products) ops::MoeRoute(g, p.yb, p.route_ib, p.route_wb, 1, c.experts, c.k, c.normalize);
    g.Run();
    EXPECT_EQ(Download<uint32_t>(counter, 1), std::vector<uint32_t>{0}) << what << ": the counter left set";
    for (uint32_t i = 0; i < products.size(); ++i) {
      const Product& p = products[i];
      const std::string product = what + " product " + std::to_string(i);
      const auto in = c.norm ? ref::RmsNorm(p.x, norm_weight, 1, cols, 1e-6f) : p.x;
      if (c.store_normed) {
        const auto normed = Download<float>(p.normed, cols);
        for (uint32_t j = 0; j < cols; ++j) {
          EXPECT_NEAR(normed[j], in[j], 1e-5 * std::abs(in[j]) + 1e-7) << product << ": normalized input " << j;
        }
      }
      std::vector<double> magnitude;
      const auto expected = ref::StoredMatMul(type, w, c.experts, cols, in, 1, nullptr, nullptr, &magnitude);
      const auto logits = Download<float>(p.yb, c.experts);
      ExpectWithinMatVecBar(logits, expected, magnitude, /*pairs=*/1, c.experts, /*swiglu=*/false, product);
      const auto ids = Download<uint32_t>(p.ib, c.k);
      EXPECT_EQ(ids, ref::MoeRoute(logits, 1, c.experts, c.k, c.normalize).ids) << product;
      EXPECT_EQ(ids, Download<uint32_t>(p.route_ib, c.k)) << product;
      const auto weights = Download<float>(p.wtb, c.k), route_weights = Download<float>(p.route_wb, c.k);
      for (uint32_t j = 0; j < c.k; ++j) {
        EXPECT_EQ(std::bit_cast<uint32_t>(weights[j]), std::bit_cast<uint32_t>(route_weights[j]))
            << product << ": weight " << j;
      }
    }
  }
}
INSTANTIATE_TEST_SUITE_P(Types, RouterMatVecTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

// --- prefill grouped by expert -------------------------------------------------------------

TEST_F(GpuTest, GroupByExpertListsEachExpertsPairs) {
  // Qwen3-30B-A3B's routing of a 256-token chunk, Qwen1.5-MoE's of 70 tokens, an expert every
  // token chose, experts no token chose, and one pair.
  for (const auto& [tokens, k, experts] : {std::tuple{256u, 8u, 128u}, {70u, 4u, 60u}, {5u, 2u, 1000u}, {1u, 1u, 3u}}) {
    const auto ids = DistinctIds(tokens, k, experts, tokens + experts, tokens > 64 ? std::optional(3u) : std::nullopt);
    const uint32_t pairs = tokens * k;
    Buffer ib = Upload(ids), ob = Poisoned(4ull * (experts + 1)), sb = Poisoned(4ull * pairs);
    Graph g(device());
    ops::GroupByExpert(g, ib, pairs, experts, {.offsets = ob, .sorted = sb});
    g.Run();
    const auto offsets = Download<uint32_t>(ob, experts + 1);
    auto sorted = Download<uint32_t>(sb, pairs);
    std::vector<uint32_t> expected_offsets{0};
    for (uint32_t e = 0; e < experts; ++e) {
      expected_offsets.push_back(expected_offsets.back() +
                                 static_cast<uint32_t>(std::count(ids.begin(), ids.end(), e)));
    }
    ASSERT_EQ(offsets, expected_offsets) << experts << " experts";
    for (uint32_t e = 0; e < experts; ++e) {
      // Any order within an expert: sorted, its pairs are those that chose it, ascending.
      std::sort(sorted.begin() + offsets[e], sorted.begin() + offsets[e + 1]);
      std::vector<uint32_t> chose;
      for (uint32_t q = 0; q < pairs; ++q) {
        if (ids[q] == e) chose.push_back(q);
      }
      EXPECT_EQ(std::vector<uint32_t>(sorted.begin() + offsets[e], sorted.begin() + offsets[e + 1]), chose)
          << "expert " << e;
    }
  }
}

struct GroupedCase {
  std::string name;
  uint32_t experts, k, tokens, expert_rows, cols;  // cols 0: OddCols
  bool x_per_pair = false;
  bool swiglu = false;
  bool norm = false;  // an RmsNorm of X first
};

// Odd shapes (a row tile part full, elements read one at a time, an expert with more pairs than a
// token tile, experts with none), and Qwen3-30B-A3B's and Qwen1.5-MoE-A2.7B's prefill products:
// their inner sizes and k, trimmed for lavapipe in tokens, stored experts and rows (several row
// tiles still, the last part full).
std::vector<GroupedCase> GroupedCases() {
  return {{"odd_per_token", 6, 3, 70, 33, 0},
          {"odd_per_pair", 9, 2, 9, 7, 0, true},
          {"odd_swiglu", 5, 2, 6, 2 * 17, 0, false, true},
          {"odd_norm", 5, 2, 7, 9, 0, false, false, true},
          {"qwen3_30b_gate_up", 12, 8, 16, 2 * 160, 2048, false, true},
          {"qwen3_30b_down", 12, 8, 16, 320, 768, true},
          {"qwen15_moe_down", 8, 4, 12, 320, 1408, true}};
}

class ExpertsGroupedTest : public GpuTest, public ::testing::WithParamInterface<DType> {
 protected:
  // The grouped products of case c with `kernel`, and the exact products with their sum|w x|.
  struct Result {
    std::vector<float> got, products;
    std::vector<double> magnitude;
    std::vector<float> x;  // as the products see it (normalized with c.norm)
    std::vector<std::byte> w;
    std::vector<uint32_t> ids;
    uint32_t cols = 0;
  };
  Result Run(const GroupedCase& c, DType type, ops::MatMulKernel kernel) {
    Result r;
    r.cols = c.cols != 0 ? c.cols : OddCols(type);
    const uint32_t pairs = c.tokens * c.k;
    const uint32_t outputs = c.swiglu ? c.expert_rows / 2 : c.expert_rows;
    r.w = ExpertWeights(type, c.experts * c.expert_rows, r.cols, c.expert_rows + r.cols + 1);
    r.ids = DistinctIds(c.tokens, c.k, c.experts, c.tokens, std::optional(1u));
    const auto x = RandomFloats(static_cast<size_t>(c.x_per_pair ? pairs : c.tokens) * r.cols, r.cols + 2, 2.0f);
    const auto norm_weight = RandomFloats(r.cols, r.cols + 3);
    r.x = ProductInput(c, x, norm_weight, r.cols);
    Buffer wb = UploadWeights(type, r.w, c.experts * c.expert_rows, r.cols), xb = Upload(x), ib = Upload(r.ids),
           yb = Poisoned(4ull * pairs * outputs);
    Buffer nb = Upload(norm_weight), norm_scratch = Poisoned(4 * x.size());
    Buffer ob = Poisoned(4ull * (c.experts + 1)), sb = Poisoned(4ull * pairs);
    // X rounded to f16, where the coopmat kernel reads it so: room for it on every path (the tiled
    // kernel leaves it alone).
    Buffer x_f16 = Poisoned(2ull * (c.x_per_pair ? pairs : c.tokens) * AlignUp(r.cols, 8));
    Graph g(device());
    const ops::ExpertGroups groups{.offsets = ob, .sorted = sb};
    ops::GroupByExpert(g, ib, pairs, c.experts, groups);
    ops::ExpertsMatMul(
        g, {.w = {&wb, 0, type, c.experts * c.expert_rows, r.cols},
            .expert_rows = c.expert_rows,
            .x = xb,
            .x_per_pair = c.x_per_pair,
            .ids = ib,
            .y = yb,
            .tokens = c.tokens,
            .k = c.k,
            .norm = c.norm ? std::optional(ops::RmsNormInput{.weight = nb, .eps = 1e-6f, .scratch = norm_scratch})
                           : std::nullopt,
            .swiglu = c.swiglu,
            .groups = groups,
            .kernel = kernel,
            .x_f16 = x_f16});
    g.Run();
    r.got = Download<float>(yb, static_cast<size_t>(pairs) * outputs);
    r.products = ref::ExpertProducts(type, r.w, c.expert_rows, r.cols, r.x, c.x_per_pair, r.ids, c.k, &r.magnitude);
    return r;
  }
};

// The tiled kernel: the f32 bar of the matvec and tiled kernels.
TEST_P(ExpertsGroupedTest, TiledMatchesReference) {
  const DType type = GetParam();
  if (IsQuantized(type) && !info().storage_8bit) GTEST_SKIP() << "no 8-bit storage buffers";
  for (const GroupedCase& c : GroupedCases()) {
    if (c.cols != 0 && (c.cols % BlockElements(type) != 0 || (type != DType::Q4_K && type != DType::Q8_0))) continue;
    const Result r = Run(c, type, ops::MatMulKernel::Tiled);
    ExpectWithinMatVecBar(r.got, r.products, r.magnitude, c.tokens * c.k, c.expert_rows, c.swiglu,
                          c.name + " tiled " + std::string(DTypeName(type)));
  }
}

// The cooperative-matrix kernel (devices with matrix units): matmul_coopmat_test's bar, W and X
// rounded to nearest f16 (but for F16 and BF16 weights, which take X as f16 hi + lo), f32 sums in
// the matrix units.
TEST_P(ExpertsGroupedTest, CoopmatMatchesReference) {
  const DType type = GetParam();
  if (!info().coopmat_f16) GTEST_SKIP() << "no cooperative matrices: " << info().coopmat_f16_problem;
  const double relative = (type == DType::F16 || type == DType::BF16 ? 0.0 : 0x1p-10) + 0x1p-20 + 4e-5;
  for (const GroupedCase& c : GroupedCases()) {
    if (c.cols != 0 && c.cols % BlockElements(type) != 0) continue;
    const Result r = Run(c, type, ops::MatMulKernel::CoopMat);
    const std::vector<float> w_values = DequantizeRows(type, r.w, c.experts * c.expert_rows, r.cols);
    // Product j's bound (pair j / expert_rows, row j % expert_rows).
    const auto tolerance_of = [&](size_t j) {
      const size_t pair = j / c.expert_rows;
      const size_t w_row = size_t{r.ids[pair]} * c.expert_rows + j % c.expert_rows;
      const size_t x_row = c.x_per_pair ? pair : pair / c.k;
      double w_abs = 0, x_abs = 0;
      for (uint32_t col = 0; col < r.cols; ++col) {
        w_abs += std::abs(w_values[w_row * r.cols + col]);
        x_abs += std::abs(r.x[x_row * r.cols + col]);
      }
      return relative * r.magnitude[j] + 0x1p-24 * (w_abs + x_abs) + 1e-6;
    };
    const uint32_t outputs = c.swiglu ? c.expert_rows / 2 : c.expert_rows;
    size_t bad = 0;
    for (size_t i = 0; i < r.got.size() && bad < 10; ++i) {
      const size_t product = i / outputs * c.expert_rows + i % outputs;
      double expected = r.products[product], tolerance = tolerance_of(product);
      if (c.swiglu) {
        const size_t up = product + outputs;
        const ref::BoundedValue bounded = ref::SwiGluBound(expected, r.products[up], tolerance, tolerance_of(up));
        expected = bounded.value;
        tolerance = bounded.tolerance;
      }
      if (!(std::abs(r.got[i] - expected) <= tolerance)) {
        ADD_FAILURE() << c.name << " " << DTypeName(type) << ": output " << i << ": got " << r.got[i] << ", expected "
                      << expected << ", tolerance " << tolerance;
        ++bad;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ExpertsGroupedTest, ::testing::ValuesIn(kAllTypes),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

TEST_F(GpuTest, ExpertsMatMulAsksForGroupsPastMatVecTokens) {
  Buffer w = Poisoned(4 * 64), x = Poisoned(4 * 64), ids = Poisoned(4 * 16), y = Poisoned(4 * 256);
  Graph g(device());
  const std::string error = ErrorOf([&] {
    ops::ExpertsMatMul(g, {.w = {&w, 0, DType::F32, 8, 8},
                           .expert_rows = 4,
                           .x = x,
                           .ids = ids,
                           .y = y,
                           .tokens = 8,
                           .k = 2,
                           .kernel = ops::MatMulKernel::Tiled});
  });
  EXPECT_NE(error.find("grouped by expert"), std::string::npos) << error;
}

// The router's choice is made in the router product only on one token's matvec, whose output is
// the plain logits, and only of 1 to QVK_MAX_SEGMENTS of its rows.
TEST_F(GpuTest, MatMulRoutesOnlyOneTokensMatVec) {
  Buffer w = Poisoned(4 * 64), x = Poisoned(4 * 64), y = Poisoned(4 * 64), ids = Poisoned(4 * 64),
         weights = Poisoned(4 * 64), counter = Poisoned(4);
  const ops::RouteOutput route{.ids = ids, .weights = weights, .counter = counter, .k = 2};
  const ops::MatMulArgs base{.w = {&w, 0, DType::F32, 8, 8}, .x = x, .y = y, .route = route};
  std::vector<ops::MatMulArgs> refused(5, base);
  refused[0].tokens = 2;
  refused[1].kernel = ops::MatMulKernel::Tiled;
  refused[2].bias = BufferRange(x);
  refused[3].route->k = 0;
  refused[4].route->k = 9;  // more than the router's rows
  for (const ops::MatMulArgs& args : refused) {
    Graph g(device());
    const std::string error = ErrorOf([&] { ops::MatMul(g, args); });
    EXPECT_NE(error.find("router"), std::string::npos) << error;
  }
}

// --- combine ------------------------------------------------------------------------------

TEST_F(GpuTest, MoeCombineAddsWeightedExpertsAndTheGatedSharedExpert) {
  const uint32_t tokens = 3, hidden = 41, k = 4;
  const auto x = RandomFloats(static_cast<size_t>(tokens) * hidden, 1);
  const auto weights = RandomFloats(static_cast<size_t>(tokens) * k, 2);
  const auto experts = RandomFloats(static_cast<size_t>(tokens) * k * hidden, 3);
  const auto shared = RandomFloats(static_cast<size_t>(tokens) * hidden, 4);
  const auto gate = RandomFloats(tokens, 5, 3.0f);
  for (const auto& [with_shared, used] : {std::pair{false, k}, {true, k}, {true, 1u}}) {
    Buffer xb = Upload(x), wb = Upload(weights), eb = Upload(experts), sb = Upload(shared), gb = Upload(gate);
    Graph g(device());
    ops::MoeCombine(g, {.x = xb,
                        .weights = wb,
                        .expert_out = eb,
                        .shared_out = with_shared ? std::optional(BufferRange(sb)) : std::nullopt,
                        .shared_gate = with_shared ? std::optional(BufferRange(gb)) : std::nullopt,
                        .tokens = tokens,
                        .hidden = hidden,
                        .k = used});
    g.Run();
    ExpectClose(Download<float>(xb, x.size()),
                ref::MoeCombine(x, weights, experts, with_shared ? &shared : nullptr, with_shared ? &gate : nullptr,
                                tokens, hidden, used),
                1e-5, 1e-6, fmt::format("combine of {} experts{}", used, with_shared ? " and the shared one" : ""));
  }
}

}  // namespace
}  // namespace qvk::test
