#!/usr/bin/python3
"""families_ref.py - an independent float64 numpy reference of six Hugging Face decoder
families, for golden tests of pfrun:

    gemma, gemma2, gemma3_text, phi3      (reference/arch-gemma-phi3.md)
    gpt2, gpt_neox                        (reference/arch-gpt2-neox.md)

It is written only from those two notes (plus reference/optipfair-behaviour.md for the
static neuron scores, the kept count k and layer importance) and shares no code with
pfrun: config.json is read with json, safetensors with struct + numpy.frombuffer, and
every activation is float64.

Precision convention.  All activations are float64.  Where the notes say that Hugging
Face forms a *constant* in float32 (the Gemma embedding normaliser sqrt(H), the attention
scale / GPT-2 divisor sqrt(hd), the RoPE inverse frequencies, angles and cos/sin table,
the longrope attention factor), the constant is rounded to float32 exactly as described
and then used in float64 (`load(folder, f32_constants=True)`, the default).  With
f32_constants=False every constant is plain float64.  Activation-dtype casts ("cast to
T") are not emulated: the reference is the float64 limit of the float32 model.

API (see the function docstrings):
    load(folder, f32_constants=True)            -> Model
    Model.forward(ids, mask=None, ...)          -> dict (logits, hidden, taps)
    Model.logits(ids, mask=None)                -> [B, S, V]
    neuron_scores(model, method, precision)     -> list of [I_l] arrays (one per layer)
    keep_count(p, I, divisor=None)              -> k
    kept_indices(scores, k)                     -> ascending kept indices
    layer_importance(model, batches, include_padding=False) -> list of L floats
    read_safetensors / read_checkpoint / write_safetensors
Choices where the notes leave room (each also commented at its place):
  - taps: attention_output / mlp_output of gemma2 and gemma3_text are the self_attn / mlp
    module outputs, i.e. BEFORE post_attention_layernorm / post_feedforward_layernorm;
    input_norm is the attention pre-norm output; down_proj_input the output projection's input.
  - longrope (marked [from memory, unverified] in the note): long factors for every position
    of a call iff the call length S (= max position + 1) > original_max_position_embeddings.
  - layer importance: a sample whose mask has no 1 gives empty vectors and cos = 0.
  - neuron scores: precision "f32" (default) rounds every per-row reduction to float32 once
    and combines gate/up parts in float32 (torch on float32 copies); "f64" is plain float64.
  - num_key_value_heads null -> = num_attention_heads for every Gemma/Phi-3 type; phi3
    head_dim is always H / heads; sliding layers with a null sliding_window are refused;
    gemma3_text v5 sliding_attention with a non-default rope_type is refused.
  - gpt2 reorder_and_upcast_attn is accepted (it only changes float32 op order);
    gpt_neox rope spellings that disagree are refused (pfrun rule, not v5's 0.25 quirk).
  - only the legacy buffer names of arch-gpt2-neox.md §2.3 are skipped; any other tensor with
    a non-float dtype is an error.
CLI:
    families_ref.py logits FOLDER --ids '[[..]]' [--mask '[[..]]']
    families_ref.py forward FOLDER --ids .. [--mask ..]     (logits, hidden and taps)
    families_ref.py scores FOLDER --method MAW [--pruning-percentage P] [--precision f32|f64]
    families_ref.py importance FOLDER --batches '[[ids, mask], ...]' [--include-padding]
    families_ref.py selftest [--keep DIR]
"""
import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile

import numpy as np

F32_MIN = float(np.finfo(np.float32).min)  # -3.4028234663852886e38, the eager additive mask
GEMMA_FAMILIES = ("gemma", "gemma2", "gemma3_text")
FAMILIES = GEMMA_FAMILIES + ("phi3", "gpt2", "gpt_neox")


# ----------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------

# Legacy buffers, skipped by NAME before their dtype is looked at (arch-gpt2-neox.md §2.3).
LEGACY_BUFFERS = [
    re.compile(r"^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$"),
    re.compile(r"^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$"),
]


def is_legacy_buffer(name):
    return any(r.match(name) for r in LEGACY_BUFFERS)


def _widen(raw, dt, shape):
    if dt == "F32":
        a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    elif dt == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
    elif dt == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        a = u.view(np.float32).astype(np.float64)
    elif dt == "F64":
        a = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    else:
        raise ValueError("unsupported tensor dtype %s" % dt)
    return a.reshape(shape)


