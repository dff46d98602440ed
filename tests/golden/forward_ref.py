#!/usr/bin/python3
"""forward_ref.py - an independent float64 numpy reference of the LLaMA-family
forward pass (Hugging Face LlamaForCausalLM / MistralForCausalLM /
Qwen2ForCausalLM / Qwen3ForCausalLM semantics, eval mode), used to produce the
golden values of tests/check_forward.c and tests/check_generate.c.

It shares no code with pfrun: it reads config.json with json and the
safetensors file with struct + json + numpy.frombuffer, and follows the
transformers modelling code step by step:
  embed_tokens -> per layer: input_layernorm (RMSNorm) -> q/k/v proj (+ bias)
  -> (qwen3: q_norm / k_norm RMSNorm over head_dim) -> RoPE (rotate_half,
  inv_freq default / linear / llama3) -> GQA (repeat_kv) attention, scores *
  head_dim**-0.5, causal + key padding mask, softmax -> o_proj (+ bias) ->
  residual -> post_attention_layernorm -> down(silu(gate) * up) -> residual
  -> final norm -> lm_head (tied: embed_tokens).
Everything is float64 (weights are widened exactly from F32/BF16/F16).

Usage (writes the C headers the tests include into OUT_DIR: forward_golden.h with the
case type, forward_golden_stories.h and forward_golden_synth.h with the data; run
from the repository root):
  /usr/bin/python3 tests/golden/forward_ref.py SHARED_MODELS SYNTH_CACHE tests/golden
SHARED_MODELS is ../shared/models (stories260K); SYNTH_CACHE holds the synthetic
checkpoints written by `pfrun analyze --model-path synthetic:NAME@11[:bf16]`
(folders NAME-s11-f32 / NAME-s11-bf16, the same bytes pf_test_synth writes for
seed 11). The llama3-RoPE case is llama-tiny with its config's rope_scaling
replaced by LLAMA3_SCALING below, and the sliding-window case is mistral-tiny
with "sliding_window": 5 (the C test makes the same config edits).
"""
import contextlib
import json
import math
import os
import struct
import sys

import numpy as np

LLAMA3_SCALING = {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                  "original_max_position_embeddings": 64, "rope_type": "llama3"}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        else:
            raise ValueError("unsupported dtype " + dt)
        out[name] = arr.reshape(info["shape"])
    return out


