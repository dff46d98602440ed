"""fref_io.py - part of families_ref.py (the float64 reference of six decoder families):
safetensors reading and writing (float64 arrays), BF16 rounding. See families_ref.py for the
conventions."""
import json
import os
import re
import struct

import numpy as np


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
