#pragma once
// The test fixture for GPU tests: one Vulkan instance (validation on) and device per process,
// shared by every test; a test fails if the validation layer reported anything while it ran,
// and is skipped with a clear message when no usable Vulkan device exists.
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/graph.h"
#include "gpu/memory.h"
#include "gpu/ops.h"

namespace qvk::test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  static Device& device();
  // The instance device() was made on (validation on): a test makes more devices on it.
  static const Instance& instance();
  static const DeviceInfo& info() { return device().info(); }

  // A device buffer holding `values`.
  template <class T>
  Buffer Upload(std::span<const T> values) {
    Buffer b = device().allocator().CreateBuffer(std::max<size_t>(values.size_bytes(), 4), MemoryKind::Device);
    device().Upload(b, 0, std::as_bytes(values));
    return b;
  }
  template <class T>
  Buffer Upload(const std::vector<T>& values) {
    return Upload(std::span<const T>(values));
  }
  // A device buffer holding a [rows, cols] weight matrix of `type` stored as `bytes` (ggml's blocks),
  // laid out as the loader leaves it: regrouped for the types the kernels read so (ops::RegroupBlocks).
  Buffer UploadWeights(DType type, std::span<const std::byte> bytes, uint32_t rows, uint32_t cols);
  // A device buffer of `bytes` filled with 0xff bytes (NaN as f32), so unwritten outputs show.
  Buffer Poisoned(size_t bytes);
  template <class T>
  std::vector<T> Download(const Buffer& b, size_t count, size_t offset_bytes = 0) {
    std::vector<T> out(count);
    device().Download(b, offset_bytes, std::as_writable_bytes(std::span<T>(out)));
    return out;
  }

 private:
  uint64_t messages_before_ = 0;
};

// A second logical device on device()'s GPU (same instance, validation on), as a model split
// across devices or two devices sharing memory use it.
class TwoDeviceTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    second_ = std::make_unique<Device>(instance(), info());
  }
  void TearDown() override {
    second_.reset();
    GpuTest::TearDown();
  }

  std::unique_ptr<Device> second_;
};

// The kernel ops::MatMul picks for `tokens` on a device without cooperative matrices: the f32
// kernels (matvec, tiled) that the tolerance of the matmul tests, 2e-5 * sum|w x|, is for.
ops::MatMulKernel F32MatMulKernel(uint32_t tokens);

// Deterministic data.
std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f);
std::vector<uint16_t> ToHalf(std::span<const float> values);
std::vector<uint16_t> ToBf16(std::span<const float> values);
// The values the GPU sees after the weights are stored as `type`.
std::vector<float> RoundTrip(std::span<const float> values, DType type);
// Weights stored as `type`, as raw bytes for upload.
std::vector<std::byte> Encode(std::span<const float> values, DType type);
// Random ggml blocks of a quantized `type`: random bytes for quants and packed sub-scales, and
// finite f16 scales, mostly realistic; with extreme_scales, sometimes extreme (largest, smallest
// normal and subnormal, zeros).
std::vector<std::byte> RandomBlocks(DType type, uint32_t rows, uint32_t cols, uint32_t seed,
                                    bool extreme_scales = true);

// How many of `got` are neither the f16 nearest to `expected` nor, where that is not one value (a
// tie, or an f16 subnormal, which Vulkan lets a conversion round toward zero), the other
// neighbour; the first ten are reported as failures, named by `what`.
size_t CountMisrounded(const std::vector<uint16_t>& got, const std::vector<float>& expected, const std::string& what);

}  // namespace qvk::test
