"""fref_scores.py - part of families_ref.py (the float64 reference of six decoder families):
static neuron scores, the kept count, layer importance. See families_ref.py for the
conventions."""
import math

import numpy as np

from fref_config import GEMMA_FAMILIES


# ----------------------------------------------------------------------------------------
# static neuron scores, k, selection
# ----------------------------------------------------------------------------------------

def neuron_vectors(model, i):
    """('glu', G, U) with rows = neurons, or ('plain', R, C) with R[j] = r_j (weights into
    neuron j) and C[j] = c_j (weights out of neuron j), per arch-gpt2-neox.md §9.1."""
    f = model.cfg.family
    if f in GEMMA_FAMILIES:
        p = "model.layers.%d.mlp." % i
        return "glu", model.t(p + "gate_proj.weight"), model.t(p + "up_proj.weight")
    if f == "phi3":
        gu = model.t("model.layers.%d.mlp.gate_up_proj.weight" % i)
        I = gu.shape[0] // 2
        return "glu", gu[:I], gu[I:]
    if f == "gpt2":
        p = "transformer.h.%d.mlp." % i
        return "plain", model.t(p + "c_fc.weight").T, model.t(p + "c_proj.weight")
    p = "gpt_neox.layers.%d.mlp." % i
    return "plain", model.t(p + "dense_h_to_4h.weight"), model.t(p + "dense_4h_to_h.weight").T


def _red(x, precision):
    """A torch float32 reduction result (float64 computed, rounded once) or plain float64."""
    return x.astype(np.float32) if precision == "f32" else x


def _rng(X, pr):
    return _red(X.max(axis=1), pr) + _red(np.abs(X.min(axis=1)), pr)


def _var(X, pr):
    return _red(X.var(axis=1, ddof=1), pr)


def _l1(X, pr):
    return _red(np.abs(X).sum(axis=1), pr)


def _l2(X, pr):
    return _red(np.sqrt((X * X).sum(axis=1)), pr)


METHODS = ("PPM", "MAW", "VOW", "PON", "L2")


def layer_neuron_scores(model, i, method, precision="f32"):
    """Scores of layer i's neurons.  precision "f32": as OptiPFair on float32 copies (each
    per-row reduction rounded to float32 once, the two parts combined in float32); "f64":
    all float64.  Returned as float64 [I]."""
    if method not in METHODS:
        raise ValueError("Invalid neuron selection method: %s. Choose from %s."
                         % (method, list(METHODS)))
    kind, A, Bm = neuron_vectors(model, i)
    pr = precision
    if kind == "glu":
        G, U = A, Bm
        if method in ("MAW", "PPM"):
            s = _rng(G, pr) + _rng(U, pr)
        elif method == "VOW":
            s = _var(G, pr) + _var(U, pr)
        elif method == "PON":
            s = _l1(G, pr) * _l1(U, pr)
        else:
            s = _l2(G, pr) + _l2(U, pr)
    else:
        R, C = A, Bm
        if method in ("MAW", "PPM"):
            s = _rng(R, pr)
        elif method == "VOW":
            s = _var(R, pr)
        elif method == "PON":
            s = _l1(R, pr) * _l1(C, pr)
        else:
            s = _l2(R, pr) + _l2(C, pr)
    return np.asarray(s, dtype=np.float64)


def neuron_scores(model, method, precision="f32"):
    """[layer] -> float64 [I_l] scores (higher = keep)."""
    return [layer_neuron_scores(model, i, method, precision) for i in range(model.cfg.L)]


def keep_count(p, I, divisor=None):
    """k for pruning_percentage p on a layer of width I (optipfair-behaviour.md §3.1, §3.3
    newest floor rule): prune = min(int((p/100)*I), I-1), k = I - prune."""
    if not 0 <= p <= 100:
        raise ValueError("pruning_percentage must be between 0 and 100, got %s" % p)
    prune = min(int((p / 100) * I), I - 1)
    k = I - prune
    if divisor is not None:
        if divisor not in (32, 64, 128, 256):
            raise ValueError("expansion_divisor must be one of [32, 64, 128, 256] or None. "
                             "Got: %s" % divisor)
        k = max((k // divisor) * divisor, 1)
    if p > 0 and k >= I:
        raise ValueError("No effective pruning for current layer: resulting intermediate size "
                         "(%d) is >= base size (%d)." % (k, I))
    return k


def kept_indices(scores, k):
    """Higher score first, ties by lower index (NaN counts as largest); kept ascending."""
    s = np.asarray(scores, dtype=np.float64)
    key = [(0 if math.isnan(v) else 1, 0.0 if math.isnan(v) else -v, j) for j, v in enumerate(s)]
    order = sorted(range(len(s)), key=lambda j: key[j])
    return sorted(order[:k])


# ----------------------------------------------------------------------------------------
# layer importance (OptiPFair analyze_layer_importance, pfrun's padding variant)
# ----------------------------------------------------------------------------------------

def layer_importance(model, batches, include_padding=False):
    """batches: list of (ids, mask) with ids/mask [B, S].  Per layer l and batch t:
    cos_b = x_b.y_b / (max(|x_b|, 1e-8) max(|y_b|, 1e-8)) with x_b, y_b sample b's layer input
    and output flattened over the positions with mask 1 (all positions if include_padding),
    s_{l,t} = 1 - mean_b cos_b over finite samples; score_l = mean over finite s_{l,t}
    (0.0 if none).  A sample with no mask-1 position gives empty vectors and cos 0 (the
    formula taken literally)."""
    L = model.cfg.L
    per = [[] for _ in range(L)]
    for ids, mask in batches:
        ids = np.asarray(ids, dtype=np.int64)
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, dtype=np.int64)
        hid = model.forward(ids, mask)["hidden"]
        for l in range(L):
            X, Y = hid[l], hid[l + 1]
            cos = []
            for b in range(ids.shape[0]):
                sel = np.ones(ids.shape[1], bool) if include_padding else mask[b] == 1
                x, y = X[b][sel].ravel(), Y[b][sel].ravel()
                if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                    continue
                c = float(x @ y) / (max(np.linalg.norm(x), 1e-8) * max(np.linalg.norm(y), 1e-8))
                if math.isfinite(c):
                    cos.append(c)
            per[l].append(1.0 - sum(cos) / len(cos) if cos else 0.0)
    out = []
    for l in range(L):
        v = [s for s in per[l] if math.isfinite(s)]
        out.append(sum(v) / len(v) if v else 0.0)
    return out
