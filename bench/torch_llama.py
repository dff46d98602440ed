#!/usr/bin/python3
"""torch_llama.py -- the PyTorch (CPU) peer of pfrun's forward pass, for bench/compare_torch.sh.

A plain-PyTorch re-implementation of Hugging Face `LlamaForCausalLM` in eval mode
(transformers' modeling_llama, eager attention -- torch < 2.0 has no SDPA), so that
pfrun can be compared with "PyTorch on the CPU" without `transformers`:

  * RMSNorm computed in float32 and cast back (LlamaRMSNorm), weight * x.to(dtype);
  * rotate-half RoPE, cos/sin from float32 inv_freq (default, "linear" and "llama3"
    rope_scaling, the latter as transformers' _compute_llama3_parameters), cast to
    the activation dtype;
  * grouped-query attention through repeat_kv, additive causal mask filled with
    finfo(dtype).min, softmax in float32 cast back to the activation dtype;
  * SwiGLU MLP down(silu(gate(x)) * up(x)); q/k/v/o and MLP biases when present;
  * lm_head = embed_tokens when tied (or when lm_head.weight is absent);
  * greedy decoding with a KV cache concatenated per step (DynamicCache), the
    prompt step computing logits of the last position only (as generate() does).

Weights are read from model.safetensors (or the shards of model.safetensors.index.json)
without copies: the file is mapped copy-on-write, each tensor is np.frombuffer over
the mapping, viewed uint16 -> int16 -> torch.bfloat16 (F32/F16 directly). The
"bfloat16" configuration keeps BF16 weights and activations (HF with
torch_dtype=torch.bfloat16); "float32" widens every weight once (HF with
torch_dtype=torch.float32; 4 bytes a parameter).

Usage (/usr/bin/python3: Debian's python3-torch):
  torch_llama.py prefill  --model-path DIR [--batch 4] [--seq 512] [--runs 3] [--dtype bfloat16,float32]
  torch_llama.py decode   --model-path DIR [--prompt-len 16] [--new-tokens 64] [--runs 3] [--dtype ...]
  torch_llama.py generate --model-path DIR --ids 1,403,407 [--new-tokens 8] [--dtype float32]
  torch_llama.py nll      --model-path DIR --ids 1,403,407,...   (mean next-token NLL, as pfrun eval)
  torch_llama.py prefill,decode --model-path DIR --dtype bfloat16,float32   (both, per dtype)
  torch_llama.py probe --model-path DIR --dtype bfloat16,float32   (one linear layer per dtype:
                 GFLOP/s at M = 128 and ms at M = 1; the model is not read)
  common: --threads 2 (torch.set_num_threads), --seed 1234.

prefill: BATCH x SEQ random ids (fixed seed), one forward producing every position's
logits (the [B, S, vocab] tensor, in the activation dtype, as HF returns it); a
warm-up run, then --runs timed runs; prints the median and the best.
decode: greedy from a PROMPT_LEN-token prompt (ids (i*7919+1) % vocab, the prompt
bench_forward.c uses), NEW_TOKENS tokens; tokens/s of the one-token steps =
(NEW_TOKENS - 1) / their time (the first token comes with the prompt step), as
pfrun's pf_generate_greedy counts; a warm-up run, then --runs runs, median and best.
Machine-readable result lines start with "torch " and are key=value pairs.
"""
import argparse
import json
import math
import mmap
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- loading


