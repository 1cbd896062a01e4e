#pragma once
// How a model split by layers across devices (model/engine.h's stages) hands x, the hidden state
// after one stage's layers, from that stage's device to the next one's. Chosen once at load for
// each pair of adjacent stages, from what the two devices can share (gpu/interop.h):
// - the bytes: one host allocation both devices import, which the sending stage's graph writes
//   and the receiving stage's graph reads; else a host-visible buffer on each device and a host
//   copy from one to the other;
// - the order: with shared memory, a timeline semaphore the receiving device's submission waits
//   for, signalled by the sending device's, so the host submits both at once; else the host waits
//   for the sending device's fence before it submits the receiving device.
#include <cstddef>
#include <memory>
#include <string>

#include "gpu/graph.h"
#include "gpu/interop.h"
#include "gpu/memory.h"

namespace qvk {

class Device;

// What a link may share where the devices allow: the tests turn each off to run the fallback on
// devices that could share.
struct LinkSharing {
  bool host_memory = true;
  bool timeline = true;  // only with shared host memory: a host copy needs the host to wait anyway
};

class StageLink {
 public:
  // `bytes`: the most of x one step hands over (a prefill chunk's rows). Where sharing is allowed
  // and the devices cannot share, or the import or export fails, the log says why and the link
  // falls back.
  StageLink(Device& from, Device& to, VkDeviceSize bytes, const LinkSharing& sharing);

  // Records, in the sending stage's graph, x's copy to where the next stage reads it.
  void RecordSend(Graph& g, BufferRange x) const;
  // Records, in the receiving stage's graph, x's copy from where the previous stage wrote it.
  void RecordReceive(Graph& g, BufferRange x) const;
  // Submits the sending stage's graph once `wait` is reached and hands the `bytes` of x it writes
  // across: returns what the receiving stage's submission waits for (nothing where the host
  // waited for the sender).
  TimelinePoint Send(Graph& sender, TimelinePoint wait, size_t bytes);

  // "shared host memory + timeline semaphore", "shared host memory + host wait" or "host copy".
  std::string description() const;

 private:
  std::unique_ptr<SharedHostBuffer> shared_;  // f32 [chunk, hidden]  x, on both devices
  std::unique_ptr<SharedTimeline> timeline_;
  // Without shared memory:
  Buffer sent_;      // f32 [chunk, hidden]  x as the sending device writes it (host-read)
  Buffer received_;  // f32 [chunk, hidden]  x as the receiving device reads it (host-written)
};

}  // namespace qvk
