#version 450
// Top-k (argmax is k = 1), ties to the lower index, in two stages:
//  TOPK_CHUNKS: workgroup g copies elements [g*CHUNK, (g+1)*CHUNK) to shared memory and takes
//               its k best in k rounds of a workgroup argmax, writing k (value, index) pairs.
//  TOPK_MERGE:  one workgroup takes the k best of all candidates the same way, marking each
//               winner taken in the candidate index buffer.
#include "common.glsl"

layout(push_constant) uniform Push { TopKPush p; };

#define TAKEN 0xffffffffu

#if defined(TOPK_CHUNKS)
layout(binding = 0) readonly buffer Values { float values[]; };
layout(binding = 1) writeonly buffer OutValues { float out_values[]; };
layout(binding = 2) writeonly buffer OutIndices { uint out_indices[]; };
shared float chunk_values[QVK_TOPK_CHUNK];
shared uint chunk_indices[QVK_TOPK_CHUNK];
#elif defined(TOPK_MERGE)
layout(binding = 0) readonly buffer Values { float values[]; };
layout(binding = 1) coherent buffer Indices { uint indices[]; };
layout(binding = 2) writeonly buffer OutValues { float out_values[]; };
layout(binding = 3) writeonly buffer OutIndices { uint out_indices[]; };
#else
#error "define TOPK_CHUNKS or TOPK_MERGE"
#endif

shared float best_value[WG];
shared uint best_index[WG];
shared uint best_slot[WG];

// (value, index) a beats b: larger value, or equal value and lower index; taken never wins.
bool beats(float va, uint ia, float vb, uint ib) {
  if (ia == TAKEN) return false;
  if (ib == TAKEN) return true;
  return va > vb || (va == vb && ia < ib);
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
#if defined(TOPK_CHUNKS)
  const uint base = group_index() * QVK_TOPK_CHUNK;
  const uint n = min(QVK_TOPK_CHUNK, p.count - base);
  for (uint i = tid; i < QVK_TOPK_CHUNK; i += WG) {
    chunk_values[i] = i < n ? values[base + i] : 0.0;
    chunk_indices[i] = i < n ? base + i : TAKEN;
  }
  barrier();
  const uint out_base = group_index() * p.k;
#else
  const uint n = p.count;
  const uint out_base = 0;
#endif

  for (uint round = 0; round < p.k; ++round) {
    float bv = 0.0;
    uint bi = TAKEN;
    uint bs = 0;
    for (uint s = tid; s < n; s += WG) {
#if defined(TOPK_CHUNKS)
      const float v = chunk_values[s];
      const uint i = chunk_indices[s];
#else
      const float v = values[s];
      const uint i = indices[s];
#endif
      if (beats(v, i, bv, bi)) {
        bv = v;
        bi = i;
        bs = s;
      }
    }
    best_value[tid] = bv;
    best_index[tid] = bi;
    best_slot[tid] = bs;
    barrier();
    for (uint stride = WG / 2; stride > 0; stride /= 2) {
      if (tid < stride && beats(best_value[tid + stride], best_index[tid + stride], best_value[tid], best_index[tid])) {
        best_value[tid] = best_value[tid + stride];
        best_index[tid] = best_index[tid + stride];
        best_slot[tid] = best_slot[tid + stride];
      }
      barrier();
    }
    if (tid == 0) {
      out_values[out_base + round] = best_value[0];
      out_indices[out_base + round] = best_index[0];
#if defined(TOPK_CHUNKS)
      chunk_indices[best_slot[0]] = TAKEN;
#else
      indices[best_slot[0]] = TAKEN;
      memoryBarrierBuffer();
#endif
    }
    barrier();
  }
}