def _map_safetensors(path, out):
    """Add the tensors of one .safetensors file to `out` (views of a private mapping)."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # writable, copy-on-write
    (n,) = struct.unpack("<Q", mm[:8])
    header = json.loads(mm[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    np_types = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in np_types:
            raise SystemExit(f"torch_llama: {path}: tensor {name}: dtype {dt} not supported")
        s, e = info["data_offsets"]
        item = np.dtype(np_types[dt]).itemsize
        if (base + s) % item:
            raise SystemExit(f"torch_llama: {path}: tensor {name} is not {item}-byte aligned")
        a = np.frombuffer(mm, dtype=np_types[dt], count=(e - s) // item, offset=base + s)
        if dt == "BF16":
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a)
        out[name] = t.view(info["shape"]) if info["shape"] else t.view(())


def load_checkpoint(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = {}
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        _map_safetensors(single, tensors)
    elif os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:
            _map_safetensors(os.path.join(model_dir, s), tensors)
    else:
        raise SystemExit(f"torch_llama: no model.safetensors in {model_dir}")
    return cfg, tensors


# --------------------------------------------------------------------------- RoPE


def rope_inv_freq(cfg, head_dim):
    """inv_freq and attention scaling, as transformers' ROPE_INIT_FUNCTIONS."""
    base = float(cfg.get("rope_theta", 10000.0))
    dim = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv_freq, 1.0
    if kind == "linear":
        return inv_freq / float(rs["factor"]), 1.0
    if kind == "llama3":  # _compute_llama3_parameters
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (
            high_freq_factor - low_freq_factor
        )
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
        return inv_freq_llama, 1.0
    raise SystemExit(f"torch_llama: rope_scaling type {kind!r} not supported")


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, nkv, s, hd = x.shape
    return x[:, :, None, :, :].expand(b, nkv, n_rep, s, hd).reshape(b, nkv * n_rep, s, hd)


# --------------------------------------------------------------------------- model


