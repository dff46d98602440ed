#!/usr/bin/python3
"""heads_golden.py - golden values of attention-head pruning (op prune_heads) for
tests/check_prune_heads.c, computed in float64 numpy from the STORED checkpoint tensors,
sharing no code with pfrun (only the safetensors reader of families_ref.py).

Usage (from the repository root):
  for p in llama-tiny qwen2-tiny qwen3-tiny mistral-tiny gemma-tiny gemma2-tiny gemma3-tiny \
           phi3-tiny gpt2-tiny neox-tiny; do
    PFRUN_CACHE=/tmp/pfc build/pfrun analyze --model-path synthetic:$p@11 >/dev/null; done
  /usr/bin/python3 tests/golden/heads_golden.py /tmp/pfc/synthetic ../shared/models tests/golden

For each case (model, pruning_percentage) it writes to tests/golden/heads_golden.h:
  - the static unit scores of every layer: unit u = key/value head u with its query heads
    [u*g, (u+1)*g) (g = heads / kv heads); score_u = sum over those query heads h of
    ||o_proj[:, h*hd:(h+1)*hd]||_F, o_proj in [out, in] = [H, heads*hd] orientation;
  - the kept units: k = units - min(int(p/100*units), units-1) highest scores, ties to
    the lower index, ascending;
  - data-driven (CAL_MODELS, one right-padded batch CAL_ROWS through forward_ref.py's
    float64 LLaMA-family forward): per layer the mean over real tokens of each head's
    output L2 norm (the o_proj input), the unit scores sum a_h * block norm, the kept units;
  - every stored tensor of the pruned checkpoint (names as stored) as a checksum
    sum_i x_i * (i % 13 + 1) over the row-major flattening, with its shape: the pruned
    tensors are sliced here in their stored layouts (q/k/v rows + biases, o_proj columns;
    phi3 qkv_proj rows q|k|v; gpt2 c_attn [H, 3H] Conv1D columns and c_proj [in, out]
    rows; gpt_neox query_key_value rows per head [nh][3][hd] and dense columns).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families_ref as fr  # noqa: E402  (its safetensors reader only)
import forward_ref as lr  # noqa: E402  (the LLaMA-family float64 forward)

PRESETS = ["llama-tiny", "qwen2-tiny", "qwen3-tiny", "mistral-tiny", "gemma-tiny",
           "gemma2-tiny", "gemma3-tiny", "phi3-tiny", "gpt2-tiny", "neox-tiny"]
CASES = [(p, 50.0) for p in PRESETS] + [("stories260K", 25.0), ("stories260K", 50.0)]


def dims(cfg):
    if cfg.get("model_type") == "gpt2":
        H, nh = cfg["n_embd"], cfg["n_head"]
        return cfg["n_layer"], nh, nh, H // nh, H
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    return cfg["num_hidden_layers"], nh, nkv, hd, H


def o_proj(cfg, t, i):
    """Canonical o_proj [H, nh*hd] of layer i."""
    mt = cfg.get("model_type")
    if mt == "gpt2":
        return t["transformer.h.%d.attn.c_proj.weight" % i].T  # Conv1D [in, out]
    if mt == "gpt_neox":
        return t["gpt_neox.layers.%d.attention.dense.weight" % i]
    return t["model.layers.%d.self_attn.o_proj.weight" % i]


def unit_scores(o, nh, nkv, hd):
    b = np.array([np.sqrt(np.sum(o[:, h * hd:(h + 1) * hd] ** 2)) for h in range(nh)])
    g = nh // nkv
    return np.array([b[u * g:(u + 1) * g].sum() for u in range(nkv)])


def kept_units(s, pct):
    n = len(s)
    k = n - min(int(pct / 100.0 * n), n - 1)
    order = sorted(range(n), key=lambda u: (-s[u], u))
    return sorted(order[:k])


def slice_layer(cfg, t, i, units, nh, nkv, hd, H):
    """Replace layer i's attention tensors in t (stored layouts) by their pruned slices."""
    g = nh // nkv
    heads = [h for u in units for h in range(u * g, (u + 1) * g)]
    qr = np.array([h * hd + d for h in heads for d in range(hd)], dtype=np.int64)
    kr = np.array([u * hd + d for u in units for d in range(hd)], dtype=np.int64)
    mt = cfg.get("model_type")
    if mt == "gpt2":
        p = "transformer.h.%d.attn." % i
        cols = np.concatenate([qr, H + kr, 2 * H + kr])  # c_attn output columns q | k | v
        t[p + "c_attn.weight"] = t[p + "c_attn.weight"][:, cols]
        t[p + "c_attn.bias"] = t[p + "c_attn.bias"][cols]
        t[p + "c_proj.weight"] = t[p + "c_proj.weight"][qr, :]  # [in, out]: input rows
        return
    if mt == "gpt_neox":
        p = "gpt_neox.layers.%d.attention." % i
        rows = np.array([3 * hd * h + j * hd + d for h in heads for j in range(3)
                         for d in range(hd)], dtype=np.int64)  # [nh][3][hd], MHA: g == 1
        t[p + "query_key_value.weight"] = t[p + "query_key_value.weight"][rows, :]
        t[p + "query_key_value.bias"] = t[p + "query_key_value.bias"][rows]
        t[p + "dense.weight"] = t[p + "dense.weight"][:, qr]
        return
    p = "model.layers.%d.self_attn." % i
    if mt == "phi3":
        q_dim = nh * hd
        rows = np.concatenate([qr, q_dim + kr, q_dim + nkv * hd + kr])
        t[p + "qkv_proj.weight"] = t[p + "qkv_proj.weight"][rows, :]
    else:
        for n, r in (("q_proj", qr), ("k_proj", kr), ("v_proj", kr)):
            t[p + n + ".weight"] = t[p + n + ".weight"][r, :]
            if p + n + ".bias" in t:
                t[p + n + ".bias"] = t[p + n + ".bias"][r]
    t[p + "o_proj.weight"] = t[p + "o_proj.weight"][:, qr]


