#include "tests/gpu_fixture.h"

#include <cmath>
#include <cstdlib>
#include <optional>

#include "base/numeric.h"
#include "gpu/error.h"

namespace qvk::test {
namespace {

// Where each type keeps its f16 scale fields inside a block.
std::vector<uint32_t> HalfFields(DType type) {
  switch (type) {
    case DType::Q4_1:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
      return {0, 2};
    case DType::Q6_K:
      return {208};
    default:
      return {0};
  }
}

struct Shared {
  std::unique_ptr<Instance> instance;
  std::unique_ptr<Device> device;
  std::string skip_reason;
};

Shared& GetShared() {
  static Shared shared = [] {
    Shared s;
    try {
      s.instance = std::make_unique<Instance>(InstanceOptions{.validation = true});
      const auto devices = EnumerateDevices(*s.instance);
      if (devices.empty()) {
        s.skip_reason = "no Vulkan device on this machine (install mesa-vulkan-drivers for lavapipe)";
        return s;
      }
      s.device = std::make_unique<Device>(*s.instance, ChooseDevice(devices, std::nullopt));
      std::fprintf(stderr, "[gpu] testing on device %u: %s (%s)\n", s.device->info().index,
                   s.device->info().name.c_str(), s.device->info().driver_info.c_str());
    } catch (const VulkanError& e) {
      if (e.result() != VK_ERROR_INCOMPATIBLE_DRIVER && e.result() != VK_ERROR_INITIALIZATION_FAILED) throw;
      s.skip_reason = std::string("no usable Vulkan driver: ") + e.what();
    } catch (const Error& e) {
      // "No Vulkan driver was found" and "No usable Vulkan device" are skips; validation missing is not.
      const std::string what = e.what();
      if (what.find("Validation was requested") != std::string::npos) throw;
      s.skip_reason = what;
    }
    return s;
  }();
  return shared;
}

}  // namespace

void GpuTest::SetUp() {
  Shared& s = GetShared();
  if (!s.device) GTEST_SKIP() << "GPU test skipped: " << s.skip_reason;
  messages_before_ = s.instance->validation_message_count();
}

void GpuTest::TearDown() {
  Shared& s = GetShared();
  if (!s.device) return;
  EXPECT_EQ(s.instance->validation_message_count(), messages_before_)
      << "the Vulkan validation layer reported messages during this test (see the log above)";
}

Device& GpuTest::device() {
  return *GetShared().device;
}

const Instance& GpuTest::instance() {
  return *GetShared().instance;
}

Buffer GpuTest::UploadWeights(DType type, std::span<const std::byte> bytes, uint32_t rows, uint32_t cols) {
  Buffer b = device().allocator().CreateBuffer(MatrixBytes(type, rows, cols), MemoryKind::Device);
  device().Upload(b, 0, bytes);
  if (IsRegrouped(type)) {
    Graph g(device());
    ops::RegroupBlocks(g, Matrix{&b, 0, type, rows, cols});
    g.Run();
  }
  return b;
}

Buffer GpuTest::Poisoned(size_t bytes) {
  std::vector<std::byte> poison(std::max<size_t>(bytes, 4), std::byte{0xff});
  Buffer b = device().allocator().CreateBuffer(poison.size(), MemoryKind::Device);
  device().Upload(b, 0, poison);
  return b;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<uint16_t> ToHalf(std::span<const float> values) {
  std::vector<uint16_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = FloatToHalf(values[i]);
  return out;
}

std::vector<uint16_t> ToBf16(std::span<const float> values) {
  std::vector<uint16_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = FloatToBf16(values[i]);
  return out;
}

std::vector<float> RoundTrip(std::span<const float> values, DType type) {
  std::vector<float> out(values.begin(), values.end());
  for (auto& x : out) {
    if (type == DType::F16) x = HalfToFloat(FloatToHalf(x));
    if (type == DType::BF16) x = Bf16ToFloat(FloatToBf16(x));
  }
  return out;
}

std::vector<std::byte> Encode(std::span<const float> values, DType type) {
  std::vector<std::byte> out;
  auto append = [&out](const auto& v) {
    const auto bytes = std::as_bytes(std::span(v));
    out.assign(bytes.begin(), bytes.end());
  };
  switch (type) {
    case DType::F32:
      append(std::vector<float>(values.begin(), values.end()));
      break;
    case DType::F16:
      append(ToHalf(values));
      break;
    case DType::BF16:
      append(ToBf16(values));
      break;
    default:
      throw Error(std::string("Encode takes F32, F16 or BF16, not ") + DTypeName(type));
  }
  return out;
}

ops::MatMulKernel F32MatMulKernel(uint32_t tokens) {
  return ops::ChooseMatMulKernel(DeviceInfo{}, tokens);
}

std::vector<std::byte> RandomBlocks(DType type, uint32_t rows, uint32_t cols, uint32_t seed, bool extreme_scales) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(rows * RowBytes(type, cols));
  for (size_t i = 0; i < out.size(); i += 8) {
    const uint64_t r = rng();
    for (size_t b = 0; b < 8 && i + b < out.size(); ++b) out[i + b] = static_cast<std::byte>(r >> (8 * b));
  }
  constexpr float kExtremes[] = {65504.0f, -65504.0f, 6e-5f, -6.1035156e-5f, 5.9604645e-8f, 0.0f, -0.0f, 1.0f};
  std::normal_distribution<float> normal(0.0f, 0.01f);
  std::uniform_int_distribution<int> pick(0, 31);
  const uint32_t block_bytes = BlockBytes(type);
  for (size_t block = 0; block < out.size() / block_bytes; ++block) {
    for (uint32_t field : HalfFields(type)) {
      const int p = extreme_scales ? pick(rng) : static_cast<int>(std::size(kExtremes));
      const float value = p < static_cast<int>(std::size(kExtremes)) ? kExtremes[p] : normal(rng);
      const uint16_t h = FloatToHalf(value);
      out[block * block_bytes + field] = static_cast<std::byte>(h & 0xff);
      out[block * block_bytes + field + 1] = static_cast<std::byte>(h >> 8);
    }
  }
  return out;
}

size_t CountMisrounded(const std::vector<uint16_t>& got, const std::vector<float>& expected, const std::string& what) {
  size_t bad = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const uint16_t nearest = FloatToHalf(expected[i]);
    // The other neighbour: one f16 step toward zero or away from it, whichever lies across expected[i].
    const bool above = std::abs(HalfToFloat(nearest)) > std::abs(expected[i]);
    const uint16_t other = static_cast<uint16_t>(above ? nearest - 1 : nearest + 1);
    const bool tie = std::abs(HalfToFloat(other) - expected[i]) == std::abs(HalfToFloat(nearest) - expected[i]);
    const bool subnormal = std::abs(expected[i]) < 0x1p-14f;
    if (got[i] != nearest && (!(tie || subnormal) || got[i] != other) && ++bad <= 10) {
      ADD_FAILURE() << what << " value " << i << ": got f16 " << got[i] << " (" << HalfToFloat(got[i]) << "), expected "
                    << expected[i];
    }
  }
  return bad;
}

}  // namespace qvk::test
