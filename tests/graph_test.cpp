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
  // Restore the input each replay (work = row 0 of source, gathered) so rotations do not accumulate.
  Buffer row0 = Upload(std::vector<uint32_t>{0});
  ops::Embed(g, {&source, 0, DType::F32, 1, stride}, row0, work, 1);
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
  const auto a = RandomFloats(128, 1);
  Buffer x = Upload(a), y1 = Poisoned(256), y2 = Poisoned(256), z = Poisoned(256);
  Graph g(device());
  ops::SwiGlu(g, x, y1, 1, 64);  // independent...
  ops::SwiGlu(g, x, y2, 1, 64);  // ...of each other: no barrier
  EXPECT_EQ(g.barrier_count(), 0u);
  ops::RmsNorm(g, y1, y2, z, 1, 64, 1e-6f);  // reads both: one barrier
  EXPECT_EQ(g.barrier_count(), 1u);
  ops::SwiGlu(g, x, y1, 1, 64);  // overwrites what the previous one read: write-after-read barrier
  EXPECT_EQ(g.barrier_count(), 2u);
  g.Run();
  const auto m = ref::SwiGlu(a, 1, 64);
  const auto expected = ref::RmsNorm(m, m, 1, 64, 1e-6f);
  const auto got = Download<float>(z, 64);
  for (uint32_t i = 0; i < 64; ++i) EXPECT_NEAR(got[i], expected[i], 2e-5 * std::abs(expected[i]) + 1e-6) << i;
}

// A device without VK_KHR_push_descriptor binds each dispatch's buffers through a descriptor set
// from the graph's pools (256 sets each, so 300 dispatches take a second pool); a device with it
// pushes them into the command buffer. Both give the same bytes, on the first run and on replay.
TEST_F(GpuTest, BindsBuffersThroughDescriptorSetsWhereItCannotPushThem) {
  Device allocating(instance(), info(), {.allocate_descriptor_sets = true});
  EXPECT_EQ(allocating.push_descriptor_set(), nullptr);
  EXPECT_EQ(device().push_descriptor_set() != nullptr, info().max_push_descriptors > 0);
  const uint32_t tokens = 3, cols = 40, dispatches = 300;
  const auto x = RandomFloats(tokens * cols, 4);
  auto weight = RandomFloats(cols, 5);
  for (float& w : weight) w = 1.0f + 0.01f * w;  // near 1, so 300 norms in a row stay finite
  const auto run = [&](Device& d) {
    const auto upload = [&](const std::vector<float>& values) {
      Buffer b = d.allocator().CreateBuffer(values.size() * 4, MemoryKind::Device);
      d.Upload(b, 0, std::as_bytes(std::span(values)));
      return b;
    };
    Buffer a = upload(x), w = upload(weight), b = upload(std::vector<float>(x.size(), 0.0f));
    Graph g(d);
    for (uint32_t i = 0; i < dispatches; ++i) ops::RmsNorm(g, i % 2 ? b : a, w, i % 2 ? a : b, tokens, cols, 1e-6f);
    std::vector<std::vector<float>> results;
    for (int replay = 0; replay < 2; ++replay) {
      d.Upload(a, 0, std::as_bytes(std::span(x)));
      g.Run();
      std::vector<float> out(x.size());
      d.Download(a, 0, std::as_writable_bytes(std::span(out)));  // dispatches is even: the last wrote a
      results.push_back(out);
    }
    EXPECT_EQ(results[0], results[1]);
    return results[0];
  };
  const std::vector<float> allocated = run(allocating), pushed = run(device());
  EXPECT_EQ(allocated, pushed);
  std::vector<float> expected = x;
  for (uint32_t i = 0; i < dispatches; ++i) expected = ref::RmsNorm(expected, weight, tokens, cols, 1e-6f);
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_NEAR(allocated[i], expected[i], 1e-3f * std::abs(expected[i]) + 1e-5f) << i;
}

