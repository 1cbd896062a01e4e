#!/usr/bin/env python3
"""Real-shaped Qwen GGUF files of random weights written directly, for speed measurements.

Weights' values do not change speed, and a 30B model's f16 checkpoint (61 GB) does not fit the
speed machine's disk beside its quantized file, so this writes the quantized file itself: every
tensor in the type llama-quantize would give it (the Q4_K_M mix: Q6_K for the output and for
attn_v and ffn_down of the layers llama.cpp's use_more_bits picks, Q5_0/Q8_0 where a row is not a
whole number of 256-blocks), filled with random bytes whose f16 block scales are set to small
finite values. The router is random f32 (so tokens spread over the experts as a trained router's
do), norms are ones, biases zero. The tokenizer metadata comes from an existing Qwen GGUF.
Runs on the speed machine (docs/speed.md), with llama.cpp's gguf-py on PYTHONPATH:

  PYTHONPATH=CONV/gguf-py python3 scripts/dev/make_random_gguf.py --vocab-from qwen3-tiny.gguf \
      --out /tmp/models --models qwen3-30B-A3B,qwen1.5-MoE-A2.7B --types Q4_K_M

Writes OUT/<model>-<type>.gguf.
"""
import argparse
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

# The published shapes (config.json of each Hugging Face repository).
MODELS = {
    "qwen2.5-0.5B": dict(arch="qwen2", hidden=896, layers=24, heads=14, kv_heads=2, head_dim=64, ffn=4864,
                         tied=True, bias=True),
    "qwen2.5-1.5B": dict(arch="qwen2", hidden=1536, layers=28, heads=12, kv_heads=2, head_dim=128, ffn=8960,
                         tied=True, bias=True),
    "qwen2.5-7B": dict(arch="qwen2", hidden=3584, layers=28, heads=28, kv_heads=4, head_dim=128, ffn=18944,
                       tied=False, bias=True, vocab=152064),
    "qwen3-0.6B": dict(arch="qwen3", hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=3072,
                       tied=True, bias=False),
    "qwen3-1.7B": dict(arch="qwen3", hidden=2048, layers=28, heads=16, kv_heads=8, head_dim=128, ffn=6144,
                       tied=True, bias=False),
    "qwen3-8B": dict(arch="qwen3", hidden=4096, layers=36, heads=32, kv_heads=8, head_dim=128, ffn=12288,
                     tied=False, bias=False),
    "qwen3-30B-A3B": dict(arch="qwen3moe", hidden=2048, layers=48, heads=32, kv_heads=4, head_dim=128, ffn=6144,
                          experts=128, used=8, expert_ffn=768, tied=False, bias=False),
    "qwen1.5-MoE-A2.7B": dict(arch="qwen2moe", hidden=2048, layers=24, heads=16, kv_heads=16, head_dim=128,
                              ffn=5632, experts=60, used=4, expert_ffn=1408, shared_ffn=5632, tied=False,
                              bias=True),
}
VOCAB = 151936  # unless a model says otherwise (Qwen2.5-7B pads its embedding to 152064 rows)
QK_K = 256
# llama.cpp's fallback where a row is not a whole number of 256-value blocks.
FALLBACK = {T.Q4_K: T.Q5_0, T.Q6_K: T.Q8_0}
# Byte offsets of each block type's f16 scales (d, and dmin for Q4_K).
F16_FIELDS = {T.Q8_0: [0], T.Q4_0: [0], T.Q5_0: [0], T.Q4_K: [0, 2], T.Q6_K: [208]}


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def weight_type(ftype, role, layer, layers, cols):
    """The type llama-quantize gives a weight matrix of `role` ('output', 'embed', 'v', 'down', 'other')."""
    if ftype == "F16":
        return T.F16
    base = {"Q8_0": T.Q8_0, "Q4_0": T.Q4_0, "Q4_K_M": T.Q4_K}[ftype]
    t = base
    if role == "output":
        t = T.Q8_0 if base == T.Q8_0 else T.Q6_K
    elif ftype == "Q4_K_M" and role in ("v", "down") and use_more_bits(layer, layers):
        t = T.Q6_K
    if cols % QK_K != 0:
        t = FALLBACK.get(t, t)
    if t == T.Q8_0 and cols % 32 != 0:
        t = T.F16
    return t


class RandomBytes:
    """Random bytes from a pool reused cyclically: the values do not matter, their spread does."""

    def __init__(self, seed):
        self.pool = np.random.default_rng(seed).integers(0, 256, size=64 << 20, dtype=np.uint8)
        self.offset = 0

    def take(self, n):
        """n bytes from the pool, as a new array (the caller overwrites its scales)."""
        start = self.offset
        self.offset = (self.offset + 4099 * 7) % self.pool.size
        if start + n <= self.pool.size:
            return self.pool[start:start + n].copy()
        return np.resize(np.roll(self.pool, -start), n)  # already a new array


