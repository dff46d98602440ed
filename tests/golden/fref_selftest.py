"""fref_selftest.py - part of families_ref.py (the float64 reference of six decoder families):
the self-test: tiny random checkpoints, properties the notes state. See families_ref.py for
the conventions."""
import json
import math
import os
import re
import shutil
import tempfile

import numpy as np

from fref_io import bf16_round, write_checkpoint
from fref_config import GEMMA_FAMILIES, parse_config
from fref_model import Model, attention_core, load
from fref_scores import (_l1, _l2, _rng, _var, keep_count, kept_indices, layer_importance,
    layer_neuron_scores)


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
