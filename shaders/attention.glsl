// What attention.comp, attention_coopmat.comp and attention_combine.comp agree on: which keys a
// query sees, which query rows a workgroup holds, the keys of a block of query tokens, and how
// those keys are split. They derive the split layout from positions[] on the GPU, so a decode
// step recorded once serves every depth: `p.splits` is only the most splits a block may use. The
// including shader declares `p` (AttentionPush) and `positions`.

// Keys [first_visible(pos), pos] are visible to a query at position pos.
uint first_visible(uint pos) { return (p.window != 0 && pos + 1 > p.window) ? pos + 1 - p.window : 0; }

// The query rows a workgroup holds, from its place in the grid (x: its split of the keys, y: its
// block of tokens, z: its KV group and block of that group's q heads). Row r is token
// t0 + r / heads_per_block, head h0 + r % heads_per_block.
struct RowBlock {
  uint split, block;
  uint g;              // the KV group
  uint t0, h0, h_end;  // the first token, the first q head, the group's last q head + 1
};
RowBlock this_row_block() {
  const uint group = p.n_heads / p.n_kv_heads;
  const uint head_blocks = (group + p.heads_per_block - 1) / p.heads_per_block;
  RowBlock b;
  b.split = gl_WorkGroupID.x;
  b.block = gl_WorkGroupID.y;
  b.g = gl_WorkGroupID.z / head_blocks;
  b.t0 = b.block * p.tokens_per_block;
  b.h0 = b.g * group + gl_WorkGroupID.z % head_blocks * p.heads_per_block;
  b.h_end = (b.g + 1) * group;
  return b;
}
// Row r's token and head, and whether the block has that row.
bool row_at(RowBlock b, uint r, out uint t, out uint h) {
  t = b.t0 + r / p.heads_per_block;
  h = b.h0 + r % p.heads_per_block;
  return r < p.heads_per_block * p.tokens_per_block && t < p.tokens && h < b.h_end;
}

struct KeyRange {
  uint begin;
  uint end;
};

// The union of the keys the tokens of `block` see (tokens [block * tokens_per_block, ...)).
KeyRange block_keys(uint block) {
  const uint t0 = block * p.tokens_per_block;
  const uint t1 = min(t0 + p.tokens_per_block, p.tokens);
  KeyRange keys = KeyRange(0xffffffffu, 0);
  for (uint t = t0; t < t1; ++t) {
    const uint pos = positions[t];
    keys.begin = min(keys.begin, first_visible(pos));
    keys.end = max(keys.end, pos + 1);
  }
  return keys;
}

// Keys per split: the block's keys spread over p.splits, rounded up to whole granules, so that
// a short context fills the first few splits and leaves the others nothing to do. The granule
// (push_constants.h) is shorter where the block sees at most p.short_keys keys.
uint split_length(KeyRange keys) {
  const uint n = keys.end - keys.begin;
  const uint granule = n <= p.short_keys ? QVK_ATTENTION_SHORT_SPLIT_KEYS : QVK_ATTENTION_SPLIT_KEYS;
  const uint per = max((n + p.splits - 1) / p.splits, granule);
  return (per + granule - 1) / granule * granule;
}

// Splits that hold keys; the rest write nothing and are not combined.
uint active_splits(KeyRange keys) {
  const uint per = split_length(keys);
  return (keys.end - keys.begin + per - 1) / per;
}