class Llama:
    def __init__(self, cfg, tensors, dtype):
        self.cfg = cfg
        self.dtype = dtype
        H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads") or self.nh
        self.hd = cfg.get("head_dim") or H // self.nh
        self.nl = cfg["num_hidden_layers"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.vocab = cfg["vocab_size"]
        if cfg.get("hidden_act", "silu") != "silu":
            raise SystemExit("torch_llama: only hidden_act silu is supported")
        self.scaling = self.hd**-0.5
        self.inv_freq, self.attention_scaling = rope_inv_freq(cfg, self.hd)

        conv = {}  # one converted tensor per source tensor (keeps tied weights tied)

        def w(name, required=True):
            t = tensors.get(name)
            if t is None:
                if required:
                    raise SystemExit(f"torch_llama: tensor {name} missing")
                return None
            if t.dtype != dtype:
                if name not in conv:
                    conv[name] = t.to(dtype)
                t = conv[name]
            return t

        self.embed = w("model.embed_tokens.weight")
        self.lm_head = w("lm_head.weight", required=False)
        self.tied = self.lm_head is None
        if self.tied:
            self.lm_head = self.embed
        self.norm = w("model.norm.weight")
        self.layers = []
        for i in range(self.nl):
            p = f"model.layers.{i}."
            L = {}
            for k in ("q", "k", "v", "o"):
                L[k] = w(p + f"self_attn.{k}_proj.weight")
                L[k + "b"] = w(p + f"self_attn.{k}_proj.bias", required=False)
            for k in ("gate", "up", "down"):
                L[k] = w(p + f"mlp.{k}_proj.weight")
                L[k + "b"] = w(p + f"mlp.{k}_proj.bias", required=False)
            L["ln1"] = w(p + "input_layernorm.weight")
            L["ln2"] = w(p + "post_attention_layernorm.weight")
            self.layers.append(L)

    def weight_bytes(self):
        seen, n = set(), 0
        ts = [self.embed, self.lm_head, self.norm] + [t for L in self.layers for t in L.values()]
        for t in ts:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                n += t.numel() * t.element_size()
        return n

    def rmsnorm(self, x, weight):  # LlamaRMSNorm
        input_dtype = x.dtype
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return weight * h.to(input_dtype)

    def rope(self, position_ids, dtype):  # LlamaRotaryEmbedding.forward
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        freqs = (inv @ pos).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype), sin.to(dtype)

    def forward(self, ids, cache=None, logits_to_keep=0):
        """ids [B, S] int64; cache: list of [k, v] per layer (grown in place) or None.
        Returns logits [B, S or logits_to_keep, vocab] in the activation dtype."""
        B, S = ids.shape
        past = cache[0][0].shape[2] if cache and cache[0][0] is not None else 0
        x = F.embedding(ids, self.embed)
        position_ids = torch.arange(past, past + S).unsqueeze(0)
        cos, sin = self.rope(position_ids, x.dtype)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None
        if S > 1:  # one new token sees every key: the mask would be all zeros
            mask = torch.full((S, past + S), torch.finfo(x.dtype).min, dtype=x.dtype)
            mask = torch.triu(mask, diagonal=past + 1)[None, None, :, :].expand(B, 1, -1, -1)
        n_rep = self.nh // self.nkv
        for li, L in enumerate(self.layers):
            residual = x
            h = self.rmsnorm(x, L["ln1"])
            q = F.linear(h, L["q"], L["qb"]).view(B, S, self.nh, self.hd).transpose(1, 2)
            k = F.linear(h, L["k"], L["kb"]).view(B, S, self.nkv, self.hd).transpose(1, 2)
            v = F.linear(h, L["v"], L["vb"]).view(B, S, self.nkv, self.hd).transpose(1, 2)
            q = (q * cos) + (rotate_half(q) * sin)
            k = (k * cos) + (rotate_half(k) * sin)
            if cache is not None:
                if cache[li][0] is not None:
                    k = torch.cat([cache[li][0], k], dim=-2)
                    v = torch.cat([cache[li][1], v], dim=-2)
                cache[li][0], cache[li][1] = k, v
            k = repeat_kv(k, n_rep)
            v = repeat_kv(v, n_rep)
            attn = torch.matmul(q, k.transpose(2, 3)) * self.scaling
            if mask is not None:
                attn = attn + mask
            attn = F.softmax(attn, dim=-1, dtype=torch.float32).to(q.dtype)
            o = torch.matmul(attn, v).transpose(1, 2).contiguous().reshape(B, S, -1)
            x = residual + F.linear(o, L["o"], L["ob"])
            residual = x
            h = self.rmsnorm(x, L["ln2"])
            g = F.silu(F.linear(h, L["gate"], L["gateb"])) * F.linear(h, L["up"], L["upb"])
            x = residual + F.linear(g, L["down"], L["downb"])
        x = self.rmsnorm(x, self.norm)
        if logits_to_keep:
            x = x[:, -logits_to_keep:, :]
        return F.linear(x, self.lm_head)

    def greedy(self, prompt_ids, new_tokens, eos_id=None, margins=False):
        """Greedy generation (batch 1). Returns (ids, prompt-step seconds, decode seconds,
        [(top1, top2, margin)] per step when margins)."""
        cache = [[None, None] for _ in range(self.nl)]
        ids = torch.tensor([prompt_ids], dtype=torch.long)
        out, info = [], []
        t0 = time.perf_counter()
        logits = self.forward(ids, cache, logits_to_keep=1)
        t1 = t_prompt = None
        for step in range(new_tokens):
            lg = logits[:, -1, :].to(torch.float32)
            nxt = int(torch.argmax(lg, dim=-1)[0])
            if margins:
                top = torch.topk(lg[0], 2)
                info.append((int(top.indices[0]), int(top.indices[1]),
                             float(top.values[0] - top.values[1]), float(top.values[0])))
            out.append(nxt)
            if step == 0:
                t1 = time.perf_counter()
                t_prompt = t1 - t0
            if eos_id is not None and nxt == eos_id:
                break
            if step + 1 < new_tokens:
                logits = self.forward(torch.tensor([[nxt]], dtype=torch.long), cache)
        t2 = time.perf_counter()
        return out, t_prompt, t2 - t1, info


# --------------------------------------------------------------------------- tokens -> text


