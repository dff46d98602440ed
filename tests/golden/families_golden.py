#!/usr/bin/python3
"""families_golden.py - golden values of the non-LLaMA families for tests/check_families.c,
computed by the independent float64 reference tests/golden/families_ref.py (written from
../shared/reference/arch-gemma-phi3.md and arch-gpt2-neox.md, sharing no code with pfrun).

Usage (from the repository root):
  for p in qwen2-tiny gemma-tiny gemma2-tiny gemma3-tiny phi3-tiny gpt2-tiny neox-tiny; do
    PFRUN_CACHE=/tmp/pfc build/pfrun analyze --model-path synthetic:$p@11 >/dev/null; done
  PFRUN_CACHE=/tmp/pfc build/pfrun analyze --model-path synthetic:gemma2-tiny@11:bf16 >/dev/null
  PFRUN_CACHE=/tmp/pfc build/pfrun analyze --model-path synthetic:phi3-tiny@11:bf16 >/dev/null
  /usr/bin/python3 tests/golden/families_golden.py /tmp/pfc/synthetic tests/golden
Writes tests/golden/families_golden.h (the case type is forward_golden.h's) and
tests/golden/families_scores.h (the scores, for the pruning suite): per case the
logits at PF_GOLDEN_NSEL vocab ids per real position, the logsumexp per position and all
logits at each row's last token, for a right-padded batch of 2 rows of 12 and 7 tokens
(longer than every preset's sliding window, so windows, soft-caps and padding all act);
and the static neuron scores (MAW, VOW, PON, L2) of every layer of every f32 preset.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families_ref as fr  # noqa: E402
import forward_ref as lr  # noqa: E402  (only its C printing helpers)

ROWS = [[1, 17, 250, 3, 99, 318, 42, 7, 160, 200, 11, 64], [1, 300, 5, 77, 123, 9, 210]]
PRESETS = ["gemma-tiny", "gemma2-tiny", "gemma3-tiny", "phi3-tiny", "gpt2-tiny", "neox-tiny"]
BF16 = ["gemma2-tiny", "phi3-tiny"]
METHODS = ["MAW", "VOW", "PON", "L2"]
# tests/golden/families_text.jsonl as `pfrun tokenize` gives it for the synthetic presets'
# tokenizer (the tokenizer is checked against Hugging Face's separately; check_families
# asserts that its dataset holds exactly these ids). Batches of 2 in file order.
TEXT_IDS = [
    [1, 87, 260, 278, 282, 271, 282, 35, 266, 268, 287, 282, 49],
    [1, 68, 35, 116, 120, 108, 102, 110, 277, 117, 114, 122, 113, 281, 114, 123, 35, 109, 120,
     112, 115, 118, 273, 121, 263, 268, 35, 111, 100, 125, 124, 35, 103, 114, 106, 47, 259, 122,
     108, 102, 104, 49],
    [1, 75, 104, 288, 114, 272, 284, 111, 103],
    [1, 83, 117, 120, 113, 280, 35, 110, 104, 104, 115, 118, 268, 275, 112, 115, 284, 119, 264,
     119, 35, 113, 104, 120, 117, 266, 118, 35, 264, 103, 35, 267, 112, 114, 121, 286, 268, 273,
     119, 260, 117, 118, 49],
]
# RoPE scaling cases (config edits the C test makes the same way)
YARN = {"factor": 4.0, "rope_type": "yarn"}
LONGROPE_FROM = ['"original_max_position_embeddings": 2048', '"rope_scaling": null']
LONGROPE_TO = ['"original_max_position_embeddings": 8',
               '"rope_scaling": {"long_factor": [2.0, 4.0, 8.0, 16.0], '
               '"short_factor": [1.0, 1.5, 2.0, 3.0], "type": "longrope"}']
TAPS = ["input_norm", "attention_output", "mlp_output", "down_proj_input"]
TAP_LAYER, TAP_CH = 1, 8


def padded(rows):
    S = max(len(r) for r in rows)
    ids = np.zeros((len(rows), S), dtype=np.int64)
    mask = np.zeros((len(rows), S), dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = r
        mask[b, :len(r)] = 1
    return ids, mask


def calibration_norms(model, batches):
    """X_j per layer: per batch the L2 norm of the down_proj input over the real
    positions, summed over batches (pfrun's calibrate: padding excluded)."""
    out = None
    for ids, mask in batches:
        dpi = model.forward(ids, mask)["down_proj_input"]
        per = [np.sqrt(((a * a) * mask[:, :, None]).sum(axis=(0, 1))) for a in dpi]
        out = per if out is None else [o + p for o, p in zip(out, per)]
    return out



class Adapter:
    def __init__(self, m):
        self.m = m
        self.V = m.logits(np.array([[1]]), np.array([[1]])).shape[-1]

    def logits(self, ids, mask):
        return self.m.logits(ids, mask)


class Skip(Adapter):
    def __init__(self, m, skip):
        super().__init__(m)
        self.skip = skip

    def logits(self, ids, mask):
        return self.m.logits(ids, mask, skip_layers=self.skip)


def cname(preset, dt="f32"):
    return "g_" + preset.replace("-tiny", "").replace("-", "_") + ("" if dt == "f32" else "_" + dt)


def main():
    cache, out = sys.argv[1], sys.argv[2]
    path = os.path.join(out, "families_golden.h")
    cases, scores, extras = [], [], []

    def body():
        for p in PRESETS:
            for dt in ["f32"] + (["bf16"] if p in BF16 else []):
                m = fr.load(os.path.join(cache, "%s-s11-%s" % (p, dt)))
                lr.emit_case(cname(p, dt), Adapter(m), ROWS)
                cases.append((p, dt, cname(p, dt)))
            m = fr.load(os.path.join(cache, "%s-s11-f32" % p))
            lr.emit_case(cname(p) + "_depth", Skip(m, (1,)), ROWS)
            batches = [padded(TEXT_IDS[0:2]), padded(TEXT_IDS[2:4])]
            imp = fr.layer_importance(m, batches)
            norms = calibration_norms(m, batches)
            ids, mask = padded(ROWS)
            fw = m.forward(ids, mask)
            taps = []
            for t in TAPS:
                a = fw[t][TAP_LAYER]
                taps += [float(a[0, s, c]) for s in range(len(ROWS[0])) for c in range(TAP_CH)]
            n = cname(p)
            print("static const double %s_importance[] = {\n%s\n};" % (n, lr.c_floats(imp)))
            print("static const double %s_norms[] = { /* [layers, I] */\n%s\n};"
                  % (n, lr.c_floats([float(v) for l in norms for v in l])))
            print("static const double %s_taps[] = { /* [tap, position, channel] */\n%s\n};"
                  % (n, lr.c_floats(taps)))
            extras.append((p, n))
        print("static const struct {\n  const char *preset, *dtype;\n  const pf_golden_case *g;\n"
              "} g_family_cases[] = {")
        for p, dt, n in cases:
            print("    {\"%s\", \"%s\", &%s}," % (p, dt, n))
        print("};")
        # yarn on qwen2-tiny (the LLaMA-family reference, forward_ref.py, which has yarn)
        lr.emit_case("g_qwen2_yarn", lr.Model(os.path.join(cache, "qwen2-tiny-s11-f32"),
                                              rope_scaling_override=YARN), ROWS)
        # longrope on phi3-tiny: a 12-token batch (> 8: long factors) and 7 tokens (short)
        import shutil
        import tempfile
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(cache, "phi3-tiny-s11-f32")
            shutil.copy(os.path.join(src, "model.safetensors"), tmp)
            cfg = open(os.path.join(src, "config.json")).read()
            for a, b in zip(LONGROPE_FROM, LONGROPE_TO):
                assert a in cfg, a
                cfg = cfg.replace(a, b, 1)
            open(os.path.join(tmp, "config.json"), "w").write(cfg)
            m = fr.load(tmp)
            lr.emit_case("g_phi3_longrope", Adapter(m), ROWS)
            lr.emit_case("g_phi3_shortrope", Adapter(m), [ROWS[1]])
        finally:
            shutil.rmtree(tmp)
        print("/* per f32 preset: logits with layer %d removed (g_*_depth), layer importance and"
              " calibration norms over tests/golden/families_text.jsonl in batches of 2, and"
              " taps %s of layer %d, row 0, first %d channels */" % (1, ", ".join(TAPS),
                                                                     TAP_LAYER, TAP_CH))
        print("static const struct {\n  const char *preset;\n  const pf_golden_case *depth;\n"
              "  const double *importance, *norms, *taps;\n} g_family_extras[] = {")
        for p, n in extras:
            print("    {\"%s\", &%s_depth, %s_importance, %s_norms, %s_taps}," % (p, n, n, n, n))
        print("};")
        print("#define PF_FAMILY_TAP_LAYER %d\n#define PF_FAMILY_TAP_CH %d" % (TAP_LAYER, TAP_CH))
        print("static const char *const g_family_taps[] = {%s};"
              % ", ".join('"%s"' % t for t in TAPS))
        print("static const int32_t g_family_text_ids[][48] = {")
        for r in TEXT_IDS:
            print("    {%s}," % ", ".join(str(v) for v in r))
        print("};")

    def scores_body():  # the pruning suite's data: static neuron scores per layer
        for p in PRESETS:
            m = fr.load(os.path.join(cache, "%s-s11-f32" % p))
            for meth in METHODS:
                per = fr.neuron_scores(m, meth)
                flat = [float(v) for layer in per for v in layer]
                n = "%s_%s" % (cname(p), meth.lower())
                print("static const double %s[] = { /* [layers, I] */\n%s\n};"
                      % (n, lr.c_floats(flat)))
                scores.append((p, meth, n, len(per), len(per[0])))
        print("static const struct {\n  const char *preset, *method;\n  const double *scores;\n"
              "  int layers, width;\n} g_family_scores[] = {")
        for p, meth, n, L, I in scores:
            print("    {\"%s\", \"%s\", %s, %d, %d}," % (p, meth, n, L, I))
        print("};")

    lr.header(path, "PF_FAMILIES_GOLDEN_H", [
        "/* families_golden.h - GENERATED by tests/golden/families_golden.py from the float64",
        " * reference tests/golden/families_ref.py (independent of pfrun). Do not edit. */",
        '#include "forward_golden.h"', ""], body)
    lr.header(os.path.join(out, "families_scores.h"), "PF_FAMILIES_SCORES_H", [
        "/* families_scores.h - GENERATED by tests/golden/families_golden.py (see",
        " * families_golden.h): static neuron scores (MAW, VOW, PON, L2) of every layer of the",
        " * seed-11 f32 presets, for check_prune_families. */", ""], scores_body)


if __name__ == "__main__":
    main()
