#!/usr/bin/env python3
"""Reads a kdtrain checkpoint without kdtrain: h5py, numpy and zlib only.

Prints what the file holds (kind, state, provenance, each tensor group with its tensor count
and values, the per-rank rows) and checks every dataset against the file's manifest (its
size and CRC-32, computed here independently of kdtrain). The layout is
docs/checkpoint-format.md.

Usage: python3 scripts/read_checkpoint.py CHECKPOINT.h5 [--tensor GROUP/NAME]
Exit 0: read and verified; 1: the manifest does not match (the dataset is named); 2: not a
kdtrain checkpoint. Debian: apt-get install python3-h5py.
"""
import argparse
import json
import sys
import zlib

import h5py
import numpy as np


def text(v):
    """kdtrain stores fixed-length UTF-8 strings; h5py returns them as bytes."""
    return bytes(v).decode("utf-8")


def stored_bytes(f, entry):
    """The bytes the manifest's CRC covers: a text's UTF-8, a group's attributes as "name=value"
    lines in name order, a tensor's little-endian elements."""
    if entry["dtype"] == "attributes":
        attrs = f[entry["path"]].attrs
        lines = []
        for k in sorted(attrs):  # code-point order = the UTF-8 byte order HDF5 lists them in
            v = attrs[k]
            lines.append(f"{k}={text(v) if isinstance(v, (bytes, np.bytes_)) else int(v)}\n")
        return "".join(lines).encode("utf-8")
    ds = f[entry["path"]]
    if entry["dtype"] == "string":
        return text(ds[()]).encode("utf-8")
    a = ds[()] if ds.shape == () else ds[...]
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()


def verify(f):
    """Every dataset the manifest lists: present, of its type and shape, size and CRC-32 equal."""
    if "manifest" not in f:
        return ["no manifest (an older kdtrain, or written by export/ptq)"]
    manifest = json.loads(text(f["manifest"][()]))
    problems = []
    for e in manifest["datasets"]:
        if e["path"] not in f:
            problems.append(f"{e['path']}: missing")
            continue
        ds = f[e["path"]]
        if e["dtype"] not in ("string", "attributes") and (list(ds.shape) != e["shape"] or np.dtype(ds.dtype).name != e["dtype"]):
            problems.append(f"{e['path']}: {ds.dtype} {ds.shape}, the manifest says {e['dtype']} {e['shape']}")
            continue
        try:
            data = stored_bytes(f, e)
        except OSError as err:  # h5py raises OSError when Fletcher-32 refuses a chunk
            problems.append(f"{e['path']}: unreadable ({err})")
            continue
        crc = f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"
        if len(data) != e["bytes"] or crc != e["crc32"]:
            problems.append(f"{e['path']}: {len(data)} bytes CRC-32 {crc}, the manifest says {e['bytes']} {e['crc32']}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--tensor", help="also print this tensor's shape, dtype and first values (GROUP/NAME)")
    a = ap.parse_args()
    with h5py.File(a.checkpoint, "r") as f:
        if f.attrs.get("format") is None or text(f.attrs["format"]) != "kdtrain-checkpoint":
            print(f"{a.checkpoint}: not a kdtrain checkpoint", file=sys.stderr)
            return 2
        print(f"checkpoint {a.checkpoint}: format_version {int(f.attrs['format_version'])}, kind {text(f.attrs['kind'])}")
        for k, v in f["state"].attrs.items():
            print(f"state {k}: {int(v)}")
        for k, v in f["provenance"].attrs.items():
            print(f"provenance {k}: {text(v)}")
        print(f"config: {len(text(f['config'][()]).splitlines())} lines of YAML")
        print(f"metrics: {len(text(f['metrics'][()]).splitlines())} JSON lines")
        for group in f["tensors"]:
            g = f["tensors"][group]
            print(f"tensors/{group}: {len(g)} tensors, {sum(g[n].size for n in g)} values")
        if "ranks" in f:
            for key in f["ranks"]:
                rows = f["ranks"][key][...]
                print(f"ranks/{key}: written by {rows.shape[0]} ranks: {rows.tolist()}")
        if a.tensor:
            ds = f["tensors"][a.tensor]
            print(f"{a.tensor}: {ds.dtype} {ds.shape} {np.asarray(ds[...]).ravel()[:4].tolist()}")
        problems = verify(f)
    for p in problems:
        print(f"{a.checkpoint}: damaged: {p}", file=sys.stderr)
    if not problems:
        print("manifest: every dataset's size and CRC-32 match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
