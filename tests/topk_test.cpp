// Argmax and top-k over vocabulary-sized logits against the C++ reference, with ties.
#include <cmath>

#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

class TopKTest : public GpuTest {
 protected:
  std::pair<std::vector<float>, std::vector<uint32_t>> Run(const std::vector<float>& values, uint32_t k) {
    const auto count = static_cast<uint32_t>(values.size());
    const uint32_t scratch = std::max(ops::TopKScratchCount(count, k), 1u);
    Buffer vb = Upload(values), sv = Poisoned(scratch * 4ull), si = Poisoned(scratch * 4ull);
    Buffer ov = Poisoned(k * 4ull), oi = Poisoned(k * 4ull);
    Graph g(device());
    ops::TopK(g, vb, count, k, sv, si, ov, oi);
    g.Run();
    return {Download<float>(ov, k), Download<uint32_t>(oi, k)};
  }

  void Check(const std::vector<float>& values, uint32_t k) {
    const auto [got_values, got_indices] = Run(values, k);
    const auto expected = ref::TopK(values, k);
    for (uint32_t i = 0; i < k; ++i) {
      ASSERT_EQ(got_indices[i], expected[i]) << "rank " << i << " of k=" << k << " over " << values.size();
      ASSERT_EQ(got_values[i], values[expected[i]]);
    }
  }
};

TEST_F(TopKTest, ArgmaxOverQwenVocabularies) {
  for (uint32_t vocab : {151936u, 152064u, 151646u}) Check(RandomFloats(vocab, vocab, 3.0f), 1);
}

TEST_F(TopKTest, TopKOverVocabulary) {
  const auto logits = RandomFloats(151936, 5, 3.0f);
  for (uint32_t k : {2u, 20u, 40u, 100u, 256u}) Check(logits, k);
}

TEST_F(TopKTest, SmallAndOddCounts) {
  Check(RandomFloats(17, 1), 17);
  Check(RandomFloats(17, 2), 5);
  Check(RandomFloats(2049, 3), 7);  // just past one chunk
  Check(RandomFloats(1, 4), 1);
}

TEST_F(TopKTest, TiesGoToTheLowerIndex) {
  std::vector<float> flat(5000, 0.25f);
  Check(flat, 1);
  Check(flat, 30);
  std::vector<float> two_peaks(151936, -1.0f);
  two_peaks[100000] = 7.0f;
  two_peaks[4097] = 7.0f;
  two_peaks[5] = -INFINITY;
  Check(two_peaks, 3);
}

TEST_F(TopKTest, RejectsKOutOfRange) {
  Buffer b = Upload(RandomFloats(10, 1));
  Graph g(device());
  EXPECT_THROW(ops::TopK(g, b, 10, 11, b, b, b, b), Error);
  EXPECT_THROW(ops::TopK(g, b, 10, 0, b, b, b, b), Error);
}

}  // namespace
}  // namespace qvk::test
