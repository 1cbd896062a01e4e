#version 450
// Live attention rows (AttentionLivePush): a decode step's attention reduced to each view a viewer
// chose, from the scores every layer's attention left on the GPU, so that only the views' rows,
// not every layer's and head's, go to host memory, and only the keys and heads a view reads are
// made probabilities. The views come from a buffer the host rewrites when the viewer chooses
// others, and the keys from positions[], so one recording of the step serves every view and every
// depth. Workgroup row y is view y (those past the count do nothing); the workgroups of a row
// stride over its keys, one key an invocation.
#include "common.glsl"

layout(binding = 0) readonly buffer Scores { float scores[]; };
layout(binding = 1) readonly buffer Positions { uint positions[]; };
layout(binding = 2) readonly buffer Views { uvec4 views[]; };
layout(binding = 3) writeonly buffer Out { float out_values[]; };

layout(push_constant) uniform Push { AttentionLivePush p; };

void main() {
  const uint v = gl_WorkGroupID.y;
  if (v >= views[0].x) return;
  const uvec4 view = views[1 + v];  // layer, first head, heads, flags
  const bool is_max = (view.w & QVK_FLAG_MAX) != 0;
  const bool mute = (view.w & QVK_FLAG_MUTE_SINK) != 0;
  const uint cols = positions[0] + 1;
  const uint layer = view.x * p.layer_stride;
  const uint stats = layer + p.n_heads * p.stride;  // (m, l) of each head's row
  for (uint j = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x; j < cols; j += gl_NumWorkGroups.x * WG) {
    float acc = 0.0;  // probabilities are >= 0: 0 is the max's identity too
    for (uint h = view.y; h < view.y + view.z; ++h) {
      const uint row = layer + h * p.stride;
      const float m = scores[stats + 2 * h];
      const float inv_l = 1.0 / scores[stats + 2 * h + 1];
      // As attention_reduce mutes the sink: a row wholly on it has nothing left, 0 rather than 0 / 0.
      float scale = 1.0;
      if (mute) {
        const float sink = exp(scores[row] - m) * inv_l;
        scale = sink < 1.0 ? 1.0 / (1.0 - sink) : 0.0;
      }
      const float value = mute && j == 0 ? 0.0 : exp(scores[row + j] - m) * inv_l * scale;
      acc = is_max ? max(acc, value) : acc + value;
    }
    if (!is_max) acc /= float(view.z);
    out_values[v * cols + j] = acc;
  }
}
