"""fref_config.py - part of families_ref.py (the float64 reference of six decoder families):
config.json of the six families (Cfg, parse_config). See families_ref.py for the
conventions."""
import math
import sys

import numpy as np


F32_MIN = float(np.finfo(np.float32).min)  # -3.4028234663852886e38, the eager additive mask
GEMMA_FAMILIES = ("gemma", "gemma2", "gemma3_text")
FAMILIES = GEMMA_FAMILIES + ("phi3", "gpt2", "gpt_neox")

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
