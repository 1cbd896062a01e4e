#!/usr/bin/env python3
"""Prints transformers' RoPE inverse frequencies and attention factors for a few Qwen2 configs as
JSON (developer tool; the output is tests/data/rope/transformers_rope.json)."""
import json

from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

CASES = [
    dict(name="default_1e6_d128", hidden_size=1536, num_attention_heads=12, rope_theta=1e6, rope_scaling=None),
    dict(name="default_1e4_d64", hidden_size=896, num_attention_heads=14, rope_theta=1e4, rope_scaling=None),
    dict(name="yarn4_1e6_d128", hidden_size=3584, num_attention_heads=28, rope_theta=1e6, max_position_embeddings=131072,
         rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
    dict(name="yarn2_1e4_d64", hidden_size=896, num_attention_heads=14, rope_theta=1e4, max_position_embeddings=8192,
         rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096,
                       "beta_fast": 16, "beta_slow": 2}),
]

out = []
for case in CASES:
    kwargs = {k: v for k, v in case.items() if k != "name"}
    # The model's own rotary module, as Qwen2Model builds it: whatever transformers does, this is it.
    rotary = Qwen2RotaryEmbedding(Qwen2Config(**kwargs))
    out.append({"name": case["name"], "config": kwargs, "inv_freq": rotary.inv_freq.tolist(),
                "attention_factor": float(rotary.attention_scaling)})
print(json.dumps(out))
