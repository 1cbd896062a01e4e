// Device discovery and choice, memory sub-allocation and transfers, the pipeline cache, the
// kernel registry.
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "gpu/error.h"
#include "gpu/kernels.h"
#include "gpu/spirv_blobs.h"
#include "tests/gpu_fixture.h"

namespace qvk::test {
namespace {

DeviceInfo FakeDevice(uint32_t index, VkPhysicalDeviceType type, std::string reason = {}) {
  DeviceInfo d;
  d.index = index;
  d.name = "fake " + std::to_string(index);
  d.type = type;
  d.unusable_reason = std::move(reason);
  return d;
}

TEST(DeviceChoiceTest, PrefersDiscreteThenIntegratedThenCpu) {
  unsetenv("QWENVK_DEVICE");
  std::vector<DeviceInfo> devices = {FakeDevice(0, VK_PHYSICAL_DEVICE_TYPE_CPU),
                                     FakeDevice(1, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU),
                                     FakeDevice(2, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU)};
  EXPECT_EQ(ChooseDevice(devices, std::nullopt).index, 2u);
  devices[2].unusable_reason = "has no compute queue";
  EXPECT_EQ(ChooseDevice(devices, std::nullopt).index, 1u);
  devices[1].unusable_reason = "supports only Vulkan 1.0";
  EXPECT_EQ(ChooseDevice(devices, std::nullopt).index, 0u);
  EXPECT_EQ(ChooseDevice(devices, 0u).index, 0u);
}

TEST(DeviceChoiceTest, ExplainsEveryRejection) {
  unsetenv("QWENVK_DEVICE");
  std::vector<DeviceInfo> devices = {FakeDevice(0, VK_PHYSICAL_DEVICE_TYPE_CPU, "has no compute queue"),
                                     FakeDevice(1, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, "supports only Vulkan 1.0")};
  try {
    ChooseDevice(devices, std::nullopt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("fake 0"), std::string::npos) << what;
    EXPECT_NE(what.find("has no compute queue"), std::string::npos) << what;
    EXPECT_NE(what.find("supports only Vulkan 1.0"), std::string::npos) << what;
  }
  EXPECT_THROW(ChooseDevice(devices, 1u), Error);  // asked for by number, still unusable
  EXPECT_THROW(ChooseDevice(devices, 7u), Error);  // no such device
  EXPECT_THROW(ChooseDevice({}, std::nullopt), Error);
}

TEST(DeviceChoiceTest, ReadsQwenvkDeviceFromTheEnvironment) {
  std::vector<DeviceInfo> devices = {FakeDevice(0, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU),
                                     FakeDevice(1, VK_PHYSICAL_DEVICE_TYPE_CPU)};
  setenv("QWENVK_DEVICE", "1", 1);
  EXPECT_EQ(ChooseDevice(devices, std::nullopt).index, 1u);
  EXPECT_EQ(ChooseDevice(devices, 0u).index, 0u);  // --device wins over the environment
  setenv("QWENVK_DEVICE", "one", 1);
  EXPECT_THROW(ChooseDevice(devices, std::nullopt), Error);
  unsetenv("QWENVK_DEVICE");
}

TEST_F(GpuTest, DescribesTheDevice) {
  EXPECT_FALSE(info().name.empty());
  EXPECT_TRUE(info().usable());
  EXPECT_GE(info().subgroup_size, 1u);
  EXPECT_GE(info().max_storage_buffer_range, 1u << 27);
  EXPECT_FALSE(info().heaps.empty());
  EXPECT_GT(info().DeviceLocalBytes(), 0u);
}

TEST_F(GpuTest, SubAllocatesBuffersFromSharedBlocks) {
  Allocator& allocator = device().allocator();
  const VkDeviceSize reserved_before = allocator.bytes_reserved();
  std::vector<Buffer> buffers;
  for (int i = 0; i < 64; ++i) buffers.push_back(allocator.CreateBuffer(4096 + i, MemoryKind::Device));
  // 64 small buffers need at most one new block.
  EXPECT_LE(allocator.bytes_reserved() - reserved_before, VkDeviceSize{256} << 20);
  const VkDeviceSize in_use = allocator.bytes_in_use();
  buffers.erase(buffers.begin(), buffers.begin() + 32);
  EXPECT_LT(allocator.bytes_in_use(), in_use);
  // Freed space is reused: the same buffers again reserve nothing new.
  const VkDeviceSize reserved = allocator.bytes_reserved();
  for (int i = 0; i < 32; ++i) buffers.push_back(allocator.CreateBuffer(4096 + i, MemoryKind::Device));
  EXPECT_EQ(allocator.bytes_reserved(), reserved);
}

TEST_F(GpuTest, UploadsAndDownloadsLargeBuffersExactly) {
  // Larger than the 64 MiB staging chunk, at an offset.
  const size_t count = (70u << 20) / 4 + 3;
  std::vector<uint32_t> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = static_cast<uint32_t>(i * 2654435761u);
  Buffer b = device().allocator().CreateBuffer(count * 4 + 16, MemoryKind::Device);
  device().Upload(b, 16, std::as_bytes(std::span(data)));
  const auto back = Download<uint32_t>(b, count, 16);
  EXPECT_TRUE(back == data);
}

TEST_F(GpuTest, RefusesImpossibleAllocationsWithAnError) {
  EXPECT_THROW(
      device().allocator().CreateBuffer(info().max_allocation_size + (VkDeviceSize{1} << 20), MemoryKind::Device),
      Error);
}

TEST_F(GpuTest, KeepsThePipelineCacheOnDisk) {
  const auto dir = std::filesystem::temp_directory_path() / ("qwenvk-cache-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  setenv("QWENVK_CACHE_DIR", dir.c_str(), 1);
  {
    Kernels kernels(device());
    kernels.Get(KernelId::SwiGlu);
  }
  unsetenv("QWENVK_CACHE_DIR");
  bool found = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    found = found || (entry.path().filename().string().starts_with("pipelines-") && entry.file_size() > 0);
  }
  EXPECT_TRUE(found) << "no pipeline cache written under " << dir;
  std::filesystem::remove_all(dir);
}

// The registry test: every kernel shaders/kernels.cmake lists has its SPIR-V embedded, and builds
// a pipeline on this device unless the device lacks a feature the kernel names (then Get refuses
// it with an Error that names the kernel, not a Vulkan failure).
TEST_F(GpuTest, BuildsEveryKernelOfTheRegistryItCanRun) {
  uint32_t built = 0;
  for (uint32_t i = 0; i < kKernelCount; ++i) {
    const KernelSpec& spec = Spec(static_cast<KernelId>(i));
    SCOPED_TRACE(std::string(spec.name));
    EXPECT_EQ(static_cast<uint32_t>(spec.id), i);
    EXPECT_TRUE(std::ranges::any_of(AllSpirv(), [&](const SpirvBlob& b) { return b.name == spec.name; }));
    const std::string missing = MissingFeatures(info(), spec);
    if (missing.empty()) {
      EXPECT_NE(device().kernels().Get(spec.id).pipeline, VK_NULL_HANDLE);
      ++built;
    } else {
      try {
        device().kernels().Get(spec.id);
        ADD_FAILURE() << "built a kernel the device lacks " << missing << " for";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(spec.name), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(built, 0u);
}

// What the driver compiled a kernel into, where it says (VK_KHR_pipeline_executable_properties;
// the H200's driver does, lavapipe's does not): a device made to capture statistics returns them
// for a kernel it built, and one that cannot refuses with an Error rather than a Vulkan failure.
TEST_F(GpuTest, KernelStatisticsWhereTheDriverReportsThem) {
  Device capturing(instance(), info(), {.capture_statistics = true});
  EXPECT_EQ(capturing.captures_statistics(), info().kernel_statistics);
  EXPECT_FALSE(device().captures_statistics());  // only when asked for
  if (!capturing.captures_statistics()) {
    EXPECT_THROW(capturing.kernels().Statistics(KernelId::RmsNorm), Error);
    return;
  }
  const std::vector<KernelStatistic> statistics = capturing.kernels().Statistics(KernelId::RmsNorm);
  ASSERT_FALSE(statistics.empty());
  for (const KernelStatistic& s : statistics) {
    EXPECT_FALSE(s.name.empty());
    EXPECT_GE(s.value, 0) << s.name;
  }
}

TEST(KernelRegistry, EveryTypedOpHasOneKernelPerWeightType) {
  for (const KernelOp op : {KernelOp::MatVec, KernelOp::MatVecNorm, KernelOp::MatVecTokens, KernelOp::MatMul,
                            KernelOp::MatMulCoopmat, KernelOp::MatMulCoopmatNarrow, KernelOp::Embed}) {
    for (uint32_t t = 0; t < kDTypeCount; ++t) {
      const auto type = static_cast<DType>(t);
      const KernelSpec& spec = Spec(KernelFor(op, type));
      EXPECT_EQ(spec.op, op);
      EXPECT_EQ(spec.weight_type, type);
      EXPECT_EQ((spec.features & kernel_feature::storage_8bit) != 0, IsQuantized(type)) << spec.name;
    }
  }
  EXPECT_THROW(KernelFor(KernelOp::RmsNorm, DType::F16), Error);
}

}  // namespace
}  // namespace qvk::test
