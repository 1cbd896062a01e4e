// What two devices share (gpu/interop.h): when they may, a host allocation both import and a
// timeline semaphore one signals and the other waits for, each carrying what one device's kernels
// wrote to the other's; and graphs submitted without a host wait, ordered by a timeline. The
// second device is a second logical device on the test's GPU, which shares with the first
// wherever the driver has the extensions.
#include <memory>
#include <vector>

#include "gpu/interop.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

DeviceInfo SharingDevice(uint32_t index, uint8_t uuid) {
  DeviceInfo d;
  d.index = index;
  d.name = "fake " + std::to_string(index);
  d.device_uuid[0] = uuid;
  d.driver_uuid[0] = uuid;
  d.host_import_alignment = 4096;
  d.timeline_semaphores = true;
  d.timeline_semaphore_fd = true;
  return d;
}

TEST(DeviceSharingTest, NeedsTheExtensionsOnBothAndOneGpuUnderOneDriver) {
  const DeviceInfo a = SharingDevice(0, 1), twin = SharingDevice(1, 1);
  EXPECT_EQ(HostMemorySharingProblem(a, twin), "");
  EXPECT_EQ(TimelineSharingProblem(a, twin), "");

  DeviceInfo other_gpu = SharingDevice(1, 2);
  ExpectMentions(HostMemorySharingProblem(a, other_gpu), {"device 0 (fake 0) and device 1 (fake 1)", "UUIDs"});
  ExpectMentions(TimelineSharingProblem(a, other_gpu), {"UUIDs"});
  DeviceInfo other_driver = twin;
  other_driver.driver_uuid[0] = 3;
  ExpectMentions(HostMemorySharingProblem(other_driver, a), {"UUIDs"});
  ExpectMentions(TimelineSharingProblem(other_driver, a), {"UUIDs"});

  DeviceInfo no_import = twin;
  no_import.host_import_alignment = 0;
  ExpectMentions(HostMemorySharingProblem(a, no_import), {"device 1 (fake 1)", "VK_EXT_external_memory_host"});
  EXPECT_EQ(TimelineSharingProblem(a, no_import), "");
  DeviceInfo no_fd = twin;
  no_fd.timeline_semaphore_fd = false;
  ExpectMentions(TimelineSharingProblem(no_fd, a), {"device 1 (fake 1)", "VK_KHR_external_semaphore_fd"});
  EXPECT_EQ(HostMemorySharingProblem(no_fd, a), "");
}

// A graph on `device` that copies `from` to `to`, taking and giving back the ownership of
// `shared` (one of their buffers) around it.
std::unique_ptr<Graph> SharedCopy(Device& device, BufferRange from, BufferRange to, const Buffer& shared) {
  auto g = std::make_unique<Graph>(device);
  g->AcquireExternal(shared);
  ops::Copy(*g, from, to);
  g->ReleaseExternal(shared);
  g->End();
  return g;
}

class SharedDevicesTest : public TwoDeviceTest {
 protected:
  // Each round: the first device copies new values into the shared buffer, the second copies them
  // out of it, ordered by `order` (the host waits for the first device where it returns nothing).
  template <class Order>
  void ExpectRoundsCarried(Order&& order) {
    constexpr uint32_t kFloats = 1000;  // not a multiple of the import alignment
    Device* devices[] = {&device(), second_.get()};
    const SharedHostBuffer shared(devices, kFloats * 4);
    ASSERT_GE(shared.on(0).size(), kFloats * 4);
    ASSERT_EQ(shared.on(1).size(), shared.on(0).size());
    Buffer received = second_->allocator().CreateBuffer(kFloats * 4, MemoryKind::Readback);
    for (uint32_t round = 0; round < 3; ++round) {
      const std::vector<float> values = RandomFloats(kFloats, 40 + round);
      Buffer sent = Upload(values);
      const auto writer = SharedCopy(device(), sent, {shared.on(0), 0, kFloats * 4}, shared.on(0));
      const auto reader = SharedCopy(*second_, {shared.on(1), 0, kFloats * 4}, received, shared.on(1));
      order(*writer, *reader);
      received.InvalidateMapped();
      ASSERT_EQ(std::memcmp(received.mapped(), values.data(), kFloats * 4), 0) << "round " << round;
    }
  }
};

TEST_F(SharedDevicesTest, HostBufferCarriesWhatOneDeviceWroteToTheOther) {
  if (const std::string problem = HostMemorySharingProblem(info(), second_->info()); !problem.empty()) {
    GTEST_SKIP() << problem;
  }
  ExpectRoundsCarried([](Graph& writer, Graph& reader) {
    writer.Submit();
    writer.Wait();
    reader.Submit();
    reader.Wait();
  });
}

TEST_F(SharedDevicesTest, TimelineStartsOneDeviceAfterTheOtherWithoutTheHost) {
  for (const std::string& problem :
       {HostMemorySharingProblem(info(), second_->info()), TimelineSharingProblem(info(), second_->info())}) {
    if (!problem.empty()) GTEST_SKIP() << problem;
  }
  SharedTimeline timeline(device(), *second_);
  uint64_t last = 0;
  ExpectRoundsCarried([&](Graph& writer, Graph& reader) {
    const SharedTimeline::Step step = timeline.Next();
    EXPECT_GT(step.signal.value, last);
    EXPECT_EQ(step.wait.value, step.signal.value);
    last = step.signal.value;
    writer.Submit({}, step.signal);
    reader.Submit(step.wait);
    reader.Wait();
    writer.Wait();
  });
}

// Graphs submitted at once on one device, the second waiting for the timeline value the first
// signals and signalling the next: the host waits only for the last.
TEST_F(GpuTest, SubmittedGraphsWaitForAndSignalATimeline) {
  if (!info().timeline_semaphores) GTEST_SKIP() << "device has no timeline semaphores";
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  VkSemaphoreCreateInfo create{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  create.pNext = &type;
  VkSemaphore handle = VK_NULL_HANDLE;
  VK_CHECK(vkCreateSemaphore(device().handle(), &create, nullptr, &handle));
  const SemaphoreHandle timeline(device().handle(), handle);
  // Whether the timeline reaches `value`, waited for (a minute at most, a guard against a hang):
  // reading its counter right after a fence would not do, as lavapipe (Mesa 22.3) can signal a
  // submission's fence a moment before its timeline value.
  const auto reaches = [&](uint64_t value) {
    VkSemaphoreWaitInfo wait{VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO};
    wait.semaphoreCount = 1;
    wait.pSemaphores = &handle;
    wait.pValues = &value;
    return vkWaitSemaphores(device().handle(), &wait, uint64_t{60'000'000'000}) == VK_SUCCESS;
  };

  const std::vector<float> values = RandomFloats(256, 7);
  Buffer a = Upload(values), b = Poisoned(values.size() * 4), c = Poisoned(values.size() * 4);
  Graph first(device()), second(device());
  ops::Copy(first, a, b);
  ops::Copy(second, b, c);
  first.Submit({}, {timeline.get(), 1});
  second.Submit({timeline.get(), 1}, {timeline.get(), 2});
  second.Wait();
  first.Wait();
  EXPECT_TRUE(reaches(2));
  EXPECT_EQ(Download<float>(c, values.size()), values);
  // Waited for, a graph may be submitted again.
  first.Submit({}, {timeline.get(), 3});
  first.Wait();
  EXPECT_TRUE(reaches(3));
}

}  // namespace
}  // namespace qvk::test
