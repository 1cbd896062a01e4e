#!/usr/bin/env python3
"""One markdown table of `qwenvk bench -o json` and `llama-bench -o json` results in a folder.

  python3 scripts/dev/speed_table.py OUT_DIR

Reads OUT_DIR/qwenvk-<model>.json and OUT_DIR/llama-<model>.json (as scripts/dev/speed_run.sh
writes them); llama.cpp's figure is the best of its flash-attention settings, as the issue asks.
"""
import glob
import json
import os
import sys


def test_name(n_prompt, n_gen, depth):
    name = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
    return name + (f" @ d{depth}" if depth else "")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def llama_rows(path):
    rows = {}
    for r in load(path) or []:
        key = test_name(r.get("n_prompt", 0), r.get("n_gen", 0), r.get("n_depth", 0))
        if key not in rows or r["avg_ts"] > rows[key][0]:
            rows[key] = (r["avg_ts"], r.get("stddev_ts", 0.0))
    return rows


def qwenvk_rows(path):
    rows = {}
    data = load(path) or {}
    for r in data.get("results", []):
        pp = r["kind"] == "pp"
        key = test_name(r["tokens"] if pp else 0, 0 if pp else r["tokens"], r.get("depth", 0))
        rows[key] = (r["avg_ts"], r.get("stddev_ts", 0.0))
    return rows


def main():
    out = sys.argv[1]
    models = sorted({os.path.basename(p).split("-", 1)[1][:-5] for p in glob.glob(os.path.join(out, "*-*.json"))
                     if os.path.basename(p).startswith(("qwenvk-", "llama-"))})
    print("| model | test | QwenVK t/s | llama.cpp t/s | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for m in models:
        ours = qwenvk_rows(os.path.join(out, f"qwenvk-{m}.json"))
        theirs = llama_rows(os.path.join(out, f"llama-{m}.json"))
        for key in sorted(set(ours) | set(theirs), key=lambda k: (not k.startswith("pp"), k)):
            o, t = ours.get(key), theirs.get(key)
            ratio = f"{o[0] / t[0]:.2f}" if o and t else "-"
            fo = f"{o[0]:.1f} ± {o[1]:.1f}" if o else "-"
            ft = f"{t[0]:.1f} ± {t[1]:.1f}" if t else "-"
            print(f"| {m} | {key} | {fo} | {ft} | {ratio} |")


if __name__ == "__main__":
    main()
