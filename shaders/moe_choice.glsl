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
// The token's logits, each read from memory once by the invocation that then reads it back here
// in every pass (so no barrier): matvec_route reads them coherent, from L2, and a round trip a pass
// made its last workgroup's choice a serial tail of some microseconds.
shared float choice_logits[QVK_MAX_EXPERTS];

// (logit, expert) order: the larger logit first, then the lower expert. No expert (NO_EXPERT)
// comes after every expert, even one whose logit is -inf.
bool ranks_before(float v, uint i, float w, uint j) { return v > w || (v == w && i < j); }

// A logit as the ranking sees it: NaN (a corrupt model's) as -inf, so that every round still finds
// an expert (there are at least k) and no id past the experts ever reaches the expert products.
float rank_value(float v) { return isnan(v) ? NEG_INF : v; }

// Every invocation of one subgroup calls this with the same arguments. It fills chosen_ids and
// chosen_probs [0, k) (by subgroupElect()'s invocation, so the others read them only after a
// barrier) and returns the sum of the k chosen probabilities, in every invocation.
float choose_experts(uint base, uint experts, uint k) {
  const uint lane = gl_SubgroupInvocationID;
  // The subgroup's invocations: all of it, or the whole workgroup where that is smaller (a
  // 32-invocation moe_route on a device of 64-wide subgroups).
  const uint lanes = min(gl_SubgroupSize, WG);
  float m = NEG_INF;
  for (uint e = lane; e < experts; e += lanes) {
    choice_logits[e] = logits[base + e];
    m = max(m, choice_logits[e]);
  }
  m = subgroupMax(m);
  float sum = 0.0;
  for (uint e = lane; e < experts; e += lanes) sum += exp(choice_logits[e] - m);
  sum = subgroupAdd(sum);
  // The j-th best is the best logit after the (j-1)-th in (logit descending, index ascending)
  // order, so no list of taken experts is kept.
  float prev_value = uintBitsToFloat(0x7f800000u);
  uint prev_index = 0;
  float chosen_sum = 0.0;
  for (uint j = 0; j < k; ++j) {
    // This invocation's best expert after the last round's, among its own.
    float best = NEG_INF;
    uint best_index = NO_EXPERT;
    for (uint e = lane; e < experts; e += lanes) {
      const float v = rank_value(choice_logits[e]);
      if ((j == 0u || ranks_before(prev_value, prev_index, v, e)) && ranks_before(v, e, best, best_index)) {
        best = v;
        best_index = e;
      }
    }
    // The subgroup's: the largest value, then the lowest expert holding it (an expert before none).
    const float subgroup_best = subgroupMax(best);
    best_index = subgroupMin(best == subgroup_best ? best_index : NO_EXPERT);
    best = subgroup_best;
    const float prob = exp(best - m) / sum;
    chosen_sum += prob;
    if (subgroupElect()) {
      chosen_ids[j] = best_index;
      chosen_probs[j] = prob;
    }
    prev_value = best;
    prev_index = best_index;
  }
  return chosen_sum;
}

#endif
