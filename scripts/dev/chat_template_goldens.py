#!/usr/bin/env python3
"""Golden chat-template renders for tests/chat_template_test.cpp, made as transformers makes them.

Developer tool (needs jinja2 3.x only, not transformers; not used by the build or the tests):

    scripts/dev/chat_template_goldens.py > tests/data/chat_template/goldens.json

transformers' apply_chat_template compiles a template in jinja2's ImmutableSandboxedEnvironment
with trim_blocks and lstrip_blocks, the loopcontrols extension, its own tojson filter (json.dumps
with ensure_ascii=False, so non-ASCII and <, >, & stay as written) and the globals
raise_exception and strftime_now, and renders it with messages, tools, documents,
add_generation_prompt, the tokenizer's special tokens and the caller's keyword arguments
(enable_thinking). This does the same for each template below and each conversation in CASES;
a render that raises is recorded as {"error": message}, and the test expects an Error there too.
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
TEMPLATES = {  # under tests/data
    "qwen3": "family/qwen3-tokenizer/tokenizer_config.json",
    "qwen2-tiny": "qwen2-tiny/tokenizer_config.json",
}


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def special_tokens(config):
    """The tokenizer's special tokens as transformers' special_tokens_map gives them (unset ones left out)."""
    tokens = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city, \"now\" or <later> & tomorrow; 天气.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": None},
                "days": {"type": "integer", "minimum": 1, "maximum": 16},
                "precision": {"type": "number", "minimum": 0.5, "default": 1e-05, "maximum": 1e16},
                "scale": {"type": "number", "default": 100.0, "examples": [0.1, 2.5e-07, 123456.789]},
                "flags": {"type": "array", "items": {}, "default": []},
                "detailed": {"type": "boolean", "default": False},
                "note": {"type": "string", "default": "tab\there\nnew line \u0001 back\\slash"},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "The time now.", "parameters": {}}}

THINK_TURNS = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nEasy: 2+2=4.\n</think>\n\n4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "<think>\nThat is 6.\n\n</think>\n\n\n6, of course."},
    {"role": "user", "content": "Thanks!"},
]

TOOL_TURNS = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {
        "role": "assistant",
        "content": "<think>\nI need two tools.\n</think>\n\nLet me check.",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}},
            {"type": "function", "function": {"name": "get_time", "arguments": "{\"tz\": \"Europe/Paris\"}"}},
        ],
    },
    {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}", "tool_call_id": "call_1"},
    {"role": "tool", "content": "14:05", "tool_call_id": "call_2"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "ok": True, "n": None}}],
    },
    {"role": "tool", "content": "{\"temp\": 70}"},
]

CASES = [
    {"name": "user_only", "messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": True},
    {
        "name": "user_only_thinking_off",
        "messages": [{"role": "user", "content": "Hi"}],
        "add_generation_prompt": True,
        "enable_thinking": False,
    },
    {
        "name": "user_only_thinking_on",
        "messages": [{"role": "user", "content": "Hi"}],
        "add_generation_prompt": True,
        "enable_thinking": True,
    },
    {
        "name": "system_user_no_generation_prompt",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        "add_generation_prompt": False,
        "enable_thinking": False,
    },
    {"name": "think_multi_turn", "messages": THINK_TURNS, "add_generation_prompt": True},
    {"name": "think_multi_turn_thinking_off", "messages": THINK_TURNS, "add_generation_prompt": True, "enable_thinking": False},
    {"name": "think_last_assistant", "messages": THINK_TURNS[:4], "add_generation_prompt": False},
    {
        "name": "assistant_without_think_after_last_query",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\n\nHello there."}],
        "add_generation_prompt": False,
    },
    {
        "name": "reasoning_content_field",
        "messages": [
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": "Because.", "reasoning_content": "\nThe user asks why.\n"},
            {"role": "user", "content": "Why again?"},
            {"role": "assistant", "content": "<think>\nignored\n</think>\n\nStill because.", "reasoning_content": "kept"},
        ],
        "add_generation_prompt": False,
    },
    {
        "name": "unclosed_think",
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": "<think>\nStill thinking, cut off"},
        ],
        "add_generation_prompt": False,
    },
    {
        "name": "several_think_blocks",
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "pre<think>a</think>mid<think>\n\nb\n\n</think>\n\npost"},
            {"role": "user", "content": "Q2"},
        ],
        "add_generation_prompt": True,
        "enable_thinking": True,
    },
    {
        "name": "later_system_message",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "How are you?"},
        ],
        "add_generation_prompt": True,
    },
    {"name": "tools_and_tool_calls", "messages": TOOL_TURNS, "tools": [WEATHER_TOOL, TIME_TOOL], "add_generation_prompt": True},
    {
        "name": "tools_without_system",
        "messages": TOOL_TURNS[1:5],
        "tools": [TIME_TOOL],
        "add_generation_prompt": True,
        "enable_thinking": False,
    },
    {
        "name": "tool_response_as_user_text",
        "messages": [
            {"role": "user", "content": "Start"},
            {"role": "assistant", "content": "<think>\nplan\n</think>\n\nCalling.", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
            {"role": "user", "content": "<tool_response>\n42\n</tool_response>"},
            {"role": "assistant", "content": "<think>\nGot 42.\n</think>\n\nThe answer is 42."},
        ],
        "add_generation_prompt": False,
    },
    {
        "name": "tool_message_first",
        "messages": [{"role": "tool", "content": "orphan result"}, {"role": "user", "content": "Hm?"}],
        "add_generation_prompt": True,
    },
    {
        "name": "unicode",
        "messages": [
            {"role": "system", "content": "你是一个助手。 Ünïcödé\u3000spaces\u00a0"},
            {"role": "user", "content": "写一首关于GPU的俳句 🚀 e\u0301"},
            {"role": "assistant", "content": "<think>\n想一想……\u2028\n</think>\n\n显卡在发热 🔥"},
            {"role": "user", "content": "\u200b再来一首\n"},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "unicode_thinking_kept",
        "messages": [
            {"role": "user", "content": "写一首关于GPU的俳句 🚀"},
            {"role": "assistant", "content": "\n<think>\n\n想一想……\u2028\n\n</think>\n显卡在发热 🔥\n"},
        ],
        "add_generation_prompt": False,
    },
    {"name": "empty_contents", "messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}], "add_generation_prompt": True},
    {
        "name": "non_string_user_content",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}, {"role": "user", "content": "text"}],
        "add_generation_prompt": True,
    },
]


def render(template, tokens, case):
    kwargs = dict(tokens)
    if "enable_thinking" in case:
        kwargs["enable_thinking"] = case["enable_thinking"]
    try:
        return {"text": template.render(
            messages=case["messages"],
            tools=case.get("tools"),
            documents=None,
            add_generation_prompt=case["add_generation_prompt"],
            **kwargs,
        )}
    except Exception as e:  # noqa: BLE001 - any failure is a golden "error"
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    goldens = {"source": "scripts/dev/chat_template_goldens.py (jinja2 " + jinja2.__version__ + ")", "templates": {}, "cases": []}
    compiled = {}
    for name, path in TEMPLATES.items():
        config = json.loads((DATA / path).read_text())
        goldens["templates"][name] = path
        compiled[name] = (compile_template(config["chat_template"]), special_tokens(config))
    for case in CASES:
        entry = dict(case)
        entry["renders"] = {name: render(template, tokens, case) for name, (template, tokens) in compiled.items()}
        goldens["cases"].append(entry)
    json.dump(goldens, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
