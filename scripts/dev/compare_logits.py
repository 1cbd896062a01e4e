#!/usr/bin/env python3
"""Checks `qwenvk logits` output against a reference.json by the fixtures README's bars.

    compare_logits.py REFERENCE.json PROMPT OURS.json [--quantized]
Prints the worst error, the RMS, the top-1 and greedy agreement; exits 1 if a bar fails.
"""
import json
import math
import sys


def main():
    ref_path, prompt, ours_path = sys.argv[1:4]
    quantized = "--quantized" in sys.argv
    max_abs, max_rms, margin_bar = (0.25, 0.08, 0.5) if quantized else (0.10, 0.03, 0.2)
    ref = json.load(open(ref_path))["prompts"][prompt]
    ours = json.load(open(ours_path))
    failures = []

    def errors(our_entry, ref_entry):
        lookup = dict(zip(our_entry["ids"], our_entry["logits"]))
        errs = []
        for i, v in zip(ref_entry["ids"], ref_entry["logits"]):
            if i not in lookup:
                return None
            errs.append(lookup[i] - v)
        return errs

    worst, sum_sq, n, top1_checked = 0.0, 0.0, 0, 0
    for p, (o, r) in enumerate(zip(ours["positions"], ref["positions"])):
        errs = errors(o, r)
        if errs is None:
            failures.append(f"position {p}: a reference id is missing from our top-K (ask for more with --top)")
            continue
        worst = max(worst, max(abs(e) for e in errs))
        sum_sq += sum(e * e for e in errs) / len(errs)
        n += 1
        if r["logits"][0] - r["logits"][1] >= margin_bar:
            top1_checked += 1
            if o["ids"][0] != r["ids"][0]:
                failures.append(f"position {p}: top-1 {o['ids'][0]} != {r['ids'][0]}")
    rms = math.sqrt(sum_sq / max(n, 1))
    if worst > max_abs:
        failures.append(f"prefill max |error| {worst:.4f} > {max_abs}")
    if rms > max_rms:
        failures.append(f"prefill RMS {rms:.4f} > {max_rms}")

    greedy_ok = 0
    ref_tokens = ref["greedy"]["tokens"]
    our_tokens = ours["greedy"]["tokens"]
    last = ref["positions"][-1]
    if last["logits"][0] - last["logits"][1] >= margin_bar:
        if our_tokens[0] != ref_tokens[0]:
            failures.append("first greedy token differs")
        else:
            for k, (o, r) in enumerate(zip(ours["greedy"]["steps"], ref["greedy"]["steps"])):
                errs = errors(o, r)
                if errs is None or max(abs(e) for e in errs) > max_abs:
                    failures.append(f"greedy step {k} logits off")
                    break
                if r["logits"][0] - r["logits"][1] < margin_bar:
                    break
                if our_tokens[k + 1] != ref_tokens[k + 1]:
                    failures.append(f"greedy token {k + 1}: {our_tokens[k + 1]} != {ref_tokens[k + 1]}")
                    break
                greedy_ok += 1
    print(f"{prompt}: {n} positions, max |error| {worst:.5f}, RMS {rms:.5f}, top-1 checked at {top1_checked}, "
          f"greedy tokens matched {greedy_ok}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
