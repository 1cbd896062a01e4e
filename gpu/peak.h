#pragma once
// The device's own ceilings, measured with GPU timestamps: copy bandwidth (a compute kernel of
// 16-byte loads and stores, and vkCmdCopyBuffer for comparison), the FP32 and FP16 FMA rates, and
// the cooperative-matrix rate where the device has one. Kernel
// profiles are read against these.
#include <cstdint>
#include <optional>

namespace qvk {

class Device;
struct DeviceInfo;

struct PeakOptions {
  // The copied buffer: at most this, a quarter of the device-local memory, one binding
  // (maxStorageBufferRange) and one allocation.
  uint64_t max_copy_bytes = uint64_t{1} << 30;
  uint32_t runs = 5;       // each figure is the best of this many timed runs, after a warm-up
  double fma_min_ms = 20;  // the FMA run grows until one takes at least this long
};

struct DevicePeak {
  uint64_t copy_bytes = 0;      // size of the buffer copied (as much again is written)
  double copy_gbps = 0;         // the copy kernel: bytes read + written per second, / 1e9
  double copy_buffer_gbps = 0;  // vkCmdCopyBuffer, the same way
  double fma_tflops = 0;        // 2 * FMAs per second, / 1e12
  uint64_t fma_count = 0;       // FMAs in the measured run
  // f16vec2 FMAs, the same way; none without 16-bit float arithmetic (DeviceInfo::fp16_arithmetic).
  std::optional<double> f16_tflops;
  // 16x16x16 f16 x f16 + f32 cooperative-matrix products; none where DeviceInfo::coopmat_f16 is false.
  std::optional<double> coopmat_tflops;
};

// The bytes MeasureDevicePeak copies on `info` (a multiple of 16).
uint64_t PeakCopyBytes(const DeviceInfo& info, uint64_t max_copy_bytes);

// Throws Error when the device has no compute timestamps or too little memory to copy.
DevicePeak MeasureDevicePeak(Device& device, const PeakOptions& options = {});

}  // namespace qvk