class Model:
    def __init__(self, folder, rope_scaling_override=None, sliding_window=None):
        with open(os.path.join(folder, "config.json")) as f:
            c = json.load(f)
        self.c = c
        mt = c.get("model_type", "llama")
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.hd = c.get("head_dim") or (128 if mt == "qwen3" else self.H // self.nh)
        self.L = c["num_hidden_layers"]
        self.V = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.tied = c.get("tie_word_embeddings", False)
        self.qk_norm = mt == "qwen3"
        self.window = sliding_window  # mistral: every layer slides when set
        rs = rope_scaling_override if rope_scaling_override is not None else c.get("rope_scaling")
        self.mscale = 1.0  # yarn: cos and sin times the attention factor
        self.inv_freq = self.rope_inv_freq(rs)
        self.w = load_safetensors(os.path.join(folder, "model.safetensors"))

    def rope_inv_freq(self, rs):
        hd = self.hd
        inv = 1.0 / (self.theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
        kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
        if kind == "default":
            return inv
        if kind == "linear":
            return inv / rs["factor"]
        if kind == "llama3":  # transformers _compute_llama3_parameters
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wl, high_wl = old / lo, old / hi
            wl = 2 * math.pi / inv
            llama = np.where(wl > low_wl, inv / factor, inv)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * llama / factor + smooth * llama
            medium = ~(wl < high_wl) & ~(wl > low_wl)
            return np.where(medium, smoothed, llama)
        if kind == "yarn":  # transformers 4.4x _compute_yarn_parameters, in float64
            factor = rs["factor"]
            self.mscale = rs.get("attention_factor") or 0.1 * math.log(factor) + 1.0
            fast, slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1
            ctx = self.c.get("max_position_embeddings", 2048)

            def corr(rot):
                return hd * math.log(ctx / (rot * 2 * math.pi)) / (2 * math.log(self.theta))
            low, high = max(math.floor(corr(fast)), 0), min(math.ceil(corr(slow)), hd - 1)
            if low == high:
                high += 0.001
            ramp = np.clip((np.arange(hd // 2, dtype=np.float64) - low) / (high - low), 0, 1)
            extra = 1 - ramp
            return inv / factor * (1 - extra) + inv * extra
        raise ValueError("rope type " + kind)

    def p(self, name):
        return self.w.get(name)

    def rms(self, x, w):
        var = np.mean(x * x, axis=-1, keepdims=True)
        return w * (x / np.sqrt(var + self.eps))

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.p(name + ".bias")
        return y + b if b is not None else y

    def rope(self, x, pos):  # x [B, heads, S, hd]
        freqs = np.outer(pos, self.inv_freq)
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos, sin = np.cos(emb) * self.mscale, np.sin(emb) * self.mscale
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    def attention(self, i, x, mask):
        B, S, _ = x.shape
        pre = "model.layers.%d.self_attn." % i
        q = self.linear(x, pre + "q_proj").reshape(B, S, self.nh, self.hd)
        k = self.linear(x, pre + "k_proj").reshape(B, S, self.nkv, self.hd)
        v = self.linear(x, pre + "v_proj").reshape(B, S, self.nkv, self.hd)
        if self.qk_norm:
            q = self.rms(q, self.w[pre + "q_norm.weight"])
            k = self.rms(k, self.w[pre + "k_norm.weight"])
        q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
        pos = np.arange(S, dtype=np.float64)
        q, k = self.rope(q, pos), self.rope(k, pos)
        rep = self.nh // self.nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        scores = q @ k.transpose(0, 1, 3, 2) * self.hd ** -0.5
        qi, kj = np.arange(S)[:, None], np.arange(S)[None, :]
        causal = kj <= qi
        if self.window:  # transformers sliding_window_overlay: kv_idx > q_idx - window
            causal &= kj > qi - self.window
        allowed = causal[None, None] & (mask[:, None, None, :] == 1)
        scores = np.where(allowed, scores, -np.inf)
        m = np.max(scores, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.where(allowed, np.exp(scores - m), 0.0)
        den = np.sum(e, axis=-1, keepdims=True)
        prob = e / np.where(den > 0, den, 1.0)
        out = (prob @ v).transpose(0, 2, 1, 3).reshape(B, S, self.nh * self.hd)
        return self.linear(out, pre + "o_proj")

    def mlp(self, i, x):
        pre = "model.layers.%d.mlp." % i
        g = self.linear(x, pre + "gate_proj")
        u = self.linear(x, pre + "up_proj")
        return self.linear(g / (1.0 + np.exp(-g)) * u, pre + "down_proj")

    def logits(self, ids, mask):
        x = self.w["model.embed_tokens.weight"][ids]
        for i in range(self.L):
            pre = "model.layers.%d." % i
            x = x + self.attention(i, self.rms(x, self.w[pre + "input_layernorm.weight"]), mask)
            x = x + self.mlp(i, self.rms(x, self.w[pre + "post_attention_layernorm.weight"]))
        x = self.rms(x, self.w["model.norm.weight"])
        head = self.w["model.embed_tokens.weight"] if self.tied else self.w["lm_head.weight"]
        return x @ head.T


def logsumexp(x):
    m = np.max(x, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


NSEL = 16


def sel_ids(p, V):
    return [(5 + 31 * i + 7 * p) % V for i in range(NSEL)]


def c_floats(vals, per_line=6):
    out, line = [], []
    for v in vals:
        line.append("%.9g" % v)
        if len(line) == per_line:
            out.append("    " + ", ".join(line) + ",")
            line = []
    if line:
        out.append("    " + ", ".join(line) + ",")
    return "\n".join(out)


def c_ints(vals, per_line=16):
    return "\n".join("    " + ", ".join(str(v) for v in vals[i:i + per_line]) + ","
                     for i in range(0, len(vals), per_line))


def emit_case(name, model, rows):
    """rows: list of token lists (right padded to the longest)."""
    B, S, V = len(rows), max(len(r) for r in rows), model.V
    ids = np.zeros((B, S), dtype=np.int64)
    mask = np.zeros((B, S), dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = r
        mask[b, :len(r)] = 1
    lg = model.logits(ids, mask)
    sel, lse, last = [], [], []
    for b in range(B):
        for s in range(S):
            sel += [lg[b, s, j] for j in sel_ids(s, V)]
            lse.append(logsumexp(lg[b, s]))
        last += list(lg[b, len(rows[b]) - 1])
    print("/* %s: batch %d, seq %d, vocab %d */" % (name, B, S, V))
    print("static const int32_t %s_ids[] = {\n%s\n};" % (name, c_ints(list(ids.reshape(-1)))))
    print("static const int32_t %s_mask[] = {\n%s\n};" % (name, c_ints(list(mask.reshape(-1)))))
    print("static const double %s_sel[] = { /* [B, S, NSEL] */\n%s\n};" % (name, c_floats(sel)))
    print("static const double %s_lse[] = { /* [B, S] */\n%s\n};" % (name, c_floats(lse)))
    print("static const double %s_last[] = { /* [B, V] at each row's last token */\n%s\n};"
          % (name, c_floats(last)))
    print("static const pf_golden_case %s = {\"%s\", %d, %d, %d, %s_ids, %s_mask, %s_sel, "
          "%s_lse, %s_last};\n" % (name, name, B, S, V, name, name, name, name, name))


def greedy(model, prompt, n):
    ids, margins = list(prompt), []
    for _ in range(n):
        a = np.array([ids], dtype=np.int64)
        lg = model.logits(a, np.ones_like(a))[0, -1]
        order = np.argsort(-lg, kind="stable")
        margins.append(lg[order[0]] - lg[order[1]])
        ids.append(int(order[0]))
    return ids[len(prompt):], margins


STORIES_40 = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
              401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328,
              432, 358, 394, 261, 370, 352]
STORIES_A = [1, 291, 262, 379, 286, 262, 415, 271, 299, 269, 265, 268, 315, 418, 419, 382, 276,
             262, 299, 299, 322, 265, 259, 388, 298, 276, 302, 259, 276, 406, 426]
STORIES_B = [1, 274, 287, 381, 261, 400, 428, 426, 291, 400, 428, 397, 355, 267, 352, 379, 269,
             410, 449, 425, 423, 427, 426]
ONCE = [1, 403, 407, 261, 378]
SYN = [1, 17, 250, 3, 99, 318, 42, 7, 160, 200, 11, 64]
SYN_B = [1, 300, 5, 77, 123, 9, 210]


def header(path, guard, first_lines, body):
    """Write one C header: include guard, comment/first lines, body() printing the rest."""
    with open(path, "w") as f, contextlib.redirect_stdout(f):
        print("#ifndef %s\n#define %s" % (guard, guard))
        for line in first_lines:
            print(line)
        body()
        print("\n#endif")


def main():
    shared, cache, out = sys.argv[1], sys.argv[2], sys.argv[3]
    # forward_golden.h: the case type (hand-readable); the data is split along the
    # real seam: the stories260K checkpoint from ../shared, and the synthetic presets.
    header(os.path.join(out, "forward_golden.h"), "PF_FORWARD_GOLDEN_H", [
        "/* forward_golden.h - GENERATED by tests/golden/forward_ref.py (float64 numpy reference",
        " * of the Hugging Face forward, independent of pfrun). Do not edit; regenerate with",
        " *   /usr/bin/python3 tests/golden/forward_ref.py ../shared/models \\",
        " *       ~/.cache/pfrun/synthetic tests/golden",
        " * after `pfrun analyze --model-path synthetic:NAME@11[:bf16]` for qwen2-tiny, qwen3-tiny,",
        " * mistral-tiny, llama-tiny and llama-tiny:bf16. Per case: ids/mask [B, S] (right padded),",
        " * logits at NSEL vocab ids per position (id_i(s) = (5 + 31 i + 7 s) mod V), the logsumexp",
        " * over the whole vocabulary per position, and all V logits at each row's last token. */",
        "#define PF_GOLDEN_NSEL %d\n" % NSEL,
        "typedef struct pf_golden_case {\n  const char *name;\n  int batch, seq, vocab;\n"
        "  const int32_t *ids, *mask;\n  const double *sel, *lse, *last;\n} pf_golden_case;"],
        lambda: None)
    stories = Model(os.path.join(shared, "stories260K"))

    def stories_body():
        emit_case("g_stories_40", stories, [STORIES_40])
        emit_case("g_stories_pad", stories, [STORIES_A, STORIES_B])
        toks, margins = greedy(stories, ONCE, 24)
        print("/* greedy continuation of stories260K from %s (\"Once upon a time\" with BOS);" % ONCE)
        print(" * smallest top-1/top-2 logit margin over these steps: %.4g */" % min(margins))
        print("static const int32_t g_stories_greedy[] = {\n%s\n};" % c_ints(toks))

    header(os.path.join(out, "forward_golden_stories.h"), "PF_FORWARD_GOLDEN_STORIES_H", [
        "/* forward_golden_stories.h - GENERATED by tests/golden/forward_ref.py (see "
        "forward_golden.h): stories260K (../shared/models) logits and greedy continuation. */",
        '#include "forward_golden.h"', ""], stories_body)
    syn = lambda n, dt="f32", **kw: Model(os.path.join(cache, "%s-s11-%s" % (n, dt)), **kw)

    def synth_body():
        emit_case("g_qwen2", syn("qwen2-tiny"), [SYN, SYN_B])
        emit_case("g_qwen3", syn("qwen3-tiny"), [SYN, SYN_B])
        emit_case("g_mistral", syn("mistral-tiny"), [SYN])
        emit_case("g_llama_bf16", syn("llama-tiny", "bf16"), [SYN])
        emit_case("g_mistral_window", syn("mistral-tiny", sliding_window=5), [SYN])
        emit_case("g_llama3_rope", syn("llama-tiny", rope_scaling_override=LLAMA3_SCALING), [SYN])

    header(os.path.join(out, "forward_golden_synth.h"), "PF_FORWARD_GOLDEN_SYNTH_H", [
        "/* forward_golden_synth.h - GENERATED by tests/golden/forward_ref.py (see "
        "forward_golden.h): logits of the seed-11 synthetic checkpoints. */",
        '#include "forward_golden.h"', ""], synth_body)


if __name__ == "__main__":
    main()
