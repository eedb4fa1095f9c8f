#!/usr/bin/env python3
"""Reference values for our GGUF reader, from llama.cpp's own Python package (gguf-py).

  gguf_reference.py random OUT_DIR [--seed N]
      Writes, with gguf-py's GGUFWriter, OUT_DIR/reference.gguf: one tensor of every ggml
      type our reader dequantizes, filled with random block bytes (16-bit scale fields are
      drawn as finite normal floats so that no NaN/Inf appears), plus metadata of every
      value type. Writes OUT_DIR/reference.safetensors: each tensor as gguf-py's
      gguf.quants.dequantize returns it (float32, PyTorch order), and
      OUT_DIR/reference.json: the metadata as written and each tensor's type.
      gguf-py has no dequantizer for Q8_K, I8/I16/I32/I64 and F64; for those the values
      are numpy's own conversion of the block fields (d * q for Q8_K, a cast otherwise).

  gguf_reference.py model MODEL.gguf OUT_JSON
      Reads MODEL.gguf with gguf-py's GGUFReader and writes every metadata value with its
      type, and for every tensor its type, shape and two exact checksums of the float32
      bits of gguf-py's dequantization (sum of the bit patterns, and the sum weighted by
      position, both modulo 2^64), plus its first values for diagnostics.

Seeded: the same files every run.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

QK_K = 256

# (type, byte ranges of 16-bit float fields inside a block, float32 field ranges)
BLOCK_TYPES = {
    T.Q4_0: ([(0, 2)], []),
    T.Q4_1: ([(0, 2), (2, 4)], []),
    T.Q5_0: ([(0, 2)], []),
    T.Q5_1: ([(0, 2), (2, 4)], []),
    T.Q8_0: ([(0, 2)], []),
    T.Q2_K: ([(80, 82), (82, 84)], []),
    T.Q3_K: ([(108, 110)], []),
    T.Q4_K: ([(0, 2), (2, 4)], []),
    T.Q5_K: ([(0, 2), (2, 4)], []),
    T.Q6_K: ([(208, 210)], []),
    T.Q8_K: ([], [(0, 4)]),
}


def random_blocks(rng, qtype, rows, row_len):
    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * row_len // block
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    halves, floats = BLOCK_TYPES[qtype]
    for lo, hi in halves:
        blocks[:, lo:hi] = rng.normal(0.0, 0.05, size=n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    for lo, hi in floats:
        blocks[:, lo:hi] = rng.normal(0.0, 0.05, size=n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
    return blocks.reshape(rows, -1)


def q8_k_reference(raw, rows):
    blocks = raw.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view(np.float32)  # (n, 1)
    q = blocks[:, 4:4 + QK_K].view(np.int8).astype(np.float32)
    return (d * q).reshape(rows, -1)


def finite_bits(rng, n, exponent_mask):
    """Random 16-bit patterns whose exponent is not all ones (no Inf/NaN); subnormals stay."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    bad = (bits & exponent_mask) == exponent_mask
    bits[bad] &= np.uint16(0xBFFF)  # clear the exponent's top bit (bit 14 in both formats)
    return bits


