#!/usr/bin/python3
"""bench_ref.py - an independent float64 reference of lm-evaluation-harness zero-shot
scoring (written from ../shared/reference/benchmarks.md and ../shared/data/bench/README.md,
sharing no code with pfrun's benchmark op), used for tests/check_bench.c.

For each task file (the JSONL line format of ../shared/data/bench) it builds the requests
from the line itself (mc: (context, delimiter + choice_i); partial: (contexts_i, delimiter +
continuation); cloze: (context, continuation)), moves trailing context whitespace into the
continuation (Python str.rstrip), encodes context and context + continuation (BOS per mode,
an empty context becomes the prefix token), takes the continuation as the joint tokens after
the context's count, left-truncates to max_length + 1 tokens, runs the float64 numpy forward
of forward_ref.py on each request alone, log-softmaxes over the vocabulary and sums the
continuation's log-probabilities; greedy = every continuation token is the argmax. pred is
the first argmax of the log-likelihoods, pred_norm of ll / len(choice) (code points).

Token ids come from `pfrun tokenize` (pfrun's tokenizer is checked against Hugging Face's
own output separately, tests/check_tokenizer.c); everything after tokenization is here.

Usage (from the repository root, after building; PFRUN_CACHE as for the other goldens):
  PFRUN_CACHE=/tmp/pfc build/pfrun analyze --model-path synthetic:llama-tiny@11 >/dev/null
  /usr/bin/python3 tests/golden/bench_ref.py build/pfrun ../shared tests/golden /tmp/pfc/synthetic
writes tests/golden/bench_golden_stories.json (stories260K, every shared task, first 50
documents, the model's length 512) and tests/golden/bench_golden_synth.json (llama-tiny
seed 11: the tiny tasks of tests/golden/bench_tiny with bos default and never, and every
shared task's first 50 documents at max_length 64, so most requests are truncated).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forward_ref as fr  # noqa: E402

SHARED_TASKS = ["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "boolq", "copa",
                "openbookqa", "lambada_openai"]
TINY = ["tiny_mc", "tiny_partial", "tiny_cloze"]
LIMIT = 50


def tokenize(pfrun, model, texts, special):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
        name = f.name
    cmd = [pfrun, "tokenize", "--model-path", model, "--input", name]
    if not special:
        cmd.insert(2, "--no-special")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    os.unlink(name)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(rows) == len(texts), (len(rows), len(texts))
    return rows


def requests_of(line):
    d = json.loads(line)
    delim = d.get("target_delimiter", " ")
    if d["type"] == "mc":
        return d, [(d["context"], delim + c) for c in d["choices"]], d["choices"]
    if d["type"] == "partial":
        return d, [(c, delim + d["continuation"]) for c in d["contexts"]], None
    return d, [(d["context"], d["continuation"])], None


def bos_prefix(model):
    with open(os.path.join(model, "config.json")) as f:
        c = json.load(f)
    return c.get("bos_token_id"), c.get("eos_token_id")


def score_case(pfrun, model_dir, task_files, max_length, bos):
    m = fr.Model(model_dir)
    special = bos != "never"
    bos_id, eos_id = bos_prefix(model_dir)
    out = {}
    for name, path in task_files:
        docs = []
        with open(path) as f:
            for line in f:
                if line.strip():
                    docs.append(requests_of(line))
                if len(docs) == LIMIT:
                    break
        pairs = []
        for _, reqs, _ in docs:
            for ctx, cont in reqs:
                n = len(ctx) - len(ctx.rstrip())
                if n > 0:
                    cont = ctx[-n:] + cont
                    ctx = ctx[:-n]
                pairs.append((ctx, cont))
        full = [c + k for c, k in pairs if c]
        heads = [c for c, k in pairs if c]
        alone = [k for c, k in pairs if not c]
        tf = tokenize(pfrun, model_dir, full, special) if full else []
        th = tokenize(pfrun, model_dir, heads, special) if heads else []
        ta = tokenize(pfrun, model_dir, alone, False) if alone else []
        results, fi, ai = [], 0, 0
        ri = 0
        for d, reqs, choices in docs:
            lls, greedy = [], []
            for _ in reqs:
                ctx, cont = pairs[ri]
                ri += 1
                if ctx:
                    whole, ce = tf[fi], th[fi]
                    fi += 1
                    cont_enc = whole[len(ce):]
                else:
                    prefix = bos_id if bos_id is not None else eos_id
                    enc = ta[ai]
                    ai += 1
                    ce = [prefix]
                    cont_enc = enc[1:] if enc and enc[0] == prefix else enc
                tok = ce + cont_enc
                inp = tok[-(max_length + 1):][:-1]
                logits = m.logits(np.array([inp]), np.ones((1, len(inp)), dtype=np.int64))[0]
                lse = fr.logsumexp(logits)
                L = len(cont_enc)
                rows = range(len(inp) - L, len(inp))
                lls.append(float(sum(logits[r][cont_enc[j]] - lse[r] for j, r in enumerate(rows))))
                greedy.append(bool(all(int(np.argmax(logits[r])) == cont_enc[j]
                                       for j, r in enumerate(rows))))
            rec = {"id": d["id"], "ll": lls, "greedy": greedy}
            if d["type"] != "cloze":
                rec["pred"] = int(np.argmax(lls))
                if choices is not None:
                    rec["pred_norm"] = int(np.argmax([x / len(c) for x, c in zip(lls, choices)]))
            results.append(rec)
        out[name] = results
    return out


def main():
    pfrun, shared, out_dir, synth = sys.argv[1:5]
    here = os.path.dirname(os.path.abspath(__file__))
    tiny = [(t, os.path.join(here, "bench_tiny", t + ".jsonl")) for t in TINY]
    bench = os.path.join(shared, "data", "bench")
    shared_tasks = [(t, os.path.join(bench, t + ".jsonl")) for t in SHARED_TASKS]
    stories = os.path.join(shared, "models", "stories260K")
    gold = {"model": "stories260K", "limit": LIMIT, "cases": [
        {"bos": "default", "max_length": 512, "tasks": score_case(pfrun, stories, shared_tasks, 512,
                                                                   "default")}]}
    with open(os.path.join(out_dir, "bench_golden_stories.json"), "w") as f:
        json.dump(gold, f, indent=0)
    syn = os.path.join(synth, "llama-tiny-s11-f32")
    gold = {"model": "synthetic:llama-tiny@11", "limit": LIMIT, "cases": [
        {"bos": "default", "max_length": 2048, "tasks": score_case(pfrun, syn, tiny, 2048, "default")},
        {"bos": "never", "max_length": 2048, "tasks": score_case(pfrun, syn, tiny, 2048, "never")},
        {"bos": "default", "max_length": 384, "tasks": score_case(pfrun, syn, shared_tasks, 384,
                                                                  "default")}]}
    with open(os.path.join(out_dir, "bench_golden_synth.json"), "w") as f:
        json.dump(gold, f, indent=0)


if __name__ == "__main__":
    main()
