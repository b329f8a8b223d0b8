#!/usr/bin/env python3
"""Reads a kdtrain checkpoint with h5py alone, as a user without kdtrain would, and checks it
against the contents tests/test_checkpoint.cpp writes (its `fill()`). Exit 0 when all match.

Usage: /usr/bin/python3 tests/checkpoint_h5py_check.py FILE   (Debian: python3-h5py)
"""
import json
import sys

import h5py
import numpy as np


def text(v):
    """Fixed-length strings (attributes and datasets) come back as bytes: decode them."""
    assert isinstance(v, (bytes, np.bytes_)), f"expected a fixed-length string, got {type(v)}"
    return bytes(v).decode("utf-8")


def main(path):
    model_names = [
        "model.layers.1.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.norm.weight", "lm_head.weight", "model.rope.cache", "special", "scalar", "empty",
    ]
    shapes = [(12, 8), (8, 8), (8,), (1100, 1000), (2, 3, 4), (10,), (), (0, 5)]
    with h5py.File(path, "r") as f:
        assert text(f.attrs["format"]) == "kdtrain-checkpoint"
        assert f.attrs["format_version"] == 1 and f.attrs["format_version"].dtype == np.int64
        assert text(f.attrs["kind"]) == "train"

        config = text(f["config"][()])
        assert f["config"].shape == () and "naïve Ελληνικά 日本語 🙂" in config, config
        assert f["config"].asstr()[()] == config  # h5py's str view of the same dataset
        assert json.loads(text(f["tokenizer"][()]))["format"] == "kdtrain-bpe"
        lines = text(f["metrics"][()]).splitlines()
        assert len(lines) == 40000 and json.loads(lines[-1])["step"] == 39999 and json.loads(lines[0])["note"] == "ü→✓"

        prov = {k: text(v) for k, v in f["provenance"].attrs.items()}
        assert prov["kdtrain_version"] == "0.1.0" and prov["host"] == "nœud-7" and prov["empty"] == "", prov
        state = dict(f["state"].attrs.items())
        assert state["step"] == 1234 and state["data_cursor"] == 987654321012345
        assert state["max"] == 2**63 - 1 and state["min"] == -2**63 and state["negative"] == -42
        assert all(v.dtype == np.int64 for v in state.values())

        assert sorted(f["tensors"]) == ["adam_m", "adam_v", "model", "teacher"]
        assert list(f["tensors/model"]) == model_names, list(f["tensors/model"])  # stored order
        for name, shape in zip(model_names, shapes):
            ds = f["tensors/model"][name]
            assert ds.dtype == np.dtype("<f4") and ds.shape == shape, (name, ds.dtype, ds.shape)
            # contiguous and unfiltered (the manifest's CRC-32s cover every byte), a page-aligned start
            assert ds.chunks is None and not ds.fletcher32 and ds.compression is None, name
            if ds.nbytes >= 4096:
                assert ds.id.get_offset() % 4096 == 0, (name, ds.id.get_offset())

        w = f["tensors/model/lm_head.weight"][...]
        want = np.float32(-1.5) + np.float32(0.001) * np.arange(w.size, dtype=np.float32)
        assert np.allclose(w.ravel(), want, rtol=1e-6, atol=1e-6), "lm_head values"  # the test may use FMA
        bits = f["tensors/model/special"][...].view(np.uint32)
        assert bits[1] == 0x80000000 and bits[6] == 0x7FC12345, [hex(b) for b in bits]
        t = f["tensors/teacher/model.embed_tokens.weight"][...]
        assert t.shape == (16, 4) and t[3, 1] == np.float32(3.0 + 0.25 * 13)
    print(f"h5py {h5py.version.version} (HDF5 {h5py.version.hdf5_version}) read {path}: OK")


if __name__ == "__main__":
    main(sys.argv[1])
