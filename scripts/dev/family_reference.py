#!/usr/bin/env python3
"""Tiny random-weight checkpoints of the rest of the Qwen family, with transformers' references.

Developer tool (needs torch, transformers, safetensors; not used by the build or the tests):

    family_reference.py --tokenizer-from tests/data/qwen2-tiny --conv /tmp/peer/conv --out /tmp/family
    family_reference.py --out /tmp/family --check      # reload every folder, recompute, compare

For each architecture below it writes OUT/<name>/: a Hugging Face folder laid out as the real
checkpoints are (config.json in the published key style, bf16 model.safetensors with one tensor per
expert, the Qwen2.5 tokenizer.json, a tokenizer_config.json carrying the family's chat template,
generation_config.json) and OUT/<name>/reference.json in the fixtures' format
(shared/fixtures/README.md), plus:
  - per prompt, for MoE models, "routing": for every sparse layer and position the router's chosen
    experts (by descending router logit), their weights as the model applies them, and the margin
    between the k-th and (k+1)-th router logit, so a test compares routing only where the choice is
    not a near tie;
  - attention.f32: chat_en's attention probabilities, float32 [layers, heads, T, T] (as the fixtures);
  - chat_en.last_logits.f32: all logits at chat_en's last position.
Then OUT/<name>.gguf, llama.cpp's convert_hf_to_gguf.py --outtype f16 of that folder. Its reference is
the folder's reference.json: every bf16 weight of magnitude >= 2^-14 is exact in f16 and the smaller
ones move by < 2^-24, far below the bars, so transformers on the GGUF's weights gives the same numbers.

The reference model is the saved folder reloaded by transformers (bf16 weights upcast to float32,
eager attention, CPU), so the numbers describe the files exactly and --check can reproduce them.
Weights are random but scaled (1/sqrt(fan_in), norms around 1, non-zero biases, a decisive router)
so every sublayer moves the logits well past the bars: a wrong norm, bias or expert shows.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

VOCAB = 151936
FIRST_ADDED_TOKEN = 151643
SEED = 1234

# Qwen1.5 and Qwen2-57B-A14B-Instruct: ChatML with a default system prompt.
QWEN15_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Qwen3's template as published with Qwen3-8B and Qwen3-30B-A3B (tools, <think> handling and
# the enable_thinking switch included).
QWEN3_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

# The tokens Qwen3's tokenizer adds after Qwen2.5's (ids 151665..151668), none of them special.
QWEN3_ADDED_TOKENS = ["<tool_response>", "</tool_response>", "<think>", "</think>"]

COMMON = dict(vocab_size=VOCAB, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1000000.0, bos_token_id=151643,
              eos_token_id=151645, attention_dropout=0.0, initializer_range=0.02, use_cache=True,
              rope_scaling=None, torch_dtype="bfloat16")

# config.json of each tiny model, keyed as the published checkpoints key them.
ARCHITECTURES = {
    # Qwen1.5: multi-head attention (as many KV heads as query heads), QKV bias, tied embeddings
    # as Qwen1.5-0.5B's.
    "qwen1.5-tiny": dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=32, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32768,
        max_window_layers=2, sliding_window=32768, use_sliding_window=False, tie_word_embeddings=True,
        template="qwen1.5", **COMMON),
    # Qwen2-57B-A14B's kind: 8 experts, top-2, softmax weights not renormalised, a shared expert
    # behind a sigmoid gate; layer 1 dense (mlp_only_layers) so both FFN kinds run.
    "qwen2moe-tiny": dict(
        architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", hidden_size=32, intermediate_size=80,
        moe_intermediate_size=24, shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1], output_router_logits=False,
        router_aux_loss_coef=0.001, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=32768, max_window_layers=3, sliding_window=32768, use_sliding_window=False,
        tie_word_embeddings=True, template="qwen1.5", **COMMON),
    # Qwen3 dense: q/k RMSNorm per head, no QKV bias, head_dim 16 with hidden 32 (q is 64 wide).
    "qwen3-tiny": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=32, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, attention_bias=False,
        max_position_embeddings=40960, max_window_layers=2, sliding_window=None, use_sliding_window=False,
        tie_word_embeddings=True, template="qwen3", **COMMON),
    # Qwen3-30B-A3B's kind: 8 experts, top-2, renormalised weights, no shared expert.
    "qwen3moe-tiny": dict(
        architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", hidden_size=32, intermediate_size=96,
        moe_intermediate_size=24, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], output_router_logits=False, router_aux_loss_coef=0.001,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, attention_bias=False,
        max_position_embeddings=40960, max_window_layers=2, sliding_window=None, use_sliding_window=False,
        tie_word_embeddings=True, template="qwen3", **COMMON),
    # Qwen1.5-MoE-A2.7B's kind: every layer sparse (as in every published Qwen2-MoE), 8 experts,
    # top-2, not renormalised, the gated shared expert: the one llama.cpp's qwen2moe converts.
    "qwen2moe-sparse-tiny": dict(
        architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", hidden_size=32, intermediate_size=80,
        moe_intermediate_size=24, shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[], output_router_logits=False,
        router_aux_loss_coef=0.001, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=32768, max_window_layers=2, sliding_window=32768, use_sliding_window=False,
        tie_word_embeddings=True, template="qwen1.5", **COMMON),
}

SYSTEM_EN = "You are a terse assistant."
PROMPTS = {
    "qwen1.5": {
        "chat_en": dict(messages=[{"role": "user", "content": "What is the capital of France?"}]),
        "chat_multi": dict(messages=[
            {"role": "system", "content": SYSTEM_EN},
            {"role": "user", "content": "你好，请介绍一下你自己。"},
            {"role": "assistant", "content": "我是一个助手。"},
            {"role": "user", "content": "Write a haiku about GPUs 🚀"}]),
    },
    "qwen3": {
        "chat_en": dict(messages=[{"role": "user", "content": "What is the capital of France?"}]),
        "chat_no_think": dict(messages=[{"role": "user", "content": "What is the capital of France?"}],
                              kwargs={"enable_thinking": False}),
        # An earlier reply with its thinking: the template drops the thinking of turns before the
        # last user query.
        "chat_multi": dict(messages=[
            {"role": "system", "content": SYSTEM_EN},
            {"role": "user", "content": "你好，请介绍一下你自己。"},
            {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\n我是一个助手。"},
            {"role": "user", "content": "Write a haiku about GPUs 🚀"}]),
    },
}
TEXT_PROMPT = "The quick brown fox jumps over the lazy dog."
LONG_TOKENS = 600
GREEDY_STEPS = 24


# --- checkpoint ----------------------------------------------------------------------------------

def model_classes(model_type):
    import transformers
    names = {"qwen2": "Qwen2", "qwen2_moe": "Qwen2Moe", "qwen3": "Qwen3", "qwen3_moe": "Qwen3Moe"}[model_type]
    return getattr(transformers, names + "Config"), getattr(transformers, names + "ForCausalLM")


def randomize(model, config, seed):
    """Scaled random weights: each sublayer changes the residual by about as much as it carries."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):  # the router: a choice that is rarely a near tie
                p.copy_(torch.randn(p.shape, generator=g) * 2.0 / p.shape[-1] ** 0.5)
            elif name.endswith("shared_expert_gate.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 1.0 / p.shape[-1] ** 0.5)
            elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)  # [experts, out, in]
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    if config.tie_word_embeddings:
        model.tie_weights()


