#version 450
// (token, slot) pairs grouped by expert for the expert GEMMs (MoeGroupPush): one workgroup counts
// each expert's pairs, lays out their prefix sums and scatters each pair's index into its expert's
// range. Within an expert the order is the atomics' (the GEMMs compute each pair's row alone, so
// it changes no value). Prefill routes at most a chunk's tokens, a few thousand pairs.
#include "common.glsl"

layout(binding = 0) readonly buffer Ids { uint ids[]; };
layout(binding = 1) writeonly buffer Offsets { uint offsets[]; };
layout(binding = 2) writeonly buffer Sorted { uint sorted[]; };

layout(push_constant) uniform Push { MoeGroupPush p; };

shared uint counts[QVK_MAX_EXPERTS];  // pairs per expert, then the next free place in its range

void main() {
  const uint tid = gl_LocalInvocationID.x;
  for (uint e = tid; e < p.experts; e += WG) counts[e] = 0u;
  barrier();
  for (uint q = tid; q < p.pairs; q += WG) atomicAdd(counts[ids[q]], 1u);
  barrier();
  if (tid == 0u) {  // a thousand experts at most: one invocation's loop is short
    uint sum = 0u;
    for (uint e = 0; e < p.experts; ++e) {
      const uint count = counts[e];
      offsets[e] = sum;
      counts[e] = sum;
      sum += count;
    }
    offsets[p.experts] = sum;
  }
  barrier();
  for (uint q = tid; q < p.pairs; q += WG) sorted[atomicAdd(counts[ids[q]], 1u)] = q;
}
