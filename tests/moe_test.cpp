// Qwen3's per-head q/k norm and the mixture-of-experts kernels (router, expert products, combine)
// against the C++ reference, on odd shapes and every weight type.
#include <cmath>
#include <string>

#include "model/quantize.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

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

TEST_F(GpuTest, HeadNormMatchesReferenceAndLeavesValuesAlone) {
  // Qwen3-0.6B's 16 q / 8 kv heads of 128, the tiny fixture's 4 / 2 of 16, and odd ones.
  for (const auto& [tokens, heads, kv_heads, head_dim] :
       {std::tuple{1u, 16u, 8u, 128u}, {5u, 4u, 2u, 16u}, {3u, 3u, 1u, 6u}, {2u, 2u, 2u, 256u}}) {
    const size_t n = static_cast<size_t>(tokens) * (heads + 2 * kv_heads) * head_dim;
    const auto qkv = RandomFloats(n, head_dim + heads, 3.0f);
    const auto weight = RandomFloats(2 * head_dim, head_dim);
    Buffer qb = Upload(qkv), wb = Upload(weight);
    Graph g(device());
    ops::HeadNorm(g, qb, wb, tokens, heads, kv_heads, head_dim, 1e-6f);
    g.Run();
    ExpectClose(Download<float>(qb, n), ref::HeadNorm(qkv, weight, tokens, heads, kv_heads, head_dim, 1e-6f), 1e-5,
                1e-6, "head_norm D " + std::to_string(head_dim));
  }
}

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

class MoeMatVecTest : public GpuTest, public ::testing::WithParamInterface<DType> {};

TEST_P(MoeMatVecTest, ReadsTheChosenExpertOfEveryPair) {
  const DType type = GetParam();
  if (IsQuantized(type) && !info().storage_8bit) GTEST_SKIP() << "no 8-bit storage buffers";
  const uint32_t experts = 5, k = 3, tokens = 2;
  const uint32_t cols = IsQuantized(type) ? 2 * BlockElements(type) : 37;
  for (const auto& [rows, x_per_pair] : {std::pair{7u, false}, {33u, true}}) {
    std::vector<std::byte> w;
    if (IsQuantized(type)) {
      w = RandomBlocks(type, experts * rows, cols, rows, /*extreme_scales=*/false);
    } else {
      w = Encode(RandomFloats(static_cast<size_t>(experts) * rows * cols, rows), type);
    }
    const std::vector<uint32_t> ids = {4, 0, 2, 2, 2, 1};  // a token may route twice to one expert
    const auto x = RandomFloats(static_cast<size_t>(x_per_pair ? tokens * k : tokens) * cols, cols);
    // Y rows wider than one expert's output, written at an offset: gate and up side by side.
    const uint32_t y_stride = rows + 3, y_offset = 2;
    Buffer wb = Upload(w), xb = Upload(x), ib = Upload(ids), yb = Poisoned(4ull * tokens * k * y_stride);
    Graph g(device());
    ops::MoeMatVec(g, {.w = {&wb, 0, type, experts * rows, cols},
                       .rows = rows,
                       .x = xb,
                       .x_per_pair = x_per_pair,
                       .ids = ib,
                       .y = yb,
                       .tokens = tokens,
                       .k = k,
                       .y_stride = y_stride,
                       .y_offset = y_offset});
    g.Run();
    const std::vector<float> expected = ref::MoeMatVec(type, w, rows, cols, x, x_per_pair, ids, k);
    const std::vector<float> all = Download<float>(yb, static_cast<size_t>(tokens) * k * y_stride);
    std::vector<float> got;
    for (uint32_t pair = 0; pair < tokens * k; ++pair) {
      got.insert(got.end(), all.begin() + pair * y_stride + y_offset, all.begin() + pair * y_stride + y_offset + rows);
    }
    ExpectClose(got, expected, 1e-4, 1e-4, std::string("moe_matvec ") + std::string(DTypeName(type)));
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MoeMatVecTest,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_K, DType::Q6_K),
                         [](const auto& param_info) { return std::string(DTypeName(param_info.param)); });

TEST_F(GpuTest, MoeCombineAddsWeightedExpertsAndTheGatedSharedExpert) {
  const uint32_t tokens = 3, hidden = 41, k = 4;
  const auto x = RandomFloats(static_cast<size_t>(tokens) * hidden, 1);
  const auto weights = RandomFloats(static_cast<size_t>(tokens) * k, 2);
  const auto experts = RandomFloats(static_cast<size_t>(tokens) * k * hidden, 3);
  const auto shared = RandomFloats(static_cast<size_t>(tokens) * hidden, 4);
  const auto gate = RandomFloats(tokens, 5, 3.0f);
  for (const bool with_shared : {false, true}) {
    Buffer xb = Upload(x), wb = Upload(weights), eb = Upload(experts), sb = Upload(shared), gb = Upload(gate);
    Graph g(device());
    ops::MoeCombine(g, {.x = xb,
                        .weights = wb,
                        .expert_out = eb,
                        .shared_out = with_shared ? std::optional(BufferRange(sb)) : std::nullopt,
                        .shared_gate = with_shared ? std::optional(BufferRange(gb)) : std::nullopt,
                        .tokens = tokens,
                        .hidden = hidden,
                        .k = k});
    g.Run();
    ExpectClose(Download<float>(xb, x.size()),
                ref::MoeCombine(x, weights, experts, with_shared ? &shared : nullptr, with_shared ? &gate : nullptr,
                                tokens, hidden, k),
                1e-5, 1e-6, with_shared ? "combine with shared expert" : "combine");
  }
}

}  // namespace
}  // namespace qvk::test