def published_state_dict(model, config):
    """The tensors as the published checkpoints name them: one gate/up/down per expert."""
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to(torch.bfloat16).contiguous()
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            half = t.shape[1] // 2
            for e in range(t.shape[0]):
                tensors[f"{prefix}{e}.gate_proj.weight"] = t[e, :half].clone()
                tensors[f"{prefix}{e}.up_proj.weight"] = t[e, half:].clone()
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                tensors[f"{prefix}{e}.down_proj.weight"] = t[e].clone()
        else:
            tensors[name] = t.clone()
    return tensors


def tokenizer_files(out, tokenizer_from, template_kind):
    src = Path(tokenizer_from)
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    if template_kind == "qwen3":
        next_id = max(t["id"] for t in tok["added_tokens"]) + 1
        present = {t["content"] for t in tok["added_tokens"]}
        for content in QWEN3_ADDED_TOKENS:
            if content in present:
                continue
            entry = {"id": next_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                     "normalized": False, "special": False}
            tok["added_tokens"].append(entry)
            cfg.setdefault("added_tokens_decoder", {})[str(next_id)] = {
                k: v for k, v in entry.items() if k != "id"}
            next_id += 1
        cfg["chat_template"] = QWEN3_TEMPLATE
    else:
        cfg["chat_template"] = QWEN15_TEMPLATE
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def generation_config(template_kind):
    if template_kind == "qwen3":
        return {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
                "temperature": 0.6, "top_k": 20, "top_p": 0.95}
    return {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
            "repetition_penalty": 1.05, "temperature": 0.7, "top_k": 20, "top_p": 0.8}