# data-driven cases: head output norms on one right-padded batch (LLaMA-family forward)
CAL_MODELS = ["llama-tiny", "qwen3-tiny", "stories260K"]
CAL_ROWS = [[1, 17, 250, 3, 99, 31, 42, 7, 160, 200], [1, 30, 5, 77, 123, 9]]


class Tapped(lr.Model):
    """forward_ref's model, keeping every layer's o_proj input (the heads' output)."""

    def linear(self, x, name):
        if name.endswith("o_proj"):
            self.o_in.append(x)
        return super().linear(x, name)


def calibrated(folder):
    m = Tapped(folder)
    m.o_in = []
    S = max(len(r) for r in CAL_ROWS)
    ids = np.zeros((len(CAL_ROWS), S), dtype=np.int64)
    mask = np.zeros((len(CAL_ROWS), S), dtype=np.int64)
    for b, r in enumerate(CAL_ROWS):
        ids[b, :len(r)], mask[b, :len(r)] = r, 1
    m.logits(ids, mask)
    real = mask.reshape(-1) == 1
    a, scores, kept = [], [], []
    for i, o in enumerate(m.o_in):
        x = o.reshape(-1, m.nh, m.hd)[real]               # [tokens, nh, hd]
        ah = np.sqrt(np.sum(x * x, axis=-1)).mean(axis=0)  # mean per-token L2 norm
        b = np.array([np.sqrt(np.sum(m.w["model.layers.%d.self_attn.o_proj.weight" % i]
                                     [:, h * m.hd:(h + 1) * m.hd] ** 2)) for h in range(m.nh)])
        g = m.nh // m.nkv
        s = np.array([np.sum(ah[u * g:(u + 1) * g] * b[u * g:(u + 1) * g])
                      for u in range(m.nkv)])
        a += list(ah)
        scores += list(s)
        kept += kept_units(s, 50.0)
    return m.L, m.nh, m.nkv, a, scores, kept


def checksum(a):
    f = np.asarray(a, dtype=np.float64).reshape(-1)
    return float(np.sum(f * (np.arange(f.size) % 13 + 1)))


def folder_of(model, synth_dir, shared_models):
    if model == "stories260K":
        return os.path.join(shared_models, "stories260K")
    return os.path.join(synth_dir, "%s-s11-f32" % model)


def cnum(x):
    return repr(float(x))


