#!/usr/bin/env bash
# make_seeds.sh — seed corpora of the libFuzzer harnesses, from the project's own
# fixtures: synthetic checkpoints written by pfrun, the committed recipes/*.yaml, recipes/data,
# and (when ../shared is there) the real tokenizers, their test strings and the
# two tiny trained checkpoints.
#
#   tests/fuzz/make_seeds.sh                 # small seeds -> tests/fuzz/corpus/<harness>/
#   tests/fuzz/make_seeds.sh --large DIR     # also full-size seeds -> DIR/<harness>/
#
# Environment: PFRUN (default build/pfrun), PFRUN_CACHE (where pfrun writes the
# synthetic checkpoints; default pfrun's own: $XDG_CACHE_HOME/pfrun or
# ~/.cache/pfrun), PF_SHARED (default ../shared beside the repository).
# The small seeds are what is committed (kept well under 1 MB in total: real
# tokenizers are cut down to their first merges, checkpoints to a few rows);
# the large ones (whole checkpoints, whole tokenizer.json files) are not.
# Needs python3 (standard library only). Re-running replaces the seeds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
large=""
if [[ "${1:-}" == "--large" ]]; then
  large="${2:?--large needs a folder}"
  mkdir -p "$large"
  large="$(cd "$large" && pwd)"
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--large DIR]" >&2
  exit 2
fi
pfrun="${PFRUN:-$root/build/pfrun}"
shared="${PF_SHARED:-$root/../shared}"
if [[ ! -x "$pfrun" ]]; then
  echo "make_seeds: no pfrun binary at $pfrun (build it: cmake -S . -B build && cmake --build build, or set PFRUN)" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "make_seeds: python3 is needed" >&2; exit 1; }
if [[ -n "${PFRUN_CACHE:-}" ]]; then
  cache="$PFRUN_CACHE"
elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
  cache="$XDG_CACHE_HOME/pfrun"
else
  cache="$HOME/.cache/pfrun"
fi

# The synthetic checkpoints (written to the cache on first use).
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for spec in llama-tiny qwen2-tiny qwen3-tiny mistral-tiny llama-small llama-tiny:bf16; do
  "$pfrun" analyze --model-path "synthetic:$spec" >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
done

out="$here/corpus"
rm -rf "$out"
mkdir -p "$out"
python3 - "$out" "$cache/synthetic" "$shared" "$root" "$large" <<'PY'
import json, os, struct, subprocess, sys

out, synth, shared, root, large = sys.argv[1:6]
SEP = b"\n#SHARD\n"

def put(harness, name, data, where=None):
    d = os.path.join(where or out, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(path):
    with open(path, "rb") as f:
        return f.read()

def synth_dir(preset, dtype="f32"):
    return os.path.join(synth, "%s-s1234-%s" % (preset, dtype))

# ---- safetensors ----

def st_read(path):
    b = read(path)
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    data = b[8 + n:]
    ts = []
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        a, z = e["data_offsets"]
        ts.append((name, e["dtype"], e["shape"], data[a:z]))
    ts.sort(key=lambda t: t[0])
    return ts, hdr.get("__metadata__")

def st_write(ts, meta=None):
    hdr, off, blobs = {}, 0, []
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, blob in ts:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)

def rows(t, k):
    """The first k rows of a tensor (the whole of a 1-D one)."""
    name, dt, shape, blob = t
    if len(shape) < 2:
        return t
    k = min(k, shape[0])
    per = len(blob) // shape[0] if shape[0] else 0
    return (name, dt, [k] + shape[1:], blob[:k * per])

def f32_to_f16(t):
    name, dt, shape, blob = t
    n = len(blob) // 4
    vals = struct.unpack("<%df" % n, blob)
    return (name, "F16", shape, struct.pack("<%de" % n, *vals))

tiny, meta = st_read(os.path.join(synth_dir("llama-tiny"), "model.safetensors"))
norms = [t for t in tiny if t[0].endswith("norm.weight")]
layer0 = [rows(t, 2) for t in tiny if ".layers.0." in t[0] or "embed" in t[0] or "lm_head" in t[0]]
put("fuzz_safetensors", "norms_f32", st_write(norms, meta))
put("fuzz_safetensors", "layer0_rows_f32", st_write(layer0, meta))
put("fuzz_safetensors", "norms_f16", st_write([f32_to_f16(t) for t in norms], meta))
bf, bmeta = st_read(os.path.join(synth_dir("llama-tiny", "bf16"), "model.safetensors"))
put("fuzz_safetensors", "layer0_rows_bf16",
    st_write([rows(t, 2) for t in bf if ".layers.0." in t[0]], bmeta))
