#!/usr/bin/python3
"""Independent reference for pfrun's pruning math (golden values for check_pruning.c).

A pure Python + numpy re-statement of OptiPFair's formulas as written in
reference/optipfair-behaviour.md §1 (static neuron scores), §3 (k, expansion
rate, divisor) and §6 (statistics) — it shares no code with pfrun.

    /usr/bin/python3 tests/golden/optipfair_ref.py ../shared/models/stories260K
    /usr/bin/python3 tests/golden/optipfair_ref.py ../shared/models/stories260K --c
      (the removed-index arrays as the C declarations embedded in check_pruning.c)

(/usr/bin/python3 because that is where Debian's python3-numpy is installed.)

Scores: every per-row reduction (max/min, unbiased variance, L1, L2) is
computed in float64 and cast to float32 once, then the gate and up parts are
combined in float32 — the points where torch produces float32 tensors.
Top-k: score descending, ties by lower index, NaN largest; kept ascending.
The script prints, per scenario, the removed neuron indices of every pruned
layer (the complement of the kept ones, shorter to embed), the statistics,
and the smallest score gap at the k boundary (how far from a tie the choice is).
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
    return out


def f32(x):
    return np.float32(x)


def row_score(g, u, method):
    g64, u64 = g.astype(np.float64), u.astype(np.float64)
    if method in ("MAW", "PPM"):
        rg = f32(g.max()) + f32(abs(g.min()))  # float32 add, like torch
        ru = f32(u.max()) + f32(abs(u.min()))
        return f32(rg + ru)
    if method == "VOW":
        return f32(f32(np.var(g64, ddof=1)) + f32(np.var(u64, ddof=1)))
    if method == "PON":
        return f32(f32(np.abs(g64).sum()) * f32(np.abs(u64).sum()))
    if method == "L2":
        return f32(f32(np.sqrt((g64 * g64).sum())) + f32(np.sqrt((u64 * u64).sum())))
    raise ValueError(method)


def layer_scores(w, layer, method):
    g = w[f"model.layers.{layer}.mlp.gate_proj.weight"]
    u = w[f"model.layers.{layer}.mlp.up_proj.weight"]
    return [row_score(g[i], u[i], method) for i in range(g.shape[0])]


def keep_count(p, size, divisor=None):
    prune = min(int(p / 100 * size), size - 1)
    k = size - prune
    if divisor is not None:
        k = max((k // divisor) * divisor, 1)
    if p > 0 and k >= size:
        raise ValueError("No effective pruning")
    return k


def topk(scores, k):
    order = sorted(range(len(scores)),
                   key=lambda i: (0 if np.isnan(scores[i]) else 1,
                                  -float(scores[i]) if not np.isnan(scores[i]) else 0.0, i))
    kept = sorted(order[:k])
    gap = None
    if 0 < k < len(scores):
        gap = float(scores[order[k - 1]]) - float(scores[order[k]])
    return kept, gap


def param_count(shapes):
    return int(sum(int(np.prod(s)) for s in shapes.values()))


def width(w, method, p=None, rate=None, divisor=None, layers=None):
    n_layers = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("model.layers."))
    shapes = {k: list(v.shape) for k, v in w.items()}
    hidden = shapes["model.layers.0.mlp.gate_proj.weight"][1]
    size0 = shapes["model.layers.0.mlp.gate_proj.weight"][0]
    if rate is not None:
        target = (rate / 100) * hidden
        p = (1 - target / size0) * 100
    original = param_count(shapes)
    out = {"effective_percentage": p, "layers": {}}
    for layer in sorted(layers) if layers is not None else range(n_layers):
        size = shapes[f"model.layers.{layer}.mlp.gate_proj.weight"][0]
        k = keep_count(p, size, divisor)
        kept, gap = topk(layer_scores(w, layer, method), k)
        removed = sorted(set(range(size)) - set(kept))
        out["layers"][layer] = {"k": k, "removed": removed, "boundary_gap": gap}
        for proj in ("gate_proj", "up_proj"):
            shapes[f"model.layers.{layer}.mlp.{proj}.weight"] = [k, hidden]
        shapes[f"model.layers.{layer}.mlp.down_proj.weight"] = [hidden, k]
    pruned = param_count(shapes)
    widths = {shapes[f"model.layers.{i}.mlp.gate_proj.weight"][0] for i in range(n_layers)}
    stats = {
        "original_parameters": original,
        "pruned_parameters": pruned,
        "reduction": original - pruned,
        "percentage_reduction": ((original - pruned) / original) * 100,
        "expansion_rate": (shapes["model.layers.0.mlp.gate_proj.weight"][0] / hidden) * 100,
    }
    if len(widths) > 1:
        stats["pruned_layers"] = sum(
            1 for i in range(n_layers)
            if shapes[f"model.layers.{i}.mlp.gate_proj.weight"][0] < size0)
        stats["total_layers"] = n_layers
    out["stats"] = stats
    return out


def depth(w, num=None, indices=None, pct=None, method="last"):
    n_layers = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("model.layers."))
    shapes = {k: list(v.shape) for k, v in w.items()}
    if pct is not None:
        num = int(n_layers * pct / 100)
    if indices is not None:
        removed = sorted(indices)
    elif method == "last":
        removed = list(range(n_layers - num, n_layers))
    else:
        removed = list(range(num))
    original = param_count(shapes)
    kept = {k: v for k, v in shapes.items()
            if not (k.startswith("model.layers.") and int(k.split(".")[2]) in removed)}
    pruned = param_count(kept)
    final = n_layers - len(removed)
    return {
        "removed_layers": removed,
        "stats": {
            "original_parameters": original,
            "pruned_parameters": pruned,
            "reduction": original - pruned,
            "percentage_reduction": ((original - pruned) / original) * 100 if original else 0.0,
            "original_layer_count": n_layers,
            "final_layer_count": final,
            "layers_removed": n_layers - final,
            "layer_reduction_percentage": ((n_layers - final) / n_layers) * 100,
        },
    }


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    folder = args[0] if args else "../shared/models/stories260K"
    w = read_safetensors(folder + "/model.safetensors")
    result = {
        "MAW 20": width(w, "MAW", p=20),
        "VOW 30 [0,2]": width(w, "VOW", p=30, layers=[0, 2]),
        "PON rate 200 div 32": width(w, "PON", rate=200, divisor=32),
        "L2 10": width(w, "L2", p=10),
        "depth last 2": depth(w, num=2, method="last"),
        "depth first 1": depth(w, num=1, method="first"),
        "depth custom [1,3]": depth(w, indices=[1, 3]),
        "depth pct 40": depth(w, pct=40),
    }
    if "--c" in sys.argv:
        names = {"MAW 20": "maw20", "VOW 30 [0,2]": "vow30", "PON rate 200 div 32": "pon200",
                 "L2 10": "l2_10"}
        for scenario, short in names.items():
            for layer, e in result[scenario]["layers"].items():
                print("static const int64_t %s_l%d[%d] = {%s};" % (
                    short, layer, len(e["removed"]), ", ".join(map(str, e["removed"]))))
        return
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
