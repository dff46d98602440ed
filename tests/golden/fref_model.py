"""fref_model.py - part of families_ref.py (the float64 reference of six decoder families): the
float64 forward pass (Model, load), its numerics, and a naive per-position attention and MLP
that cross-check the vectorised path. See families_ref.py for the conventions."""
import json
import math
import os

import numpy as np

from fref_io import read_checkpoint
from fref_config import F32_MIN, GEMMA_FAMILIES, parse_config


# ----------------------------------------------------------------------------------------
# numerics
# ----------------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTS = {
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_python": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + np.tanh(0.7978845608 * x * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * _sigmoid(1.702 * x),
    "relu": lambda x: np.maximum(x, 0.0),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "tanh": np.tanh,
    "linear": lambda x: x,
}


def rope_tables(S, rot, entry, f32c):
    """cos, sin [S, rot] (float64 values; with f32c the float32 values HF computes).
    entry = (kind, theta, linear factor, longrope params)."""
    kind, theta, factor, lp = entry
    attn = 1.0
    ext = None
    if kind == "longrope":
        ext = lp["long"] if S > lp["original"] else lp["short"]  # max position + 1 = S
        attn = lp["attention_factor"]
    if f32c:
        f = np.float32
        e = np.arange(0, rot, 2).astype(f) / f(rot)                  # float32 exponent
        pw = np.power(np.float64(theta), e.astype(np.float64)).astype(f)  # theta^e in float32
        if ext is not None:
            inv = f(1.0) / (np.asarray(ext, dtype=f) * pw)
        else:
            inv = f(1.0) / pw
            if factor != 1.0:
                inv = inv / f(factor)
        ang = np.arange(S).astype(f)[:, None] * inv[None, :]           # one float32 product
        ang = np.concatenate([ang, ang], axis=1)
        cos = np.cos(ang.astype(np.float64)).astype(f)
        sin = np.sin(ang.astype(np.float64)).astype(f)
        if attn != 1.0:
            cos, sin = cos * f(attn), sin * f(attn)
        return cos.astype(np.float64), sin.astype(np.float64)
    e = np.arange(0, rot, 2) / float(rot)
    inv = 1.0 / (theta ** e)
    if ext is not None:
        inv = inv / np.asarray(ext)
    inv = inv / factor
    ang = np.arange(S, dtype=np.float64)[:, None] * inv[None, :]
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang) * attn, np.sin(ang) * attn


def apply_rope(x, cos, sin, rot):
    """x [B, n, S, hd]; rotate-half pairing inside the first rot features (j, j + rot/2)."""
    if rot == 0:
        return x
    h = rot // 2
    c, s = cos[:, :h], sin[:, :h]
    x1, x2 = x[..., :h], x[..., h:rot]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s, x[..., rot:]], axis=-1)


def visibility(mask, window):
    """[B, 1, S, S] bool: key k visible to query q (k <= q, window, key mask)."""
    B, S = mask.shape
    q = np.arange(S)[:, None]
    kk = np.arange(S)[None, :]
    vis = kk <= q
    if window is not None:
        vis = vis & (kk > q - window)
    return vis[None, None] & (mask[:, None, None, :] == 1)


def attention_core(q, k, v, mask, window, scale, softcap):
    """Vectorised eager attention. q [B, nh, S, hd], k/v [B, kv, S, hd].
    scale: ("mul", a) or ("div", [d1, d2, ...]) applied to q.k in that order.
    Soft-cap before the mask; the mask is ADDED once as 0 / finfo(float32).min, so a row with
    no visible key becomes uniform over all S keys (arch-gemma-phi3.md §4.3)."""
    g = q.shape[1] // k.shape[1]
    if g > 1:
        k = np.repeat(k, g, axis=1)
        v = np.repeat(v, g, axis=1)
    s = q @ k.transpose(0, 1, 3, 2)
    if scale[0] == "mul":
        s = s * scale[1]
    else:
        for dv in scale[1]:
            s = s / dv
    if softcap is not None:
        s = np.tanh(s / softcap) * softcap
    s = s + np.where(visibility(mask, window), 0.0, F32_MIN)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ v


def _merge(o):  # [B, nh, S, hd] -> [B, S, nh*hd], head-major
    B, n, S, hd = o.shape
    return o.transpose(0, 2, 1, 3).reshape(B, S, n * hd)