def read_safetensors(path, skip=is_legacy_buffer):
    """{name: float64 array} of one .safetensors file; names for which skip(name) is true
    are dropped before their dtype is examined.  Also returns nothing else."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or skip(name):
            continue
        a, b = info["data_offsets"]
        out[name] = _widen(data[base + a:base + b], info["dtype"], info["shape"])
    return out


def read_checkpoint(folder, skip=is_legacy_buffer):
    """All tensors of a folder: model.safetensors, or the shards listed by
    model.safetensors.index.json (weight_map)."""
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(single):
        return read_safetensors(single, skip)
    if not os.path.exists(index):
        raise FileNotFoundError("%s: neither model.safetensors nor model.safetensors.index.json"
                                % folder)
    with open(index) as f:
        wmap = json.load(f)["weight_map"]
    out = {}
    for shard in sorted(set(wmap.values())):
        part = read_safetensors(os.path.join(folder, shard), skip)
        for k, v in part.items():
            if k in out:
                raise ValueError("tensor %s appears in two shards" % k)
            out[k] = v
    missing = [k for k in wmap if k not in out and not skip(k)]
    if missing:
        raise ValueError("index lists tensors absent from the shards: %s" % missing[:5])
    return out


def to_bf16_bits(a):
    """float -> bf16 bit pattern, round to nearest even (numpy, for the test writer)."""
    u = np.ascontiguousarray(np.asarray(a, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def bf16_round(a):
    """The float64 value of a rounded to bf16."""
    return (to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def write_safetensors(path, tensors, dtype="F32", dtypes=None):
    """Write {name: array}; dtype is the default (F32, BF16, F16), dtypes overrides per name
    (also BOOL, U8 for legacy buffers)."""
    dtypes = dtypes or {}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        dt = dtypes.get(name, dtype)
        if dt == "F32":
            raw = arr.astype("<f4").tobytes()
        elif dt == "F16":
            raw = arr.astype("<f2").tobytes()
        elif dt == "BF16":
            raw = to_bf16_bits(arr).astype("<u2").tobytes()
        elif dt in ("BOOL", "U8"):
            raw = arr.astype(np.uint8).tobytes()
        else:
            raise ValueError(dt)
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def write_checkpoint(folder, config, tensors, dtype="F32", dtypes=None, shards=1):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype, dtypes)
        return folder
    names = sorted(tensors)
    wmap = {}
    for s in range(shards):
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(os.path.join(folder, fn), part, dtype, dtypes)
        wmap.update({n: fn for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wmap}, f, indent=1)
    return folder


# ----------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------

class Cfg:
    def __repr__(self):
        return "Cfg(%s)" % ", ".join("%s=%r" % kv for kv in sorted(vars(self).items()))


_GP_DEFAULTS = {  # arch-gemma-phi3.md §2
    "gemma": dict(vocab_size=256000, hidden_size=3072, intermediate_size=24576,
                  num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=16,
                  head_dim=256, act_key="hidden_act", act="gelu_pytorch_tanh", eps=1e-6,
                  rope_theta=10000.0, tie=True),
    "gemma2": dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216,
                   num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4,
                   head_dim=256, act_key="hidden_activation", act="gelu_pytorch_tanh", eps=1e-6,
                   rope_theta=10000.0, query_pre_attn_scalar=256, attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0, sliding_window=4096, tie=True),
    "gemma3_text": dict(vocab_size=262208, hidden_size=2304, intermediate_size=9216,
                        num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4,
                        head_dim=256, act_key="hidden_activation", act="gelu_pytorch_tanh",
                        eps=1e-6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                        query_pre_attn_scalar=256, attn_logit_softcapping=None,
                        final_logit_softcapping=None, sliding_window=4096,
                        sliding_window_pattern=6, tie=True),
    "phi3": dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None,
                 act_key="hidden_act", act="silu", eps=1e-5, rope_theta=10000.0,
                 partial_rotary_factor=1.0, sliding_window=None, tie=False,
                 max_position_embeddings=4096, original_max_position_embeddings=4096),
}


def _agree(what, values, default):
    """The single value among the present spellings (None = absent); refuse disagreement."""
    present = [v for v in values if v is not None]
    for v in present[1:]:
        if float(v) != float(present[0]):
            raise ValueError("config spellings of %s disagree: %s" % (what, present))
    return present[0] if present else default


def _rope_spec(rtype_obj, what):
    """Normalise a rope_scaling / rope_parameters dict to (kind, dict)."""
    if rtype_obj is None:
        return ("default", {})
    kind = rtype_obj.get("rope_type", rtype_obj.get("type", "default"))
    if kind in ("su", "yarn") and what == "phi3":
        kind = "longrope"  # the Phi-3 config class renames them (§5.6)
    return (kind, rtype_obj)


def _parse_gemma_phi3(c, k):
    mt = k.family
    d = _GP_DEFAULTS[mt]
    g = lambda key: c.get(key, d.get(key))
    k.V, k.H, k.L = g("vocab_size"), g("hidden_size"), g("num_hidden_layers")
    k.nh = g("num_attention_heads")
    k.kv = g("num_key_value_heads")
    if k.kv is None:  # phi3 default null -> = heads (also applied to an explicit null elsewhere)
        k.kv = k.nh
    if mt == "phi3":
        k.hd = k.H // k.nh  # not a key for phi3
    else:
        k.hd = g("head_dim")
    if k.nh % k.kv:
        raise ValueError("num_attention_heads %d not a multiple of num_key_value_heads %d"
                         % (k.nh, k.kv))
    k.intermediate_size = g("intermediate_size")  # informative only: widths come from shapes
    k.act = c.get(d["act_key"], d["act"])
    if mt == "gemma" and "hidden_activation" in c and c.get("hidden_activation") != k.act:
        sys.stderr.write("families_ref: gemma hidden_act=%r and hidden_activation=%r differ; "
                         "following hidden_act (current HF, arch-gemma-phi3.md §8.1)\n"
                         % (k.act, c.get("hidden_activation")))
    k.eps = g("rms_norm_eps") if "rms_norm_eps" in c else d["eps"]
    k.tie = c.get("tie_word_embeddings", d["tie"])
    k.attention_bias = bool(c.get("attention_bias", False)) if mt != "phi3" else False
    k.norm = "rms" if mt == "phi3" else "gemma"
    k.sandwich = mt in ("gemma2", "gemma3_text")
    k.qk_norm = mt == "gemma3_text"
    k.embed_scale = mt in GEMMA_FAMILIES
    # final soft-cap: gemma2 / gemma3_text only (gemma and phi3 have none)
    k.final_cap = c.get("final_logit_softcapping", d.get("final_logit_softcapping")) \
        if mt in ("gemma2", "gemma3_text") else None
    # attention soft-cap: gemma2 only; gemma3_text never passes it to the kernel (§5.4)
    k.attn_cap = c.get("attn_logit_softcapping", d.get("attn_logit_softcapping")) \
        if mt == "gemma2" else None
    if mt in ("gemma2", "gemma3_text"):
        qpas = c.get("query_pre_attn_scalar", d["query_pre_attn_scalar"])
        k.scale_base = float(qpas) ** -0.5
    else:
        k.scale_base = float(k.hd) ** -0.5
    if mt == "gemma3_text" and c.get("use_bidirectional_attention"):
        raise ValueError("gemma3_text with use_bidirectional_attention=true (EmbeddingGemma) is "
                         "not a causal LM: refused")

    # ---- layer types and window (§4.1) ----
    L = k.L
    lt = c.get("layer_types")
    if mt == "gemma":
        sliding = [False] * L
    elif mt == "phi3":
        sliding = [c.get("sliding_window", None) is not None] * L
    else:
        if lt is not None:
            if len(lt) != L:
                raise ValueError("layer_types has %d entries for %d layers" % (len(lt), L))
            bad = [t for t in lt if t not in ("sliding_attention", "full_attention")]
            if bad:
                raise ValueError("unknown layer types %s" % bad)
            sliding = [t == "sliding_attention" for t in lt]
        elif mt == "gemma2":
            sliding = [i % 2 == 0 for i in range(L)]
        else:
            P = c.get("sliding_window_pattern", d["sliding_window_pattern"])
            sliding = [(i + 1) % P != 0 for i in range(L)]
    k.sliding = sliding
    k.window = c.get("sliding_window", d.get("sliding_window"))
    if any(sliding) and k.window is None:
        raise ValueError("sliding layers but sliding_window is null")

    # ---- RoPE (§5.1, §5.4, §5.6, §8.16) ----
    rp = c.get("rope_parameters")
    per_type = isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp)
    if mt == "phi3":
        prf = _agree("partial_rotary_factor",
                     [c.get("partial_rotary_factor"), (rp or {}).get("partial_rotary_factor")],
                     d["partial_rotary_factor"])
        k.rot = int(k.hd * prf)
    else:
        k.rot = k.hd
    if k.rot % 2:
        raise ValueError("odd rotary width %d" % k.rot)
    if per_type:
        full = rp.get("full_attention", {})
        slide = rp.get("sliding_attention", {})
        theta_full = _agree("rope_theta", [c.get("rope_theta"), full.get("rope_theta")],
                            d["rope_theta"])
        full_kind, full_obj = _rope_spec(full, mt)
        theta_slide = _agree("rope_local_base_freq",
                             [c.get("rope_local_base_freq"), slide.get("rope_theta")],
                             d.get("rope_local_base_freq", d["rope_theta"]))
        if _rope_spec(slide, mt)[0] != "default":
            raise ValueError("sliding_attention rope_type must be default (§5.4)")
    else:
        theta_full = _agree("rope_theta", [c.get("rope_theta"), (rp or {}).get("rope_theta")],
                            d["rope_theta"])
        if rp is not None and c.get("rope_scaling") is not None:
            raise ValueError("both rope_scaling and rope_parameters given")
        full_kind, full_obj = _rope_spec(rp if rp is not None else c.get("rope_scaling"), mt)
        theta_slide = c.get("rope_local_base_freq", d.get("rope_local_base_freq"))
    full_rope = _rope_entry(full_kind, full_obj, theta_full, k, c, d)
    if mt == "gemma3_text":
        slide_rope = ("default", float(theta_slide), 1.0, None)  # never scaled
        k.rope = [slide_rope if s else full_rope for s in sliding]
    else:
        k.rope = [full_rope] * L


def _rope_entry(kind, obj, theta, k, c, d):
    """(kind, theta, linear factor, longrope params)"""
    if kind == "default":
        return ("default", float(theta), 1.0, None)
    if kind == "linear":
        if k.family == "phi3":
            raise ValueError("phi3 rope_scaling must be longrope")
        return ("linear", float(theta), float(obj["factor"]), None)
    if kind == "longrope":
        if k.family != "phi3":
            raise ValueError("longrope only implemented for phi3")
        orig = c.get("original_max_position_embeddings", d["original_max_position_embeddings"])
        mx = c.get("max_position_embeddings", d["max_position_embeddings"])
        f = mx / orig
        af = obj.get("attention_factor")
        if af is None:
            af = 1.0 if f <= 1.0 else math.sqrt(1.0 + math.log(f) / math.log(orig))
        lp = {"short": [float(x) for x in obj["short_factor"]],
              "long": [float(x) for x in obj["long_factor"]],
              "original": int(orig), "attention_factor": float(af)}
        for key in ("short", "long"):
            if len(lp[key]) != k.rot // 2:
                raise ValueError("longrope %s_factor has %d entries, want rotary/2 = %d"
                                 % (key, len(lp[key]), k.rot // 2))
        return ("longrope", float(theta), 1.0, lp)
    raise ValueError("rope type %r not supported for %s" % (kind, k.family))


def _parse_gpt2(c, k):
    g = lambda names, default: _agree("/".join(names), [c.get(n) for n in names], default)
    k.V = c.get("vocab_size", 50257)
    k.P = int(g(("n_positions", "max_position_embeddings"), 1024))
    k.H = int(g(("n_embd", "hidden_size"), 768))
    k.L = int(g(("n_layer", "num_hidden_layers"), 12))
    k.nh = int(g(("n_head", "num_attention_heads"), 12))
    if k.H % k.nh:
        raise ValueError("n_embd not divisible by n_head")
    k.kv, k.hd = k.nh, k.H // k.nh
    k.intermediate_size = c.get("n_inner") or 4 * k.H
    k.act = c.get("activation_function", "gelu_new")
    k.eps = c.get("layer_norm_epsilon", 1e-5)
    k.scale_attn_weights = c.get("scale_attn_weights", True)
    k.inv_layer_idx = c.get("scale_attn_by_inverse_layer_idx", False)
    # reorder_and_upcast_attn only changes float32 op order (scale folded into one
    # factor, fp32 upcast); in exact / float64 arithmetic the result is the same: accepted.
    k.reorder_and_upcast_attn = c.get("reorder_and_upcast_attn", False)
    if c.get("add_cross_attention", False):
        raise ValueError("gpt2 add_cross_attention=true (encoder-decoder) refused")
    k.tie = c.get("tie_word_embeddings", True)
    k.sliding = [False] * k.L
    k.window = None
    k.rot = 0
    k.rope = [None] * k.L


def _parse_neox(c, k):
    k.V = c.get("vocab_size", 50432)
    k.H = c.get("hidden_size", 6144)
    k.L = c.get("num_hidden_layers", 44)
    k.nh = c.get("num_attention_heads", 64)
    if k.H % k.nh:
        raise ValueError("hidden_size not divisible by heads")
    k.kv, k.hd = k.nh, k.H // k.nh
    k.scale_base = float(k.hd) ** -0.5  # alpha = hd^-0.5, a multiplication
    k.intermediate_size = c.get("intermediate_size", 24576)
    k.act = c.get("hidden_act", "gelu")
    k.eps = c.get("layer_norm_eps", 1e-5)
    k.parallel = c.get("use_parallel_residual", True)
    k.attention_bias = c.get("attention_bias", True)
    k.tie = c.get("tie_word_embeddings", False)
    rp = c.get("rope_parameters") or {}
    if _rope_spec(rp or None, "gpt_neox")[0] != "default" or c.get("rope_scaling") is not None:
        raise ValueError("gpt_neox rope scaling is not supported (arch-gpt2-neox.md §1.2)")
    pct = _agree("rotary_pct", [c.get("rotary_pct"), c.get("partial_rotary_factor"),
                                rp.get("partial_rotary_factor")], 0.25)
    theta = _agree("rotary_emb_base", [c.get("rotary_emb_base"), c.get("rope_theta"),
                                       rp.get("rope_theta")], 10000.0)
    k.rot = int(k.hd * pct)
    if k.rot % 2:
        raise ValueError("odd rotary width %d" % k.rot)
    k.rope = [("default", float(theta), 1.0, None)] * k.L
    k.sliding = [False] * k.L
    k.window = None


def parse_config(c):
    """Config dict -> Cfg with the family defaults of the spec tables applied."""
    mt = c.get("model_type")
    if mt == "gemma3":
        raise ValueError("model_type gemma3 is the multimodal model (text settings in "
                         "text_config): refused, use gemma3_text")
    if mt not in FAMILIES:
        raise ValueError("model_type %r not handled (one of %s)" % (mt, FAMILIES))
    k = Cfg()
    k.family = mt
    k.embed_scale, k.final_cap, k.attn_cap, k.qk_norm, k.sandwich = False, None, None, False, False
    if mt == "gpt2":
        _parse_gpt2(c, k)
    elif mt == "gpt_neox":
        _parse_neox(c, k)
    else:
        _parse_gemma_phi3(c, k)
    return k


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


# ----------------------------------------------------------------------------------------
# self-test: tiny random checkpoints written here, properties the specs state
# ----------------------------------------------------------------------------------------

def _rn(rng, *shape, std=1.0):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def make_checkpoint(family, seed=0, **over):
    """(config dict, {name: float32 array}) of a tiny random model of the family."""
    rng = np.random.default_rng(seed)
    T = {}
    if family in GEMMA_FAMILIES + ("phi3",):
        base = {
            "gemma": dict(vocab_size=150, hidden_size=48, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=4, head_dim=16,
                          intermediate_size=96, hidden_act="gelu",
                          hidden_activation="gelu_pytorch_tanh"),
            "gemma2": dict(vocab_size=200, hidden_size=48, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           intermediate_size=80, query_pre_attn_scalar=24,
                           attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                           sliding_window=4),
            "gemma3_text": dict(vocab_size=180, hidden_size=64, num_hidden_layers=4,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                intermediate_size=128, query_pre_attn_scalar=16,
                                final_logit_softcapping=5.0, attn_logit_softcapping=1.0,
                                sliding_window=5, sliding_window_pattern=3, rope_theta=10000.0,
                                rope_local_base_freq=100.0,
                                rope_scaling={"rope_type": "linear", "factor": 4.0}),
            "phi3": dict(vocab_size=120, hidden_size=48, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=2, intermediate_size=72,
                         partial_rotary_factor=0.5, sliding_window=4, rms_norm_eps=1e-5),
        }[family]
        c = dict(model_type=family, **base)
        c.update(over)
        cfg = parse_config(c)
        V, H, L, nh, kv, hd = cfg.V, cfg.H, cfg.L, cfg.nh, cfg.kv, cfg.hd
        I = c["intermediate_size"]
        gem = family != "phi3"
        nw = (lambda n: _rn(rng, n, std=0.1)) if gem else (lambda n: 1.0 + _rn(rng, n, std=0.1))
        T["model.embed_tokens.weight"] = _rn(rng, V, H, std=0.15 if gem else 0.5)
        for i in range(L):
            p = "model.layers.%d." % i
            T[p + "input_layernorm.weight"] = nw(H)
            T[p + "post_attention_layernorm.weight"] = nw(H)
            if family in ("gemma2", "gemma3_text"):
                T[p + "pre_feedforward_layernorm.weight"] = nw(H)
                T[p + "post_feedforward_layernorm.weight"] = nw(H)
            a = p + "self_attn."
            sd = H ** -0.5
            if gem:
                T[a + "q_proj.weight"] = _rn(rng, nh * hd, H, std=sd)
                T[a + "k_proj.weight"] = _rn(rng, kv * hd, H, std=sd)
                T[a + "v_proj.weight"] = _rn(rng, kv * hd, H, std=sd)
                if cfg.attention_bias:
                    for n, o in (("q_proj", nh * hd), ("k_proj", kv * hd), ("v_proj", kv * hd),
                                 ("o_proj", H)):
                        T[a + n + ".bias"] = _rn(rng, o, std=0.1)
                if family == "gemma3_text":
                    T[a + "q_norm.weight"] = nw(hd)
                    T[a + "k_norm.weight"] = nw(hd)
                T[p + "mlp.gate_proj.weight"] = _rn(rng, I, H, std=sd)
                T[p + "mlp.up_proj.weight"] = _rn(rng, I, H, std=sd)
            else:
                T[a + "qkv_proj.weight"] = _rn(rng, (nh + 2 * kv) * hd, H, std=sd)
                T[p + "mlp.gate_up_proj.weight"] = _rn(rng, 2 * I, H, std=sd)
            T[a + "o_proj.weight"] = _rn(rng, H, nh * hd, std=(nh * hd) ** -0.5)
            T[p + "mlp.down_proj.weight"] = _rn(rng, H, I, std=I ** -0.5)
        T["model.norm.weight"] = nw(H)
        if not cfg.tie:
            T["lm_head.weight"] = _rn(rng, V, H, std=0.3)
        return c, T
    if family == "gpt2":
        c = dict(model_type="gpt2", vocab_size=110, n_positions=32, n_embd=32, n_layer=3,
                 n_head=4, n_inner=None, activation_function="gelu_new",
                 layer_norm_epsilon=1e-5, scale_attn_weights=True,
                 scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False)
        c.update(over)
        cfg = parse_config(c)
        V, P, H, L, I = cfg.V, cfg.P, cfg.H, cfg.L, cfg.intermediate_size
        sd = H ** -0.5
        T["transformer.wte.weight"] = _rn(rng, V, H, std=0.3)
        T["transformer.wpe.weight"] = _rn(rng, P, H, std=0.1)
        for i in range(L):
            p = "transformer.h.%d." % i
            for n in ("ln_1", "ln_2"):
                T[p + n + ".weight"] = 1.0 + _rn(rng, H, std=0.1)
                T[p + n + ".bias"] = _rn(rng, H, std=0.1)
            T[p + "attn.c_attn.weight"] = _rn(rng, H, 3 * H, std=sd * 1.5)
            T[p + "attn.c_attn.bias"] = _rn(rng, 3 * H, std=0.1)
            T[p + "attn.c_proj.weight"] = _rn(rng, H, H, std=sd)
            T[p + "attn.c_proj.bias"] = _rn(rng, H, std=0.1)
            T[p + "mlp.c_fc.weight"] = _rn(rng, H, I, std=sd)
            T[p + "mlp.c_fc.bias"] = _rn(rng, I, std=0.5)
            T[p + "mlp.c_proj.weight"] = _rn(rng, I, H, std=I ** -0.5)
            T[p + "mlp.c_proj.bias"] = _rn(rng, H, std=0.1)
        T["transformer.ln_f.weight"] = 1.0 + _rn(rng, H, std=0.1)
        T["transformer.ln_f.bias"] = _rn(rng, H, std=0.1)
        return c, T
    if family == "gpt_neox":
        c = dict(model_type="gpt_neox", vocab_size=130, hidden_size=32, num_hidden_layers=4,
                 num_attention_heads=4, intermediate_size=96, hidden_act="gelu",
                 rotary_pct=0.5, rotary_emb_base=10000, layer_norm_eps=1e-5,
                 use_parallel_residual=True, attention_bias=True, tie_word_embeddings=False,
                 max_position_embeddings=64)
        c.update(over)
        cfg = parse_config(c)
        V, H, L, I = cfg.V, cfg.H, cfg.L, c["intermediate_size"]
        sd = H ** -0.5
        T["gpt_neox.embed_in.weight"] = _rn(rng, V, H, std=0.5)
        for i in range(L):
            p = "gpt_neox.layers.%d." % i
            for n in ("input_layernorm", "post_attention_layernorm"):
                T[p + n + ".weight"] = 1.0 + _rn(rng, H, std=0.1)
                T[p + n + ".bias"] = _rn(rng, H, std=0.1)
            T[p + "attention.query_key_value.weight"] = _rn(rng, 3 * H, H, std=sd * 1.5)
            T[p + "attention.dense.weight"] = _rn(rng, H, H, std=sd)
            if cfg.attention_bias:
                T[p + "attention.query_key_value.bias"] = _rn(rng, 3 * H, std=0.1)
                T[p + "attention.dense.bias"] = _rn(rng, H, std=0.1)
            T[p + "mlp.dense_h_to_4h.weight"] = _rn(rng, I, H, std=sd)
            T[p + "mlp.dense_h_to_4h.bias"] = _rn(rng, I, std=0.5)
            T[p + "mlp.dense_4h_to_h.weight"] = _rn(rng, H, I, std=I ** -0.5)
            T[p + "mlp.dense_4h_to_h.bias"] = _rn(rng, H, std=0.1)
        T["gpt_neox.final_layer_norm.weight"] = 1.0 + _rn(rng, H, std=0.1)
        T["gpt_neox.final_layer_norm.bias"] = _rn(rng, H, std=0.1)
        T["embed_out.weight"] = _rn(rng, V, H, std=0.3)
        return c, T
    raise ValueError(family)


def slice_width(family, T, layer, idx):
    """Width slicing of one layer's MLP with kept indices idx (ascending), §6 / §9.3."""
    T = dict(T)
    idx = np.asarray(idx, dtype=np.int64)
    if family in GEMMA_FAMILIES:
        p = "model.layers.%d.mlp." % layer
        T[p + "gate_proj.weight"] = T[p + "gate_proj.weight"][idx, :]
        T[p + "up_proj.weight"] = T[p + "up_proj.weight"][idx, :]
        T[p + "down_proj.weight"] = T[p + "down_proj.weight"][:, idx]
    elif family == "phi3":
        p = "model.layers.%d.mlp." % layer
        gu = T[p + "gate_up_proj.weight"]
        I = gu.shape[0] // 2
        T[p + "gate_up_proj.weight"] = gu[np.concatenate([idx, I + idx]), :]
        T[p + "down_proj.weight"] = T[p + "down_proj.weight"][:, idx]
    elif family == "gpt2":
        p = "transformer.h.%d.mlp." % layer
        T[p + "c_fc.weight"] = T[p + "c_fc.weight"][:, idx]
        T[p + "c_fc.bias"] = T[p + "c_fc.bias"][idx]
        T[p + "c_proj.weight"] = T[p + "c_proj.weight"][idx, :]
    else:
        p = "gpt_neox.layers.%d.mlp." % layer
        T[p + "dense_h_to_4h.weight"] = T[p + "dense_h_to_4h.weight"][idx, :]
        T[p + "dense_h_to_4h.bias"] = T[p + "dense_h_to_4h.bias"][idx]
        T[p + "dense_4h_to_h.weight"] = T[p + "dense_4h_to_h.weight"][:, idx]
    return T


