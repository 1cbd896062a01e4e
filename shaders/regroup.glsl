// Where Q8_0 and Q4_0 blocks lie in device memory. ggml's blocks (an f16 scale, then the quants:
// 17 and 9 halfwords) are only 2-byte aligned, so a subgroup reading them spends about four times
// the L1 wavefronts the same bytes cost read densely (docs/speed.md, session 19). The loader
// regroups them on the device (ops::RegroupBlocks, regroup_blocks.comp): each QVK_REGROUP_BLOCKS
// consecutive blocks of a matrix as their scales, then their quants, which then start at 16-byte
// steps. The blocks after the last whole group of a binding keep ggml's layout. Bindings of a
// matrix start at whole groups (SliceRows), so the same arithmetic serves every binding.
#ifndef QVK_REGROUP_GLSL
#define QVK_REGROUP_GLSL

// Of a binding of `blocks` blocks, the blocks that lie in whole groups.
uint regrouped_blocks(uint blocks) { return blocks - blocks % QVK_REGROUP_BLOCKS; }

// Halfword offsets of block k's scale (x) and first quant halfword (y), for blocks of
// block_halfwords halfwords: in a whole group, or after them as stored.
uvec2 block_halfwords_at(uint k, uint blocks, uint block_halfwords) {
  if (k >= regrouped_blocks(blocks)) return uvec2(k * block_halfwords, k * block_halfwords + 1u);
  const uint group = k / QVK_REGROUP_BLOCKS * (QVK_REGROUP_BLOCKS * block_halfwords);
  const uint j = k % QVK_REGROUP_BLOCKS;
  return uvec2(group + j, group + QVK_REGROUP_BLOCKS + j * (block_halfwords - 1u));
}

#endif
