#include "model/stage_link.h"

#include <array>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/ops.h"

namespace qvk {

StageLink::StageLink(Device& from, Device& to, VkDeviceSize bytes, const LinkSharing& sharing) {
  if (sharing.host_memory) {
    try {
      const std::array devices{&from, &to};
      shared_ = std::make_unique<SharedHostBuffer>(devices, bytes);
    } catch (const Error& e) {
      spdlog::info("the hidden state goes from device {} to device {} by a host copy: {}", from.info().index,
                   to.info().index, e.what());
    }
  }
  if (shared_ && sharing.timeline) {
    try {
      timeline_ = std::make_unique<SharedTimeline>(from, to);
    } catch (const Error& e) {
      spdlog::info("the host waits for device {} before it starts device {}: {}", from.info().index, to.info().index,
                   e.what());
    }
  }
  if (!shared_) {
    sent_ = from.allocator().CreateBuffer(bytes, MemoryKind::Readback);
    received_ = to.allocator().CreateBuffer(bytes, MemoryKind::Upload);
  }
}

void StageLink::RecordSend(Graph& g, BufferRange x) const {
  const Buffer& out = shared_ ? shared_->on(0) : sent_;
  if (shared_) g.AcquireExternal(out);
  // the next stage's x = x
  ops::Copy(g, x, BufferRange(out, 0, x.size), "x_to_next_device");
  if (shared_) g.ReleaseExternal(out);
}

void StageLink::RecordReceive(Graph& g, BufferRange x) const {
  const Buffer& in = shared_ ? shared_->on(1) : received_;
  if (shared_) g.AcquireExternal(in);
  // x = the previous stage's x
  ops::Copy(g, BufferRange(in, 0, x.size), x, "x_from_previous_device");
  if (shared_) g.ReleaseExternal(in);
}

TimelinePoint StageLink::Send(Graph& sender, TimelinePoint wait, size_t bytes) {
  if (timeline_) {
    const SharedTimeline::Step step = timeline_->Next();
    sender.Submit(wait, step.signal);
    return step.wait;
  }
  sender.Submit(wait);
  sender.Wait();
  if (!shared_) {
    sent_.InvalidateMapped();
    std::memcpy(received_.mapped(), sent_.mapped(), bytes);
    received_.FlushMapped();
  }
  return {};
}

std::string StageLink::description() const {
  if (!shared_) return "host copy";
  return timeline_ ? "shared host memory + timeline semaphore" : "shared host memory + host wait";
}

}  // namespace qvk