_LAYER_RE = re.compile(r"^(model\.layers|transformer\.h|gpt_neox\.layers|h)\.(\d+)\.(.*)$")


def remove_layers(family, c, T, removed):
    """Depth pruning (§7 / §8.1): drop, renumber, update the config."""
    c = json.loads(json.dumps(c))
    orig = parse_config(c)
    L = orig.L
    kept = [i for i in range(L) if i not in removed]
    new = {o: n for n, o in enumerate(kept)}
    out = {}
    for name, v in T.items():
        m = _LAYER_RE.match(name)
        if not m:
            out[name] = v
        elif int(m.group(2)) in new:
            out["%s.%d.%s" % (m.group(1), new[int(m.group(2))], m.group(3))] = v
    if family == "gpt2":
        c.pop("num_hidden_layers", None)
        c["n_layer"] = len(kept)
    else:
        c["num_hidden_layers"] = len(kept)
    if family in ("gemma2", "gemma3_text"):
        c["layer_types"] = ["sliding_attention" if orig.sliding[i] else "full_attention"
                            for i in kept]
    return c, out


class SelfTest:
    def __init__(self, tmp, verbose=True):
        self.tmp = tmp
        self.n = 0
        self.fail = 0
        self.lines = []
        self.seq = 0

    def folder(self, tag):
        self.seq += 1
        return os.path.join(self.tmp, "%03d-%s" % (self.seq, tag))

    def save(self, tag, c, T, **kw):
        return write_checkpoint(self.folder(tag), c, T, **kw)

    def check(self, name, ok, detail=""):
        self.n += 1
        if not ok:
            self.fail += 1
        line = "%s %s%s" % ("PASS" if ok else "FAIL", name, ("  (" + detail + ")") if detail else "")
        self.lines.append(line)
        print(line, flush=True)


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _batch(rng, V, lens, S):
    ids = np.zeros((len(lens), S), dtype=np.int64)
    mask = np.zeros((len(lens), S), dtype=np.int64)
    for b, n in enumerate(lens):
        ids[b, :] = rng.integers(0, V, S)  # padded positions hold arbitrary ids
        mask[b, :n] = 1
    return ids, mask


