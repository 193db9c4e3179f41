#!/usr/bin/env python3
"""Load a tell activation store into numpy: straight from the shards, or from `tell store export`.

    python3 notebooks/load_store.py RUN/acts                 # summary of the store
    python3 notebooks/load_store.py RUN/acts RUN/npy         # ... and check the export matches

In a notebook:

    from load_store import load_store, load_export
    records, arrays, offsets = load_store("RUN/acts")
    X = arrays["blocks.12.hook_resid_post"]          # [records, d] (or [tokens, d] for `all`)
    y = [r["label"] for r in records]                # any prompt-line field is a column
    # positions `all`: record i is X[offsets[i]:offsets[i + 1]]

Needs numpy and safetensors. bf16 stores are widened to float32 by hand (numpy has no bf16).
"""

import csv
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def _read_records(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _bf16_tensor(path, name):
    """Reads one BF16 tensor of a safetensors file as float32 (upper 16 bits of an f32)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        info = header[name]
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def load_store(store_dir):
    """Returns (records, arrays, offsets): records.csv rows as dicts (committed rows only), one
    float32 array per site/layer over all shards, and global record offsets (None unless `all`)."""
    with open(os.path.join(store_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    names = [t["name"] for t in manifest["tensors"]]
    parts = {name: [] for name in names}
    offsets = [0]
    for shard in manifest["shards"]:
        path = os.path.join(store_dir, shard["file"])
        with safe_open(path, framework="numpy") as st:
            for name in names:
                if manifest["dtype"] == "bf16":
                    parts[name].append(_bf16_tensor(path, name))
                else:
                    parts[name].append(st.get_tensor(name).astype(np.float32))
            if manifest["positions"] == "all":
                base = offsets[-1]  # shard offsets are local: shift by the rows before
                offsets.extend(base + int(o) for o in st.get_tensor("offsets")[1:])
    arrays = {}
    for t in manifest["tensors"]:
        chunks = parts[t["name"]]
        arrays[t["name"]] = np.concatenate(chunks) if chunks else np.zeros((0, t["d"]), np.float32)
    records = _read_records(os.path.join(store_dir, "records.csv"))[: manifest["record_count"]]
    if manifest["positions"] != "all":
        offsets = None
    else:
        offsets = np.asarray(offsets, dtype=np.int64)
    return records, arrays, offsets


def load_export(npy_dir):
    """Returns (records, arrays, offsets) from the output of `tell store export --format npy`."""
    arrays = {}
    offsets = None
    for name in sorted(os.listdir(npy_dir)):
        if not name.endswith(".npy"):
            continue
        a = np.load(os.path.join(npy_dir, name))
        if name == "offsets.npy":
            offsets = a
        else:
            arrays[name[: -len(".npy")]] = a
    return _read_records(os.path.join(npy_dir, "records.csv")), arrays, offsets


def _dump(out, tag, records, arrays, offsets):
    """Writes what was loaded as raw little-endian bytes, for the Rust test to compare exactly."""
    os.makedirs(out, exist_ok=True)
    for name, a in arrays.items():
        with open(os.path.join(out, f"{name}.{tag}.bin"), "wb") as f:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        with open(os.path.join(out, f"{name}.{tag}.shape"), "w") as f:
            f.write(",".join(str(s) for s in a.shape))
    if offsets is not None:
        with open(os.path.join(out, f"offsets.{tag}.bin"), "wb") as f:
            f.write(np.asarray(offsets, dtype="<i8").tobytes())
    with open(os.path.join(out, f"records.{tag}.json"), "w", encoding="utf-8") as f:
        json.dump(records, f)


def main(argv):
    args = [a for a in argv if not a.startswith("--dump=")]
    dump = next((a.split("=", 1)[1] for a in argv if a.startswith("--dump=")), None)
    if not args:
        print(__doc__)
        return 2
    records, arrays, offsets = load_store(args[0])
    print(f"{len(records)} records")
    for name, a in arrays.items():
        print(f"  {name}: {a.shape} {a.dtype}")
    if dump:
        _dump(dump, "store", records, arrays, offsets)
    if len(args) > 1:
        r2, a2, o2 = load_export(args[1])
        assert r2 == records, "records.csv differs between store and export"
        assert a2.keys() == arrays.keys(), f"{sorted(a2)} vs {sorted(arrays)}"
        for name in arrays:
            assert np.array_equal(a2[name], arrays[name]), f"{name} differs"
        assert (o2 is None) == (offsets is None), "offsets.npy present in only one of them"
        assert o2 is None or np.array_equal(o2, offsets), "offsets differ"
        print("export matches the store")
        if dump:
            _dump(dump, "npy", r2, a2, o2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
