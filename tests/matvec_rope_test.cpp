// The q|k|v projection with RoPE folded in (ops::MatMulRope) against reference products, then
// reference RoPE, then the F16 KV cache rows: decode's matvec_rope epilogue for every common weight
// type, Qwen2.5-0.5B's, 1.5B's, 7B's and a small head layout, positions from 0 and from 3000, YaRN,
// a projection stored as two matrices side by side, and the prefill path (products, then a Rope
// dispatch).
#include <cmath>
#include <string>

#include "base/numeric.h"
#include "model/rope_frequencies.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

// One stored matrix of the projection: `heads` whole heads of rows starting at head `first_head`.
struct PartSpec {
  DType type;
  uint32_t first_head, heads;
};

struct MatVecRopeCase {
  std::string name;
  std::vector<PartSpec> parts;
  uint32_t hidden, n_heads, n_kv_heads, head_dim, tokens, first_position;
  bool yarn = false;
  // X * norm weight stored first (ScaleByWeight) and read prescaled (matvec_rope_prescaled); past
  // one token the products normalize X as without it.
  bool prescaled = false;
};

void PrintTo(const MatVecRopeCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<MatVecRopeCase> Cases() {
  std::vector<MatVecRopeCase> cases;
  for (DType type : {DType::F16, DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
    const std::string t = DTypeName(type);
    const std::vector<PartSpec> q05_whole = {{type, 0, 14 + 2 * 2}};
    // Q4_K rows hold whole 256-column blocks: 0.5B's heads over 1024 columns.
    const uint32_t q05_hidden = type == DType::Q4_K ? 1024 : 896;
    cases.push_back({"q05_" + t + "_t1_pos0", q05_whole, q05_hidden, 14, 2, 64, 1, 0});
    cases.push_back({"q05_" + t + "_t3_pos3000", q05_whole, q05_hidden, 14, 2, 64, 3, 3000});
    const uint32_t small_hidden = type == DType::Q4_K ? 256 : 64;
    cases.push_back({"small_" + t + "_t3_pos3000_yarn", {{type, 0, 4 + 2 * 2}}, small_hidden, 4, 2, 16, 3, 3000, true});
  }
  cases.push_back({"q05_Q8_0_t1_pos3000_yarn", {{DType::Q8_0, 0, 18}}, 896, 14, 2, 64, 1, 3000, true});
  // As Qwen2.5-0.5B's Q4_K_M file stores it (896 columns take no K-quant): q|k in Q5_0, v in Q8_0
  // at its Y offset.
  const std::vector<PartSpec> q4_k_m = {{DType::Q5_0, 0, 16}, {DType::Q8_0, 16, 2}};
  cases.push_back({"q05_two_parts_t3_pos3000", q4_k_m, 896, 14, 2, 64, 3, 3000});
  cases.push_back({"q05_two_parts_t1_pos3000", q4_k_m, 896, 14, 2, 64, 1, 3000});
  // As 7B's Q4_K_M file stores half its layers: q|k in Q4_K, v in Q6_K.
  cases.push_back(
      {"q7_two_parts_t1_pos3000", {{DType::Q4_K, 0, 28 + 4}, {DType::Q6_K, 32, 4}}, 3584, 28, 4, 128, 1, 3000});
  // 128 columns: a row group holds one rotated pair where subgroups are 8 wide (lavapipe), as
  // 1.5B's does on a 32-wide one (PlanMatVec); elsewhere groups hold two pairs.
  cases.push_back({"small_F16_t1_pos3000_one_pair", {{DType::F16, 0, 4 + 2 * 2}}, 128, 4, 2, 16, 1, 3000});
  // Qwen2.5-1.5B's and 7B's layouts (head_dim 128) in Q4_K, as their Q4_K_M files store q|k.
  cases.push_back({"q15_Q4_K_t1_pos3000", {{DType::Q4_K, 0, 12 + 2 * 2}}, 1536, 12, 2, 128, 1, 3000});
  cases.push_back({"q7_Q4_K_t1_pos0", {{DType::Q4_K, 0, 28 + 2 * 4}}, 3584, 28, 4, 128, 1, 0});
  cases.push_back({"q7_Q4_K_t1_pos0_prescaled", {{DType::Q4_K, 0, 28 + 2 * 4}}, 3584, 28, 4, 128, 1, 0, false, true});
  cases.push_back(
      {"small_F16_t1_pos3000_one_pair_prescaled", {{DType::F16, 0, 4 + 2 * 2}}, 128, 4, 2, 16, 1, 3000, false, true});
  cases.push_back({"q05_two_parts_t1_pos3000_prescaled", q4_k_m, 896, 14, 2, 64, 1, 3000, false, true});
  cases.push_back({"q05_two_parts_t3_pos3000_prescaled_unused", q4_k_m, 896, 14, 2, 64, 3, 3000, false, true});
  // Past matvec's 4 tokens: the products, then a separate Rope dispatch, to the same result.
  cases.push_back({"q05_Q4_0_t5_pos3000_fallback", {{DType::Q4_0, 0, 18}}, 896, 14, 2, 64, 5, 3000});
  cases.push_back({"q05_two_parts_t5_pos0_fallback", q4_k_m, 896, 14, 2, 64, 5, 0});
  return cases;
}

// Stored weights of any type: floats of a trained model's scale, or random blocks of realistic
// scales (extreme ones would overflow the F16 cache).
std::vector<std::byte> RandomWeights(DType type, uint32_t rows, uint32_t cols, uint32_t seed) {
  if (IsQuantized(type)) return RandomBlocks(type, rows, cols, seed, /*extreme_scales=*/false);
  return Encode(RandomFloats(static_cast<size_t>(rows) * cols, seed, 0.05f), type);
}

class MatVecRopeTest : public GpuTest, public ::testing::WithParamInterface<MatVecRopeCase> {};

TEST_P(MatVecRopeTest, MatchesProductsThenRope) {
  const MatVecRopeCase& c = GetParam();
  const uint32_t D = c.head_dim, T = c.tokens;
  const uint32_t width = (c.n_heads + 2 * c.n_kv_heads) * D;
  const uint32_t capacity = 4096;
  const float eps = 1e-6f;
  std::optional<YarnScaling> yarn;
  if (c.yarn) yarn = YarnScaling{.factor = 4.0, .original_max_position_embeddings = 32768};
  const RopeFrequencies freqs = ComputeRopeFrequencies(D, 1e6, yarn);
  if (c.yarn) {
    ASSERT_GT(freqs.attention_factor, 1.1f);
  }
  std::vector<uint32_t> positions(T);
  for (uint32_t t = 0; t < T; ++t) positions[t] = c.first_position + t;

  const auto x = RandomFloats(static_cast<size_t>(T) * c.hidden, 2, 3.0f);
  const auto norm_weight = RandomFloats(c.hidden, 3);
  const auto bias = RandomFloats(width, 4);
  Buffer xb = Upload(x), nb = Upload(norm_weight), bb = Upload(bias), pos_buf = Upload(positions),
         freq_buf = Upload(freqs.inv_freq);
  Buffer qkv_buf = Poisoned(static_cast<size_t>(T) * width * 4), norm_scratch = Poisoned(x.size() * 4);
  const size_t cache_elems = static_cast<size_t>(c.n_kv_heads) * capacity * D;
  Buffer k_cache = Poisoned(cache_elems * 2), v_cache = Poisoned(cache_elems * 2);

  // The reference products of every part, side by side in q|k|v rows, with their tolerances.
  const auto in = ref::RmsNorm(x, norm_weight, T, c.hidden, eps);
  std::vector<double> products(static_cast<size_t>(T) * width), product_tol(products.size());
  std::vector<Buffer> weights;
  weights.reserve(c.parts.size());  // the parts point at them
  std::vector<ops::MatMulArgs> parts;
  for (const PartSpec& part : c.parts) {
    const uint32_t rows = part.heads * D, y_offset = part.first_head * D;
    const auto w = RandomWeights(part.type, rows, c.hidden, rows + y_offset + c.hidden);
    const std::vector<float> part_bias(bias.begin() + y_offset, bias.begin() + y_offset + rows);
    std::vector<double> magnitude;
    const auto y = ref::StoredMatMul(part.type, w, rows, c.hidden, in, T, &part_bias, nullptr, &magnitude);
    for (uint32_t t = 0; t < T; ++t) {
      for (uint32_t r = 0; r < rows; ++r) {
        const size_t i = static_cast<size_t>(t) * width + y_offset + r;
        products[i] = y[static_cast<size_t>(t) * rows + r];
        // f32 sums in another order: within a small multiple of eps * sum|w in| (as in matvec_test).
        product_tol[i] = 2e-5 * magnitude[static_cast<size_t>(t) * rows + r] + 1e-6;
      }
    }
    weights.push_back(UploadWeights(part.type, w, rows, c.hidden));
    parts.push_back(
        {.w = {&weights.back(), 0, part.type, rows, c.hidden},
         .x = xb,
         .y = qkv_buf,
         .tokens = T,
         .y_stride = width,
         .y_offset = y_offset,
         .bias = BufferRange(bb),
         .norm = ops::RmsNormInput{.weight = nb, .eps = eps, .scratch = norm_scratch, .prescaled = c.prescaled},
         .kernel = F32MatMulKernel(T)});
  }

  Graph g(device());
  if (c.prescaled) ops::ScaleByWeight(g, xb, nb, norm_scratch, T, c.hidden);
  const uint32_t scale_dispatches = c.prescaled ? 1 : 0;
  ops::MatMulRope(g, parts,
                  {.qkv = qkv_buf,
                   .positions = pos_buf,
                   .inv_freq = freq_buf,
                   .tokens = T,
                   .n_heads = c.n_heads,
                   .n_kv_heads = c.n_kv_heads,
                   .head_dim = D,
                   .attention_factor = freqs.attention_factor,
                   .k_cache = BufferRange(k_cache),
                   .v_cache = BufferRange(v_cache),
                   .capacity = capacity},
                  "qkv", "rope");
  // Decode folds the rotation into the products' epilogue: one dispatch per part, nothing else.
  if (T <= 4) {
    EXPECT_EQ(g.dispatch_count(), scale_dispatches + parts.size());
  } else {
    EXPECT_GT(g.dispatch_count(), scale_dispatches + parts.size());
  }
  // One token's parts write apart (their own Y columns and cache), so none waits on another: a
  // barrier only after the prescaling.
  if (T == 1) {
    EXPECT_EQ(g.barrier_count(), scale_dispatches);
  }
  g.Run();

  // Rotated q and k heads; the rotation mixes elements i and i + D/2, so their errors add.
  std::vector<float> expected(products.begin(), products.end());
  std::vector<double> tol(product_tol);
  for (uint32_t t = 0; t < T; ++t) {
    for (uint32_t h = 0; h < c.n_heads + c.n_kv_heads; ++h) {
      const size_t head = static_cast<size_t>(t) * width + h * D;
      ref::RopeHead(&expected[head], D, positions[t], freqs.inv_freq, freqs.attention_factor);
      for (uint32_t i = 0; i < D / 2; ++i) {
        const size_t a = head + i, b = head + i + D / 2;
        // The rope tests' 2e-5 of unit values, relative beyond them.
        const double pair_tol =
            freqs.attention_factor *
            (product_tol[a] + product_tol[b] + 2e-5 * std::max(1.0, std::abs(products[a]) + std::abs(products[b])));
        tol[a] = tol[b] = pair_tol;
      }
    }
  }

  const auto got = Download<float>(qkv_buf, products.size());
  const auto k_got = Download<uint16_t>(k_cache, cache_elems);
  const auto v_got = Download<uint16_t>(v_cache, cache_elems);
  size_t bad = 0;
  const auto check = [&](bool ok, const std::string& what) {
    if (ok || bad >= 10) return;
    ADD_FAILURE() << what;
    ++bad;
  };
  for (uint32_t t = 0; t < T; ++t) {
    const size_t row = static_cast<size_t>(t) * width;
    // Q rotated in place (K is, too, when folded; the Rope dispatch leaves it: not asserted).
    for (uint32_t e = 0; e < c.n_heads * D; ++e) {
      check(std::abs(got[row + e] - expected[row + e]) <= tol[row + e],
            "q token " + std::to_string(t) + " element " + std::to_string(e) + ": got " + std::to_string(got[row + e]) +
                ", expected " + std::to_string(expected[row + e]));
    }
    for (uint32_t h = 0; h < c.n_kv_heads; ++h) {
      for (uint32_t d = 0; d < D; ++d) {
        const size_t k = row + (c.n_heads + h) * D + d, v = k + c.n_kv_heads * D;
        const size_t cached = (static_cast<size_t>(h) * capacity + positions[t]) * D + d;
        const std::string where =
            " head " + std::to_string(h) + " pos " + std::to_string(positions[t]) + " dim " + std::to_string(d);
        const float k_cached = HalfToFloat(k_got[cached]);
        check(std::abs(k_cached - expected[k]) <= tol[k] + 1e-3 * std::abs(expected[k]),
              "K cache" + where + ": got " + std::to_string(k_cached) + ", expected " + std::to_string(expected[k]));
        check(std::abs(got[v] - expected[v]) <= tol[v],
              "v" + where + ": got " + std::to_string(got[v]) + ", expected " + std::to_string(expected[v]));
        // V goes to the cache as is: the f16 of the f32 product.
        check(v_got[cached] == FloatToHalf(got[v]), "V cache" + where);
      }
    }
  }
  // Rows no token was written to keep their poison.
  for (size_t i = 0; i < cache_elems; ++i) {
    const uint32_t pos = static_cast<uint32_t>(i / D % capacity);
    if (pos >= c.first_position && pos < c.first_position + T) continue;
    check(k_got[i] == 0xffff && v_got[i] == 0xffff, "cache element " + std::to_string(i) + " overwritten");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, MatVecRopeTest, ::testing::ValuesIn(Cases()),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace qvk::test
