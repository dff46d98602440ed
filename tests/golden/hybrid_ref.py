#!/usr/bin/python3
"""Independent reference for the data-driven hybrid MAW score (reference §2.4),
golden values for check_hybrid.c. numpy float32 arithmetic, like torch:

  g_i = max_j G[i,j] + |min_j G[i,j]|     (rows of gate_proj)
  u_i = the same for up_proj
  d_i = max_h D[h,i] + |min_h D[h,i]|     (columns of down_proj)
  each divided by (its max + 1e-8); importance_i = (g^_i + u^_i + d^_i) * X_i

X is not measured here: it is the fixed pattern X_i = 1 + ((37 * i + 11 * layer) % 101) / 100
(the C test builds the same pattern), so the test checks the formula and the
selection, independently of the forward pass.

    /usr/bin/python3 tests/golden/hybrid_ref.py ../shared/models/stories260K
prints, for 20 % pruning of every layer (k = 172 - 34 = 138), the removed
neuron indices per layer and the smallest score gap at the k boundary.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
    return out


def ptp(x, axis):
    return (x.max(axis=axis) + np.abs(x.min(axis=axis))).astype(np.float32)


def main():
    w = read_safetensors(sys.argv[1] + "/model.safetensors")
    layers = sorted({int(k.split(".")[2]) for k in w if k.startswith("model.layers.")})
    for l in layers:
        p = "model.layers.%d.mlp." % l
        G, U, D = w[p + "gate_proj.weight"], w[p + "up_proj.weight"], w[p + "down_proj.weight"]
        I = G.shape[0]
        X = np.array([1 + ((37 * i + 11 * l) % 101) / 100 for i in range(I)], dtype=np.float32)
        g, u, d = ptp(G, 1), ptp(U, 1), ptp(D, 0)
        g = g / (g.max() + np.float32(1e-8))
        u = u / (u.max() + np.float32(1e-8))
        d = d / (d.max() + np.float32(1e-8))
        s = ((g + u + d) * X).astype(np.float32)
        k = I - min(int((20 / 100) * I), I - 1)
        order = sorted(range(I), key=lambda i: (-float(s[i]), i))
        removed = sorted(order[k:])
        gap = float(s[order[k - 1]] - s[order[k]])
        print("layer %d removed %s gap %.3g" % (l, removed, gap))


main()
