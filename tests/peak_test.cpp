// The device peak probes (gpu/peak.h): the copy kernel copies exactly, the FMA kernel computes
// its chains, and the measurement reports positive rates within the sizes it promises.
#include "gpu/peak.h"

#include <cstring>

#include "shaders/push_constants.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

// Whole workgroups, a partial last one, and one word: every word lands where it belongs.
TEST_F(GpuTest, CopyKernelCopiesEveryWordExactly) {
  const uint32_t per_group = Spec(KernelId::CopyVec4).local_size_x * QVK_COPY_WORDS;
  for (uint32_t words : {1u, 17u, per_group, 3 * per_group + 17}) {
    const auto source = RandomFloats(4 * words, words);
    Buffer x = Upload(source), y = Poisoned(16ull * words);
    Graph g(device());
    ops::Copy(g, x, y);
    g.Run();
    const auto copied = Download<float>(y, source.size());
    EXPECT_EQ(std::memcmp(copied.data(), source.data(), 16ull * words), 0) << words << " words";
  }
  Buffer a = Poisoned(32), b = Poisoned(48);
  Graph g(device());
  EXPECT_THROW(ops::Copy(g, a, b), Error);                                        // sizes differ
  EXPECT_THROW(ops::Copy(g, BufferRange(a, 0, 8), BufferRange(b, 0, 8)), Error);  // not whole words
}

// Few enough steps that the chains are far from their fixed point (1): a wrong step count,
// start value or chain count shows.
TEST_F(GpuTest, FmaKernelMatchesTheCppChains) {
  const uint32_t invocations = 300, iterations = 3;
  const float b = 0.9f, c = 0.1f;
  Buffer y = Poisoned(4 * invocations);
  Graph g(device());
  ops::FmaChains(g, y, invocations, iterations, b, c);
  g.Run();
  const auto got = Download<float>(y, invocations);
  const auto expected = ref::FmaChains(invocations, QVK_FMA_CHAINS, iterations * QVK_FMA_STEPS, b, c);
  for (uint32_t i = 0; i < invocations; ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-5 * std::abs(expected[i]) + 1e-5) << "invocation " << i;
  }
}

// Lane x of chain k is the f32 kernel's chain 2k with twice the chains, lane y chain 2k + 1; f16
// rounds each step, so the sums agree to f16's precision.
TEST_F(GpuTest, F16FmaKernelMatchesTheCppChains) {
  if (!info().fp16_arithmetic) GTEST_SKIP() << "device has no 16-bit float arithmetic";
  const uint32_t invocations = 300, iterations = 3;
  const float b = 0.5f, c = 0.25f;  // exact in f16
  Buffer y = Poisoned(4 * invocations);
  Graph g(device());
  ops::FmaChainsF16(g, y, invocations, iterations, b, c);
  g.Run();
  const auto got = Download<float>(y, invocations);
  const auto expected = ref::FmaChains(invocations, 2 * QVK_FMA_CHAINS, iterations * QVK_FMA_STEPS, b, c);
  for (uint32_t i = 0; i < invocations; ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-2 * std::abs(expected[i]) + 1e-2) << "invocation " << i;
  }
}

// Every accumulator of every subgroup holds iterations x steps products of 16 (b x c) terms.
TEST_F(GpuTest, CoopmatFmaKernelSumsItsChains) {
  if (!info().coopmat_f16) GTEST_SKIP() << "device has no cooperative-matrix GEMM: " << info().coopmat_f16_problem;
  const uint32_t groups = 3, iterations = 5;
  const float b = 0.5f, c = 0.125f;
  Buffer y = Poisoned(4 * ops::CoopmatFmaFloats(groups));
  Graph g(device());
  ops::CoopmatFmaChains(g, y, groups, iterations, b, c);
  g.Run();
  const auto got = Download<float>(y, ops::CoopmatFmaFloats(groups));
  const float expected = static_cast<float>(iterations * QVK_FMA_STEPS) * 16 * b * c;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected) << "element " << i;
}

TEST(DevicePeak, CopyBytesHoldEveryLimit) {
  DeviceInfo d;
  d.heaps = {{.size = uint64_t{64} << 30, .device_local = true}};
  d.max_storage_buffer_range = UINT32_MAX;
  d.max_allocation_size = uint64_t{4} << 30;
  EXPECT_EQ(PeakCopyBytes(d, uint64_t{1} << 30), uint64_t{1} << 30);  // the cap asked for
  d.heaps[0].size = uint64_t{2} << 30;
  EXPECT_EQ(PeakCopyBytes(d, uint64_t{1} << 30), uint64_t{512} << 20);  // a quarter of the memory
  d.max_storage_buffer_range = (128u << 20) + 7;
  EXPECT_EQ(PeakCopyBytes(d, uint64_t{1} << 30), uint64_t{128} << 20);  // one binding, whole words
  d.max_allocation_size = 100;
  EXPECT_EQ(PeakCopyBytes(d, uint64_t{1} << 30), 96u);  // one allocation
}

TEST_F(GpuTest, DevicePeakReportsPositiveRates) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const DevicePeak peak = MeasureDevicePeak(device(), {.max_copy_bytes = 1 << 20, .runs = 2, .fma_min_ms = 1});
  EXPECT_EQ(peak.copy_bytes, PeakCopyBytes(info(), 1 << 20));
  EXPECT_GT(peak.copy_gbps, 0);
  EXPECT_GT(peak.copy_buffer_gbps, 0);
  EXPECT_GT(peak.fma_tflops, 0);
  EXPECT_GT(peak.fma_count, 0u);
  EXPECT_EQ(peak.f16_tflops.has_value(), info().fp16_arithmetic);
  EXPECT_GT(peak.f16_tflops.value_or(1), 0);
  EXPECT_EQ(peak.coopmat_tflops.has_value(), info().coopmat_f16);
  EXPECT_GT(peak.coopmat_tflops.value_or(1), 0);
}

}  // namespace
}  // namespace qvk::test
