// Where Q8_0 and Q4_0 blocks lie in device memory. ggml's blocks (an f16 scale, then the quants:
// 17 and 9 halfwords) are only 2-byte aligned, so a subgroup reading them spends about four times
// the L1 wavefronts the same bytes cost read densely (docs/speed.md, session 19). The loader
// regroups them on the device (ops::RegroupBlocks, regroup_blocks.comp): each QVK_REGROUP_BLOCKS
// consecutive blocks of a matrix as their scales, then their quants. A group is 9 or 17 times 128
// bytes, so its scales fill whole 128-byte lines and its quants start at one: a subgroup's loads
// of a run of blocks touch as many lines as the same bytes read densely. A matrix's storage
// holds whole groups (ops::MatrixBytes: the last one padded), and its bindings start at whole
// groups (SliceRows), so the same arithmetic serves every block of every binding.
#ifndef QVK_REGROUP_GLSL
#define QVK_REGROUP_GLSL

// Halfword offsets of block k's scale (x) and first quant halfword (y), for blocks of
// block_halfwords halfwords.
uvec2 block_halfwords_at(uint k, uint block_halfwords) {
  const uint group = k / QVK_REGROUP_BLOCKS * (QVK_REGROUP_BLOCKS * block_halfwords);
  const uint j = k % QVK_REGROUP_BLOCKS;
  return uvec2(group + j, group + QVK_REGROUP_BLOCKS + j * (block_halfwords - 1u));
}

#endif
