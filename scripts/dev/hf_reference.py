#!/usr/bin/env python3
"""Makes a random-weight Qwen2 checkpoint of a real shape and transformers' reference outputs for it.

Developer tool (needs torch and transformers; not used by the build or the tests):
    hf_reference.py --shape 0.5b --tokenizer-from tests/data/qwen2-tiny --out /tmp/q05 --prompt-tokens 200

Writes a Hugging Face folder (bf16 safetensors, config, tokenizer) to --out and, beside the
weights, reference.json in the fixtures' format: one batched float32 eager forward over the
prompt (top-20 logits per position) and greedy steps through the KV cache.
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, tie_word_embeddings=True),
    # Qwen1.5-0.5B: multi-head attention (16 KV heads), tied embeddings.
    "qwen1.5-0.5b": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                         num_key_value_heads=16, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, tie_word_embeddings=False, vocab_size=152064),
}


def top(logits, k=20):
    values, ids = torch.topk(logits.float(), k)
    return {"ids": ids.tolist(), "logits": values.tolist(), "logsumexp": torch.logsumexp(logits.float(), -1).item()}


def round_kv_to_f16():
    from transformers.models.qwen2 import modeling_qwen2
    original = modeling_qwen2.eager_attention_forward

    def forward(module, query, key, value, *args, **kwargs):
        return original(module, query, key.half().float(), value.half().float(), *args, **kwargs)

    modeling_qwen2.eager_attention_forward = forward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="0.5b")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=200)
    ap.add_argument("--greedy-steps", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--reference-kv-f16", action="store_true",
                    help="round keys and values to float16 inside attention, as an F16 KV cache does")
    ap.add_argument("--reference-only", action="store_true", help="reuse the checkpoint already in --out")
    args = ap.parse_args()
    if args.reference_kv_f16:
        round_kv_to_f16()

    torch.manual_seed(args.seed)
    config = Qwen2Config(vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
                         use_sliding_window=False, bos_token_id=151643, eos_token_id=151645,
                         initializer_range=args.init_std, **SHAPES[args.shape])
    out = Path(args.out)
    if args.reference_only:
        model = Qwen2ForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    else:
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(out)
        for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            shutil.copy(Path(args.tokenizer_from) / name, out / name)

    # The reference: the bf16 weights upcast to float32, eager attention.
    model = model.float().eval()
    model.config._attn_implementation = "eager"
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, 151643, (1, args.prompt_tokens), generator=g)
    with torch.no_grad():
        result = model(ids, use_cache=True)
        positions = [top(result.logits[0, i]) for i in range(ids.shape[1])]
        cache = result.past_key_values
        token = int(result.logits[0, -1].argmax())
        tokens, steps = [token], []
        for _ in range(args.greedy_steps):
            step = model(torch.tensor([[token]]), past_key_values=cache, use_cache=True)
            cache = step.past_key_values
            entry = top(step.logits[0, -1])
            entry["input_id"] = token
            steps.append(entry)
            token = int(step.logits[0, -1].argmax())
            tokens.append(token)
    reference = {"model": args.shape, "prompts": {"random": {
        "input_ids": ids[0].tolist(), "positions": positions,
        "greedy": {"first": tokens[0], "steps": steps, "tokens": tokens}}}}
    name = "reference_kv_f16.json" if args.reference_kv_f16 else "reference.json"
    (out / name).write_text(json.dumps(reference))


if __name__ == "__main__":
    main()