def selftest(keep=None):
    tmp = keep or tempfile.mkdtemp(prefix="families_ref_")
    os.makedirs(tmp, exist_ok=True)
    st = SelfTest(tmp)
    rng = np.random.default_rng(1234)
    try:
        _selftest_body(st, rng)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\nfamilies_ref selftest: %d checks, %d passed, %d failed" % (st.n, st.n - st.fail, st.fail))
    return st.fail == 0


def _selftest_body(st, rng):
    fams = ("gemma", "gemma2", "gemma3_text", "phi3", "gpt2", "gpt_neox")
    S = 12
    models = {}
    ckpt = {}
    for fam in fams:
        c, T = make_checkpoint(fam, seed=11 + fams.index(fam))
        ckpt[fam] = (c, T)
        models[fam] = load(st.save(fam, c, T))

    # 1. config defaults (tables of the specs)
    d = parse_config({"model_type": "gemma"})
    st.check("defaults gemma", (d.V, d.H, d.L, d.nh, d.kv, d.hd, d.act, d.eps, d.rope[0][1], d.tie,
                                d.final_cap) == (256000, 3072, 28, 16, 16, 256, "gelu_pytorch_tanh",
                                                 1e-6, 10000.0, True, None))
    d = parse_config({"model_type": "gemma2"})
    st.check("defaults gemma2", (d.V, d.H, d.L, d.nh, d.kv, d.hd, d.attn_cap, d.final_cap,
                                 d.window, d.scale_base, d.sliding[:4], d.tie)
             == (256000, 2304, 26, 8, 4, 256, 50.0, 30.0, 4096, 0.0625,
                 [True, False, True, False], True))
    d = parse_config({"model_type": "gemma3_text"})
    st.check("defaults gemma3_text", (d.V, d.attn_cap, d.final_cap, d.window,
                                      [i for i in range(26) if not d.sliding[i]],
                                      d.rope[0][1], d.rope[5][1], d.rope[5][2])
             == (262208, None, None, 4096, [5, 11, 17, 23], 10000.0, 1000000.0, 1.0))
    d = parse_config({"model_type": "phi3"})
    st.check("defaults phi3", (d.V, d.H, d.L, d.nh, d.kv, d.hd, d.rot, d.act, d.eps, d.tie,
                               any(d.sliding)) == (32064, 3072, 32, 32, 32, 96, 96, "silu", 1e-5,
                                                   False, False))
    d = parse_config({"model_type": "gpt2"})
    st.check("defaults gpt2", (d.V, d.P, d.H, d.L, d.nh, d.intermediate_size, d.act, d.eps,
                               d.scale_attn_weights, d.inv_layer_idx, d.tie)
             == (50257, 1024, 768, 12, 12, 3072, "gelu_new", 1e-5, True, False, True))
    d = parse_config({"model_type": "gpt_neox"})
    st.check("defaults gpt_neox", (d.V, d.H, d.L, d.nh, d.intermediate_size, d.act, d.rot,
                                   d.rope[0][1], d.eps, d.parallel, d.attention_bias, d.tie)
             == (50432, 6144, 44, 64, 24576, "gelu", 24, 10000.0, 1e-5, True, True, False))
    for bad, why in (({"model_type": "gemma3"}, "multimodal gemma3"),
                     ({"model_type": "gemma3_text", "use_bidirectional_attention": True},
                      "bidirectional"),
                     ({"model_type": "gemma2", "num_hidden_layers": 3,
                       "layer_types": ["full_attention"] * 2}, "layer_types length"),
                     ({"model_type": "gpt_neox", "rotary_pct": 0.25,
                       "partial_rotary_factor": 0.5}, "neox rotary spellings disagree"),
                     ({"model_type": "gpt2", "add_cross_attention": True}, "cross attention")):
        try:
            parse_config(bad)
            st.check("refuses " + why, False)
        except ValueError:
            st.check("refuses " + why, True)

    # 2. right padding leaves real positions unchanged; naive attention cross-check
    for fam in fams:
        m = models[fam]
        V = m.cfg.V
        ids, mask = _batch(rng, V, [S, 7, 3], S)
        full = m.forward(ids, mask)
        worst = 0.0
        for b, n in enumerate([S, 7, 3]):
            alone = m.logits(ids[b:b + 1, :n])
            worst = max(worst, rel(full["logits"][b, :n], alone[0]))
        st.check("%s right padding = unpadded at real positions" % fam, worst < 1e-12,
                 "rel %.2e" % worst)
        nv = m.forward(ids, mask, naive_attention=True)
        r = max(rel(nv["logits"], full["logits"]),
                max(rel(a, b) for a, b in zip(nv["hidden"], full["hidden"])),
                max(rel(a, b) for a, b in zip(nv["attention_output"], full["attention_output"])),
                max(rel(a, b) for a, b in zip(nv["mlp_output"], full["mlp_output"])),
                max(rel(a, b) for a, b in zip(nv["down_proj_input"], full["down_proj_input"])))
        st.check("%s naive loops (attention, o_proj, MLP) = vectorised (padded batch, logits/hidden/taps)" % fam,
                 r < 1e-12, "rel %.2e" % r)
        finite = all(np.all(np.isfinite(h)) for h in full["hidden"]) and \
            np.all(np.isfinite(full["logits"]))
        st.check("%s padded batch finite" % fam, finite)
        shapes_ok = (full["logits"].shape == (3, S, V) and len(full["hidden"]) == m.cfg.L + 1
                     and all(t.shape == (3, S, m.cfg.H) for t in full["hidden"])
                     and all(full["down_proj_input"][i].shape == (3, S, m.widths[i])
                             for i in range(m.cfg.L)))
        st.check("%s output shapes" % fam, shapes_ok)

    # 3. the fully masked row: uniform average over all S keys (vectorised core)
    q = rng.standard_normal((1, 1, 6, 4))
    kk = rng.standard_normal((1, 1, 6, 4))
    v = rng.standard_normal((1, 1, 6, 4))
    msk = np.array([[1, 1, 0, 0, 0, 0]])
    o = attention_core(q, kk, v, msk, 2, ("mul", 0.5), None)
    st.check("fully masked sliding row = mean of all S values (§4.3)",
             rel(o[0, 0, 3:], np.repeat(v[0, 0].mean(axis=0)[None], 3, 0)) < 1e-15
             and rel(o[0, 0, 2], v[0, 0, 1]) < 1e-15)

    # 4. sliding = full below position W, differs at W; window W+1 = full through W
    for fam in ("gemma2", "gemma3_text", "phi3"):
        c, T = ckpt[fam]
        if fam == "gemma3_text":  # same RoPE on every layer, so only the mask differs
            c = {k_: v_ for k_, v_ in c.items() if k_ != "rope_scaling"}
            c["rope_local_base_freq"] = c["rope_theta"]
        W = models[fam].cfg.window
        ids, _ = _batch(rng, models[fam].cfg.V, [S], S)
        slid = Model(parse_config(c), models[fam].w).logits(ids)
        cf = dict(c)
        if fam == "phi3":
            cf["sliding_window"] = None
        else:
            cf["layer_types"] = ["full_attention"] * c["num_hidden_layers"]
        fullm = Model(parse_config(cf), models[fam].w)
        full = fullm.logits(ids)
        below = rel(slid[0, :W], full[0, :W])
        at = float(np.max(np.abs(slid[0, W] - full[0, W])))
        st.check("%s sliding = full below position W=%d" % (fam, W), below == 0.0,
                 "rel %.1e" % below)
        st.check("%s sliding differs from full at position W" % fam, at > 1e-6, "max %.2e" % at)
        cw = dict(c)
        cw["sliding_window"] = W + 1
        wp1 = Model(parse_config(cw), models[fam].w).logits(ids)
        st.check("%s window W+1 = full through position W" % fam,
                 rel(wp1[0, :W + 1], full[0, :W + 1]) == 0.0)

    # 5. soft-caps
    for fam in ("gemma2", "gemma3_text"):
        c, T = ckpt[fam]
        m = models[fam]
        ids, mask = _batch(rng, m.cfg.V, [S, 5], S)
        c0 = dict(c, final_logit_softcapping=None)
        raw = Model(parse_config(c0), m.w).logits(ids, mask)
        cap = m.cfg.final_cap
        got = m.logits(ids, mask)
        st.check("%s final soft-cap = c*tanh(raw/c), c=%g" % (fam, cap),
                 rel(got, cap * np.tanh(raw / cap)) < 1e-14, "rel %.1e" % rel(got, cap * np.tanh(raw / cap)))
    c, T = ckpt["gemma2"]
    m = models["gemma2"]
    ids, mask = _batch(rng, m.cfg.V, [S, 6], S)
    nocap = Model(parse_config(dict(c, attn_logit_softcapping=None)), m.w).logits(ids, mask)
    big = Model(parse_config(dict(c, attn_logit_softcapping=1e7)), m.w).logits(ids, mask)
    st.check("gemma2 attention soft-cap 1e7 = no cap", rel(big, nocap) < 1e-10,
             "rel %.1e" % rel(big, nocap))
    st.check("gemma2 attention soft-cap 2.0 changes logits",
             rel(m.logits(ids, mask), nocap) > 1e-3, "rel %.2e" % rel(m.logits(ids, mask), nocap))
    c3, _ = ckpt["gemma3_text"]
    m3 = models["gemma3_text"]
    ids, mask = _batch(rng, m3.cfg.V, [S, 6], S)
    st.check("gemma3_text ignores attn_logit_softcapping",
             rel(Model(parse_config(dict(c3, attn_logit_softcapping=None)), m3.w).logits(ids, mask),
                 m3.logits(ids, mask)) == 0.0)

    # 6. gemma3 linear RoPE scaling only on full layers; v5 rope_parameters
    c3n = dict(c3)
    c3n.pop("rope_scaling")
    un = Model(parse_config(c3n), m3.w).forward(ids, mask)
    sc = m3.forward(ids, mask)
    full_layers = [i for i in range(m3.cfg.L) if not m3.cfg.sliding[i]]
    first_full = full_layers[0]
    same = all(rel(un["hidden"][i], sc["hidden"][i]) == 0.0 for i in range(first_full + 1))
    st.check("gemma3_text linear scaling leaves sliding layers (before first full layer %d) "
             "unchanged" % first_full, same)
    st.check("gemma3_text linear scaling changes the full layer",
             rel(un["attention_output"][first_full], sc["attention_output"][first_full]) > 1e-6)
    c3v5 = {k_: v_ for k_, v_ in c3.items() if k_ not in ("rope_theta", "rope_local_base_freq",
                                                          "rope_scaling")}
    c3v5["rope_parameters"] = {"full_attention": {"rope_type": "linear", "factor": 4.0,
                                                  "rope_theta": 10000.0},
                               "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}
    st.check("gemma3_text v5 rope_parameters = v4 keys",
             rel(Model(parse_config(c3v5), m3.w).logits(ids, mask), m3.logits(ids, mask)) == 0.0)
    cp, _ = ckpt["phi3"]
    mp = models["phi3"]
    cpv5 = {k_: v_ for k_, v_ in cp.items() if k_ not in ("partial_rotary_factor",)}
    cpv5["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0,
                               "partial_rotary_factor": 0.5}
    ids, mask = _batch(rng, mp.cfg.V, [S, 6], S)
    st.check("phi3 v5 rope_parameters = v4 keys",
             rel(Model(parse_config(cpv5), mp.w).logits(ids, mask), mp.logits(ids, mask)) == 0.0)
    st.check("phi3 partial rotary is active (rot %d of hd %d)" % (mp.cfg.rot, mp.cfg.hd),
             rel(Model(parse_config(dict(cp, partial_rotary_factor=1.0)), mp.w).logits(ids, mask),
                 mp.logits(ids, mask)) > 1e-6)

    # 7. qpas: query_pre_attn_scalar X == qpas hd with q_proj scaled by sqrt(hd/X)
    c2, T2 = ckpt["gemma2"]
    m2 = Model(parse_config(c2), models["gemma2"].w, f32_constants=False)
    w2 = dict(m2.w)
    X, hd = c2["query_pre_attn_scalar"], c2["head_dim"]
    for i in range(c2["num_hidden_layers"]):
        w2["model.layers.%d.self_attn.q_proj.weight" % i] = \
            w2["model.layers.%d.self_attn.q_proj.weight" % i] * math.sqrt(hd / X)
    alt = Model(parse_config(dict(c2, query_pre_attn_scalar=hd)), w2, f32_constants=False)
    ids, mask = _batch(rng, m2.cfg.V, [S, 6], S)
    r = rel(alt.logits(ids, mask), m2.logits(ids, mask))
    st.check("gemma2 qpas=X equals qpas=hd with q scaled by sqrt(hd/X) (float64 constants)",
             r < 1e-12, "rel %.1e" % r)

    # 8. gemma v1: hidden_act is followed, hidden_activation ignored (§8.1)
    cg, _ = ckpt["gemma"]
    mg = models["gemma"]
    ids, mask = _batch(rng, mg.cfg.V, [S, 6], S)
    base = mg.logits(ids, mask)
    st.check("gemma follows hidden_act, ignores hidden_activation",
             rel(Model(parse_config(dict(cg, hidden_activation="relu")), mg.w).logits(ids, mask),
                 base) == 0.0 and
             rel(Model(parse_config(dict(cg, hidden_act="gelu_pytorch_tanh")), mg.w)
                 .logits(ids, mask), base) > 1e-9)

    # 9. loader: BF16 exact widening, F16, sharded, gpt2 spellings, legacy names/buffers
    for fam in fams:
        c, T = ckpt[fam]
        mb = load(st.save(fam + "-bf16", c, T, dtype="BF16"))
        Tr = {n: bf16_round(v).astype(np.float32) for n, v in T.items()}
        mr = load(st.save(fam + "-bf16r", c, Tr))
        ids, mask = _batch(rng, mb.cfg.V, [S, 5], S)
        st.check("%s BF16 file = F32 file of the bf16-rounded values (exact)" % fam,
                 rel(mb.logits(ids, mask), mr.logits(ids, mask)) == 0.0)
        ms = load(st.save(fam + "-sharded", c, T, shards=3))
        st.check("%s sharded (3 files + index) = single file" % fam,
                 rel(ms.logits(ids, mask), models[fam].logits(ids, mask)) == 0.0)
    c, T = ckpt["phi3"]
    mh = load(st.save("phi3-f16", c, T, dtype="F16"))
    st.check("F16 widening exact", all(np.array_equal(mh.w[n], T[n].astype(np.float16).astype(np.float64))
                                       for n in T))
    c, T = ckpt["gpt2"]
    m = models["gpt2"]
    ids, mask = _batch(rng, m.cfg.V, [S, 5], S)
    ref = m.logits(ids, mask)
    calt = {k_: v_ for k_, v_ in c.items() if k_ not in ("n_embd", "n_layer", "n_head", "n_positions")}
    calt.update(hidden_size=c["n_embd"], num_hidden_layers=c["n_layer"],
                num_attention_heads=c["n_head"], max_position_embeddings=c["n_positions"])
    st.check("gpt2 hidden_size/num_* spellings = n_* spellings",
             rel(load(st.save("gpt2-alt", calt, T)).logits(ids, mask), ref) == 0.0)
    P, L = c["n_positions"], c["n_layer"]
    Tl = {n[len("transformer."):]: v for n, v in T.items()}
    dts = {}
    tri = np.tril(np.ones((P, P), dtype=np.float32))[None, None]
    for i in range(L):
        Tl["h.%d.attn.bias" % i] = tri
        Tl["h.%d.attn.masked_bias" % i] = np.array(-1e4, dtype=np.float32)
    Tl["lm_head.weight"] = np.zeros_like(T["transformer.wte.weight"])  # tied: ignored
    st.check("gpt2 legacy unprefixed names + F32 attn.bias/masked_bias buffers: identical logits",
             np.array_equal(load(st.save("gpt2-legacy", c, Tl)).logits(ids, mask), ref))
    for i in range(L):
        dts["h.%d.attn.bias" % i] = "U8" if i % 2 else "BOOL"
    st.check("gpt2 legacy U8/BOOL attn.bias skipped by name: identical logits",
             np.array_equal(load(st.save("gpt2-legacy-u8", c, Tl, dtypes=dts)).logits(ids, mask), ref))
    c, T = ckpt["gpt_neox"]
    m = models["gpt_neox"]
    ids, mask = _batch(rng, m.cfg.V, [S, 5], S)
    Tl, dts = dict(T), {}
    for i in range(c["num_hidden_layers"]):
        p = "gpt_neox.layers.%d.attention." % i
        Tl[p + "bias"] = np.tril(np.ones((64, 64), dtype=bool))[None, None]
        dts[p + "bias"] = "BOOL"
        Tl[p + "masked_bias"] = np.array(-1e9, dtype=np.float32)
        Tl[p + "rotary_emb.inv_freq"] = np.zeros(m.cfg.rot // 2, dtype=np.float32)  # wrong on purpose
    st.check("gpt_neox legacy BOOL attention.bias + masked_bias + inv_freq buffers: identical logits",
             np.array_equal(load(st.save("neox-legacy", c, Tl, dtypes=dts)).logits(ids, mask),
                            m.logits(ids, mask)))
    cv5 = {k_: v_ for k_, v_ in c.items() if k_ not in ("rotary_pct", "rotary_emb_base")}
    cv5["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0,
                              "partial_rotary_factor": 0.5}
    st.check("gpt_neox v5 rope_parameters = rotary_pct/rotary_emb_base",
             np.array_equal(Model(parse_config(cv5), m.w).logits(ids, mask), m.logits(ids, mask)))

    # 10. neox residual forms; gpt2 scale flags
    seq = Model(parse_config(dict(c, use_parallel_residual=False)), m.w)
    dlt = float(np.max(np.abs(seq.logits(ids, mask) - m.logits(ids, mask))))
    st.check("gpt_neox parallel vs sequential residual differ", dlt > 1e-2, "max |d| %.3f" % dlt)
    seq_naive = seq.forward(ids, mask, naive_attention=True)["logits"]
    st.check("gpt_neox sequential: naive = vectorised", rel(seq_naive, seq.logits(ids, mask)) < 1e-12)
    cg2, Tg2 = ckpt["gpt2"]
    mg2 = models["gpt2"]
    inv = Model(parse_config(dict(cg2, scale_attn_by_inverse_layer_idx=True)), mg2.w)
    nos = Model(parse_config(dict(cg2, scale_attn_weights=False)), mg2.w)
    ids, mask = _batch(rng, mg2.cfg.V, [S, 5], S)
    st.check("gpt2 scale_attn_by_inverse_layer_idx: naive = vectorised, differs from default",
             rel(inv.forward(ids, mask, naive_attention=True)["logits"], inv.logits(ids, mask)) < 1e-12
             and rel(inv.logits(ids, mask), mg2.logits(ids, mask)) > 1e-6)
    st.check("gpt2 scale_attn_weights=false: naive = vectorised, differs from default",
             rel(nos.forward(ids, mask, naive_attention=True)["logits"], nos.logits(ids, mask)) < 1e-12
             and rel(nos.logits(ids, mask), mg2.logits(ids, mask)) > 1e-6)
    # layer 0 unaffected by the inverse layer index (divides by 1)
    st.check("gpt2 inverse layer idx leaves layer 0 unchanged",
             rel(inv.forward(ids, mask)["hidden"][1], mg2.forward(ids, mask)["hidden"][1]) == 0.0)

    # 11. phi3 longrope (§5.6)
    cp, Tp = ckpt["phi3"]
    mp = models["phi3"]
    half = mp.cfg.rot // 2
    short = [1.0 + 0.5 * j for j in range(half)]
    long_ = [2.0 + 3.0 * j for j in range(half)]
    lr = dict(cp, original_max_position_embeddings=8, max_position_embeddings=32,
              rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long_})
    mlr = Model(parse_config(lr), mp.w)
    a_exp = math.sqrt(1 + math.log(4) / math.log(8))
    st.check("phi3 longrope attention factor sqrt(1 + ln f / ln orig)",
             abs(mlr.cfg.rope[0][3]["attention_factor"] - a_exp) < 1e-15)
    only = lambda fac: Model(parse_config(dict(lr, rope_scaling={"type": "longrope",
                                                                 "short_factor": fac,
                                                                 "long_factor": fac})), mp.w)
    ids8, _ = _batch(rng, mp.cfg.V, [8], 8)
    ids9, _ = _batch(rng, mp.cfg.V, [9], 9)
    st.check("phi3 longrope: S = original uses short factors",
             np.array_equal(mlr.logits(ids8), only(short).logits(ids8))
             and rel(mlr.logits(ids8), only(long_).logits(ids8)) > 1e-6)
    st.check("phi3 longrope: S = original + 1 uses long factors at every position",
             np.array_equal(mlr.logits(ids9), only(long_).logits(ids9)))
    st.check("phi3 longrope: real positions depend on the call length (not padding-invariant)",
             rel(mlr.logits(ids9)[0, :8], mlr.logits(ids9[:, :8])[0]) > 1e-6)
    ones = Model(parse_config(dict(lr, rope_scaling={"type": "longrope", "short_factor": [1.0] * half,
                                                     "long_factor": [1.0] * half,
                                                     "attention_factor": 1.0})), mp.w)
    st.check("phi3 longrope with unit factors and attention_factor 1 = no scaling",
             np.array_equal(ones.logits(ids9), mp.logits(ids9)))
    st.check("phi3 longrope: naive = vectorised",
             rel(mlr.forward(ids9, None, naive_attention=True)["logits"], mlr.logits(ids9)) < 1e-12)

    # 12. width pruning: zeroing neurons = removing them (per-layer widths from shapes)
    pct = [25, 50, 10, 40]
    for fam in fams:
        c, T = ckpt[fam]
        m = models[fam]
        kept, zero = {}, {}
        T2 = dict(T)
        for i in range(m.cfg.L):
            I = m.widths[i]
            sc = layer_neuron_scores(m, i, ("MAW", "VOW", "PON", "L2")[i % 4])
            k_ = keep_count(pct[i % 4], I)
            kept[i] = kept_indices(sc, k_)
            zero[i] = sorted(set(range(I)) - set(kept[i]))
            T2 = slice_width(fam, T2, i, kept[i])
        c2 = dict(c)
        sizes = [len(kept[i]) for i in range(m.cfg.L)]
        c2["intermediate_sizes"] = sizes
        if fam == "gpt2":
            c2["n_inner"] = max(sizes)
        else:
            c2["intermediate_size"] = max(sizes)
        mp_ = load(st.save(fam + "-width", c2, T2))
        ids, mask = _batch(rng, m.cfg.V, [S, 7], S)
        r = rel(mp_.logits(ids, mask), m.logits(ids, mask, zero_neurons=zero))
        st.check("%s width slice (k per layer %s) = zeroed activations" % (fam, sizes),
                 r < 1e-12 and mp_.widths == sizes, "rel %.1e" % r)
        zn = m.forward(ids, mask, zero_neurons=zero, naive_attention=True)["logits"]
        st.check("%s zeroed neurons: naive loops = vectorised" % fam,
                 rel(zn, m.logits(ids, mask, zero_neurons=zero)) < 1e-12)
        st.check("%s zeroing changes logits (the test bites)" % fam,
                 rel(m.logits(ids, mask, zero_neurons=zero), m.logits(ids, mask)) > 1e-6)
        if fam in ("gpt2", "gpt_neox"):
            H = m.cfg.H
            red = m.param_count() - mp_.param_count()
            exp = sum((m.widths[i] - sizes[i]) * (2 * H + 1) for i in range(m.cfg.L))
            st.check("%s width prune removes (I-k)(2H+1) parameters per layer" % fam, red == exp,
                     "%d" % red)

    # 13. depth pruning = skipping blocks
    for fam in fams:
        c, T = ckpt[fam]
        m = models[fam]
        removed = {1, 3} if m.cfg.L >= 4 else {1}
        c2, T2 = remove_layers(fam, c, T, removed)
        md = load(st.save(fam + "-depth", c2, T2))
        ids, mask = _batch(rng, m.cfg.V, [S, 7], S)
        r = rel(md.logits(ids, mask), m.logits(ids, mask, skip_layers=removed))
        st.check("%s depth prune %s = skipping those blocks" % (fam, sorted(removed)), r == 0.0,
                 "rel %.1e" % r)
        if fam == "gemma2":
            c3_ = {k_: v_ for k_, v_ in c2.items() if k_ != "layer_types"}
            md2 = Model(parse_config(c3_), md.w)
            st.check("gemma2 depth prune without the written layer_types differs (§7.3)",
                     rel(md2.logits(ids, mask), md.logits(ids, mask)) > 1e-6)
    cg2, Tg2 = ckpt["gpt2"]
    ci = dict(cg2, scale_attn_by_inverse_layer_idx=True)
    c2, T2 = remove_layers("gpt2", ci, Tg2, {1})
    mi = load(st.save("gpt2-inv", ci, Tg2))
    md = load(st.save("gpt2-inv-depth", c2, T2))
    ids, mask = _batch(rng, mi.cfg.V, [S, 7], S)
    st.check("gpt2 with scale_attn_by_inverse_layer_idx: depth prune != skipping (§8.1)",
             rel(md.logits(ids, mask), mi.logits(ids, mask, skip_layers={1})) > 1e-6)

    # 14. parameter counts (arch-gpt2-neox.md §2.4)
    per = lambda H, I: 4 * H * H + 2 * H * I + 9 * H + I
    st.check("gpt2 published total 124,439,808 from the formula",
             50257 * 768 + 1024 * 768 + 12 * per(768, 3072) + 2 * 768 == 124439808)
    st.check("pythia-70m published total 70,426,624 from the formula",
             2 * 50304 * 512 + 6 * per(512, 2048) + 2 * 512 == 70426624)
    st.check("12H^2 + 13H = per layer at I = 4H", per(768, 3072) == 12 * 768 ** 2 + 13 * 768)
    m = models["gpt2"]
    k_ = m.cfg
    exp = k_.V * k_.H + k_.P * k_.H + sum(per(k_.H, I) for I in m.widths) + 2 * k_.H
    st.check("gpt2 tiny parameter count = formula", m.param_count() == exp,
             "%d" % m.param_count())
    m = models["gpt_neox"]
    k_ = m.cfg
    exp = 2 * k_.V * k_.H + sum(per(k_.H, I) for I in m.widths) + 2 * k_.H
    st.check("gpt_neox tiny parameter count = formula", m.param_count() == exp,
             "%d" % m.param_count())
    c, T = make_checkpoint("gpt_neox", seed=5, attention_bias=False)
    mnb = load(st.save("neox-nobias", c, T))
    exp = 2 * mnb.cfg.V * mnb.cfg.H + sum(per(mnb.cfg.H, I) - 4 * mnb.cfg.H for I in mnb.widths) \
        + 2 * mnb.cfg.H
    st.check("gpt_neox without attention biases = formula minus 4H per layer",
             mnb.param_count() == exp, "%d" % mnb.param_count())
    ids, mask = _batch(rng, mnb.cfg.V, [S, 5], S)
    st.check("gpt_neox without attention biases: naive = vectorised",
             rel(mnb.forward(ids, mask, naive_attention=True)["logits"], mnb.logits(ids, mask)) < 1e-12)
    c, T = make_checkpoint("gemma", seed=6, attention_bias=True)
    mab = load(st.save("gemma-bias", c, T))
    ids, mask = _batch(rng, mab.cfg.V, [S, 5], S)
    st.check("gemma attention_bias: naive = vectorised",
             rel(mab.forward(ids, mask, naive_attention=True)["logits"], mab.logits(ids, mask)) < 1e-12)

    # 15. scores: definitions on a hand example, orientation, k and ties
    G = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 1.0]])
    U = np.array([[0.0, -1.0, 2.0], [1.0, 1.0, 1.0]])
    st.check("MAW rng = max + |min| (all-positive row gives max + min)",
             list(_rng(G, "f64")) == [4.0, 5.0])
    st.check("VOW unbiased", np.allclose(_var(G, "f64"), [1.0, np.var([-4, 0.5, 1], ddof=1)]))
    st.check("PON = L1*L1, L2 = L2+L2", np.allclose(_l1(G, "f64") * _l1(U, "f64"), [18.0, 16.5])
             and np.allclose(_l2(G, "f64") + _l2(U, "f64"),
                             [math.sqrt(14) + math.sqrt(5), math.sqrt(17.25) + math.sqrt(3)]))
    mp = models["phi3"]
    gu = mp.w["model.layers.0.mlp.gate_up_proj.weight"]
    I = gu.shape[0] // 2
    st.check("phi3 GLU scores use gate_up rows [0,I) as G and [I,2I) as U",
             np.array_equal(layer_neuron_scores(mp, 0, "PON", "f64"),
                            np.abs(gu[:I]).sum(1) * np.abs(gu[I:]).sum(1)))
    mg = models["gpt2"]
    cfc = mg.w["transformer.h.0.mlp.c_fc.weight"]
    cpj = mg.w["transformer.h.0.mlp.c_proj.weight"]
    st.check("gpt2 scores: r_j = c_fc column j, c_j = c_proj row j",
             np.array_equal(layer_neuron_scores(mg, 0, "L2", "f64"),
                            np.sqrt((cfc ** 2).sum(0)) + np.sqrt((cpj ** 2).sum(1)))
             and np.array_equal(layer_neuron_scores(mg, 0, "MAW", "f64"),
                                cfc.max(0) + np.abs(cfc.min(0))))
    mn = models["gpt_neox"]
    w1 = mn.w["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"]
    w2 = mn.w["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"]
    st.check("gpt_neox scores: r_j = dense_h_to_4h row j, c_j = dense_4h_to_h column j",
             np.array_equal(layer_neuron_scores(mn, 0, "PON", "f64"),
                            np.abs(w1).sum(1) * np.abs(w2).sum(0))
             and np.allclose(layer_neuron_scores(mn, 0, "VOW", "f64"), w1.var(1, ddof=1), rtol=0))
    table = [(8192, 20, 6554), (8192, 10, 7373), (8192, 15, 6964), (3072, 20, 2458),
             (3072, 99, 31), (3072, 100, 1), (3072, 0, 3072)]
    st.check("keep_count = behaviour doc §3.1 table", all(keep_count(p, I) == k for I, p, k in table))
    dtab = [(20, 32, 6528), (20, 256, 6400), (10, 128, 7296), (15, 128, 6912), (5, 32, 7776),
            (50, 256, 4096)]
    st.check("keep_count with divisor (floor) = §3.3 table",
             all(keep_count(p, 8192, d_) == k for p, d_, k in dtab))
    st.check("kept_indices: ties -> lower index, NaN largest, ascending",
             kept_indices([1.0, 3.0, 3.0, 2.0, 3.0], 2) == [1, 2]
             and kept_indices([1.0, float("nan"), 5.0, 5.0], 2) == [1, 2]
             and kept_indices([0.5] * 6, 3) == [0, 1, 2])

    # 16. layer importance (pfrun variant)
    for fam in ("gemma2", "gpt2", "gpt_neox"):
        m = models[fam]
        b1 = _batch(rng, m.cfg.V, [S, 7, 4], S)
        b2 = _batch(rng, m.cfg.V, [9, 9], 9)
        li = layer_importance(m, [b1, b2])
        singles1 = [layer_importance(m, [(b1[0][b:b + 1, :n], None)]) for b, n in enumerate([S, 7, 4])]
        exp = [(np.mean([s_[l] for s_ in singles1]) + layer_importance(m, [b2])[l]) / 2
               for l in range(m.cfg.L)]
        r = max(abs(a - b) for a, b in zip(li, exp))
        st.check("%s layer importance on padded batches = per-sample unpadded means" % fam,
                 r < 1e-13, "max |d| %.1e" % r)
        st.check("%s layer importance: no padding -> include_padding gives the same" % fam,
                 layer_importance(m, [b2]) == layer_importance(m, [b2], include_padding=True))
        st.check("%s layer importance: padding counted -> different" % fam,
                 max(abs(a - b) for a, b in zip(layer_importance(m, [b1], include_padding=True),
                                                layer_importance(m, [b1]))) > 1e-9)


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------