def _byte_decoder():  # inverse of GPT-2's bytes_to_unicode (ByteLevel)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def decode_text(model_dir, ids):
    """tokenizer.decode(ids, skip_special_tokens=True) for the two BPE decoders in use
    (sentencepiece-style Replace/ByteFallback/Strip, and ByteLevel); None when absent."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        tok = json.load(f)
    inv = {i: t for t, i in tok["model"]["vocab"].items()}
    special = set()
    for a in tok.get("added_tokens", []):
        inv[a["id"]] = a["content"]
        if a.get("special"):
            special.add(a["id"])
    dec = json.dumps(tok.get("decoder"))
    data = bytearray()
    if "ByteLevel" in dec:
        bd = _byte_decoder()
        for i in ids:
            if i in special or i not in inv:
                continue
            data += bytes(bd.get(ch, 0) for ch in inv[i])
        return data.decode("utf-8", "replace")
    for i in ids:
        if i in special or i not in inv:
            continue
        t = inv[i]
        if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            data.append(int(t[3:5], 16))
        else:
            data += t.replace("\u2581", " ").encode("utf-8")
    s = data.decode("utf-8", "replace")
    return s[1:] if s.startswith(" ") else s


# --------------------------------------------------------------------------- modes


def blas_library():
    """The BLAS torch's float32 matmuls go through (Debian links the libblas.so.3 alternative)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libblas.so" in line:
                    return os.path.realpath(line.split()[-1])
    except OSError:
        pass
    return "unknown"


def parse_dtypes(s):
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "f32": torch.float32}
    out = []
    for d in s.split(","):
        if d not in names:
            raise SystemExit(f"torch_llama: unknown dtype {d}")
        out.append(names[d])
    return out


def dname(dtype):
    return str(dtype).replace("torch.", "")


def stats(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]), xs[0]


def run_prefill(model, args):
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, model.vocab, (args.batch, args.seq), generator=g, dtype=torch.long)
    times = []
    for r in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        logits = model.forward(ids)  # every position, as LlamaForCausalLM(input_ids).logits
        dt = time.perf_counter() - t0
        assert logits.shape == (args.batch, args.seq, model.vocab)
        del logits
        if r >= args.warmup:
            times.append(dt)
        print(f"  prefill run {r}{' (warm-up)' if r < args.warmup else ''}: {dt:.2f} s", file=sys.stderr)
    med, best = stats(times)
    n = args.batch * args.seq
    print(f"torch prefill_tokens_per_s={n / med:.1f} prefill_tokens_per_s_best={n / best:.1f} "
          f"prefill_s={med:.3f} prefill_s_best={best:.3f} batch={args.batch} seq={args.seq} "
          f"runs={args.runs} dtype={dname(model.dtype)} threads={torch.get_num_threads()}", flush=True)


def run_decode(model, args):
    prompt = [(i * 7919 + 1) % model.vocab for i in range(args.prompt_len)]
    rates, prompt_s, first = [], [], None
    for r in range(args.warmup + args.runs):
        toks, tp, td, _ = model.greedy(prompt, args.new_tokens)
        rate = (len(toks) - 1) / td if len(toks) > 1 else 0.0
        if first is None:
            first = toks
        elif toks != first:
            print("torch_llama: warning: greedy tokens differ between runs", file=sys.stderr)
        if r >= args.warmup:
            rates.append(rate)
            prompt_s.append(tp)
        print(f"  decode run {r}{' (warm-up)' if r < args.warmup else ''}: {rate:.2f} tokens/s, "
              f"prompt step {tp:.3f} s", file=sys.stderr)
    # median/best of the rates (stats() sorts ascending: the best rate is the last)
    rs = sorted(rates)
    med = stats(rates)[0]
    print(f"torch decode_tokens_per_s={med:.2f} decode_tokens_per_s_best={rs[-1]:.2f} "
          f"new_tokens={args.new_tokens} prompt_len={args.prompt_len} "
          f"prompt_step_s={stats(prompt_s)[0]:.3f} runs={args.runs} dtype={dname(model.dtype)} "
          f"threads={torch.get_num_threads()} first_ids={','.join(map(str, first[:8]))}", flush=True)


