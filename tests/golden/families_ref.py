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
Code: this file is the API and the CLI; the parts are fref_io.py (safetensors), fref_config.py
(config.json), fref_model.py (the forward pass and its naive cross-check), fref_scores.py
(neuron scores, k, layer importance) and fref_selftest.py (the self-test), all re-exported here.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fref_io import (LEGACY_BUFFERS, bf16_round, is_legacy_buffer, read_checkpoint,
    read_safetensors, to_bf16_bits, write_checkpoint, write_safetensors)  # noqa: E402,F401
from fref_config import (Cfg, F32_MIN, FAMILIES, GEMMA_FAMILIES, parse_config)  # noqa: E402,F401
from fref_model import (ACTS, Model, apply_rope, attention_core, load, naive_attention,
    naive_mlp, rope_tables, visibility)  # noqa: E402,F401
from fref_scores import (METHODS, keep_count, kept_indices, layer_importance,
    layer_neuron_scores, neuron_scores, neuron_vectors)  # noqa: E402,F401
from fref_selftest import (SelfTest, make_checkpoint, rel, remove_layers, selftest,
    slice_width)  # noqa: E402,F401


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
