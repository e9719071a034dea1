#!/usr/bin/python3
"""A deeper generated LLaMA for the mixed-precision figures (issue 8), as an F32 GGUF.

stories260K has 5 layers: the paper's trimmed z-score detector needs >= 12
(docs/methods.md §3.6). This model has 24 layers of random weights (std 1/sqrt(fan_in),
so every layer passes a signal on) and a few planted heavy-tailed matrices: their
weights are Laplace samples cubed, rescaled to the same standard deviation, so
their kurtosis jumps and they are harder to quantize (min-max ranges set by a few
large values). Random weights carry no language, so perplexity says nothing;
the figures compare each quantized model's next-token distributions with this
fp32 model's (KL divergence) on real text.

    /usr/bin/python3 scripts/make_deep_llama.py OUT.gguf [--seed 1] [--layers 24]

(--layers changes the depth only, for measuring how a cost grows with it; the planted
matrices sit in the layers that exist.)

NumPy only; not needed to build or test.
"""
import argparse
import struct

import numpy as np

DIM, LAYERS, HEADS, KV_HEADS, HIDDEN, VOCAB, CTX = 128, 24, 8, 4, 352, 300, 512
# (layer, tensor) planted heavy-tailed: one spike per module type, so each jump stands alone.
PLANTED = [(9, "ffn_down"), (16, "attn_v"), (5, "ffn_up")]


def gguf_bytes(meta, tensors):
    """meta: [(key, kind, value)], kind in u32/f32/bool/str/str_array/f32_array/i32_array;
    tensors: [(name, float32 array in row-major shape)]."""
    def s(x):
        b = x.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    kinds = {"u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "arr": 9}
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)))
    for key, kind, v in meta:
        out += s(key)
        if kind == "u32":
            out += struct.pack("<II", kinds["u32"], v)
        elif kind == "f32":
            out += struct.pack("<If", kinds["f32"], v)
        elif kind == "bool":
            out += struct.pack("<IB", kinds["bool"], 1 if v else 0)
        elif kind == "str":
            out += struct.pack("<I", kinds["str"]) + s(v)
        elif kind == "str_array":
            out += struct.pack("<IIQ", kinds["arr"], kinds["str"], len(v)) + b"".join(s(x) for x in v)
        elif kind == "f32_array":
            out += struct.pack("<IIQ", kinds["arr"], kinds["f32"], len(v)) + np.asarray(v, "<f4").tobytes()
        elif kind == "i32_array":
            out += struct.pack("<IIQ", kinds["arr"], kinds["i32"], len(v)) + np.asarray(v, "<i4").tobytes()
    offset, datas = 0, []
    for name, a in tensors:
        out += s(name) + struct.pack("<I", a.ndim)
        for d in reversed(a.shape):  # ggml order: fastest dimension first
            out += struct.pack("<Q", d)
        out += struct.pack("<IQ", 0, offset)  # F32
        data = np.ascontiguousarray(a, "<f4").tobytes()
        datas.append(data)
        offset += (len(data) + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    for data in datas:
        out += data + b"\0" * (-len(data) % 32)
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, default=LAYERS)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    hd = DIM // HEADS

    def linear(rows, cols, heavy=False):
        if not heavy:
            return rng.normal(0, 1 / np.sqrt(cols), (rows, cols))
        w = rng.laplace(0, 1, (rows, cols)) ** 3
        return w / w.std() / np.sqrt(cols)

    tensors = [("token_embd.weight", rng.normal(0, 1, (VOCAB, DIM)))]
    shapes = {"attn_q": (DIM, DIM), "attn_k": (KV_HEADS * hd, DIM), "attn_v": (KV_HEADS * hd, DIM),
              "attn_output": (DIM, DIM), "ffn_gate": (HIDDEN, DIM), "ffn_up": (HIDDEN, DIM),
              "ffn_down": (DIM, HIDDEN)}
    for l in range(args.layers):
        tensors.append((f"blk.{l}.attn_norm.weight", np.ones(DIM)))
        for name, (r, c) in shapes.items():
            tensors.append((f"blk.{l}.{name}.weight", linear(r, c, (l, name) in PLANTED)))
        tensors.append((f"blk.{l}.ffn_norm.weight", np.ones(DIM)))
    tensors.append(("output_norm.weight", np.ones(DIM)))
    tensors.append(("output.weight", rng.normal(0, 2 / np.sqrt(DIM), (VOCAB, DIM))))

    # Byte-level SentencePiece vocabulary: <unk>, <s>, </s>, the 256 bytes, unused pieces.
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces += [f"<extra_{i}>" for i in range(len(pieces), VOCAB)]
    types += [5] * (VOCAB - len(types))
    meta = [("general.architecture", "str", "llama"), ("general.name", "str", "deep generated llama"),
            ("llama.context_length", "u32", CTX), ("llama.embedding_length", "u32", DIM),
            ("llama.block_count", "u32", args.layers), ("llama.feed_forward_length", "u32", HIDDEN),
            ("llama.attention.head_count", "u32", HEADS), ("llama.attention.head_count_kv", "u32", KV_HEADS),
            ("llama.rope.dimension_count", "u32", hd), ("llama.rope.freq_base", "f32", 10000.0),
            ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5), ("tokenizer.ggml.model", "str", "llama"),
            ("tokenizer.ggml.tokens", "str_array", pieces), ("tokenizer.ggml.scores", "f32_array", [0.0] * VOCAB),
            ("tokenizer.ggml.token_type", "i32_array", types), ("tokenizer.ggml.bos_token_id", "u32", 1),
            ("tokenizer.ggml.eos_token_id", "u32", 2), ("tokenizer.ggml.unknown_token_id", "u32", 0),
            ("tokenizer.ggml.add_bos_token", "bool", True), ("tokenizer.ggml.add_space_prefix", "bool", False)]
    with open(args.out, "wb") as f:
        f.write(gguf_bytes(meta, [(n, np.asarray(a, np.float32)) for n, a in tensors]))


if __name__ == "__main__":
    main()