def run_probe(dtypes, args):
    """Time one linear layer per dtype, a prefill-like (M = 128) and a decode-like (M = 1) call on
    an 8192 x 2048 weight, so that a caller can leave out a dtype PyTorch has no fast kernel for
    on this CPU (bf16 without AVX512-BF16 or AMX: oneDNN's reference code, ~100x slower)."""
    g = torch.Generator().manual_seed(args.seed)
    n, k = 8192, 2048
    for dtype in dtypes:
        w = torch.randn(n, k, generator=g).to(dtype)
        rates = {}
        for m in (128, 1):
            x = torch.randn(m, k, generator=g).to(dtype)
            F.linear(x, w)  # warm-up
            best = float("inf")
            t_all = time.perf_counter()
            for _ in range(5):
                t0 = time.perf_counter()
                F.linear(x, w)
                best = min(best, time.perf_counter() - t0)
                if time.perf_counter() - t_all > 5:  # a slow kernel: one or two runs are enough
                    break
            rates[m] = best
        print(f"torch probe dtype={dname(dtype)} linear_gflops={2 * 128 * n * k / rates[128] * 1e-9:.2f} "
              f"gemv_ms={rates[1] * 1e3:.3f} threads={torch.get_num_threads()}", flush=True)


def run_generate(model, args):
    prompt = [int(t) for t in args.ids.replace("[", "").replace("]", "").replace(" ", "").split(",") if t]
    eos = model.cfg.get("eos_token_id") if args.stop_at_eos else None
    if isinstance(eos, list):
        eos = eos[0]
    toks, _, _, info = model.greedy(prompt, args.new_tokens, eos_id=eos, margins=True)
    for s, (a, b, m, v) in enumerate(info):
        print(f"  step {s} id {a} logit {v:.6f} second {b} margin {m:.6f}")
    print(f"torch generated_ids={','.join(map(str, toks))} dtype={dname(model.dtype)}")
    text = decode_text(args.model_path, prompt + toks)
    if text is not None:
        print("torch text=" + json.dumps(text, ensure_ascii=False))


def run_nll(model, args):
    ids = [int(t) for t in args.ids.replace("[", "").replace("]", "").replace(" ", "").split(",") if t]
    logits = model.forward(torch.tensor([ids], dtype=torch.long)).to(torch.float32)[0, :-1]
    nll = F.cross_entropy(logits, torch.tensor(ids[1:], dtype=torch.long)).item()
    print(f"torch nll={nll:.6f} perplexity={math.exp(nll):.4f} tokens={len(ids) - 1} dtype={dname(model.dtype)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", help="prefill, decode, generate or nll; a comma list runs several "
                    "(e.g. prefill,decode) on each dtype without converting the weights twice")
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--dtype", default="bfloat16", help="comma list of bfloat16,float32 (run in that order)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--ids", default="", help="generate/nll: token ids, e.g. from pfrun tokenize")
    ap.add_argument("--stop-at-eos", action="store_true", help="generate: stop at eos_token_id")
    args = ap.parse_args()

    modes = {"prefill": run_prefill, "decode": run_decode, "generate": run_generate, "nll": run_nll}
    torch.set_num_threads(args.threads)
    if args.mode == "probe":
        with torch.inference_mode():
            run_probe(parse_dtypes(args.dtype), args)
        return
    for m in args.mode.split(","):
        if m not in modes:
            raise SystemExit(f"torch_llama: unknown mode {m}")
    t0 = time.perf_counter()
    cfg, tensors = load_checkpoint(args.model_path)
    print(f"torch info version={torch.__version__} threads={torch.get_num_threads()} "
          f"blas={blas_library()} mkldnn={torch.backends.mkldnn.is_available()} "
          f"load_s={time.perf_counter() - t0:.2f}", flush=True)
    with torch.inference_mode():
        for dtype in parse_dtypes(args.dtype):
            t0 = time.perf_counter()
            model = Llama(cfg, tensors, dtype)
            print(f"torch model dtype={dname(dtype)} weight_bytes={model.weight_bytes()} "
                  f"tied={int(model.tied)} convert_s={time.perf_counter() - t0:.2f}", flush=True)
            for m in args.mode.split(","):
                modes[m](model, args)
            del model


if __name__ == "__main__":
    main()