# ----------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------

class Model:
    """A loaded checkpoint.  cfg: Cfg (parse_config); w: {name: float64 array}, gpt2 names
    normalised to the transformer.-prefixed form, legacy buffers dropped."""

    def __init__(self, cfg, tensors, f32_constants=True):
        self.cfg = cfg
        self.f32c = f32_constants
        self.w = self._normalise(tensors)
        self._check()

    # ---- tensors ----
    def _normalise(self, t):
        k = self.cfg
        if k.family == "gpt2":
            bare = [n for n in t if n.startswith(("wte.", "wpe.", "h.", "ln_f."))]
            pref = [n for n in t if n.startswith("transformer.")]
            if bare and pref:
                raise ValueError("gpt2 checkpoint mixes prefixed and unprefixed names")
            if bare:
                t = {(n if n.startswith("lm_head.") else "transformer." + n): v
                     for n, v in t.items()}
        return t

    def t(self, name):
        try:
            return self.w[name]
        except KeyError:
            raise KeyError("%s checkpoint lacks tensor %s" % (self.cfg.family, name)) from None

    def opt(self, name, present):
        if not present:
            return None
        return self.t(name)

    def _check(self):
        k = self.cfg
        E = self.embed_weight()
        if E.shape != (k.V, k.H):
            raise ValueError("embedding shape %s, config says [%d, %d]" % (E.shape, k.V, k.H))
        self.head_weight()
        self.widths = [self.mlp_width(i) for i in range(k.L)]

    def embed_weight(self):
        return self.t({"gpt2": "transformer.wte.weight",
                       "gpt_neox": "gpt_neox.embed_in.weight"}.get(self.cfg.family,
                                                                  "model.embed_tokens.weight"))

    def head_weight(self):
        k = self.cfg
        if k.tie:  # a stored head is ignored when tied
            return self.embed_weight()
        if k.family == "gpt_neox":
            return self.t("embed_out.weight")
        return self.t("lm_head.weight")

    def mlp_width(self, i):
        f = self.cfg.family
        if f == "gpt2":
            return self.t("transformer.h.%d.mlp.c_fc.weight" % i).shape[1]
        if f == "gpt_neox":
            return self.t("gpt_neox.layers.%d.mlp.dense_h_to_4h.weight" % i).shape[0]
        if f == "phi3":
            return self.t("model.layers.%d.mlp.gate_up_proj.weight" % i).shape[0] // 2
        return self.t("model.layers.%d.mlp.gate_proj.weight" % i).shape[0]

    def param_count(self):
        """Parameters (buffers excluded, a tied head counted once)."""
        n = sum(v.size for name, v in self.w.items()
                if not (self.cfg.tie and name in ("lm_head.weight", "embed_out.weight")))
        return int(n)

    # ---- pieces ----
    def norm(self, x, prefix):
        k = self.cfg
        if k.family in ("gpt2", "gpt_neox"):
            w, b = self.t(prefix + ".weight"), self.t(prefix + ".bias")
            mu = x.mean(axis=-1, keepdims=True)
            var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
            return (x - mu) / np.sqrt(var + k.eps) * w + b
        w = self.t(prefix + ".weight")
        n = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + k.eps)
        return n * (1.0 + w) if k.norm == "gemma" else w * n

    def _c(self, x):
        return float(np.float32(x)) if self.f32c else float(x)

    def _lin(self, x, wname, bname=None):
        y = x @ self.t(wname).T
        return y + self.t(bname) if bname else y

    def qkv(self, i, xn):
        """q [B, nh, S, hd], k/v [B, kv, S, hd] before RoPE (after gemma3 q/k norm)."""
        k = self.cfg
        B, S, _ = xn.shape
        nh, kv, hd = k.nh, k.kv, k.hd
        f = k.family
        if f in GEMMA_FAMILIES:
            p = "model.layers.%d.self_attn." % i
            bb = lambda n: (p + n + ".bias") if k.attention_bias else None
            q = self._lin(xn, p + "q_proj.weight", bb("q_proj")).reshape(B, S, nh, hd)
            kk = self._lin(xn, p + "k_proj.weight", bb("k_proj")).reshape(B, S, kv, hd)
            v = self._lin(xn, p + "v_proj.weight", bb("v_proj")).reshape(B, S, kv, hd)
            if k.qk_norm:
                q = self.norm(q, p + "q_norm")
                kk = self.norm(kk, p + "k_norm")
        elif f == "phi3":
            z = self._lin(xn, "model.layers.%d.self_attn.qkv_proj.weight" % i)
            q = z[..., :nh * hd].reshape(B, S, nh, hd)
            kk = z[..., nh * hd:(nh + kv) * hd].reshape(B, S, kv, hd)
            v = z[..., (nh + kv) * hd:].reshape(B, S, kv, hd)
        elif f == "gpt2":
            p = "transformer.h.%d.attn.c_attn." % i
            z = xn @ self.t(p + "weight") + self.t(p + "bias")   # Conv1D [in, out]
            H = k.H
            q, kk, v = (z[..., j * H:(j + 1) * H].reshape(B, S, nh, hd) for j in range(3))
        else:  # gpt_neox: rows grouped by head, then q/k/v
            p = "gpt_neox.layers.%d.attention.query_key_value." % i
            z = self._lin(xn, p + "weight", (p + "bias") if k.attention_bias else None)
            z = z.reshape(B, S, nh, 3, hd)
            q, kk, v = z[..., 0, :], z[..., 1, :], z[..., 2, :]
        return (q.transpose(0, 2, 1, 3), kk.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3))

    def attn_params(self, i):
        """(scale, softcap, window) for layer i."""
        k = self.cfg
        if k.family == "gpt2":
            divs = []
            if k.scale_attn_weights:
                divs.append(self._c(math.sqrt(k.hd)))
            if k.inv_layer_idx:
                divs.append(float(i + 1))
            scale = ("div", divs)
        else:
            scale = ("mul", self._c(k.scale_base))
        return scale, k.attn_cap if k.family == "gemma2" else None, \
            (k.window if k.sliding[i] else None)

    def o_proj(self, i, o):
        k = self.cfg
        f = k.family
        if f in GEMMA_FAMILIES:
            p = "model.layers.%d.self_attn.o_proj." % i
            return self._lin(o, p + "weight", (p + "bias") if k.attention_bias else None)
        if f == "phi3":
            return self._lin(o, "model.layers.%d.self_attn.o_proj.weight" % i)
        if f == "gpt2":
            p = "transformer.h.%d.attn.c_proj." % i
            return o @ self.t(p + "weight") + self.t(p + "bias")
        p = "gpt_neox.layers.%d.attention.dense." % i
        return self._lin(o, p + "weight", (p + "bias") if k.attention_bias else None)

    def attention(self, i, xn, mask, naive=False):
        """Attention block output (after o_proj/dense, before any post-norm / residual)."""
        if naive:
            return _naive_o_proj(self, i, naive_attention(self, i, xn, mask))
        k = self.cfg
        S = xn.shape[1]
        q, kk, v = self.qkv(i, xn)
        if k.rot:
            cos, sin = rope_tables(S, k.rot, k.rope[i], self.f32c)
            q, kk = apply_rope(q, cos, sin, k.rot), apply_rope(kk, cos, sin, k.rot)
        scale, cap, window = self.attn_params(i)
        return self.o_proj(i, _merge(attention_core(q, kk, v, mask, window, scale, cap)))

    def mlp(self, i, x, zero=None, naive=False):
        """(MLP output before any post-norm / residual, the output projection's input)."""
        if naive:
            return naive_mlp(self, i, x, zero)
        k = self.cfg
        act = ACTS[k.act]
        f = k.family
        if f in GEMMA_FAMILIES:
            p = "model.layers.%d.mlp." % i
            a = act(x @ self.t(p + "gate_proj.weight").T) * (x @ self.t(p + "up_proj.weight").T)
        elif f == "phi3":
            p = "model.layers.%d.mlp." % i
            gu = x @ self.t(p + "gate_up_proj.weight").T
            I = gu.shape[-1] // 2
            a = gu[..., I:] * act(gu[..., :I])
        elif f == "gpt2":
            p = "transformer.h.%d.mlp." % i
            a = act(x @ self.t(p + "c_fc.weight") + self.t(p + "c_fc.bias"))
        else:
            p = "gpt_neox.layers.%d.mlp." % i
            a = act(self._lin(x, p + "dense_h_to_4h.weight", p + "dense_h_to_4h.bias"))
        if zero is not None and len(zero):
            a = a.copy()
            a[..., np.asarray(zero, dtype=np.int64)] = 0.0
        if f in GEMMA_FAMILIES or f == "phi3":
            out = a @ self.t(p + "down_proj.weight").T
        elif f == "gpt2":
            out = a @ self.t(p + "c_proj.weight") + self.t(p + "c_proj.bias")
        else:
            out = self._lin(a, p + "dense_4h_to_h.weight", p + "dense_4h_to_h.bias")
        return out, a

    # ---- forward ----
    def embed(self, ids):
        k = self.cfg
        x = self.embed_weight()[ids]
        if k.embed_scale:
            x = x * self._c(math.sqrt(k.H))
        if k.family == "gpt2":
            S = ids.shape[1]
            if S > k.P:
                raise ValueError("sequence length %d > n_positions %d" % (S, k.P))
            x = x + self.t("transformer.wpe.weight")[np.arange(S)][None]
        return x

    def block(self, i, x, mask, zero=None, naive=False):
        """One decoder layer: returns (x_out, taps)."""
        k = self.cfg
        f = k.family
        if f in GEMMA_FAMILIES or f == "phi3":
            p = "model.layers.%d." % i
            xn = self.norm(x, p + "input_layernorm")
            a = self.attention(i, xn, mask, naive)
            if k.sandwich:
                x = x + self.norm(a, p + "post_attention_layernorm")
                m, dpi = self.mlp(i, self.norm(x, p + "pre_feedforward_layernorm"), zero, naive)
                x = x + self.norm(m, p + "post_feedforward_layernorm")
            else:
                x = x + a
                m, dpi = self.mlp(i, self.norm(x, p + "post_attention_layernorm"), zero, naive)
                x = x + m
        elif f == "gpt2":
            p = "transformer.h.%d." % i
            xn = self.norm(x, p + "ln_1")
            a = self.attention(i, xn, mask, naive)
            x = a + x
            m, dpi = self.mlp(i, self.norm(x, p + "ln_2"), zero, naive)
            x = x + m
        else:
            p = "gpt_neox.layers.%d." % i
            xn = self.norm(x, p + "input_layernorm")
            a = self.attention(i, xn, mask, naive)
            if k.parallel:
                m, dpi = self.mlp(i, self.norm(x, p + "post_attention_layernorm"), zero, naive)
                x = (m + a) + x
            else:
                h = a + x
                m, dpi = self.mlp(i, self.norm(h, p + "post_attention_layernorm"), zero, naive)
                x = m + h
        return x, {"input_norm": xn, "attention_output": a, "mlp_output": m,
                   "down_proj_input": dpi}

    def final(self, x):
        k = self.cfg
        fn = {"gpt2": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm"}.get(
            k.family, "model.norm")
        z = self.norm(x, fn) @ self.head_weight().T
        if getattr(k, "final_cap", None) is not None:
            c = k.final_cap
            z = np.tanh(z / c) * c
        return z

    def forward(self, ids, mask=None, skip_layers=(), zero_neurons=None, naive_attention=False):
        """ids, mask: int [B, S] (right padding, mask 1 = real; mask None = all ones).
        Returns {
          "logits": [B, S, V],
          "hidden": [L+1] x [B, S, H]: the residual stream entering each layer, then the last
                    layer's output (before the final norm),
          "input_norm", "attention_output", "mlp_output", "down_proj_input": [L] lists
                    (None for a skipped layer) of the per-layer taps:
              input_norm        attention pre-norm output            [B, S, H]
              attention_output  attention block output after o_proj/dense, before the residual
                                add; gemma2/gemma3_text: BEFORE post_attention_layernorm (the
                                HF self_attn module output, which is what OptiPFair's
                                attention_output hook sees)                    [B, S, H]
              mlp_output        MLP output before the residual add; gemma2/gemma3_text: BEFORE
                                post_feedforward_layernorm (HF's mlp module output) [B, S, H]
              down_proj_input   act(gate)*up, or act(fc_in(x) + b)  [B, S, I_l]
        }
        skip_layers: layer indices to skip (output = input), each kept layer keeping its own
        index-derived settings.  zero_neurons: {layer: [neuron, ...]} forces those entries of
        the down-projection input to 0.  naive_attention: use the per-position loop versions of attention, o_proj and MLP
        (slow; the cross-check of the vectorised path)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError("ids must be [B, S]")
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, dtype=np.int64)
        if mask.shape != ids.shape:
            raise ValueError("mask shape differs from ids shape")
        zero_neurons = zero_neurons or {}
        x = self.embed(ids)
        out = {"hidden": [x], "input_norm": [], "attention_output": [], "mlp_output": [],
               "down_proj_input": []}
        for i in range(self.cfg.L):
            if i in skip_layers:
                taps = dict.fromkeys(("input_norm", "attention_output", "mlp_output",
                                      "down_proj_input"))
            else:
                x, taps = self.block(i, x, mask, zero_neurons.get(i), naive_attention)
            out["hidden"].append(x)
            for key, val in taps.items():
                out[key].append(val)
        out["logits"] = self.final(x)
        return out

    def logits(self, ids, mask=None, **kw):
        return self.forward(ids, mask, **kw)["logits"]


def load(folder, f32_constants=True):
    """Read FOLDER/config.json and its safetensors (single or sharded) into a Model."""
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    return Model(parse_config(c), read_checkpoint(folder), f32_constants)


# ----------------------------------------------------------------------------------------
# naive per-position attention (cross-check of the vectorised path)
# ----------------------------------------------------------------------------------------

def _naive_inv_freq(rot, entry, S, f32c):
    kind, theta, factor, lp = entry
    out = []
    for j in range(rot // 2):
        if f32c:
            e = np.float32(np.float32(2 * j) / np.float32(rot))
            p = np.float32(math.pow(theta, float(e)))
            if kind == "longrope":
                ext = lp["long"][j] if S > lp["original"] else lp["short"][j]
                inv = np.float32(1.0) / np.float32(np.float32(ext) * p)
            else:
                inv = np.float32(1.0) / p
                if factor != 1.0:
                    inv = np.float32(inv / np.float32(factor))
        else:
            inv = 1.0 / math.pow(theta, 2.0 * j / rot)
            if kind == "longrope":
                inv /= (lp["long"][j] if S > lp["original"] else lp["short"][j])
            inv /= factor
        out.append(inv)
    return out


def _naive_rotate(vec, pos, inv, rot, attn, f32c):
    out = list(vec)
    h = rot // 2
    for j in range(h):
        if f32c:
            a = float(np.float32(np.float32(pos) * inv[j]))
            c = float(np.float32(math.cos(a)))
            s = float(np.float32(math.sin(a)))
            if attn != 1.0:
                c = float(np.float32(np.float32(c) * np.float32(attn)))
                s = float(np.float32(np.float32(s) * np.float32(attn)))
        else:
            a = pos * inv[j]
            c, s = math.cos(a) * attn, math.sin(a) * attn
        x1, x2 = vec[j], vec[j + h]
        out[j] = x1 * c - x2 * s
        out[j + h] = x2 * c + x1 * s
    return out


def naive_attention(model, i, xn, mask):
    """Per-position loops: explicit row/column ranges for the q/k/v split of every family,
    scalar RoPE, scalar dot products, explicit visibility test, and an explicit rule for a
    query that sees no key (uniform average over all S keys).  Returns [B, S, nh*hd]."""
    k = model.cfg
    f = k.family
    B, S, H = xn.shape
    nh, kv, hd = k.nh, k.kv, k.hd
    g = nh // kv
    w = model.w
    # per position, per head: q, k, v vectors as Python lists
    Q = [[[None] * nh for _ in range(S)] for _ in range(B)]
    K = [[[None] * kv for _ in range(S)] for _ in range(B)]
    Vv = [[[None] * kv for _ in range(S)] for _ in range(B)]
    for b in range(B):
        for s in range(S):
            x = xn[b, s]
            if f in GEMMA_FAMILIES:
                p = "model.layers.%d.self_attn." % i
                for name, store, n in (("q_proj", Q, nh), ("k_proj", K, kv), ("v_proj", Vv, kv)):
                    W = w[p + name + ".weight"]
                    for h in range(n):
                        vec = [float(np.dot(W[h * hd + d], x)) for d in range(hd)]
                        if k.attention_bias:
                            bias = w[p + name + ".bias"]
                            vec = [vec[d] + bias[h * hd + d] for d in range(hd)]
                        if k.qk_norm and name != "v_proj":
                            nw = w[p + ("q_norm" if name == "q_proj" else "k_norm") + ".weight"]
                            ms = sum(t * t for t in vec) / hd
                            r = 1.0 / math.sqrt(ms + k.eps)
                            vec = [vec[d] * r * (1.0 + nw[d]) for d in range(hd)]
                        store[b][s][h] = vec
            elif f == "phi3":
                W = w["model.layers.%d.self_attn.qkv_proj.weight" % i]
                for h in range(nh):
                    Q[b][s][h] = [float(np.dot(W[h * hd + d], x)) for d in range(hd)]
                for h in range(kv):
                    K[b][s][h] = [float(np.dot(W[nh * hd + h * hd + d], x)) for d in range(hd)]
                    Vv[b][s][h] = [float(np.dot(W[nh * hd + kv * hd + h * hd + d], x))
                                   for d in range(hd)]
            elif f == "gpt2":
                W = w["transformer.h.%d.attn.c_attn.weight" % i]
                bias = w["transformer.h.%d.attn.c_attn.bias" % i]
                for h in range(nh):
                    cols = lambda off: [float(np.dot(x, W[:, off + h * hd + d]) + bias[off + h * hd + d])
                                        for d in range(hd)]
                    Q[b][s][h], K[b][s][h], Vv[b][s][h] = cols(0), cols(H), cols(2 * H)
            else:
                W = w["gpt_neox.layers.%d.attention.query_key_value.weight" % i]
                bias = w.get("gpt_neox.layers.%d.attention.query_key_value.bias" % i) \
                    if k.attention_bias else None
                for h in range(nh):
                    base = 3 * hd * h
                    rows = lambda off: [float(np.dot(W[base + off + d], x)
                                              + (bias[base + off + d] if bias is not None else 0.0))
                                        for d in range(hd)]
                    Q[b][s][h], K[b][s][h], Vv[b][s][h] = rows(0), rows(hd), rows(2 * hd)
    if k.rot:
        entry = k.rope[i]
        inv = _naive_inv_freq(k.rot, entry, S, model.f32c)
        attn = entry[3]["attention_factor"] if entry[0] == "longrope" else 1.0
        for b in range(B):
            for s in range(S):
                for h in range(nh):
                    Q[b][s][h] = _naive_rotate(Q[b][s][h], s, inv, k.rot, attn, model.f32c)
                for h in range(kv):
                    K[b][s][h] = _naive_rotate(K[b][s][h], s, inv, k.rot, attn, model.f32c)
    # scale / cap / window, computed independently of attn_params
    if f == "gpt2":
        sc = np.float32(math.sqrt(hd)) if model.f32c else math.sqrt(hd)
        divisors = ([float(sc)] if k.scale_attn_weights else []) + \
            ([float(i + 1)] if k.inv_layer_idx else [])
        mult = None
    else:
        if f in ("gemma2", "gemma3_text"):
            base = k.scale_base
        else:
            base = hd ** -0.5
        mult = float(np.float32(base)) if model.f32c else base
    cap = k.attn_cap if f == "gemma2" else None
    W_ = k.window if k.sliding[i] else None
    out = np.zeros((B, S, nh * hd))
    for b in range(B):
        for h in range(nh):
            kvh = h // g
            for qi in range(S):
                qv = Q[b][qi][h]
                scores, visible = [], []
                for kj in range(S):
                    kvec = K[b][kj][kvh]
                    sc_ = 0.0
                    for d in range(hd):
                        sc_ += qv[d] * kvec[d]
                    if mult is not None:
                        sc_ = sc_ * mult
                    else:
                        for dv in divisors:
                            sc_ = sc_ / dv
                    if cap is not None:
                        sc_ = math.tanh(sc_ / cap) * cap
                    vis = kj <= qi and mask[b, kj] == 1 and (W_ is None or kj >= qi - W_ + 1)
                    scores.append(sc_)
                    visible.append(vis)
                if not any(visible):
                    probs = [1.0 / S] * S  # §4.3: every score is finfo.min -> uniform
                else:
                    mx = max(sv for sv, vi in zip(scores, visible) if vi)
                    ex = [math.exp(sv - mx) if vi else 0.0 for sv, vi in zip(scores, visible)]
                    tot = sum(ex)
                    probs = [e / tot for e in ex]
                for d in range(hd):
                    acc = 0.0
                    for kj in range(S):
                        acc += probs[kj] * Vv[b][kj][kvh][d]
                    out[b, qi, h * hd + d] = acc
    return out


def _naive_o_proj(model, i, o):
    """Output projection written per position and output feature."""
    k = model.cfg
    f = k.family
    w = model.w
    B, S, D = o.shape
    out = np.zeros((B, S, k.H))
    for b in range(B):
        for s in range(S):
            for r in range(k.H):
                if f in GEMMA_FAMILIES or f == "phi3":
                    acc = float(np.dot(w["model.layers.%d.self_attn.o_proj.weight" % i][r], o[b, s]))
                    if f != "phi3" and k.attention_bias:
                        acc += w["model.layers.%d.self_attn.o_proj.bias" % i][r]
                elif f == "gpt2":
                    acc = float(np.dot(o[b, s], w["transformer.h.%d.attn.c_proj.weight" % i][:, r]))
                    acc += w["transformer.h.%d.attn.c_proj.bias" % i][r]
                else:
                    acc = float(np.dot(w["gpt_neox.layers.%d.attention.dense.weight" % i][r], o[b, s]))
                    if k.attention_bias:
                        acc += w["gpt_neox.layers.%d.attention.dense.bias" % i][r]
                out[b, s, r] = acc
    return out


def naive_mlp(model, i, x, zero=None):
    """The MLP per position and per neuron j, with each family's neuron j written out:
    gemma: gate row j, up row j, down column j; phi3: gate_up rows j (gate) and I + j (up),
    down column j; gpt2: c_fc column j (+ bias j), c_proj row j; gpt_neox: dense_h_to_4h
    row j (+ bias j), dense_4h_to_h column j.  Returns (output, down-projection input)."""
    k = model.cfg
    f = k.family
    w = model.w
    act = ACTS[k.act]
    one = lambda v: float(act(np.array([v]))[0])
    B, S, H = x.shape
    I = model.widths[i]
    zero = set(int(j) for j in (zero if zero is not None else ()))
    pm = "model.layers.%d.mlp." % i
    pg = "transformer.h.%d.mlp." % i
    pn = "gpt_neox.layers.%d.mlp." % i
    A = np.zeros((B, S, I))
    out = np.zeros((B, S, H))
    for b in range(B):
        for s in range(S):
            v = x[b, s]
            for j in range(I):
                if f in GEMMA_FAMILIES:
                    gate = float(np.dot(w[pm + "gate_proj.weight"][j], v))
                    up = float(np.dot(w[pm + "up_proj.weight"][j], v))
                    a = one(gate) * up
                elif f == "phi3":
                    gu = w[pm + "gate_up_proj.weight"]
                    a = one(float(np.dot(gu[j], v))) * float(np.dot(gu[I + j], v))
                elif f == "gpt2":
                    a = one(float(np.dot(v, w[pg + "c_fc.weight"][:, j])) + w[pg + "c_fc.bias"][j])
                else:
                    a = one(float(np.dot(w[pn + "dense_h_to_4h.weight"][j], v))
                            + w[pn + "dense_h_to_4h.bias"][j])
                A[b, s, j] = 0.0 if j in zero else a
            for r in range(H):
                if f in GEMMA_FAMILIES or f == "phi3":
                    acc = sum(w[pm + "down_proj.weight"][r, j] * A[b, s, j] for j in range(I))
                elif f == "gpt2":
                    acc = sum(A[b, s, j] * w[pg + "c_proj.weight"][j, r] for j in range(I))
                    acc += w[pg + "c_proj.bias"][r]
                else:
                    acc = sum(w[pn + "dense_4h_to_h.weight"][r, j] * A[b, s, j] for j in range(I))
                    acc += w[pn + "dense_4h_to_h.bias"][r]
                out[b, s, r] = acc
    return out, A