TEST_F(GpuTest, DispatchChecksTheKernelContract) {
  Buffer b = Upload(RandomFloats(64, 1));
  Graph g(device());
  const push::SwiGluPush swiglu{1, 32, 64, 32};
  // Wrong number of bindings.
  EXPECT_THROW(g.Dispatch(KernelId::SwiGlu, {b, b, b}, swiglu, Groups{1}), Error);
  // Wrong push-constant struct.
  EXPECT_THROW(g.Dispatch(KernelId::SwiGlu, {b, b}, push::MatMulPush{}, Groups{1}), Error);
  // Range past the end of the buffer, and a misaligned offset.
  EXPECT_THROW(g.Dispatch(KernelId::SwiGlu, {b, BufferRange(b, 0, 512)}, swiglu, Groups{1}), Error);
  if (info().storage_offset_alignment > 1) {
    EXPECT_THROW(g.Dispatch(KernelId::SwiGlu, {b, BufferRange(b, 1, 64)}, push::SwiGluPush{1, 8, 16, 8}, Groups{1}),
                 Error);
  }
  // Too many workgroups in one dimension.
  EXPECT_THROW(g.Dispatch(KernelId::SwiGlu, {b, b}, swiglu, Groups{70000}), Error);
  // Op-level shape checks: 33 outputs need 264 bytes of gate | up.
  EXPECT_THROW(ops::SwiGlu(g, b, b, 1, 33), Error);
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

// A profiled graph gives each dispatch its time, and says which ones waited at a barrier for all the
// work before them.
TEST_F(GpuTest, ProfiledGraphReportsATimePerDispatch) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  Buffer x = Upload(RandomFloats(1 << 16, 1)), y = Poisoned(1 << 17), z = Poisoned(1 << 17), w = Poisoned(1 << 17);
  Graph g(device(), /*profile=*/true);
  ops::SwiGlu(g, x, y, 1, 1 << 15, "first");
  ops::SwiGlu(g, x, w, 1, 1 << 15, "beside");             // independent of the first: no barrier
  ops::RmsNorm(g, y, y, z, 1, 1 << 15, 1e-6f, "second");  // reads the first's output
  g.Run();
  const auto timings = g.Timings();
  ASSERT_EQ(timings.size(), 3u);
  EXPECT_EQ(timings[0].label, "first");
  EXPECT_EQ(timings[2].label, "second");
  EXPECT_FALSE(timings[0].waits);
  EXPECT_FALSE(timings[1].waits);
  EXPECT_TRUE(timings[2].waits);
  EXPECT_EQ(g.barrier_count(), 1u);
  for (const auto& t : timings) EXPECT_GE(t.microseconds, 0.0);
}

// A profile divides each dispatch's cost by its time, so the cost must be what the dispatch
// moves: the weights with their block scales, X, Y, bias and residual, each once.
TEST_F(GpuTest, ProfiledGraphReportsEachDispatchsCost) {
  if (!info().compute_timestamps) GTEST_SKIP() << "device has no compute timestamps";
  const uint32_t rows = 33, cols = 64, tokens = 3;
  const std::vector<std::byte> w_bytes(RowBytes(DType::Q8_0, cols) * rows);  // zero blocks: the cost is in the shape
  Buffer weights = UploadWeights(DType::Q8_0, w_bytes, rows, cols), x = Upload(RandomFloats(tokens * cols, 3));
  Buffer bias = Upload(RandomFloats(rows, 4)), y = Upload(RandomFloats(tokens * rows, 5));
  Graph g(device(), /*profile=*/true);
  ops::MatMul(g,
              {.w = {&weights, 0, DType::Q8_0, rows, cols},
               .x = x,
               .y = y,
               .tokens = tokens,
               .bias = BufferRange(bias),
               .residual = BufferRange(y)},
              "projection");
  g.Run();
  const auto timings = g.Timings();
  ASSERT_EQ(timings.size(), 1u);
  EXPECT_EQ(timings[0].label, "projection");
  EXPECT_EQ(timings[0].kernel, "matvec_tokens_q8_0");  // 3 tokens: the several-token variant
  EXPECT_EQ(timings[0].cost.bytes,
            RowBytes(DType::Q8_0, cols) * rows + 4 * tokens * cols + 2 * 4 * tokens * rows + 4 * rows);
  EXPECT_EQ(timings[0].cost.flops, 2ull * rows * cols * tokens);
}

// Query t at position first_position + t sees keys up to its own position, within the window.
TEST_F(GpuTest, AttentionCostCountsTheKeysEachQuerySees) {
  const uint32_t heads = 4, kv_heads = 2, head_dim = 8, capacity = 16, tokens = 3;
  Buffer q = Upload(RandomFloats(tokens * heads * head_dim, 1)), positions = Upload(std::vector<uint32_t>{5, 6, 7});
  Buffer cache = Poisoned(kv_heads * capacity * head_dim * 2), out = Poisoned(tokens * heads * head_dim * 4);
  ops::AttentionArgs a{.q = q,
                       .positions = positions,
                       .k_cache = cache,
                       .v_cache = cache,
                       .out = out,
                       .tokens = tokens,
                       .n_heads = heads,
                       .n_kv_heads = kv_heads,
                       .head_dim = head_dim,
                       .capacity = capacity,
                       .first_position = 5};
  const uint64_t qo_bytes = 2 * 4 * tokens * heads * head_dim, position_bytes = 4 * tokens;
  // Keys 0..5, 0..6, 0..7: 21 in all; cache rows 0..7 read once as K and V, in f16.
  DispatchCost cost = ops::AttentionCost(a);
  EXPECT_EQ(cost.flops, 4ull * 21 * heads * head_dim);
  EXPECT_EQ(cost.bytes, 2ull * 2 * kv_heads * 8 * head_dim + qo_bytes + position_bytes);
  // A window of 4: keys 2..5, 3..6, 4..7; rows 2..7.
  a.window = 4;
  cost = ops::AttentionCost(a);
  EXPECT_EQ(cost.flops, 4ull * 12 * heads * head_dim);
  EXPECT_EQ(cost.bytes, 2ull * 2 * kv_heads * 6 * head_dim + qo_bytes + position_bytes);
}

}  // namespace
}  // namespace qvk::test
