// The router's choice for one token, as transformers' Qwen2Moe/Qwen3Moe blocks make it in f32:
// softmax over the token's router logits, then its k best experts, the larger logit first and ties
// to the lower expert. One subgroup makes it, with subgroup max, min and sums alone (no barrier),
// so that moe_route.comp and the router product that chooses in its last workgroup (matvec.comp's
// ROUTE) compute the same ids and weights bit for bit.
//
// The includer declares the logits it reads: `logits[]`, a token's at logits[base .. base + experts).
#ifndef QVK_MOE_CHOICE_GLSL
#define QVK_MOE_CHOICE_GLSL

#define NO_EXPERT 0xffffffffu

// Round j's expert and its probability, written by one invocation of the choosing subgroup.
shared uint chosen_ids[QVK_MAX_SEGMENTS];
shared float chosen_probs[QVK_MAX_SEGMENTS];
// The token's logits as rank keys (below), each read from memory once by the invocation that then
// reads it back here in every round (so no barrier): matvec_route reads them coherent, from L2, and
// a round trip a round made its last workgroup's choice a serial tail of some microseconds.
shared uint choice_keys[QVK_MAX_EXPERTS];

// A logit's place in the ranking as one uint, the larger first, so that a round's best is an
// integer subgroup max (one instruction on some GPUs, where a float max takes a shuffle a step).
// The float's bits are made to order as unsigned integers do (the sign bit set for >= 0, every bit
// flipped for < 0), with NaN (a corrupt model's) as -inf, in the ranking and the softmax alike, so
// that every round still finds an expert, no id past the experts reaches the expert products and
// the weights stay finite; and -0 as +0, which compare equal.
// Every expert's key is at least -inf's, 0x007fffff, above NO_KEY: no expert comes after every one.
#define NO_KEY 0u
uint rank_key(float v) {
  uint bits = floatBitsToUint(isnan(v) ? NEG_INF : v);
  if (bits == 0x80000000u) bits = 0u;
  return (bits & 0x80000000u) != 0u ? ~bits : bits | 0x80000000u;
}
float key_value(uint key) { return uintBitsToFloat((key & 0x80000000u) != 0u ? key & 0x7fffffffu : ~key); }

// Every invocation of one subgroup calls this with the same arguments. It fills chosen_ids and
// chosen_probs [0, k) (by subgroupElect()'s invocation, so the others read them only after a
// barrier) and returns the sum of the k chosen probabilities, in every invocation. Ranked by
// (logit descending, expert ascending), so ties go to the lower expert as torch.topk gives them.
float choose_experts(uint base, uint experts, uint k) {
  const uint lane = gl_SubgroupInvocationID;
  // The subgroup's invocations: all of it, or the whole workgroup where that is smaller (a
  // 32-invocation moe_route on a device of 64-wide subgroups).
  const uint lanes = min(gl_SubgroupSize, WG);
  for (uint e = lane; e < experts; e += lanes) choice_keys[e] = rank_key(logits[base + e]);
  // The softmax's max is round 0's best and its sum is taken right after it, so both come from
  // the keys; the j-th best is the best after the (j-1)-th, so no list of taken experts is kept.
  uint prev_key = 0xffffffffu;  // above every expert's: round 0 takes any
  uint prev_index = 0;
  float m = 0.0, sum = 0.0, chosen_sum = 0.0;
  for (uint j = 0; j < k; ++j) {
    // This invocation's best expert after the last round's, among its own (in ascending order, so
    // the first of equal keys is the lower expert).
    uint best_key = NO_KEY;
    uint best_index = NO_EXPERT;
    for (uint e = lane; e < experts; e += lanes) {
      const uint key = choice_keys[e];
      if ((key < prev_key || (key == prev_key && e > prev_index)) && key > best_key) {
        best_key = key;
        best_index = e;
      }
    }
    // The subgroup's: the largest key, then the lowest expert holding it.
    prev_key = subgroupMax(best_key);
    prev_index = subgroupMin(best_key == prev_key ? best_index : NO_EXPERT);
    const float best = key_value(prev_key);
    if (j == 0u) {
      m = best;
      for (uint e = lane; e < experts; e += lanes) sum += exp(key_value(choice_keys[e]) - m);
      sum = subgroupAdd(sum);
    }
    const float prob = exp(best - m) / sum;
    chosen_sum += prob;
    if (subgroupElect()) {
      chosen_ids[j] = prev_index;
      chosen_probs[j] = prob;
    }
  }
  return chosen_sum;
}

#endif
