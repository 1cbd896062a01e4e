#include "gpu/peak.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/device_handle.h"
#include "gpu/error.h"
#include "gpu/graph.h"
#include "gpu/memory.h"
#include "gpu/ops.h"
#include "shaders/push_constants.h"

namespace qvk {
namespace {

constexpr uint32_t kFmaMaxInvocations = 8192 * 256;  // more than any GPU keeps resident
constexpr uint32_t kFmaMaxIterations = 1u << 24;
// Contracting towards 1, so the chains stay finite however long they run.
constexpr float kFmaB = 0.999f;
constexpr float kFmaC = 0.001f;

// Small enough that the accumulators stay finite and exact-ish in f32 however long they run.
constexpr float kCoopmatA = 1.0f / 1024;
constexpr float kCoopmatB = 1.0f / 1024;
// 4 subgroups of QVK_FMA_CHAINS independent accumulators each: 8 per SM of an H200's 132.
constexpr uint32_t kCoopmatMaxGroups = 256;

// The best of `runs` timed replays after one warm-up, in microseconds.
template <class TimedRun>
double BestOf(uint32_t runs, TimedRun&& run) {
  run();
  double best = std::numeric_limits<double>::infinity();
  for (uint32_t r = 0; r < runs; ++r) best = std::min(best, run());
  return best;
}

// One graph holding one dispatch, its GPU time per replay.
double DispatchMicroseconds(Graph& g) {
  g.Run();
  return g.Timings().front().microseconds;
}

double CopyBufferMicroseconds(Device& device, const Buffer& from, const Buffer& to) {
  VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  info.queryType = VK_QUERY_TYPE_TIMESTAMP;
  info.queryCount = 2;
  VkQueryPool pool = VK_NULL_HANDLE;
  VK_CHECK(vkCreateQueryPool(device.handle(), &info, nullptr, &pool));
  const QueryPoolHandle owned(device.handle(), pool);
  device.SubmitAndWait([&](VkCommandBuffer cmd) {
    vkCmdResetQueryPool(cmd, pool, 0, 2);
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, pool, 0);
    const VkBufferCopy region{0, 0, from.size()};
    vkCmdCopyBuffer(cmd, from.handle(), to.handle(), 1, &region);
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, pool, 1);
  });
  uint64_t stamps[2] = {};
  VK_CHECK(vkGetQueryPoolResults(device.handle(), pool, 0, 2, sizeof stamps, stamps, sizeof(uint64_t),
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
  return static_cast<double>(stamps[1] - stamps[0]) * device.info().timestamp_period_ns / 1000.0;
}

// A rate probe's size: parallel units (invocations or workgroups) and chain length.
struct FmaSize {
  uint32_t units = 0;
  uint32_t max_units = 0;
  uint32_t iterations = 16;
};

// Grows the run (first the units, up to more than any GPU holds at once, then the chain length)
// until one takes at least options.fma_min_ms; then the best of `runs`, in microseconds.
template <class TimedRun>
double TimeGrowing(FmaSize& size, const PeakOptions& options, uint32_t runs, TimedRun&& run) {
  while (run() < options.fma_min_ms * 1000 && size.iterations < kFmaMaxIterations) {
    if (size.units < size.max_units) {
      size.units *= 2;
    } else {
      size.iterations *= 2;
    }
  }
  return BestOf(runs, run);
}

double GigabytesPerSecond(uint64_t bytes, double microseconds) {
  return static_cast<double>(bytes) / (microseconds * 1e3);
}

}  // namespace

uint64_t PeakCopyBytes(const DeviceInfo& info, uint64_t max_copy_bytes) {
  const uint64_t bytes = std::min({max_copy_bytes, info.DeviceLocalBytes() / 4, uint64_t{info.max_storage_buffer_range},
                                   uint64_t{info.max_allocation_size}});
  return bytes / 16 * 16;
}

DevicePeak MeasureDevicePeak(Device& device, const PeakOptions& options) {
  const DeviceInfo& info = device.info();
  if (!info.compute_timestamps) {
    throw Error(fmt::format("{} has no timestamps on its compute queue, which measuring its peak needs", info.name));
  }
  DevicePeak peak;
  peak.copy_bytes = PeakCopyBytes(info, options.max_copy_bytes);
  if (peak.copy_bytes == 0) throw Error("the copy for the device peak needs at least 16 bytes");
  const uint32_t runs = std::max<uint32_t>(1, options.runs);

  {
    Allocator& allocator = device.allocator();
    const Buffer from = allocator.CreateBuffer(peak.copy_bytes, MemoryKind::Device);
    const Buffer to = allocator.CreateBuffer(peak.copy_bytes, MemoryKind::Device);
    Graph copy(device, /*profile=*/true);
    ops::Copy(copy, from, to, "copy");
    copy.End();
    peak.copy_gbps = GigabytesPerSecond(2 * peak.copy_bytes, BestOf(runs, [&] { return DispatchMicroseconds(copy); }));
    peak.copy_buffer_gbps =
        GigabytesPerSecond(2 * peak.copy_bytes, BestOf(runs, [&] { return CopyBufferMicroseconds(device, from, to); }));
  }

  const Buffer sums = device.allocator().CreateBuffer(uint64_t{4} * kFmaMaxInvocations, MemoryKind::Device);
  {
    FmaSize size{.units = 64 * 256, .max_units = kFmaMaxInvocations};
    const double us = TimeGrowing(size, options, runs, [&] {
      Graph g(device, /*profile=*/true);
      ops::FmaChains(g, sums, size.units, size.iterations, kFmaB, kFmaC, "fma");
      return DispatchMicroseconds(g);
    });
    peak.fma_count = uint64_t{size.units} * size.iterations * QVK_FMA_STEPS * QVK_FMA_CHAINS;
    peak.fma_tflops = 2.0 * static_cast<double>(peak.fma_count) / (us * 1e6);
  }
  if (info.fp16_arithmetic) {
    FmaSize size{.units = 64 * 256, .max_units = kFmaMaxInvocations};
    const double us = TimeGrowing(size, options, runs, [&] {
      Graph g(device, /*profile=*/true);
      ops::FmaChainsF16(g, sums, size.units, size.iterations, kFmaB, kFmaC, "fma_f16");
      return DispatchMicroseconds(g);
    });
    const uint64_t fmas = uint64_t{2} * size.units * size.iterations * QVK_FMA_STEPS * QVK_FMA_CHAINS;
    peak.f16_tflops = 2.0 * static_cast<double>(fmas) / (us * 1e6);
  }
  if (info.coopmat_f16) {
    // The sums buffer holds a tile per subgroup of kCoopmatMaxGroups workgroups.
    static_assert(kFmaMaxInvocations >= kCoopmatMaxGroups * 4 * QVK_FMA_CHAINS * 256);
    FmaSize size{.units = 64, .max_units = kCoopmatMaxGroups};
    const double us = TimeGrowing(size, options, runs, [&] {
      Graph g(device, /*profile=*/true);
      ops::CoopmatFmaChains(g, sums, size.units, size.iterations, kCoopmatA, kCoopmatB, "fma_coopmat");
      return DispatchMicroseconds(g);
    });
    peak.coopmat_tflops = 2.0 * static_cast<double>(ops::CoopmatFmas(size.units, size.iterations)) / (us * 1e6);
  }
  return peak;
}

}  // namespace qvk