def write_checkpoint(name, spec, out, tokenizer_from, seed):
    spec = dict(spec)
    template_kind = spec.pop("template")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(spec, indent=2))
    config_class, model_class = model_classes(spec["model_type"])
    config = config_class.from_pretrained(out)
    torch.manual_seed(seed)
    model = model_class(config).float()
    randomize(model, config, seed)
    save_file(published_state_dict(model, config), str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer_files(out, tokenizer_from, template_kind)
    (out / "generation_config.json").write_text(json.dumps(generation_config(template_kind), indent=2))


# --- reference -----------------------------------------------------------------------------------

def top(logits, k=20):
    values, ids = torch.topk(logits.float(), k)
    return {"ids": ids.tolist(), "logits": values.tolist(), "logsumexp": torch.logsumexp(logits.float(), -1).item()}


class RouterTrace:
    """The router's decision per sparse layer, recomputed from the router's own input and weight."""

    def __init__(self, model, config):
        self.k = config.num_experts_per_tok
        self.norm = bool(getattr(config, "norm_topk_prob", False))
        self.records = {}
        self.hooks = []
        for index, layer in enumerate(model.model.layers):
            if hasattr(layer.mlp, "experts"):
                self.hooks.append(layer.mlp.gate.register_forward_pre_hook(self.hook(index, layer.mlp.gate)))

    def hook(self, index, gate):
        def record(module, args):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            logits = torch.nn.functional.linear(x, gate.weight.float())
            probs = torch.softmax(logits, dim=-1)
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            chosen = order[:, : self.k]
            weights = torch.gather(probs, 1, chosen)
            if self.norm:
                weights = weights / weights.sum(-1, keepdim=True)
            self.records[index] = {"experts": chosen.tolist(), "weights": weights.tolist(),
                                   "margin": (sorted_logits[:, self.k - 1] - sorted_logits[:, self.k]).tolist()}
        return record

    def take(self):
        layers = sorted(self.records)
        result = {"layers": layers, "experts": [self.records[i]["experts"] for i in layers],
                  "weights": [self.records[i]["weights"] for i in layers],
                  "margin": [self.records[i]["margin"] for i in layers]}
        self.records = {}
        return result

    def close(self):
        for h in self.hooks:
            h.remove()


def prompt_inputs(tokenizer, template_kind, seed):
    prompts = {}
    for pname, p in PROMPTS[template_kind].items():
        kwargs = p.get("kwargs", {})
        text = tokenizer.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True, **kwargs)
        prompts[pname] = {"ids": tokenizer(text, add_special_tokens=False)["input_ids"], "messages": p["messages"],
                          "template_kwargs": kwargs}
    prompts["text"] = {"ids": tokenizer(TEXT_PROMPT, add_special_tokens=False)["input_ids"]}
    g = torch.Generator().manual_seed(seed + 1)
    prompts["long"] = {"ids": torch.randint(0, FIRST_ADDED_TOKEN, (LONG_TOKENS,), generator=g).tolist()}
    return prompts


