#version 450
// Regroups a matrix's Q8_0, Q4_0, Q5_0 or Q6_K blocks in place into the layout regroup.glsl reads:
// one workgroup per group of QVK_REGROUP_BLOCKS blocks, staged whole in shared memory, so that no
// workgroup writes what another still has to read. Output halfword h of a group is block h's scale
// for h < QVK_REGROUP_BLOCKS, else halfword m of block j's others, in their order (h -
// QVK_REGROUP_BLOCKS = j * (block_halfwords - 1) + m). The last group's blocks past p.blocks (its
// padding) become zero scales and quants.
#include "common.glsl"

layout(binding = 0) buffer Words { uint words[]; };
layout(push_constant) uniform Push { RegroupPush p; };

// A group of the widest blocks (Q6_K's 105 halfwords), as words.
shared uint group_words[QVK_REGROUP_BLOCKS * 105u / 2u];

uint half_of(uint h) { return (group_words[h >> 1] >> ((h & 1u) * 16u)) & 0xFFFFu; }

// The stored halfword that output halfword h of the group takes.
uint source_half(uint h) {
  if (h < QVK_REGROUP_BLOCKS) return h * p.block_halfwords + p.scale_halfword;
  const uint q = h - QVK_REGROUP_BLOCKS, others = p.block_halfwords - 1u;
  const uint m = q % others;
  return q / others * p.block_halfwords + (m < p.scale_halfword ? m : m + 1u);
}

void main() {
  const uint group = group_index();
  const uint group_word_count = QVK_REGROUP_BLOCKS * p.block_halfwords / 2u;
  if (group * QVK_REGROUP_BLOCKS >= p.blocks) return;
  const uint first = group * group_word_count;
  // Halfwords of the group that hold stored blocks; the rest is padding.
  const uint stored = min(p.blocks - group * QVK_REGROUP_BLOCKS, QVK_REGROUP_BLOCKS) * p.block_halfwords;
  for (uint w = gl_LocalInvocationID.x; w < group_word_count; w += WG) {
    const uint word = 2u * w < stored ? words[first + w] : 0u;
    group_words[w] = 2u * w + 1u < stored ? word : word & 0xFFFFu;
  }
  barrier();
  for (uint w = gl_LocalInvocationID.x; w < group_word_count; w += WG) {
    words[first + w] = half_of(source_half(2u * w)) | (half_of(source_half(2u * w + 1u)) << 16);
  }
}
