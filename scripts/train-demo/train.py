#!/usr/bin/env python3
"""Trains the bundled demo model (assets/wordnet-chat) from make_corpus.py's conversations: a
byte-level BPE tokenizer in Qwen2's tokenizer.json form, then a small Qwen2ForCausalLM, saved in
Hugging Face layout (bf16 safetensors, as Qwen ships). Needs PyTorch, transformers and tokenizers
and a CUDA GPU (about four minutes on one H200); see README.md beside this file.

Reproducible: the corpus, the tokenizer and the weights' initialisation follow --seed, and
PyTorch runs with deterministic algorithms and eager attention, so the same seed on the same GPU
type and library versions gives the same weights.
"""
import argparse
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS

import jinja2
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from hf_files import CHAT_TEMPLATE, DEFAULT_SYSTEM, QWEN2_SPLIT, SPECIAL_TOKENS, render, write_json, write_tokenizer_config

# Questions whose greedy answers go into the log (and assets/README.md).
SAMPLE_QUESTIONS = [
    "What does serendipity mean?", "Give a synonym of happy.", "What is the opposite of cold?",
    "Use harbor in a sentence.", "What kind of thing is a violin?", "What does the verb run mean?",
    "Who are you?", "What is the capital of France?", "Define ocean.", "What is another word for big?",
]


def train_tokenizer(conversations, vocab_size):
    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    texts = [m["content"] for c in conversations for m in c] + ["system user assistant " + DEFAULT_SYSTEM] * 100
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.add_special_tokens(SPECIAL_TOKENS)  # ids after the BPE vocabulary, as in Qwen2
    return tokenizer


def encode(tokenizer, conversations):
    """Token ids and a per-token mask of the tokens the loss counts (assistant text)."""
    examples = []
    for messages in conversations:
        text, spans = render(messages)
        encoding = tokenizer.encode(text, add_special_tokens=False)
        learn = [any(a <= start < b for a, b in spans) for start, _ in encoding.offsets]
        examples.append((encoding.ids, learn))
    return examples