q2, q2meta = st_read(os.path.join(synth_dir("qwen2-tiny"), "model.safetensors"))
put("fuzz_safetensors", "qwen2_bias", st_write([rows(t, 2) for t in q2 if ".layers.1." in t[0]], q2meta))
q3, q3meta = st_read(os.path.join(synth_dir("qwen3-tiny"), "model.safetensors"))
put("fuzz_safetensors", "qwen3_qk_norm", st_write([rows(t, 1) for t in q3 if ".layers.0.self_attn" in t[0]], q3meta))
put("fuzz_safetensors", "empty_header", st_write([]))
put("fuzz_safetensors", "metadata_only", st_write([], {"format": "pt", "note": "x"}))
put("fuzz_safetensors", "odd_shapes", st_write([
    ("scalar", "F32", [], struct.pack("<f", 1.5)),
    ("empty", "F32", [0, 4], b""),
    ("vec", "BF16", [3], b"\x80\x3f\x00\x40\x40\x40"),
    ("unsupported", "I64", [1], b"\0" * 8),
]))
put("fuzz_safetensors", "truncated", st_write(norms)[:200])
for n, ts in (("index_2_shards", layer0), ("index_3_shards", norms)):
    k = int(n.split("_")[1])
    shards = [ts[i::k] for i in range(k)]
    names = ["model-%05d-of-%05d.safetensors" % (i + 1, k) for i in range(k)]
    index = {"metadata": {"total_size": sum(len(t[3]) for t in ts)},
             "weight_map": {t[0]: names[i] for i in range(k) for t in shards[i]}}
    blob = json.dumps(index, indent=2).encode()
    for s in shards:
        blob += SEP + st_write(s, {"format": "pt"})
    put("fuzz_safetensors_index", n, blob)
put("fuzz_safetensors_index", "missing_tensor",
    json.dumps({"weight_map": {"a": "model-00001-of-00001.safetensors"}}).encode() + SEP + st_write(norms[:1]))
put("fuzz_safetensors_index", "bad_shard_name",
    json.dumps({"weight_map": {"a": "../model.safetensors"}}))
if large:
    for name in ("stories260K", "aidreams260K"):
        p = os.path.join(shared, "models", name, "model.safetensors")
        if os.path.exists(p):
            put("fuzz_safetensors", name, read(p), large)
    put("fuzz_safetensors", "llama-small", read(os.path.join(synth_dir("llama-small"), "model.safetensors")), large)

# ---- config.json ----

configs = {}
for preset in ("llama-tiny", "qwen2-tiny", "qwen3-tiny", "mistral-tiny", "llama-small"):
    configs[preset] = json.loads(read(os.path.join(synth_dir(preset), "config.json")))
for name in ("stories260K", "aidreams260K"):
    p = os.path.join(shared, "models", name, "config.json")
    if os.path.exists(p):
        configs[name] = json.loads(read(p))
base = configs["llama-tiny"]
def variant(**kw):
    c = dict(base)
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c
L = base["num_hidden_layers"]
configs["llama3_rope"] = variant(rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                                 rope_theta=500000.0, tie_word_embeddings=True)
configs["rope_parameters"] = variant(rope_theta=None, rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                      "rope_theta": 1e6}, dtype="bfloat16",
                                     torch_dtype=None)
