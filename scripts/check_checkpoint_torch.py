#!/usr/bin/env python3
"""Recompute kdtrain's validation loss for a checkpoint without kdtrain: h5py + numpy + PyTorch.

Usage: /usr/bin/python3 scripts/check_checkpoint_torch.py CHECKPOINT.h5 VAL_SHARD [--tokens N] [--batch B]

Independent of the C++ code on purpose; it follows only the documented formats and semantics:

* the checkpoint is read with h5py by its layout (docs/checkpoint-format.md): the ``/config`` YAML
  gives the model shape (section ``model``) and the window length (``train.seq_len``); the weights
  are ``/tensors/model/<Hugging Face name>``, float32;
* the model is scripts/torch_ref/llama.py (the semantics kdtrain's engine follows), run in float64;
* the shard is read with numpy by its 64-byte header (docs/tokenizer-format.md, "Token shards");
* the windows are the ones kdtrain's Evaluator (trainer/eval/evaluator.cpp) scores: window w holds
  tokens [w*seq, w*seq + seq) and is labelled by the tokens one further on; there are
  (n - 1) // seq windows, at most max(1, N // seq) when --tokens N > 0 (0 = all);
* loss = summed cross-entropy (nats) / scored tokens; ppl = exp(loss);
  bits per byte = nats / (the bytes of text the scored tokens stand for) / ln 2: each scored
  label's byte length from the checkpoint's ``/tokenizer`` (docs/tokenizer-format.md: ids 0-255
  one byte, merge k = id 256 + k the bytes of its pair, the special tokens none); without a
  tokenizer, the shard's average (text_bytes * scored / n), nan when it records no text_bytes.

The last line printed is ``RESULT val_loss=<%.10f> val_bpb=<%.10f> tokens=<n>``.
Exit codes: 0 done, 2 bad input (file, layout, shape, option).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
from llama import Llama, LlamaConfig  # noqa: E402  (scripts/torch_ref/llama.py)

SHARD_MAGIC = 0x4B54444B  # the bytes K D T K
SHARD_HEADER = 64


class InputError(Exception):
    pass


def text(v) -> str:
    """Fixed-length HDF5 strings come back from h5py as bytes."""
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("utf-8")
    return str(v)


# ----------------------------------------------------------------------------------------------
# checkpoint
# ----------------------------------------------------------------------------------------------
def read_checkpoint(path: str):
    """-> (config dict, {name: float32 ndarray} in stored order, step or None)."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: cannot open as HDF5: {e}")
    with f:
        fmt = text(f.attrs.get("format", b""))
        if fmt != "kdtrain-checkpoint":
            raise InputError(f"{path}: not a kdtrain checkpoint (root attribute format = {fmt!r})")
        version = int(f.attrs.get("format_version", -1))
        if version != 1:
            raise InputError(f"{path}: checkpoint format_version {version}, this script reads 1")
        if "config" not in f:
            raise InputError(f"{path}: no /config dataset")
        cfg = yaml.safe_load(text(f["config"][()]))
        if not isinstance(cfg, dict):
            raise InputError(f"{path}: /config is not a YAML mapping")
        if "tensors/model" not in f:
            raise InputError(f"{path}: no /tensors/model group")
        tensors = {}
        for name, ds in f["tensors/model"].items():
            if ds.dtype != np.dtype("<f4"):
                raise InputError(f"{path}: tensors/model/{name} is {ds.dtype}, expected little-endian float32")
            tensors[name] = ds[...]  # Fletcher-32 verified by HDF5 on read
        step = int(f["state"].attrs["step"]) if "state" in f and "step" in f["state"].attrs else None
    return cfg, tensors, step


def model_config(cfg: dict, path: str):
    m = cfg.get("model")
    t = cfg.get("train")
    if not isinstance(m, dict) or not isinstance(t, dict):
        raise InputError(f"{path}: /config lacks the model or train section")
    try:
        lc = LlamaConfig(
            vocab=int(m["vocab"]), d_model=int(m["d_model"]), n_layers=int(m["n_layers"]),
            n_heads=int(m["n_heads"]), n_kv_heads=int(m["n_kv_heads"]), d_ff=int(m["d_ff"]),
            tie_embeddings=bool(m.get("tie_embeddings", False)),
            rope_theta=float(m.get("rope_theta", 10000.0)), norm_eps=float(m.get("norm_eps", 1e-5)))
        seq = int(t["seq_len"])
    except KeyError as e:
        raise InputError(f"{path}: /config lacks key {e.args[0]!r}")
    except ValueError as e:
        raise InputError(f"{path}: /config model shape: {e}")
    if seq < 1:
        raise InputError(f"{path}: train.seq_len = {seq}")
    return lc, seq


def build_model(lc: LlamaConfig, tensors: dict, path: str) -> Llama:
    """Llama in float64 with exactly the checkpoint's model tensors (names and shapes checked)."""
    model = Llama(lc).to(torch.float64)
    expected = {n: tuple(p.shape) for n, p in model.named_parameters()}
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing or extra:
        raise InputError(f"{path}: tensors/model does not match the config's model"
                         f" (tie_embeddings={lc.tie_embeddings}): missing {missing}, unexpected {extra}")
    for n, shape in expected.items():
        if tuple(tensors[n].shape) != shape:
            raise InputError(f"{path}: tensors/model/{n} has shape {list(tensors[n].shape)}, expected {list(shape)}")
    state = {n: torch.from_numpy(np.asarray(tensors[n], dtype=np.float64)) for n in expected}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


