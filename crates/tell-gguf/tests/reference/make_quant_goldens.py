#!/usr/bin/env python3
"""Write the small per-type GGUF files and their f32 goldens used by tests/dequant_goldens.rs.

For each type T this writes `quant_T.gguf` (written with gguf.GGUFWriter) and `quant_T.f32`
(raw little-endian f32: every tensor of the file, in file order, dequantized by
gguf.quants.dequantize). Each file holds:
  - `random`: random but valid block bytes (every bit pattern of the quants, finite f16 scales),
    so types the Python package cannot quantize (Q4_K, Q6_K) are covered too;
  - `quantized`: N(0,1) data quantized by gguf.quants.quantize, for the types it can quantize;
  - for F32/F16/BF16 also `special`: +-0, +-inf, subnormals, extremes (no NaN: NaN payloads are
    not a property worth pinning).
It also writes `smollm2_dequant.json`: per tensor of the fetched SmolLM2 GGUF (if present), the
sha256 of the Python dequantization as raw little-endian f32 plus the first values, so the Rust
test can check every tensor of the real file without committing 500 MB of floats.

Run from anywhere: python3 crates/tell-gguf/tests/reference/make_quant_goldens.py
Deterministic (fixed seed). Needs `pip install gguf numpy` (tested with gguf 0.19.0).
"""
import hashlib
import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.constants import GGML_QUANT_SIZES

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[3]
SMOLLM2 = ROOT / "checkpoints/fetched/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# (type, logical shape outermost first). Row lengths are whole blocks; a few KB per file.
TYPES = [
    (Q.F32, (4, 32)),
    (Q.F16, (4, 32)),
    (Q.BF16, (4, 32)),
    (Q.Q8_0, (4, 64)),
    (Q.Q4_0, (4, 64)),
    (Q.Q4_1, (4, 64)),
    (Q.Q5_0, (4, 64)),
    (Q.Q5_1, (4, 64)),
    (Q.Q4_K, (4, 256)),
    (Q.Q6_K, (4, 256)),
]
QUANTIZABLE = {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1}

# Byte offsets of the f16 scale fields inside one block, per type.
F16_FIELDS = {
    Q.Q8_0: [0],
    Q.Q4_0: [0],
    Q.Q4_1: [0, 2],
    Q.Q5_0: [0],
    Q.Q5_1: [0, 2],
    Q.Q4_K: [0, 2],
    Q.Q6_K: [208],  # ql 128 + qh 64 + scales 16
}


def random_blocks(rng, qtype, shape):
    """Random bytes with a valid layout: finite f16 scales, anything for the quant bits."""
    n = int(np.prod(shape))
    if qtype == Q.F32:
        return rng.standard_normal(n).astype(np.float32).view(np.uint8)
    if qtype == Q.F16:
        return rng.standard_normal(n).astype(np.float16).view(np.uint8)
    if qtype == Q.BF16:
        return gguf.quants.quantize(rng.standard_normal(n).astype(np.float32), Q.BF16).view(np.uint8).reshape(-1)
    block, size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n // block, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (rng.standard_normal(n // block) * 0.05).astype(np.float16)
        blocks[:, off:off + 2] = scale.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(-1)


def special_values(qtype, shape):
    vals = [0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 65504.0, -65504.0, 6.0e-8, -6.0e-8,
            1e-40, -1e-40, 3.0e38, -3.0e38, 1.5, 0.1, 0.2, 1e-5, 12345.678, 2.0 ** -24]
    n = int(np.prod(shape))
    x = np.resize(np.array(vals, dtype=np.float32), n)
    if qtype == Q.F32:
        return x.view(np.uint8)
    if qtype == Q.F16:
        with np.errstate(over="ignore"):  # values beyond f16 range become +-inf on purpose
            return x.astype(np.float16).view(np.uint8)
    return gguf.quants.quantize(x, Q.BF16).view(np.uint8).reshape(-1)


def write_type(rng, qtype, shape):
    name = qtype.name
    path = HERE / f"quant_{name}.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_string("tell.test.type", name)
    tensors = [("random", random_blocks(rng, qtype, shape))]
    if qtype in QUANTIZABLE:
        data = rng.standard_normal(shape).astype(np.float32)
        q = gguf.quants.quantize(data, qtype)
        tensors.append(("quantized", np.ascontiguousarray(q).view(np.uint8).reshape(-1)))
    if qtype in (Q.F32, Q.F16, Q.BF16):
        tensors.append(("special", special_values(qtype, shape)))
    for tname, raw in tensors:
        # With raw_dtype, GGUFWriter takes the *byte* shape (rows, bytes per row).
        w.add_tensor(tname, raw.reshape(shape[0], -1), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Goldens come from reading the written file back, so they check what is on disk.
    r = gguf.GGUFReader(str(path))
    out = []
    for t in r.tensors:
        assert t.tensor_type == qtype, (t.name, t.tensor_type)
        out.append(gguf.quants.dequantize(t.data, qtype).astype(np.float32).reshape(-1))
    flat = np.concatenate(out).astype("<f4")
    (HERE / f"quant_{name}.f32").write_bytes(flat.tobytes())
    print(f"{path.name}: {path.stat().st_size} bytes, {len(r.tensors)} tensors, {flat.size} floats")


def smollm2_hashes():
    if not SMOLLM2.exists():
        print(f"skip smollm2_dequant.json: {SMOLLM2} absent (run scripts/fetch-assets.sh)")
        return
    r = gguf.GGUFReader(str(SMOLLM2))
    entries = {}
    for t in r.tensors:
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1)
        entries[t.name] = {
            "type": t.tensor_type.name,
            "dims": [int(d) for d in t.shape],  # ggml order, innermost first
            "sha256_f32le": hashlib.sha256(x.tobytes()).hexdigest(),
            "first": [float(v) for v in x[:4]],
            "sum": float(x.astype(np.float64).sum()),
        }
    # HF orientation after transformers' own GGUF loader (LlamaTensorProcessor reverses the
    # q/k permutation), as the sha256 of row-major f32: pins our un-permutation to HF's.
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor
    proc = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    hf = {}
    for t in r.tensors:
        if t.name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.29.attn_q.weight", "blk.29.attn_k.weight"):
            x = gguf.quants.dequantize(t.data, t.tensor_type).astype("<f4")
            y = np.ascontiguousarray(proc.process(x, t.name).weights).astype("<f4")
            hf[t.name] = {"shape": list(y.shape), "sha256_f32le": hashlib.sha256(y.tobytes()).hexdigest()}
    out = HERE / "smollm2_dequant.json"
    out.write_text(json.dumps({"transformers_unpermuted": hf,"file_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                               "gguf_python_version": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                               "tensors": entries}, indent=1) + "\n")
    print(f"{out.name}: {len(entries)} tensors")


def main():
    rng = np.random.default_rng(20260428)
    for qtype, shape in TYPES:
        write_type(rng, qtype, shape)
    smollm2_hashes()


if __name__ == "__main__":
    main()
