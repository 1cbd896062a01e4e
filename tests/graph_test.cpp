// Graph recording: replay with new step parameters, barriers only where data flows, contract
// checks on every dispatch, and per-dispatch GPU timestamps.
#include <cmath>
#include <cstring>

#include "gpu/error.h"
#include "shaders/push_constants.h"
#include "tests/gpu_fixture.h"
#include "tests/reference.h"

namespace qvk::test {
namespace {

// A decode-like step recorded once: the position lives in a buffer the host rewrites, so each
// replay rotates by a new angle without re-recording.
TEST_F(GpuTest, ReplaysARecordedGraphWithNewPositions) {
  const uint32_t heads = 2, kv_heads = 1, head_dim = 16, stride = (heads + 2 * kv_heads) * head_dim;
  const auto qkv = RandomFloats(stride, 9);
  std::vector<float> inv_freq(head_dim / 2);
  for (uint32_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / head_dim);
  Buffer source = Upload(qkv), work = Upload(qkv), freq = Upload(inv_freq);
  Buffer position = device().allocator().CreateBuffer(4, MemoryKind::Upload);
  Graph g(device());
  // Restore the input each replay (work = source + 0) so rotations do not accumulate.
  Buffer zeros = Upload(std::vector<float>(stride, 0.0f));
  ops::Add(g, source, zeros, work, stride);
  ops::Rope(g, {.qkv = work, .positions = position, .inv_freq = freq, .tokens = 1, .n_heads = heads,
                .n_kv_heads = kv_heads, .head_dim = head_dim});
  g.End();
  for (uint32_t pos : {0u, 7u, 300u, 7u}) {
    std::memcpy(position.mapped(), &pos, 4);
    position.FlushMapped();
    g.Run();
    std::vector<float> expected = qkv;
    for (uint32_t h = 0; h < heads + kv_heads; ++h) ref::RopeHead(&expected[h * head_dim], head_dim, pos, inv_freq, 1.0f);
    const auto got = Download<float>(work, stride);
    for (uint32_t i = 0; i < stride; ++i) ASSERT_NEAR(got[i], expected[i], 1e-5) << "pos " << pos << " element " << i;
  }
}

TEST_F(GpuTest, BarriersOnlyWhereADispatchReadsWhatAnotherWrote) {
  const auto a = RandomFloats(64, 1);
  Buffer x = Upload(a), y1 = Poisoned(256), y2 = Poisoned(256), z = Poisoned(256);
  Graph g(device());
  ops::Add(g, x, x, y1, 64);  // independent...
  ops::Add(g, x, x, y2, 64);  // ...of each other: no barrier
  EXPECT_EQ(g.barrier_count(), 0u);
  ops::Add(g, y1, y2, z, 64);  // reads both: one barrier
  EXPECT_EQ(g.barrier_count(), 1u);
  ops::Add(g, x, x, y1, 64);  // overwrites what the previous one read: write-after-read barrier
  EXPECT_EQ(g.barrier_count(), 2u);
  g.Run();
  const auto got = Download<float>(z, 64);
  for (uint32_t i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(got[i], 4 * a[i]);
}

TEST_F(GpuTest, DispatchChecksTheKernelContract) {
  Buffer b = Upload(RandomFloats(64, 1));
  Graph g(device());
  // Wrong number of bindings.
  EXPECT_THROW(g.Dispatch(KernelId::Add, {b, b}, push::AddPush{64}, Groups{1}), Error);
  // Wrong push-constant struct.
  EXPECT_THROW(g.Dispatch(KernelId::Add, {b, b, b}, push::SoftmaxPush{64, 1.0f}, Groups{1}), Error);
  // Range past the end of the buffer, and a misaligned offset.
  EXPECT_THROW(g.Dispatch(KernelId::Add, {b, b, BufferRange(b, 0, 512)}, push::AddPush{64}, Groups{1}), Error);
  if (info().storage_offset_alignment > 1) {
    EXPECT_THROW(g.Dispatch(KernelId::Add, {b, b, BufferRange(b, 1, 64)}, push::AddPush{16}, Groups{1}), Error);
  }
  // Too many workgroups in one dimension.
  EXPECT_THROW(g.Dispatch(KernelId::Add, {b, b, b}, push::AddPush{64}, Groups{70000}), Error);
  // Op-level shape checks.
  EXPECT_THROW(ops::Add(g, b, b, b, 65), Error);
  EXPECT_EQ(g.dispatch_count(), 0u);
}

TEST_F(GpuTest, GridForCoversLargeCountsWithinLimits) {
  for (uint64_t n : {1ull, 65535ull, 65536ull, 151936ull, 10000000ull}) {
    const Groups g = GridFor(n);
    EXPECT_LE(g.x, 65535u);
    EXPECT_LE(g.y, 65535u);
    EXPECT_GE(static_cast<uint64_t>(g.x) * g.y, n);
    EXPECT_LT(static_cast<uint64_t>(g.x) * (g.y - 1), n);
  }
}

TEST_F(GpuTest, ProfiledGraphReportsATimePerDispatch) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  Buffer x = Upload(RandomFloats(1 << 16, 1)), y = Poisoned(1 << 18);
  Graph g(device(), /*profile=*/true);
  ops::Add(g, x, x, y, 1 << 16, "first");
  ops::Softmax(g, y, x, 1, 1 << 16, 1.0f, "second");
  g.Run();
  const auto timings = g.Timings();
  ASSERT_EQ(timings.size(), 2u);
  EXPECT_EQ(timings[0].label, "first");
  EXPECT_EQ(timings[1].label, "second");
  for (const auto& t : timings) EXPECT_GE(t.microseconds, 0.0);
}

}  // namespace
}  // namespace qvk::test
