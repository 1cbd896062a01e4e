// Shared by every kernel: version, extensions, workgroup size as specialization constant 0
// (the kernel table sets it), the linear workgroup index and workgroup-wide reductions.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#include "push_constants.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

// Grids wider than 65535 workgroups wrap into y (see GridFor in gpu/graph.h).
uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

#define NEG_INF uintBitsToFloat(0xff800000u)

// Workgroup-wide sum and max; every invocation must call them (they contain barriers) and gets
// the result. Partial results are combined in subgroup order, so the sum is deterministic.
shared float reduce_scratch[WG];

float workgroup_sum(float v) {
  v = subgroupAdd(v);
  if (subgroupElect()) reduce_scratch[gl_SubgroupID] = v;
  barrier();
  float total = 0.0;
  for (uint i = 0; i < gl_NumSubgroups; ++i) total += reduce_scratch[i];
  barrier();
  return total;
}

float workgroup_max(float v) {
  v = subgroupMax(v);
  if (subgroupElect()) reduce_scratch[gl_SubgroupID] = v;
  barrier();
  float m = reduce_scratch[0];
  for (uint i = 1; i < gl_NumSubgroups; ++i) m = max(m, reduce_scratch[i]);
  barrier();
  return m;
}
