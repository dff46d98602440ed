#!/usr/bin/env bash
# End-to-end: the model families beyond LLaMA (Gemma 1/2/3, Phi-3, GPT-2, GPT-NeoX) through
# the real binary on their synthetic presets: the family recipes, analyze, width and depth
# pruning from the command line (checkpoints re-read: names, fused shapes, config keys).
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
CAL="$SRC/recipes/data/calib.txt"
EV="$SRC/recipes/data/eval.txt"
py() { /usr/bin/python3 - "$@"; }
# keys/shapes of a saved checkpoint, printed as "name shape" lines and config lines
inspect() {
  py "$1" <<'PY'
import json, struct, sys
d = sys.argv[1]
b = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]
for k, v in sorted(json.loads(b[8:8 + n]).items()):
    if k != "__metadata__":
        print(k, "x".join(map(str, v["shape"])))
for k, v in sorted(json.load(open(d + "/config.json")).items()):
    print("config", k, json.dumps(v))
PY
}
# has DIR PATTERN: the checkpoint listing of DIR contains PATTERN (grep -E)
has() { local l; l=$(inspect "$1"); grep -qE -- "$2" <<<"$l"; }
hasnt() { ! has "$@"; }

expect_ok "gemma_width_bias recipe (gemma2)" "$SRC/recipes/gemma_width_bias.yaml" --set output_dir="$WORK/g2" --quiet
check "gemma2 checkpoint keeps the sandwich norms" has "$WORK/g2/checkpoint" "pre_feedforward_layernorm"
check "gemma2 report" test -s "$WORK/g2/report.pdf"
check "gemma2 bias metrics before/after" grep -q '"after"' "$WORK/g2/results.json"
check "gemma2 width 176 -> 128 (20 %, divisor 32)" has "$WORK/g2/checkpoint" 'config intermediate_size 128'
expect_ok "gemma_width_bias recipe (gemma3)" "$SRC/recipes/gemma_width_bias.yaml" --set model=synthetic:gemma3-tiny --set output_dir="$WORK/g3" --quiet
check "gemma3 checkpoint has q/k norms" has "$WORK/g3/checkpoint" "self_attn.q_norm.weight"
expect_ok "gemma_width_bias recipe (phi3)" "$SRC/recipes/gemma_width_bias.yaml" --set model=synthetic:phi3-tiny --set output_dir="$WORK/p3" --quiet
check "phi3 gate_up_proj sliced in both halves" has "$WORK/p3/checkpoint" "model.layers.0.mlp.gate_up_proj.weight 256x64"
check "phi3 qkv_proj unchanged" has "$WORK/p3/checkpoint" "model.layers.0.self_attn.qkv_proj.weight 128x64"
expect_ok "gpt2_depth recipe (gpt2)" "$SRC/recipes/gpt2_depth.yaml" --set output_dir="$WORK/gd" --quiet
check "gpt2 n_layer 3" has "$WORK/gd/checkpoint" 'config n_layer 3'
check "gpt2 names kept, renumbered" has "$WORK/gd/checkpoint" "transformer.h.2.attn.c_attn.weight 64x192"
check "gpt2 no block 3" hasnt "$WORK/gd/checkpoint" 'transformer\.h\.3\.'
check "gpt2 perplexity" grep -q '"perplexity"' "$WORK/gd/results.json"
expect_ok "gpt2_depth recipe (neox)" "$SRC/recipes/gpt2_depth.yaml" --set model=synthetic:neox-tiny --set output_dir="$WORK/nd" --quiet
check "neox num_hidden_layers 3" has "$WORK/nd/checkpoint" 'config num_hidden_layers 3'
check "neox fused qkv kept" has "$WORK/nd/checkpoint" "gpt_neox.layers.2.attention.query_key_value.weight 192x64"

# depth pruning keeps each kept Gemma 3 layer's attention type (pattern 2: full at 1, 3)
expect_ok "gemma3 depth" prune --model-path synthetic:gemma3-tiny --output-path "$WORK/g3d" --pruning-type DEPTH --layer-indices 0,2 --quiet
check "gemma3 layer_types of the kept layers" has "$WORK/g3d" 'config layer_types \["full_attention", "full_attention"\]'
expect_ok "gemma3 depth-pruned reloads and runs" eval --model-path "$WORK/g3d" --data "$EV" --max-length 32 --samples 2 --quiet

expect_ok "analyze gpt2" analyze --model-path synthetic:gpt2-tiny
expect_in "analyze says plain MLP" "MLP: plain (fc_in, activation, fc_out)"
expect_in "analyze names the family" "Architecture: GPT-2 (model_type gpt2)"
expect_fail "GLU pruning of a plain MLP" "not compatible with GLU pruning" prune --model-path synthetic:gpt2-tiny --output-path "$WORK/x"
# Gemma 1 files carry hidden_act and hidden_activation, sometimes different: say which runs
expect_ok "gemma-tiny" analyze --model-path synthetic:gemma-tiny --quiet
G1=$(ls -d "$PFRUN_CACHE"/synthetic/gemma-tiny-* | head -1)
cp -r "$G1" "$WORK/g1act"
sed -i 's/"hidden_act": "gelu_pytorch_tanh"/"hidden_act": "gelu"/' "$WORK/g1act/config.json"
expect_ok "gemma activation keys differ" analyze --model-path "$WORK/g1act"
expect_in "warning names both keys" 'hidden_act "gelu" and hidden_activation "gelu_pytorch_tanh" differ'
for m in gemma-tiny phi3-tiny neox-tiny; do
  expect_ok "$m importance" importance --model-path synthetic:$m --data "$CAL" --max-length 32 --samples 4 --quiet
  expect_ok "$m generate" generate --model-path synthetic:$m --prompt "the cat" --max-new-tokens 4 --quiet
