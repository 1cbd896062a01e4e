// NeoX rotation, shared by rope.comp and matvec.comp's RoPE epilogue: element i of a head rotates
// with element i + D/2 by angle position * inv_freq[i], cos and sin scaled by YaRN's attention factor.

// cos and sin of a f32 angle up to ~1e5 radians. GPU sin/cos are only accurate near zero, so the
// angle is first reduced by 2*pi in two exact-ish steps (Cody-Waite): 6.28125 has 9 significant
// bits, so k * 6.28125 is exact for k < 2^15.
vec2 cos_sin(float angle) {
  precise float k = round(angle * 0.15915494309189535);
  precise float r = (angle - k * 6.28125) - k * 0.0019353071795864769;
  return vec2(cos(r), sin(r));
}

// (x0, x1) rotated by the angle whose (cos, sin) * attention factor is cs.
vec2 rotate_pair(float x0, float x1, vec2 cs) { return vec2(x0 * cs.x - x1 * cs.y, x1 * cs.x + x0 * cs.y); }

// (x0, x1) of a head scaled by its RMS (inv_rms) and the norm's weights (w0, w1), then rotated:
// Qwen3's q and k, as head_norm_rope.comp and attention.comp's QK_NORM compute them alike.
vec2 norm_rotate_pair(float x0, float x1, float inv_rms, float w0, float w1, vec2 cs) {
  return rotate_pair(x0 * (inv_rms * w0), x1 * (inv_rms * w1), cs);
}