configs["per_layer_widths"] = variant(intermediate_sizes=[176 - 16 * i for i in range(L)])
configs["layer_types"] = variant(model_type="qwen3", layer_types=["sliding_attention", "full_attention"] * (L // 2),
                                 sliding_window=32, use_sliding_window=True, max_window_layers=2)
configs["mistral_window"] = variant(model_type="mistral", sliding_window=4096, num_key_value_heads=1)
configs["unknown_type"] = variant(model_type="phi3", head_dim=32, attention_bias=True, mlp_bias=True,
                                  extra={"nested": [1, 2.5, None, "x"]})
configs["no_model_type"] = variant(model_type=None, hidden_act="gelu", max_position_embeddings=None)
for name, c in configs.items():
    put("fuzz_config", name, json.dumps(c, indent=2) + "\n")
put("fuzz_config", "null_values", '{"hidden_size":64,"intermediate_size":176,"num_hidden_layers":2,'
    '"num_attention_heads":4,"vocab_size":320,"num_key_value_heads":null,"head_dim":null,'
    '"rope_scaling":null,"sliding_window":0}')

# regressions: the inputs of the findings in docs/reliability.md
put("fuzz_config", "regress_f3_number_round_trip",
    json.dumps(variant(rope_theta=None, rope_parameters={"rope_theta": 12345.5})).replace(
        "12345.5", "955888888888888888888888888888888888888888888888888888888881615.0"))
put("fuzz_config", "regress_f4_huge_positions", json.dumps(variant(rope_scaling={
    "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 1})).replace('"original_max_position_embeddings": 1',
                                                     '"original_max_position_embeddings": 8e192'))

# ---- tokenizers ----

def vector_texts(name, n):
    p = os.path.join(shared, "tokenizers", "vectors", name + ".jsonl")
    if not os.path.exists(p):
        return []
    out = []
    for line in read(p).decode().splitlines()[:n]:
        out.append(json.loads(line)["text"])
    return out

def reduce_tokenizer(j, n_merges=200, n_low=300):
    """Keep the components; cut the vocabulary to ids < n_low plus what the first
    n_merges merges need (ids unchanged), and those merges."""
    m = j["model"]
    vocab, merges = m["vocab"], m.get("merges") or []
    keep = {t for t, i in vocab.items() if i < n_low}
    if m.get("unk_token") in vocab:
        keep.add(m["unk_token"])
    kept = []
    for mg in merges:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in vocab and b in vocab and a + b in vocab:
            keep.update((a, b, a + b))
            kept.append(mg)
        if len(kept) == n_merges:
            break
    j = dict(j)
    j["model"] = dict(m, vocab={t: vocab[t] for t in sorted(keep, key=lambda t: vocab[t])}, merges=kept)
    return j

def tok_seed(tok_json, text, cfg=None):
    b = json.dumps(tok_json, ensure_ascii=False, separators=(",", ":")).encode() + b"\0" + text.encode()
    if cfg is not None:
        b += b"\0" + json.dumps(cfg).encode()
    return b

texts = ["Hello world", " Hello  world,\n\tdon't 123 \u00e9t\u00e9 ", "<s>x</s><|endoftext|>", ""]
for name in ("stories260K", "aidreams260K"):
    d = os.path.join(shared, "models", name)
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        j = json.loads(read(os.path.join(d, "tokenizer.json")))
        cfg = json.loads(read(os.path.join(d, "tokenizer_config.json")))
        put("fuzz_tokenizer", name, tok_seed(j, "Once upon a time, \u00e9 \U0001f600 12345", cfg))
sj = json.loads(read(os.path.join(synth_dir("llama-tiny"), "tokenizer.json")))
scfg = json.loads(read(os.path.join(synth_dir("llama-tiny"), "tokenizer_config.json")))
put("fuzz_tokenizer", "synthetic", tok_seed(sj, texts[1], scfg))
tokdir = os.path.join(shared, "tokenizers")
for name in sorted(os.listdir(tokdir)) if os.path.isdir(tokdir) else []:
    p = os.path.join(tokdir, name, "tokenizer.json")
    if not os.path.exists(p):
        continue
    j = json.loads(read(p))
    put("fuzz_tokenizer", "reduced_" + name, tok_seed(reduce_tokenizer(j), "\n".join(vector_texts(name, 8))))
    if large:
        put("fuzz_tokenizer", name, tok_seed(j, "\n".join(vector_texts(name, 30))), large)
# components the real files do not use, on the synthetic vocabulary
kitchen = dict(sj)
kitchen["normalizer"] = {"type": "Sequence", "normalizers": [
    {"type": "NFKC"}, {"type": "Replace", "pattern": {"Regex": "\\s{2,}"}, "content": " "},
    {"type": "Strip", "strip_left": True, "strip_right": False}, {"type": "Lowercase"},
    {"type": "NFD"}, {"type": "StripAccents"}, {"type": "NFC"}]}
kitchen["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": ","}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"Regex": "[0-9]+"}, "behavior": "MergedWithPrevious", "invert": True},
    {"type": "Split", "pattern": {"Regex": "\\p{P}"}, "behavior": "Contiguous", "invert": False},
    {"type": "Digits", "individual_digits": True}, {"type": "WhitespaceSplit"},
    {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}]}