done
expect_ok "gpt2 bias" bias --model-path synthetic:gpt2-tiny --visualizations mean_diff --layers 0 --output-dir "$WORK/gb" --quiet
# positions past the layers are skipped as OptiPFair's select_layers does, and said
expect_ok "bias layers out of range" bias --model-path synthetic:llama-tiny --visualizations heatmap --layers 99,1 --output-dir "$WORK/lb"
expect_in "out-of-range positions named" "plot: layers: 1 of the 2 positions given are outside 0-3 (4 layers of mlp_output captured) and are skipped"
check "one heatmap per pair and type for the position in range" test "$(ls "$WORK/lb" | grep -c '^heatmap_')" -eq 28
check "gpt2 bias taps attention output" grep -q 'attention_output_layer_0' "$WORK/gb/bias_metrics.json"
check "gpt2 bias has no gate_proj tap" bash -c "! grep -q 'gate_proj_layer' '$WORK/gb/bias_metrics.json'"
expect_ok "gpt2_mlp recipe (width pruning type MLP)" "$SRC/recipes/gpt2_mlp.yaml" --set output_dir="$WORK/gm" --quiet
check "gpt2 MLP-pruned checkpoint writes n_inner" has "$WORK/gm/pon30-layers02" 'config intermediate_sizes|config n_inner'
expect_fail "a GLU recipe on GPT-2 fails its dry run, naming pruning_type MLP" "pruning_type MLP" "$SRC/recipes/gemma_width_bias.yaml" --set model=synthetic:gpt2-tiny --set max_length=128 --dry-run --quiet
expect_ok "flagship recipe dry run on GPT-2 (importance, depth, bias plans)" "$SRC/recipes/llama_depth_bias.yaml" --set model=synthetic:gpt2-tiny --set max_length=128 --set output_dir="$WORK/fl" --dry-run --quiet
# ... and without that, its dry run names the data that does not fit gpt2-tiny's 128 positions
expect_fail "flagship dry run on GPT-2 at max_length 256" "more than the model's max_position_embeddings 128" "$SRC/recipes/llama_depth_bias.yaml" --set model=synthetic:gpt2-tiny --set output_dir="$WORK/fl" --dry-run --quiet
# an old GPT2Model-style file: names without "transformer.", plus the attention buffers old
# transformers saved (BOOL causal table, F32 masked_bias): loads as the same model, saves the
# same way, buffers dropped
SYN=$(ls -d "$PFRUN_CACHE"/synthetic/gpt2-tiny-s1234-f32)
mkdir -p "$WORK/legacy"
cp "$SYN"/*.json "$WORK/legacy/"
py "$SYN/model.safetensors" "$WORK/legacy/model.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
head, data = json.loads(b[8:8 + n]), b[8 + n:]
out, blobs, off = {}, [], 0
for k, v in head.items():
    if k == "__metadata__":
        continue
    a, z = v["data_offsets"]
    out[k.replace("transformer.", "", 1)] = (v["dtype"], v["shape"], data[a:z])
P = 128
for i in range(4):
    tri = bytes(1 if c <= r else 0 for r in range(P) for c in range(P))
    out["h.%d.attn.bias" % i] = ("BOOL", [1, 1, P, P], tri)
    out["h.%d.attn.masked_bias" % i] = ("F32", [], struct.pack("<f", -1e4))
hdr = {}
for k, (dt, sh, raw) in out.items():
    hdr[k] = {"dtype": dt, "shape": sh, "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect_ok "legacy gpt2 eval" eval --model-path "$WORK/legacy" --data "$EV" --max-length 32 --samples 4
legacy_ppl=$(grep -o 'perplexity [0-9.]*' <<<"$OUT")
expect_ok "current gpt2 eval" eval --model-path "$SYN" --data "$EV" --max-length 32 --samples 4
check "legacy names give the same perplexity ($legacy_ppl)" test "$legacy_ppl" = "$(grep -o 'perplexity [0-9.]*' <<<"$OUT")"
expect_ok "legacy gpt2 depth prune" prune --model-path "$WORK/legacy" --output-path "$WORK/legacy-d" --pruning-type DEPTH --num-layers-to-remove 1 --quiet
check "legacy names kept" has "$WORK/legacy-d" '^h\.2\.mlp\.c_fc\.weight 64x256'
check "legacy buffers dropped" hasnt "$WORK/legacy-d" 'masked_bias'

# a model_type run LLaMA-shaped (SmolLM3) pruned in depth: no_rope_layers loses the
# removed layer's entry (before: written unchanged, so transformers gave the kept layers
# other layers' RoPE), and a per-layer key pfrun does not know is named in a warning
expect_ok "llama-shaped copy" prune --model-path synthetic:llama-tiny --output-path "$WORK/smol" --pruning-percentage 0 --quiet
py "$WORK/smol/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(model_type="smollm3", no_rope_layers=[1, 1, 1, 0], foo_per_layer=[1, 2, 3, 4])
json.dump(c, open(sys.argv[1], "w"))
PY
expect_ok "smollm3 depth prune" prune --model-path "$WORK/smol" --output-path "$WORK/smol-d" --pruning-type DEPTH --layer-indices 0
expect_in "unknown per-layer key: warned" "warning: prune_depth: model_type \"smollm3\" is run LLaMA-shaped: its config keys foo_per_layer have one entry per layer"
check "no_rope_layers follows the removed layer" py "$WORK/smol-d/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["no_rope_layers"] == [1, 1, 0] and c["num_hidden_layers"] == 3, c
PY
finish
