#!/usr/bin/env python3
"""Real-shaped Qwen2.5 GGUF files with random weights, for speed measurements.

Weights' values do not change speed, so the benchmark models are Qwen2.5-0.5B/1.5B/7B-shaped
checkpoints of random f16 weights (made on the GPU with torch), converted by llama.cpp's
convert_hf_to_gguf.py to F16 and quantized by llama-quantize: the same route and the same files
llama.cpp's llama-bench is measured on. Runs on the speed machine (docs/speed.md):

  python3 scripts/dev/make_bench_models.py --tokenizer DIR --conv CONV_DIR --quantize BIN \
      --out /tmp/models --sizes 0.5B,1.5B --types F16,Q8_0,Q4_0,Q4_K_M

Writes OUT/qwen2.5-<size>-<type>.gguf. DIR holds a Qwen2 tokenizer.json and tokenizer_config.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

# The published Qwen2.5 shapes (config.json of each Hugging Face repository).
SHAPES = {
    "0.5B": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "1.5B": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
               intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
}


def config_for(shape):
    return dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
                max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                bos_token_id=151643, eos_token_id=151645, use_sliding_window=False, sliding_window=32768,
                max_window_layers=shape["num_hidden_layers"], torch_dtype="float16", **shape)


def write_checkpoint(directory, shape, tokenizer_dir, seed):
    import torch
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config_for(shape), f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, name), directory)
    h, inter, vocab = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"]
    d = h // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * d
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def rand(*dims):
        return (torch.randn(*dims, generator=gen, device="cuda", dtype=torch.float16) * 0.02).cpu()

    def layer(i):
        p = f"model.layers.{i}."
        return {
            p + "input_layernorm.weight": torch.ones(h, dtype=torch.float16),
            p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.float16),
            p + "self_attn.q_proj.weight": rand(h, h), p + "self_attn.q_proj.bias": rand(h),
            p + "self_attn.k_proj.weight": rand(kv, h), p + "self_attn.k_proj.bias": rand(kv),
            p + "self_attn.v_proj.weight": rand(kv, h), p + "self_attn.v_proj.bias": rand(kv),
            p + "self_attn.o_proj.weight": rand(h, h),
            p + "mlp.gate_proj.weight": rand(inter, h), p + "mlp.up_proj.weight": rand(inter, h),
            p + "mlp.down_proj.weight": rand(h, inter),
        }

    shards = [{"model.embed_tokens.weight": rand(vocab, h), "model.norm.weight": torch.ones(h, dtype=torch.float16)}]
    if not shape["tie_word_embeddings"]:
        shards[0]["lm_head.weight"] = rand(vocab, h)
    for i in range(shape["num_hidden_layers"]):
        shards.append(layer(i))
    index = {"metadata": {}, "weight_map": {}}
    for n, tensors in enumerate(shards):
        name = f"model-{n + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(tensors, os.path.join(directory, name), metadata={"format": "pt"})
        for key in tensors:
            index["weight_map"][key] = name
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def make(size, args):
    hf = os.path.join(args.work, f"hf-{size}")
    f16 = os.path.join(args.out, f"qwen2.5-{size}-F16.gguf")
    write_checkpoint(hf, SHAPES[size], args.tokenizer, seed=1234)
    env = dict(os.environ, PYTHONPATH=os.path.join(args.conv, "gguf-py"))
    run([sys.executable, os.path.join(args.conv, "convert_hf_to_gguf.py"), hf, "--outtype", "f16", "--outfile", f16],
        env)
    shutil.rmtree(hf)
    for t in args.types:
        if t != "F16":
            run([args.quantize, f16, os.path.join(args.out, f"qwen2.5-{size}-{t}.gguf"), t, str(args.threads)])
    if "F16" not in args.types:
        os.remove(f16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--conv", required=True, help="folder with convert_hf_to_gguf.py and gguf-py/")
    ap.add_argument("--quantize", required=True, help="llama-quantize")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/bench-hf")
    ap.add_argument("--sizes", default="0.5B,1.5B")
    ap.add_argument("--types", default="F16,Q8_0,Q4_0,Q4_K_M")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    args.types = args.types.split(",")
    os.makedirs(args.out, exist_ok=True)
    sizes = args.sizes.split(",")
    for s in sizes:
        if s not in SHAPES:
            sys.exit(f"unknown size {s}; one of {', '.join(SHAPES)}")
    with ThreadPoolExecutor(len(sizes)) as pool:
        for f in [pool.submit(make, s, args) for s in sizes]:
            f.result()


if __name__ == "__main__":
    main()