def batches(examples, batch_size, rng):
    """Shuffled batches of similar lengths (less padding), in a seeded order."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 64
    out = []
    for at in range(0, len(order), pool):
        chunk = sorted(order[at:at + pool], key=lambda i: len(examples[i][0]))
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def collate(examples, indices, pad_id, device):
    length = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), length), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), length), -100, dtype=torch.long)
    mask = torch.zeros((len(indices), length), dtype=torch.long)
    for row, i in enumerate(indices):
        tokens, learn = examples[i]
        ids[row, :len(tokens)] = torch.tensor(tokens)
        mask[row, :len(tokens)] = 1
        labels[row, :len(tokens)] = torch.tensor([t if keep else -100 for t, keep in zip(tokens, learn)])
    return ids.to(device), mask.to(device), labels.to(device)


@torch.no_grad()
def mean_loss(model, examples, pad_id, device, batch_size=256):
    total, count = 0.0, 0
    for at in range(0, len(examples), batch_size):
        indices = list(range(at, min(at + batch_size, len(examples))))
        ids, mask, labels = collate(examples, indices, pad_id, device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                 labels[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += (labels[:, 1:] != -100).sum().item()
    return total / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--batch", type=int, default=192)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--limit", type=int, help="train on the first N conversations only (a quick trial)")
    parser.add_argument("--max-seconds", type=float, default=480,
                        help="refuse to start a run whose first steps predict a longer training")
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = "cuda"

    conversations = [json.loads(line)["messages"] for line in args.corpus.read_text(encoding="utf-8").splitlines()]
    conversations = conversations[: args.limit]
    rng = random.Random(args.seed)
    rng.shuffle(conversations)
    held_out = conversations[: len(conversations) // 100]
    conversations = conversations[len(held_out):]

    started = time.time()
    tokenizer = train_tokenizer(conversations, args.vocab)
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    for messages in conversations[:50]:  # our rendering is the template's
        assert template.render(messages=messages, add_generation_prompt=False) == render(messages)[0]
    pad_id, im_end_id = tokenizer.token_to_id("<|endoftext|>"), tokenizer.token_to_id("<|im_end|>")
    examples, held_examples = encode(tokenizer, conversations), encode(tokenizer, held_out)
    tokens = sum(len(ids) for ids, _ in examples)
    print(f"tokenizer: {tokenizer.get_vocab_size()} tokens; corpus: {len(examples)} conversations, {tokens} tokens "
          f"({time.time() - started:.0f} s)", flush=True)

    config = Qwen2Config(
        vocab_size=(tokenizer.get_vocab_size() + 63) // 64 * 64, hidden_size=args.hidden,
        intermediate_size=args.intermediate, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, max_position_embeddings=32768, rope_theta=1000000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, sliding_window=None,
        max_window_layers=args.layers, bos_token_id=pad_id, eos_token_id=im_end_id, pad_token_id=pad_id,
        attn_implementation="eager")
    model = Qwen2ForCausalLM(config).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters} parameters ({parameters / 1e6:.1f} M)", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    steps_per_epoch = len(batches(examples, args.batch, random.Random(0)))
    total_steps = steps_per_epoch * args.epochs
    warmup = min(200, total_steps // 10)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    step, recent, train_started = 0, [], time.time()
    for epoch in range(args.epochs):
        model.train()
        for indices in batches(examples, args.batch, rng):
            ids, mask, labels = collate(examples, indices, pad_id, device)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            recent = (recent + [loss.item()])[-100:]
            step += 1
            if step == 50:
                predicted = (time.time() - train_started) / 50 * total_steps
                print(f"{total_steps} steps predicted to take {predicted:.0f} s", flush=True)
                if predicted > args.max_seconds:
                    raise SystemExit(f"stopping: {predicted:.0f} s is over --max-seconds {args.max_seconds:.0f}")
        print(f"epoch {epoch + 1}/{args.epochs}: step {step}, train loss {sum(recent) / len(recent):.4f} "
              f"({time.time() - train_started:.0f} s)", flush=True)

    # What ships is bf16, and QwenVK computes in f32 from bf16 weights: evaluate exactly that.
    # (Parameters only: RoPE's inverse frequencies stay f32, as every loader computes them.)
    for parameter in model.parameters():
        parameter.data = parameter.data.to(torch.bfloat16).to(torch.float32)
    model.eval()
    train_loss = mean_loss(model, examples[:5000], pad_id, device)
    held_loss = mean_loss(model, held_examples, pad_id, device)
    print(f"final loss (bf16 weights, assistant tokens): train {train_loss:.4f}, held-out {held_loss:.4f}", flush=True)

    for question in SAMPLE_QUESTIONS:
        prompt = template.render(messages=[{"role": "user", "content": question}], add_generation_prompt=True)
        print(f"Q: {question}\nA: {greedy_reply(model, tokenizer, prompt, im_end_id, device)}", flush=True)
    save(args.out, model, config, tokenizer, pad_id, im_end_id)
    reloaded = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(device).eval()
    probe = torch.tensor([tokenizer.encode(render(held_out[0])[0]).ids], device=device)
    with torch.no_grad():
        expected = model(probe).logits
        drift = ((reloaded(probe).logits - expected).abs().max() / expected.abs().max()).item()
    assert drift < 1e-4, f"the saved model's logits differ from the trained one's by {drift} (relative)"
    print(f"saved to {args.out} (reloaded by transformers: logits within {drift:.1e} relative) in "
          f"{time.time() - started:.0f} s: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in sorted(args.out.iterdir())),
          flush=True)


@torch.no_grad()
def greedy_reply(model, tokenizer, prompt, im_end_id, device, max_tokens=80):
    ids = tokenizer.encode(prompt).ids
    reply = []
    for _ in range(max_tokens):
        next_id = model(torch.tensor([ids + reply], device=device)).logits[0, -1].argmax().item()
        if next_id == im_end_id:
            break
        reply.append(next_id)
    return tokenizer.decode(reply)


def save(out, model, config, tokenizer, pad_id, im_end_id):
    """Hugging Face layout in Qwen2.5's own spelling (transformers' newer config fields would be
    another dialect): two bf16 safetensors shards, the index, config, generation config and the
    tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to(torch.bfloat16).contiguous().cpu()
               for name, t in model.state_dict().items() if name != "lm_head.weight"}  # tied
    total = sum(t.numel() * 2 for t in tensors.values())
    shards, current, size = [], {}, 0
    for name, t in tensors.items():
        if current and size + t.numel() * 2 > total / 2:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += t.numel() * 2
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
    write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(out / "config.json", {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "attention_dropout": 0.0,
        "bos_token_id": pad_id, "eos_token_id": im_end_id, "hidden_act": "silu",
        "hidden_size": config.hidden_size, "initializer_range": 0.02, "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings, "max_window_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "num_hidden_layers": config.num_hidden_layers,
        "num_key_value_heads": config.num_key_value_heads, "rms_norm_eps": config.rms_norm_eps,
        "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": config.vocab_size})
    write_json(out / "generation_config.json", {
        "bos_token_id": pad_id, "eos_token_id": [im_end_id, pad_id], "pad_token_id": pad_id, "do_sample": True,
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05})
    tokenizer.save(str(out / "tokenizer.json"))
    write_tokenizer_config(out, {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS})


if __name__ == "__main__":
    main()