# ----------------------------------------------------------------------------------------------
# shard
# ----------------------------------------------------------------------------------------------
def read_shard(path: str):
    """kdtrain shard -> (ids int64 ndarray, text_bytes)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}")
    if size < SHARD_HEADER:
        raise InputError(f"{path}: {size} bytes, shorter than the 64-byte kdtrain shard header")
    head = np.fromfile(path, dtype="<u4", count=4)
    magic, version, width, _reserved = (int(x) for x in head)
    if magic != SHARD_MAGIC:
        raise InputError(f"{path}: magic 0x{magic:08X} is not a kdtrain shard's (0x{SHARD_MAGIC:08X})")
    if version != 1:
        raise InputError(f"{path}: shard version {version}, this script reads 1")
    if width not in (2, 4):
        raise InputError(f"{path}: token width {width}, expected 2 or 4")
    n, text_bytes, _tok_hash = (int(x) for x in np.fromfile(path, dtype="<u8", count=3, offset=16))
    if SHARD_HEADER + n * width != size:
        raise InputError(f"{path}: header says {n} tokens of {width} bytes, the file holds {size - SHARD_HEADER} bytes of ids")
    ids = np.fromfile(path, dtype="<u2" if width == 2 else "<u4", count=n, offset=SHARD_HEADER)
    return ids.astype(np.int64), text_bytes


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
def n_windows(n_tokens: int, seq: int, max_tokens: int) -> int:
    w = (n_tokens - 1) // seq
    if max_tokens > 0:
        w = min(w, max(1, max_tokens // seq))
    return w


@torch.no_grad()
def evaluate(model: Llama, ids: np.ndarray, seq: int, windows: int, batch: int):
    """-> (summed CE in nats, scored tokens), float64 throughout."""
    nats, scored = 0.0, 0
    v = model.cfg.vocab
    for w0 in range(0, windows, batch):
        rows = min(batch, windows - w0)
        x = np.stack([ids[(w0 + b) * seq:(w0 + b) * seq + seq] for b in range(rows)])
        y = np.stack([ids[(w0 + b) * seq + 1:(w0 + b) * seq + seq + 1] for b in range(rows)])
        logits, _ = model(torch.from_numpy(x))
        ce = F.cross_entropy(logits.reshape(-1, v), torch.from_numpy(y).reshape(-1), reduction="sum")
        nats += float(ce)
        scored += rows * seq
    return nats, scored


def token_byte_lengths(tokenizer_json: str):
    """Byte length of every id of a kdtrain-bpe tokenizer (None when there is none, or another kind)."""
    if not tokenizer_json:
        return None
    import json
    t = json.loads(tokenizer_json)
    if t.get("format") != "kdtrain-bpe":
        return None
    lengths = [1] * 256
    for a, b in t["merges"]:
        lengths.append(lengths[a] + lengths[b])
    lengths += [0] * (int(t["vocab_size"]) - len(lengths))  # the special tokens
    return np.array(lengths, dtype=np.int64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="kdtrain checkpoint (.h5)")
    ap.add_argument("shard", help="kdtrain validation shard (val.bin)")
    ap.add_argument("--tokens", type=int, default=0, help="validation tokens to score (0 = the whole shard)")
    ap.add_argument("--batch", type=int, default=8, help="windows per forward pass (does not change the result)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    a = ap.parse_args(argv)
    if a.tokens < 0 or a.batch < 1 or a.threads < 1:
        ap.error("--tokens must be >= 0, --batch and --threads >= 1")
    torch.set_num_threads(a.threads)

    try:
        cfg, tensors, step = read_checkpoint(a.checkpoint)
        lc, seq = model_config(cfg, a.checkpoint)
        model = build_model(lc, tensors, a.checkpoint)
        ids, text_bytes = read_shard(a.shard)
        n = int(ids.size)
        if n <= seq:
            raise InputError(f"{a.shard}: {n} tokens, fewer than seq_len + 1 = {seq + 1}")
        if int(ids.max()) >= lc.vocab:
            raise InputError(f"{a.shard}: holds token id {int(ids.max())}, outside the model's vocabulary of {lc.vocab}")
    except InputError as e:
        print(f"check_checkpoint_torch: error: {e}", file=sys.stderr)
        return 2

    windows = n_windows(n, seq, a.tokens)
    nats, scored = evaluate(model, ids, seq, windows, a.batch)
    loss = nats / scored
    with h5py.File(a.checkpoint, "r") as f:
        tok = f["tokenizer"][()].decode() if "tokenizer" in f else ""
    lengths = token_byte_lengths(tok)
    if lengths is not None:  # the scored labels: ids[1 .. windows * seq]
        scored_bytes = int(lengths[ids[1:windows * seq + 1]].sum())
        bpb = nats / scored_bytes / math.log(2.0)
    else:
        bpb = nats / (text_bytes * scored / n) / math.log(2.0) if text_bytes > 0 else float("nan")

    print(f"checkpoint {a.checkpoint} (step {step}): vocab {lc.vocab}, d_model {lc.d_model}, layers {lc.n_layers},"
          f" heads {lc.n_heads}/{lc.n_kv_heads} (q/kv), d_ff {lc.d_ff}, tied {lc.tie_embeddings},"
          f" rope_theta {lc.rope_theta:g}, norm_eps {lc.norm_eps:g}; {len(tensors)} tensors")
    print(f"shard {a.shard}: {n} tokens, {text_bytes} text bytes; {windows} windows of {seq} -> {scored} scored tokens")
    print(f"torch float64: val loss {loss:.10f} nats/token | ppl {math.exp(loss):.6f} | bits per byte {bpb:.10f}")
    print(f"RESULT val_loss={loss:.10f} val_bpb={bpb:.10f} tokens={scored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