def reference(folder, template_kind, seed):
    """reference.json's dict and the binary side files, from the folder as saved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    config = model.config
    from safetensors.torch import load_file
    on_disk = load_file(str(folder / "model.safetensors"))
    loaded = published_state_dict(model, config)
    assert loaded.keys() == on_disk.keys(), f"transformers read {sorted(loaded.keys() ^ on_disk.keys())} differently"
    for key, t in on_disk.items():
        assert torch.equal(loaded[key], t), f"{folder.name}: {key} as loaded differs from the file"
    trace = RouterTrace(model, config) if hasattr(config, "num_experts") else None
    result, binaries = {"model": folder.name, "prompts": {}}, {}
    for pname, p in prompt_inputs(tokenizer, template_kind, seed).items():
        ids = torch.tensor([p["ids"]])
        want_attention = pname == "chat_en"
        with torch.no_grad():
            out = model(ids, use_cache=True, output_attentions=want_attention)
            entry = {"input_ids": p["ids"], "prompt_text": tokenizer.decode(p["ids"]),
                     "positions": [top(out.logits[0, i]) for i in range(ids.shape[1])]}
            if "messages" in p:
                entry["messages"] = p["messages"]
                entry["template_kwargs"] = p["template_kwargs"]
            if trace:
                entry["routing"] = trace.take()
            if want_attention:
                attention = torch.stack([a[0] for a in out.attentions]).float().contiguous()
                entry["attention_shape"] = list(attention.shape)
                binaries["attention.f32"] = attention.numpy().astype("<f4").tobytes()
                binaries[f"{pname}.last_logits.f32"] = out.logits[0, -1].float().numpy().astype("<f4").tobytes()
            cache = out.past_key_values
            token = int(out.logits[0, -1].argmax())
            tokens, steps = [token], []
            for _ in range(GREEDY_STEPS):
                step = model(torch.tensor([[token]]), past_key_values=cache, use_cache=True)
                cache = step.past_key_values
                s = top(step.logits[0, -1])
                s["input_id"] = token
                steps.append(s)
                token = int(step.logits[0, -1].argmax())
                tokens.append(token)
            if trace:
                trace.take()  # the greedy steps' routing is implied by their logits
            entry["greedy"] = {"first": tokens[0], "steps": steps, "tokens": tokens, "text": tokenizer.decode(tokens)}
        result["prompts"][pname] = entry
    if trace:
        trace.close()
    return result, binaries


def convert(folder, conv, gguf_path):
    env = dict(os.environ, PYTHONPATH=str(Path(conv) / "gguf-py"))
    subprocess.run([sys.executable, str(Path(conv) / "convert_hf_to_gguf.py"), str(folder), "--outtype", "f16",
                    "--outfile", str(gguf_path)], check=True, env=env)


# --- check ---------------------------------------------------------------------------------------

def close(a, b, path, tol):
    """Asserts two reference trees equal: ids and tokens exactly, floats within tol."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"
        for k in a:
            close(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= tol * max(1.0, abs(a)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def check(folder, template_kind, seed):
    saved = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
    saved.pop("gguf_reference", None)  # a note main() adds beside the references, not one of them
    again, binaries = reference(folder, template_kind, seed)
    close(saved, again, folder.name, 1e-4)
    import numpy as np
    for fname, data in binaries.items():
        a = np.fromfile(folder / fname, dtype="<f4")
        b = np.frombuffer(data, dtype="<f4")
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4, f"{folder.name}/{fname} differs"
    print(f"{folder.name}: reference reproduced")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer-from", help="folder with the Qwen2.5 tokenizer.json and tokenizer_config.json")
    ap.add_argument("--conv", help="llama.cpp's converter folder (convert_hf_to_gguf.py, gguf-py/)")
    ap.add_argument("--only", help="comma-separated names of the architectures to make")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--check", action="store_true", help="reload each folder and assert its references reproduce")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(ARCHITECTURES)
    out = Path(args.out)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    for name in names:
        spec = ARCHITECTURES[name]
        # Each architecture's seed follows its place in ARCHITECTURES, whatever --only picks.
        n = list(ARCHITECTURES).index(name)
        folder = out / name
        if args.check:
            check(folder, spec["template"], args.seed + 100 * n)
            continue
        if not args.tokenizer_from or not args.conv:
            ap.error("--tokenizer-from and --conv are needed to make the models")
        if folder.exists():
            shutil.rmtree(folder)
        write_checkpoint(name, spec, folder, args.tokenizer_from, args.seed + 100 * n)
        result, binaries = reference(folder, spec["template"], args.seed + 100 * n)
        result["gguf_reference"] = (f"{name}.gguf is convert_hf_to_gguf.py --outtype f16 of these bf16 weights; "
                                    "this reference holds for it (bf16 values are exact in f16 down to 2^-14)")
        (folder / "reference.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        for fname, data in binaries.items():
            (folder / fname).write_bytes(data)
        for pname, entry in result["prompts"].items():
            if "routing" in entry:  # a near tie below 1e-3 makes the engine's choice a coin toss
                print(f"{name} {pname}: smallest router margin {min(map(min, entry['routing']['margin'])):.2e}")
        if spec.get("mlp_only_layers"):
            # llama.cpp's qwen2moe has no dense layers (no published Qwen2-MoE has one), so its
            # converter refuses this folder: the dense-layer case is tested from the folder alone.
            print(f"{name}: {folder} (no GGUF: llama.cpp's converter maps no dense layer in a MoE model)")
            continue
        convert(folder, args.conv, out / f"{name}.gguf")
        print(f"{name}: {folder} and {out / (name + '.gguf')}")


if __name__ == "__main__":
    main()