def _tolist(a):
    return None if a is None else np.asarray(a).tolist()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("logits", "forward"):
        sp = sub.add_parser(name)
        sp.add_argument("folder")
        sp.add_argument("--ids", required=True, help="JSON [[...], ...]")
        sp.add_argument("--mask", help="JSON [[...], ...] (default all ones)")
        sp.add_argument("--f64-constants", action="store_true",
                        help="plain float64 constants instead of HF's float32 ones")
    sp = sub.add_parser("scores")
    sp.add_argument("folder")
    sp.add_argument("--method", default="MAW", choices=METHODS)
    sp.add_argument("--precision", default="f32", choices=("f32", "f64"))
    sp.add_argument("--pruning-percentage", type=float)
    sp.add_argument("--expansion-divisor", type=int)
    sp = sub.add_parser("importance")
    sp.add_argument("folder")
    sp.add_argument("--batches", required=True, help="JSON [[ids, mask], ...]")
    sp.add_argument("--include-padding", action="store_true")
    sp = sub.add_parser("selftest")
    sp.add_argument("--keep", help="write the test checkpoints here and keep them")
    a = ap.parse_args(argv)
    if a.cmd == "selftest":
        return 0 if selftest(a.keep) else 1
    if a.cmd in ("logits", "forward"):
        m = load(a.folder, f32_constants=not a.f64_constants)
        ids = json.loads(a.ids)
        mask = json.loads(a.mask) if a.mask else None
        out = m.forward(ids, mask)
        if a.cmd == "logits":
            print(json.dumps({"logits": _tolist(out["logits"])}))
        else:
            print(json.dumps({k: (_tolist(v) if not isinstance(v, list) else [_tolist(x) for x in v])
                              for k, v in out.items()}))
        return 0
    if a.cmd == "scores":
        m = load(a.folder)
        sc = neuron_scores(m, a.method, a.precision)
        res = {"method": a.method, "precision": a.precision, "widths": m.widths,
               "scores": [s.tolist() for s in sc]}
        if a.pruning_percentage is not None:
            ks = [keep_count(a.pruning_percentage, len(s), a.expansion_divisor) for s in sc]
            res["k"] = ks
            res["kept"] = [kept_indices(s, k) for s, k in zip(sc, ks)]
        print(json.dumps(res))
        return 0
    if a.cmd == "importance":
        m = load(a.folder)
        batches = [(b[0], b[1] if len(b) > 1 else None) for b in json.loads(a.batches)]
        print(json.dumps({"layer_importance": layer_importance(m, batches, a.include_padding)}))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