def write_random(out_dir: Path, seed: int):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out_dir / "reference.gguf", arch="llama")
    expected = {}
    types = {}

    rows, row_len = 3, 512
    for qtype in BLOCK_TYPES:
        name = f"blk.{qtype.name.lower()}"
        raw = random_blocks(rng, qtype, rows, row_len)
        writer.add_tensor(name, raw, raw_dtype=qtype)
        if qtype == T.Q8_K:
            values = q8_k_reference(raw, rows)
        else:
            values = gguf.quants.dequantize(raw, qtype)
        assert values.shape == (rows, row_len), (name, values.shape)
        expected[name] = values.astype(np.float32)
        types[name] = qtype.name

    # A 3-D quantized tensor: PyTorch shape (2, 3, 64) is stored as ne = (64, 3, 2).
    raw = random_blocks(rng, T.Q8_0, 6, 64).reshape(2, 3, -1)
    writer.add_tensor("blk.q8_0_3d", raw, raw_dtype=T.Q8_0)
    expected["blk.q8_0_3d"] = gguf.quants.dequantize(raw, T.Q8_0).astype(np.float32)
    types["blk.q8_0_3d"] = "Q8_0"

    f32 = rng.normal(0.0, 10.0, size=(4, 96)).astype(np.float32)
    writer.add_tensor("plain.f32", f32)
    expected["plain.f32"] = gguf.quants.dequantize(f32, T.F32)
    f16 = finite_bits(rng, 5 * 64, 0x7C00).view(np.float16).reshape(5, 64)
    writer.add_tensor("plain.f16", f16)
    expected["plain.f16"] = gguf.quants.dequantize(f16, T.F16)
    bf16 = finite_bits(rng, 3 * 64, 0x7F80).view(np.uint8).reshape(3, 128)
    writer.add_tensor("plain.bf16", bf16, raw_dtype=T.BF16)
    expected["plain.bf16"] = gguf.quants.dequantize(bf16, T.BF16)
    f64 = rng.normal(0.0, 1e3, size=(2, 40))
    writer.add_tensor("plain.f64", f64)
    expected["plain.f64"] = f64.astype(np.float32)
    for dtype, name in ((np.int8, "plain.i8"), (np.int16, "plain.i16"), (np.int32, "plain.i32"), (np.int64, "plain.i64")):
        info = np.iinfo(dtype)
        ints = rng.integers(info.min, info.max, size=(3, 32), dtype=dtype, endpoint=True)
        writer.add_tensor(name, ints)
        expected[name] = ints.astype(np.float32)  # numpy rounds to nearest, as a C++ cast does
    for name, t in (("plain.f32", "F32"), ("plain.f16", "F16"), ("plain.bf16", "BF16"), ("plain.f64", "F64"),
                    ("plain.i8", "I8"), ("plain.i16", "I16"), ("plain.i32", "I32"), ("plain.i64", "I64")):
        types[name] = t

    # Metadata of every value type, written by gguf-py (an independent writer).
    metadata = {}

    def add(key, value, vtype, sub_type=None, expect=None):
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
        metadata[key] = {"type": int(vtype), "value": value if expect is None else expect}

    add("ref.u8", 255, V.UINT8)
    add("ref.i8", -128, V.INT8)
    add("ref.u16", 65535, V.UINT16)
    add("ref.i16", -32768, V.INT16)
    add("ref.u32", 4294967295, V.UINT32)
    add("ref.i32", -2147483648, V.INT32)
    add("ref.u64", 18446744073709551615, V.UINT64)
    add("ref.i64", -9223372036854775808, V.INT64)
    add("ref.f32", 0.1, V.FLOAT32, expect=float(np.float32(0.1)))
    add("ref.f64", 1.0 / 3.0, V.FLOAT64)
    add("ref.bool", True, V.BOOL)
    add("ref.string", "h\u00e9llo \u2581w\u00f6rld", V.STRING)
    add("ref.tokens", ["<s>", "\u0120the", "\u2581a"], V.ARRAY, sub_type=V.STRING)
    add("ref.scores", [0.5, -1.25, 3.0], V.ARRAY, sub_type=V.FLOAT32)
    add("ref.ints", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    add("ref.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)
    metadata["general.architecture"] = {"type": int(V.STRING), "value": "llama"}

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    save_file({k: np.ascontiguousarray(v) for k, v in expected.items()}, str(out_dir / "reference.safetensors"))
    with open(out_dir / "reference.json", "w") as f:
        json.dump({"seed": seed, "metadata": metadata, "types": types}, f, indent=1)


def field_value(field):
    main = field.types[0]
    if main == V.ARRAY and len(field.types) > 2:
        raise SystemExit(f"{field.name}: nested arrays are not exported")
    value = field.contents()
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, list):
        value = [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def checksums(values):
    bits = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    weights = np.arange(1, bits.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return int(bits.sum(dtype=np.uint64)), int((bits * weights).sum(dtype=np.uint64))


def write_model(model: Path, out_json: Path):
    reader = gguf.GGUFReader(model)
    metadata = {}
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue  # the reader's own header pseudo-fields
        metadata[field.name] = {"type": int(field.types[0]), "value": field_value(field)}
    tensors = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        total, weighted = checksums(values)
        tensors[t.name] = {
            "type": t.tensor_type.name,
            "shape": [int(d) for d in reversed(t.shape.tolist())],
            "sum_bits": total,
            "weighted_bits": weighted,
            "first": [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)[:8]],
        }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    with open(out_json, "w") as f:
        json.dump({"model": str(model), "metadata": metadata, "tensors": tensors}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("random")
    r.add_argument("out_dir", type=Path)
    r.add_argument("--seed", type=int, default=1234)
    m = sub.add_parser("model")
    m.add_argument("model", type=Path)
    m.add_argument("out_json", type=Path)
    args = parser.parse_args()
    if args.mode == "random":
        write_random(args.out_dir, args.seed)
    else:
        write_model(args.model, args.out_json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
