// What attention.comp and attention_combine.comp agree on: which keys a query sees, the keys of a
// block of query tokens, and how those keys are split. Both derive the split layout from
// positions[] on the GPU, so a decode step recorded once serves every depth: `p.splits` is only
// the most splits a block may use. The including shader declares `p` (AttentionPush) and
// `positions`.

// Keys [first_visible(pos), pos] are visible to a query at position pos.
uint first_visible(uint pos) { return (p.window != 0 && pos + 1 > p.window) ? pos + 1 - p.window : 0; }

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
// a short context fills the first few splits and leaves the others nothing to do.
uint split_length(KeyRange keys) {
  const uint n = keys.end - keys.begin;
  const uint per = max((n + p.splits - 1) / p.splits, QVK_ATTENTION_SPLIT_KEYS);
  return (per + QVK_ATTENTION_SPLIT_KEYS - 1) / QVK_ATTENTION_SPLIT_KEYS * QVK_ATTENTION_SPLIT_KEYS;
}

// Splits that hold keys; the rest write nothing and are not combined.
uint active_splits(KeyRange keys) {
  const uint per = split_length(keys);
  return (keys.end - keys.begin + per - 1) / per;
}