kitchen["decoder"] = {"type": "Sequence", "decoders": [
    {"type": "ByteLevel"}, {"type": "Replace", "pattern": {"String": "x"}, "content": "y"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}, {"type": "Fuse"}]}
kitchen["post_processor"] = {"type": "Sequence", "processors": [
    {"type": "ByteLevel"}, {"type": "RobertaProcessing", "cls": ["<s>", 1], "sep": ["</s>", 2]}]}
put("fuzz_tokenizer", "kitchen_sink", tok_seed(kitchen, texts[1] + " Caf\u00e9,  12,345 x"))
spm = dict(sj)
spm["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
spm["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
    {"type": "Whitespace"}]}
spm["decoder"] = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
    {"type": "Fuse"}, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"}]}
spm["model"] = dict(sj["model"], byte_fallback=True, fuse_unk=True, ignore_merges=True,
                    continuing_subword_prefix="##", end_of_word_suffix="</w>")
spm["post_processor"] = {"type": "TemplateProcessing",
                         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
spm["added_tokens"] = (sj.get("added_tokens") or []) + [
    {"id": 300, "content": "[X]", "single_word": True, "lstrip": True, "rstrip": True, "normalized": True, "special": False}]
put("fuzz_tokenizer", "regress_f1_empty_cached_word",
    b'{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}\0b b b')
put("fuzz_tokenizer", "regress_f2_huge_id", b'{"model":{"type":"BPE","vocab":{"a":6.7e125}}}\0a')
put("fuzz_tokenizer", "sentencepiece_like", tok_seed(spm, "a [X] b [X]c\u00e9\U0001f600", {"add_bos_token": True}))

real = set()
for name in sorted(os.listdir(os.path.join(shared, "tokenizers", "vectors"))) if os.path.isdir(os.path.join(shared, "tokenizers", "vectors")) else []:
    if name.endswith(".jsonl"):
        real.update(vector_texts(name[:-6], 30))
for i, t in enumerate(sorted(real)):
    put("fuzz_tokenizer_real", "vector_%02d" % i, t)
put("fuzz_tokenizer_real", "invalid_utf8", b"ok \xff\xfe \xc3")
put("fuzz_tokenizer_real", "surrogate", b"\xed\xa0\x80 and \xf4\x90\x80\x80")
put("fuzz_tokenizer_real", "specials", "<|begin_of_text|><s></s><|endoftext|><|im_start|>user\n<0x41>")
for name in ("calib.txt", "eval.txt"):
    put("fuzz_tokenizer_real", name, read(os.path.join(root, "recipes", "data", name)))

# ---- dataset reader (first byte: even = .jsonl, odd = .txt; bit 1: field "content") ----

put("fuzz_dataset", "calib_txt", b"\x01" + read(os.path.join(root, "recipes", "data", "calib.txt")))
put("fuzz_dataset", "eval_txt_crlf", b"\x01" + read(os.path.join(root, "recipes", "data", "eval.txt")).replace(b"\n", b"\r\n"))
brown = os.path.join(shared, "data", "brown-calib.jsonl")
if os.path.exists(brown):
    put("fuzz_dataset", "brown_jsonl", b"\x00" + b"\n".join(read(brown).split(b"\n")[:4]) + b"\n")
put("fuzz_dataset", "jsonl_fields", b"\x02" + b'{"content": "a \\u00e9 \\ud83d\\ude00", "text": 1}\n\n'
    b'{"content": "second", "n": [1, {"x": null}]}\n{"content": ""}\n')
put("fuzz_dataset", "jsonl_errors", b"\x00" + b'{"text": "ok"}\n{"text": 5}\n')

# ---- recipes ----

rdir = os.path.join(root, "recipes")
try:  # the committed recipes (work in progress in the tree is not a seed)
    names = subprocess.run(["git", "-C", root, "ls-files", "recipes"], capture_output=True,
                           text=True, check=True).stdout.split()
    names = [os.path.basename(n) for n in names if os.path.dirname(n) == "recipes"]
except (OSError, subprocess.CalledProcessError):
    names = os.listdir(rdir)
for name in sorted(names):
    if name.endswith(".yaml"):
        put("fuzz_recipe", name, read(os.path.join(rdir, name)))
put("fuzz_recipe", "sets_and_aliases.yaml", """#set model=synthetic:llama-tiny
#set pct=25
pfrun: 1
name: fuzz
vars:
  model: [../missing, synthetic:llama-small]
  out: ${name}-out
steps:
  - id: base
    op: load
    path: ${model}
  - id: s
    op: score
    model: base
    method: &m VOW
    layer_indices: "0,1"
  - id: w
    op: prune_width
    model: base
    pruning_percentage: ${pct}
    expansion_divisor: 32
    method: *m
  - id: d
    op: prune_depth
    model: w
    layer_indices: [0]
  - op: save
    model: d
    path: ${out}/x
    dtype: bfloat16
    max_shard_size: 1MB
""")
put("fuzz_recipe", "calibrate.yaml", """pfrun: 1
name: cal
steps:
  - id: m
    op: load
    path: synthetic:qwen2-tiny
  - id: c
    op: calibrate
    model: m
    data: recipes/data/calib.txt
    max_length: 32
    samples: 2
    cache: cache-folder
  - id: i
    op: importance
    model: m
    data: recipes/data/eval.txt
  - id: e
    op: evaluate
    model: m
    compare: m
    data: recipes/data/eval.txt
    prompt: Once upon
  - op: generate
    model: m
    prompt: "Hi $${not a var}"
    max_new_tokens: 3
  - op: prune_depth
    model: m
    importance: i
    num_layers_to_remove: 1
  - op: analyze
    model: m
""")
put("fuzz_recipe", "errors.yaml", "pfrun: 1\nname: e\nsteps:\n  - op: prune_width\n    model: later\n  - id: later\n    op: load\n    path: synthetic:nope@x:f8\n")

# ---- command lines (one argument per line) ----

cli = {
    "prune": ["prune", "--model-path", "synthetic:llama-tiny", "--output-path", "out", "--pruning-type",
              "MLP_GLU", "--method", "MAW", "--pruning-percentage", "20", "--expansion-divisor", "32",
              "--dry-run", "--max-shard-size=500MB", "--dtype", "bfloat16", "--overwrite"],
    "prune_depth": ["prune", "--model-path", "m", "--output-path", "o", "--pruning-type", "DEPTH",
                    "--layer-indices", "2, 5,8", "--layer-selection-method", "last", "--stats-json", "s.json"],
    "prune_calib": ["prune", "--model-path", "m", "--output-path", "o", "--calibration-data", "c.jsonl",
                    "--max-length", "64", "--batch-size=2", "--expansion-rate", "1.5", "--quiet"],
    "analyze": ["analyze", "--model-path", "synthetic:qwen3-tiny", "--json"],
    "recipe": ["recipes/demo.yaml", "--set", "model=synthetic:llama-tiny", "--set=x=1", "--dry-run"],
    "lua": ["script.lua", "a", "--b", "c"],
    "tokenize": ["tokenize", "--model-path", "d", "--no-special", "--", "-text"],
    "tokenize_input": ["tokenize", "--model-path=d", "--input", "x.jsonl", "--text-field", "body"],
    "importance": ["importance", "--model-path", "m", "--data", "d.txt", "--samples", "4", "--pack", "--json", "o.json"],
    "eval": ["eval", "--model-path", "m", "--compare", "p", "--data", "d.jsonl", "--prompt", "Hi",
             "--max-new-tokens", "5", "--num-runs", "1", "--warmup-runs", "0"],
    "generate": ["generate", "--model-path", "m", "--prompt", "Once", "--max-new-tokens=7"],
    "help": ["help", "prune"],
    "ops": ["ops", "prune_width"],
    "version": ["--version"],
    "bad": ["prune", "--pruning-percentage", "20", "--expansion-rate", "2", "--model-path"],
}
for name, args in cli.items():
    put("fuzz_cli", name, "\n".join(args))
PY

du -sh "$out"
for d in "$out"/*/; do printf '%-24s %3d files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"; done
if [[ -n "$large" ]]; then du -sh "$large"; fi
