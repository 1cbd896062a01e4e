// Where Q8_0, Q4_0, Q5_0 and Q6_K blocks lie in device memory. ggml's blocks (an f16 scale and
// the quants: 17, 9, 11 and 105 halfwords) are only 2-byte aligned, so a subgroup reading them
// spends about four times the L1 wavefronts the same bytes cost read densely (docs/speed.md,
// session 19), and Q5_0's and Q6_K's words had to be pieced together from halfwords. The loader
// regroups them on the device (ops::RegroupBlocks, regroup_blocks.comp): each QVK_REGROUP_BLOCKS
// consecutive blocks of a matrix as their scales, then the rest of each block in its order
// (Q6_K's scale, d, is its last halfword; the others' is their first). A group is 9, 11, 17 or
// 105 times 128 bytes, so its scales fill whole 128-byte lines and the rest starts at one: a
// subgroup's loads of a run of blocks touch as many lines as the same bytes read densely, and
// the rest of each block is aligned to its words (Q6_K's 208 bytes to 16, Q5_0's 20 to 4). A
// matrix's storage holds whole groups (ops::MatrixBytes: the last one padded), and its bindings
// start at whole groups (SliceRows), so the same arithmetic serves every block of every binding.
#ifndef QVK_REGROUP_GLSL
#define QVK_REGROUP_GLSL

// Halfword offsets of block k's scale (x) and of the rest of it (y), for blocks of block_halfwords
// halfwords.
uvec2 block_halfwords_at(uint k, uint block_halfwords) {
  const uint group = k / QVK_REGROUP_BLOCKS * (QVK_REGROUP_BLOCKS * block_halfwords);
  const uint j = k % QVK_REGROUP_BLOCKS;
  return uvec2(group + j, group + QVK_REGROUP_BLOCKS + j * (block_halfwords - 1u));
}

#endif