def tensor_bytes(rng, qtype, shape):
    """Random data of a tensor with ggml shape `shape` (ne0 first) in `qtype`."""
    elements = int(np.prod(shape))
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.take(elements // block * size)
    if qtype == T.F16:
        # Small finite halves (|v| < 2^-6), either sign.
        words = data.view(np.uint16)
        words &= 0x83FF
        words |= 0x2000
    else:
        blocks = data.reshape(-1, size)
        scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
        for offset in F16_FIELDS[qtype]:
            blocks[:, offset:offset + 2] = scale
    return data


def plan(spec, ftype):
    """(name, ggml shape, type, kind) of every tensor, kind 'matrix', 'ones', 'zeros' or 'router'."""
    h, L, hd = spec["hidden"], spec["layers"], spec["head_dim"]
    q, kv = spec["heads"] * hd, spec["kv_heads"] * hd
    out = []

    def matrix(tname, shape, role, layer=0):
        out.append((tname, shape, weight_type(ftype, role, layer, L, shape[0]), "matrix"))

    def vector(tname, n, kind="ones"):
        out.append((tname, [n], T.F32, kind))

    vocab = spec.get("vocab", VOCAB)
    matrix("token_embd.weight", [h, vocab], "output" if spec["tied"] else "embed")
    for i in range(L):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", h)
        matrix(p + "attn_q.weight", [h, q], "other", i)
        matrix(p + "attn_k.weight", [h, kv], "other", i)
        matrix(p + "attn_v.weight", [h, kv], "v", i)
        if spec["bias"]:
            for part, n in (("q", q), ("k", kv), ("v", kv)):
                vector(p + f"attn_{part}.bias", n, "zeros")
        if spec["arch"].startswith("qwen3"):
            vector(p + "attn_q_norm.weight", hd)
            vector(p + "attn_k_norm.weight", hd)
        matrix(p + "attn_output.weight", [q, h], "other", i)
        vector(p + "ffn_norm.weight", h)
        if "experts" in spec:
            E, F = spec["experts"], spec["expert_ffn"]
            out.append((p + "ffn_gate_inp.weight", [h, E], T.F32, "router"))
            matrix(p + "ffn_gate_exps.weight", [h, F, E], "other", i)
            matrix(p + "ffn_up_exps.weight", [h, F, E], "other", i)
            matrix(p + "ffn_down_exps.weight", [F, h, E], "down", i)
            if "shared_ffn" in spec:
                S = spec["shared_ffn"]
                out.append((p + "ffn_gate_inp_shexp.weight", [h], T.F32, "router"))
                matrix(p + "ffn_gate_shexp.weight", [h, S], "other", i)
                matrix(p + "ffn_up_shexp.weight", [h, S], "other", i)
                matrix(p + "ffn_down_shexp.weight", [S, h], "down", i)
        else:
            matrix(p + "ffn_gate.weight", [h, spec["ffn"]], "other", i)
            matrix(p + "ffn_up.weight", [h, spec["ffn"]], "other", i)
            matrix(p + "ffn_down.weight", [spec["ffn"], h], "down", i)
    vector("output_norm.weight", h)
    if not spec["tied"]:
        matrix("output.weight", [h, vocab], "output")
    return out


def write(name, spec, ftype, vocab_from, path, seed):
    arch = spec["arch"]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"{name} random")
    w.add_file_type({"F16": 1, "Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}[ftype])
    w.add_block_count(spec["layers"])
    w.add_context_length(40960 if arch.startswith("qwen3") else 32768)
    w.add_embedding_length(spec["hidden"])
    w.add_feed_forward_length(spec["ffn"])
    w.add_head_count(spec["heads"])
    w.add_head_count_kv(spec["kv_heads"])
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    if arch.startswith("qwen3"):
        w.add_key_length(spec["head_dim"])
        w.add_value_length(spec["head_dim"])
    if "experts" in spec:
        w.add_expert_count(spec["experts"])
        w.add_expert_used_count(spec["used"])
        w.add_expert_feed_forward_length(spec["expert_ffn"])
        if "shared_ffn" in spec:
            w.add_expert_shared_feed_forward_length(spec["shared_ffn"])
    reader = gguf.GGUFReader(vocab_from)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            value = field.contents()
            # Rows past the tokenizer's tokens are padding, named as llama.cpp's converter names them.
            pad = range(len(value), spec.get("vocab", VOCAB)) if sub is not None else range(0)
            if key == "tokenizer.ggml.tokens":
                value = value + [f"[PAD{i}]" for i in pad]
            elif key == "tokenizer.ggml.token_type":
                value = value + [int(gguf.TokenType.UNUSED)] * len(pad)
            w.add_key_value(key, value, field.types[0], sub_type=sub)

    tensors = plan(spec, ftype)
    for tname, shape, qtype, _ in tensors:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        # gguf-py takes a raw tensor's shape in numpy order, its last dimension in bytes.
        byte_shape = list(reversed(shape))
        byte_shape[-1] = shape[0] // block * size
        w.add_tensor_info(tname, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = RandomBytes(seed)
    router = np.random.default_rng(seed + 1)
    for tname, shape, qtype, kind in tensors:
        n = int(np.prod(shape))
        if kind == "ones":
            data = np.ones(n, dtype=np.float32)
        elif kind == "zeros":
            data = np.zeros(n, dtype=np.float32)
        elif kind == "router":
            data = (router.standard_normal(n, dtype=np.float32) * 0.05).astype(np.float32)
        else:
            data = tensor_bytes(rng, qtype, shape)
        w.write_tensor_data(data.view(np.uint8))
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-from", required=True, help="a Qwen GGUF whose tokenizer metadata to copy")
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--types", default="Q4_K_M")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.models.split(","):
        for ftype in args.types.split(","):
            path = os.path.join(args.out, f"{name}-{ftype}.gguf")
            write(name, MODELS[name], ftype, args.vocab_from, path, args.seed)
            print(f"{path}: {os.path.getsize(path) / 1e9:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