def main():
    synth_dir, shared_models, out_dir = sys.argv[1:4]
    lines = ["/* GENERATED by tests/golden/heads_golden.py (float64 numpy, stored layouts): do",
             " * not edit. Static head-unit scores, kept units and checksums (sum x_i * (i % 13",
             " * + 1)) of every stored tensor of the pruned checkpoint. */",
             "#ifndef PF_HEADS_GOLDEN_H", "#define PF_HEADS_GOLDEN_H", "",
             "typedef struct pf_heads_golden_tensor {", "  const char *name;",
             "  int ndim;", "  long long shape[2];", "  double checksum;",
             "} pf_heads_golden_tensor;", "",
             "typedef struct pf_heads_golden {",
             "  const char *model; /* synthetic preset (seed 11, f32) or \"stories260K\" */",
             "  double pct;", "  int n_layers, n_heads, n_kv, head_dim, keep;",
             "  const double *scores; /* [n_layers * n_kv] */",
             "  const int *kept;      /* [n_layers * keep] */",
             "  const pf_heads_golden_tensor *tensors;", "  int n_tensors;",
             "} pf_heads_golden;", ""]
    cases = []
    for ci, (model, pct) in enumerate(CASES):
        folder = folder_of(model, synth_dir, shared_models)
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        t = fr.read_checkpoint(folder)
        L, nh, nkv, hd, H = dims(cfg)
        scores, kept = [], []
        for i in range(L):
            s = unit_scores(o_proj(cfg, t, i), nh, nkv, hd)
            u = kept_units(s, pct)
            scores += list(s)
            kept += u
        keep = len(kept) // L
        for i in range(L):
            slice_layer(cfg, t, i, kept[i * keep:(i + 1) * keep], nh, nkv, hd, H)
        lines.append("static const double g_heads_scores_%d[] = {%s};" %
                     (ci, ", ".join(cnum(x) for x in scores)))
        lines.append("static const int g_heads_kept_%d[] = {%s};" %
                     (ci, ", ".join(str(x) for x in kept)))
        lines.append("static const pf_heads_golden_tensor g_heads_tensors_%d[] = {" % ci)
        for name in sorted(t):
            a = t[name]
            shape = list(a.shape) + [0] * (2 - a.ndim)
            lines.append('    {"%s", %d, {%d, %d}, %s},' %
                         (name, a.ndim, shape[0], shape[1], cnum(checksum(a))))
        lines.append("};")
        cases.append('    {"%s", %s, %d, %d, %d, %d, %d, g_heads_scores_%d, g_heads_kept_%d, '
                     "g_heads_tensors_%d, %d}," %
                     (model, cnum(pct), L, nh, nkv, hd, keep, ci, ci, ci, len(t)))
    lines += ["", "static const pf_heads_golden g_heads_golden[] = {"] + cases + ["};", ""]
    lines += ["/* data-driven: the batch, per layer the mean head output norms a_h over its real",
              " * tokens, unit scores sum a_h * ||o_proj block h|| and the units kept at 50%. */",
              "static const int g_heads_cal_ids[2][10] = {%s};" %
              ", ".join("{%s}" % ", ".join(str(x) for x in r + [0] * (10 - len(r)))
                        for r in CAL_ROWS),
              "static const int g_heads_cal_len[2] = {%d, %d};" % tuple(len(r) for r in CAL_ROWS),
              "typedef struct pf_heads_cal_golden {", "  const char *model;",
              "  int n_layers, n_heads, n_kv;", "  const double *a, *scores;",
              "  const int *kept;", "} pf_heads_cal_golden;", ""]
    cal = []
    for ci, model in enumerate(CAL_MODELS):
        L, nh, nkv, a, sc, kept = calibrated(folder_of(model, synth_dir, shared_models))
        lines.append("static const double g_heads_cal_a_%d[] = {%s};" %
                     (ci, ", ".join(cnum(x) for x in a)))
        lines.append("static const double g_heads_cal_s_%d[] = {%s};" %
                     (ci, ", ".join(cnum(x) for x in sc)))
        lines.append("static const int g_heads_cal_k_%d[] = {%s};" %
                     (ci, ", ".join(str(x) for x in kept)))
        cal.append('    {"%s", %d, %d, %d, g_heads_cal_a_%d, g_heads_cal_s_%d, g_heads_cal_k_%d},'
                   % (model, L, nh, nkv, ci, ci, ci))
    lines += ["static const pf_heads_cal_golden g_heads_cal_golden[] = {"] + cal + ["};", "",
                                                                                  "#endif", ""]
    with open(os.path.join(out_dir, "heads_golden.h"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
