#!/usr/bin/python3
"""Fuzz kdtrain's inputs (issue 20): configs, token shards, checkpoints, safetensors,
tokenizer.json and command lines, mutated at random from valid seeds with a fixed seed.

Every case runs kdtrain in a child process with a timeout and asserts:
  * it exits 0, 2 or 3 (never a signal, never another code);
  * on exit 2 its message names the mutated file (or, for a config or a command line, a key
    or option);
  * on exit 2 it left no run directory or output file behind;
  * it returns within the timeout (no hang).
Mutations of HDF5's own metadata (bytes of a checkpoint outside every dataset's stored data)
are held to the same rules: kdtrain writes the HDF5 1.10 format with compact links and
attributes, in which every metadata structure libhdf5 parses carries a checksum (with the
1.8 format's unchecked fractal heaps libhdf5 1.10 itself crashed on some of them).

Usage: fuzz_inputs.py KDTRAIN REPO_ROOT [--seed N] [--scale F]
Exit 0 when every case holds; 1 otherwise (each failing case printed with its reproduction).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

try:
    import h5py
    import numpy as np
    import yaml
except ImportError as e:  # scripts/test.sh installs python3-h5py and python3-yaml
    print(f"SKIP: {e}")
    sys.exit(77)

TIMEOUT_S = 60  # far beyond any case's time on a busy 2-core machine: only a hang reaches it
CONFIG_KEY = re.compile(r"\b(model|teacher|distill|optim|train|data|run|runtime|parallel|quant|prune|bench)\.[a-z_]+")
EVIL_VALUES = [-1, 0, 1, 2 ** 31, 2 ** 63, -(2 ** 63), 1e308, -1e-300, float("inf"), float("-inf"), float("nan"),
               "", "x", "../../escape", "/abs/path", "nan", ".inf", [], {}, [1, 2], {"a": 1}, None, True, "💥" * 3]


class Fuzzer:
    def __init__(self, kdtrain, root, tmp, rng):
        self.bin, self.root, self.tmp, self.rng = kdtrain, root, tmp, rng
        self.cases = 0
        self.failures = []
        self.runtime = []
        self.codes = {}

    # ---------------------------------------------------------------- running a case
    def run(self, what, argv, names, outputs=(), stdin=None, option_names_ok=False):
        """Runs kdtrain ARGV; `names`: substrings one of which a rc-2 message must hold;
        `outputs`: paths that must not exist after rc 2."""
        self.cases += 1
        for o in outputs:  # every case starts without its outputs
            if os.path.isdir(o):
                shutil.rmtree(o)
            elif os.path.lexists(o):
                os.unlink(o)
        try:
            p = subprocess.run([self.bin] + argv, capture_output=True, timeout=TIMEOUT_S, cwd=self.tmp,
                               input=stdin, env=dict(os.environ, OMP_NUM_THREADS="1"))
        except subprocess.TimeoutExpired:
            self.fail(what, argv, f"no exit within {TIMEOUT_S} s (a hang)")
            return None
        rc = p.returncode
        err = p.stderr.decode("utf-8", "replace")
        self.codes[rc] = self.codes.get(rc, 0) + 1
        if rc == 3:  # a runtime failure: allowed, listed for a reader to judge
            self.runtime.append(f"{what}: {err.strip().splitlines()[-1][:300] if err.strip() else '(no message)'}")
        if rc < 0:
            self.fail(what, argv, f"killed by {signal.Signals(-rc).name}; stderr: {err[-400:]}")
            return rc
        if rc not in (0, 2, 3):
            self.fail(what, argv, f"exit {rc}; stderr: {err[-400:]}")
        if rc in (2, 3):  # a runtime failure caused by an input names it too
            named = any(n and n in err for n in names) or CONFIG_KEY.search(err) or \
                (option_names_ok and (re.search(r"--[a-z][a-z-]+", err) or ("" in argv and "empty" in err)))
            if not named:
                self.fail(what, argv, f"exit {rc} without naming any of {names}: {err[-400:]}")
        if rc == 2:
            left = [o for o in outputs if os.path.lexists(o) or os.path.lexists(o + ".tmp")]
            if left:
                self.fail(what, argv, f"exit 2 left {left} behind")
        return rc

    def fail(self, what, argv, why):
        self.failures.append(f"{what}\n    kdtrain {' '.join(argv)}\n    {why}")

    def path(self, name):
        return os.path.join(self.tmp, name)

    # ---------------------------------------------------------------- byte mutations
    def mutate_bytes(self, data, lo=0, hi=None):
        """A random byte-level damage of data[lo:hi] (flips, zeroed run, truncation, insertion)."""
        b = bytearray(data)
        hi = len(b) if hi is None else hi
        if hi <= lo:
            return bytes(b)
        kind = self.rng.choice(["flip", "flip", "zero", "truncate", "insert", "ff"])
        at = self.rng.randrange(lo, hi)
        if kind == "flip":
            for _ in range(self.rng.randint(1, 4)):
                i = self.rng.randrange(lo, hi)
                b[i] ^= 1 << self.rng.randrange(8)
        elif kind == "zero":
            n = self.rng.randint(1, 64)
            b[at:at + n] = bytes(len(b[at:at + n]))
        elif kind == "ff":
            n = self.rng.randint(1, 16)
            b[at:at + n] = b"\xff" * len(b[at:at + n])
        elif kind == "truncate":
            del b[at:]
        else:
            b[at:at] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 32)))
        return bytes(b)

    def evil(self):
        return self.rng.choice(EVIL_VALUES)

    def mutate_tree(self, tree):
        """A random leaf of a JSON/YAML tree replaced, deleted, or a key added."""
        paths = []

        def walk(node, path):
            if isinstance(node, dict):
                for k, v in node.items():
                    paths.append(path + [k])
                    walk(v, path + [k])
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    paths.append(path + [i])
                    walk(v, path + [i])
        walk(tree, [])
        if not paths:
            return self.evil()
        p = self.rng.choice(paths)
        parent = tree
        for k in p[:-1]:
            parent = parent[k]
        op = self.rng.random()
        if op < 0.7:
            parent[p[-1]] = self.evil()
        elif op < 0.85 and isinstance(parent, dict):
            del parent[p[-1]]
        elif isinstance(parent, dict):
            parent[self.rng.choice(["bogus", "vocab", "steps", "shape", "dtype"]) + "_x"] = self.evil()
        return tree

    # ---------------------------------------------------------------- seeds
    def make_seeds(self):
        subprocess.run([self.bin, "prepare", os.path.join(self.root, "tests/data"), "--out", self.path("prep"),
                        "--vocab-size", "300", "--val-every", "3"], check=True, capture_output=True)
        self.config = {
            "model": {"vocab": 300, "d_model": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "d_ff": 32},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"steps": 2, "batch_size": 2, "seq_len": 16, "seed": 1, "threads": 1, "checkpoint_every": 2},
            "data": {"kind": "shards", "train": self.path("prep/train.bin"), "val": self.path("prep/val.bin")},
            "run": {"dir": self.path("runs"), "name": "seed"},
        }
        with open(self.path("base.yaml"), "w") as f:
            yaml.safe_dump(self.config, f)
        subprocess.run([self.bin, "train", "--config", self.path("base.yaml")], check=True, capture_output=True)
        self.ckpt = self.path("runs/seed/checkpoints/step-00000002.h5")
        shutil.copytree(os.path.join(self.root, "tests/fixtures/hf_tiny"), self.path("hf_seed"))

    # ---------------------------------------------------------------- configs
    def fuzz_configs(self, n):
        base = yaml.safe_dump(self.config)
        for i in range(n):
            name = f"cfg{i}.yaml"
            cfg_path = self.path(name)
            r = self.rng.random()
            if r < 0.6:
                tree = self.mutate_tree(json.loads(json.dumps(self.config)))
                text = yaml.safe_dump(tree, allow_unicode=True)
            elif r < 0.8:
                text = self.mutate_bytes(base.encode()).decode("utf-8", "replace")
            else:
                text = base + self.rng.choice([
                    "---\nmodel: {vocab: 8}\n", "? [a, b]\n: 1\n", "\tmodel: 1\n", "model: {vocab: 300\n",
                    "run: {name: ../../outside}\n", "optim: {lr: .inf}\n", "optim: {lr: .nan}\n",
                    "train: {threads: 4096}\n", "model: {d_model: 1048576, d_ff: 1048576}\n", "&a x: *a\n",
                    "model: !!binary aGVsbG8=\n"])
            with open(cfg_path, "w") as f:
                f.write(text)
            run_dir = self.path(f"runs/c{i}")
            # a value that names a file (data.train: nan) is named by its own message
            names = [name] + [str(v) for v in leaves(yaml_or_none(text))] + \
                [v.strip() for line in text.splitlines() for v in line.split(":", 1)[1:] if len(v.strip()) > 3]
            self.run(f"config mutation {i}", ["validate", cfg_path], names)
            # a short run of it, into a run directory that must not survive an exit 2
            self.run(f"config mutation {i} (train)",
                     ["train", "--config", cfg_path, "--set", f"run.dir={self.path('runs')}", "--set", f"run.name=c{i}",
                      "--set", "train.steps=1", "--set", "train.eval_every=0"],
                     names, outputs=[run_dir])

    # ---------------------------------------------------------------- shards
    def fuzz_shards(self, n):
        with open(self.path("prep/val.bin"), "rb") as f:
            seed = f.read()
        for i in range(n):
            name = f"shard{i}.bin"
            p = self.path(name)
            header = self.rng.random() < 0.6  # the 1 KiB header most of the time: where the checks are
            data = self.mutate_bytes(seed, 0, min(len(seed), 1024) if header else len(seed))
            if self.rng.random() < 0.1:
                data = bytes(1024) + data[1024:]  # a zeroed header
            with open(p, "wb") as f:
                f.write(data)
            self.run(f"shard mutation {i} (eval)", ["eval", self.ckpt, "--data", p, "--tokens", "64"], [name])
            run_dir = self.path(f"runs/s{i}")
            self.run(f"shard mutation {i} (train)",
                     ["train", "--config", self.path("base.yaml"), "--set", f"run.name=s{i}", "--set", f"data.train={p}",
                      "--set", "train.steps=1", "--set", "data.val="],
                     [name], outputs=[run_dir])

    # ---------------------------------------------------------------- checkpoints
    def payload_ranges(self, path):
        """Byte ranges of the file that hold datasets' stored data (chunks or contiguous)."""
        out = []
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if not isinstance(obj, h5py.Dataset):
                    return
                dsid = obj.id
                if obj.chunks is not None:
                    for k in range(dsid.get_num_chunks()):
                        info = dsid.get_chunk_info(k)
                        out.append((name, info.byte_offset, info.byte_offset + info.size))
                else:
                    off = dsid.get_offset()
                    if off is not None:
                        out.append((name, off, off + dsid.get_storage_size()))
            f.visititems(visit)
        return out

    def fuzz_checkpoints(self, n):
        with open(self.ckpt, "rb") as f:
            seed = f.read()
        ranges = self.payload_ranges(self.ckpt)
        covered = set()
        for _, a, b in ranges:
            covered.update(range(a, b))
        metadata = [i for i in range(len(seed)) if i not in covered]
        for i in range(n):
            name = f"ck{i}.h5"
            p = self.path(name)
            r = self.rng.random()
            if r < 0.35:  # a dataset's stored bytes (Fletcher-32, the manifest's CRCs)
                _, a, b = self.rng.choice(ranges)
                data = bytearray(seed)
                for _ in range(self.rng.randint(1, 3)):
                    data[self.rng.randrange(a, b)] ^= 1 << self.rng.randrange(8)
                what = "payload"
            elif r < 0.55:  # HDF5's own metadata: its checksums
                data = bytearray(seed)
                for _ in range(self.rng.randint(1, 3)):
                    data[self.rng.choice(metadata)] ^= 1 << self.rng.randrange(8)
                what = "hdf5 metadata"
            elif r < 0.6:
                data = seed[:self.rng.randrange(len(seed))]
                what = "truncation"
            else:
                data = None
                what = self.mutate_checkpoint_contents(p, seed)
            if data is not None:
                with open(p, "wb") as f:
                    f.write(bytes(data))
            out = self.path(f"ck{i}-out")
            self.run(f"checkpoint mutation {i} ({what}) eval",
                     ["eval", p, "--data", self.path("prep/val.bin"), "--tokens", "64"], [name])
            self.run(f"checkpoint mutation {i} ({what}) inspect --verify", ["inspect", p, "--verify"], [name])
            cmd = self.rng.choice([["export", p, "--format", "hf", "--out", out],
                                   ["ptq", p, "--out", out, "--batches", "1"],
                                   ["generate", p, "--prompt", "a", "--max-new-tokens", "2"],
                                   ["train", "--config", self.path("base.yaml"), "--set", f"run.name=k{i}",
                                    "--set", f"train.init_from={p}", "--set", "train.steps=1"]])
            outputs = [out] if "--out" in cmd else [self.path(f"runs/k{i}")] if cmd[0] == "train" else []
            self.run(f"checkpoint mutation {i} ({what}) {cmd[0]}", cmd, [name], outputs=outputs)

    def mutate_checkpoint_contents(self, p, seed):
        """kdtrain's texts, attributes or manifest changed with h5py; sometimes the manifest is
        re-sealed (recomputed) so that the reader's later checks are reached too."""
        with open(p, "wb") as f:
            f.write(seed)
        reseal = self.rng.random() < 0.5
        with h5py.File(p, "r+") as f:
            target = self.rng.choice(["config", "tokenizer", "manifest", "state", "provenance", "root", "tensor",
                                      "extra"])
            if target in ("config", "tokenizer", "manifest"):
                text = f[target][()].decode("utf-8", "replace")
                try:
                    tree = yaml.safe_load(text) if target == "config" else json.loads(text)
                    tree = self.mutate_tree(tree)
                    new = yaml.safe_dump(tree) if target == "config" else json.dumps(tree)
                except Exception:
                    new = self.mutate_bytes(text.encode()).decode("utf-8", "replace")
                del f[target]
                f.create_dataset(target, data=np.array(new.encode(), dtype=f"S{max(1, len(new.encode()))}"))
            elif target in ("state", "provenance", "root"):
                g = f if target == "root" else f[target]
                keys = list(g.attrs.keys())
                if keys:
                    k = self.rng.choice(keys)
                    v = self.rng.choice([np.int64(-1), np.int64(2 ** 62), np.bytes_(b"junk"), np.float64(1.5)])
                    g.attrs[k] = v
            elif target == "tensor":
                names = []
                f["tensors"].visit(lambda n: names.append(n) if isinstance(f["tensors"][n], h5py.Dataset) else None)
                ds = f["tensors"][self.rng.choice(names)]
                if ds.size > 0:
                    flat = ds[()].reshape(-1)
                    flat[self.rng.randrange(flat.size)] = self.rng.choice([np.nan, np.inf, 1e30, -0.0])
                    ds[...] = flat.reshape(ds.shape)
            else:  # a dataset the config does not describe
                f.create_dataset("tensors/model/model.layers.7.mlp.up_proj.weight", data=np.zeros((32, 16), "f4"))
        if reseal:
            reseal_manifest(p)
        return f"{target}{' resealed' if reseal else ''}"

    # ---------------------------------------------------------------- safetensors
    def fuzz_safetensors(self, n):
        shards = sorted(x for x in os.listdir(self.path("hf_seed")) if x.endswith(".safetensors") and x.startswith("model"))
        for i in range(n):
            d = self.path(f"hf{i}")
            shutil.copytree(self.path("hf_seed"), d)
            target = self.rng.choice(shards + ["config.json", "model.safetensors.index.json"])
            p = os.path.join(d, target)
            with open(p, "rb") as f:
                data = f.read()
            if target.endswith(".safetensors"):
                (hlen,) = struct.unpack("<Q", data[:8])
                r = self.rng.random()
                if r < 0.6:
                    header = json.loads(data[8:8 + hlen])
                    keys = [k for k in header if k != "__metadata__"]
                    k = self.rng.choice(keys)
                    field = self.rng.choice(["shape", "dtype", "data_offsets"])
                    header[k][field] = self.rng.choice([[2 ** 32, 2 ** 32], [-1, 4], [2 ** 63 - 1], "F64", "I8", "Q4",
                                                        [0, 2 ** 62], [10, 5], [], self.evil()])
                    new = json.dumps(header).encode()
                    data = struct.pack("<Q", len(new)) + new + data[8 + hlen:]
                elif r < 0.75:
                    data = struct.pack("<Q", self.rng.choice([0, 2 ** 63, len(data), hlen + 1, 2 ** 40])) + data[8:]
                else:
                    data = self.mutate_bytes(data)
            else:
                try:
                    data = json.dumps(self.mutate_tree(json.loads(data))).encode()
                except Exception:
                    data = self.mutate_bytes(data)
            with open(p, "wb") as f:
                f.write(data)
            out = self.path(f"hf{i}.h5")
            self.run(f"safetensors mutation {i} ({target})", ["import-hf", d, "--out", out],
                     [target, os.path.basename(d)], outputs=[out])

    # ---------------------------------------------------------------- tokenizer.json
    def fuzz_tokenizers(self, n):
        seeds = [self.path("prep/tokenizer.json"), os.path.join(self.root, "tests/fixtures/hf_tok_gpt2/tokenizer.json")]
        for i in range(n):
            src = self.rng.choice(seeds)
            with open(src, "rb") as f:
                data = f.read()
            try:
                data = json.dumps(self.mutate_tree(json.loads(data))).encode() if self.rng.random() < 0.7 \
                    else self.mutate_bytes(data)
            except Exception:
                data = self.mutate_bytes(data)
            name = f"tok{i}.json"
            p = self.path(name)
            with open(p, "wb") as f:
                f.write(data)
            out = self.path(f"tokprep{i}")
            self.run(f"tokenizer mutation {i} (prepare)",
                     ["prepare", os.path.join(self.root, "tests/data/doc_a_harbor.txt"), "--tokenizer", p, "--out", out],
                     [name], outputs=[out])
            self.run(f"tokenizer mutation {i} (tokenize)", ["tokenize", "--tokenizer", p, "--text", "Hello, wörld"],
                     [name])

    # ---------------------------------------------------------------- command lines
    def fuzz_command_lines(self, n):
        values = ["nan", "-nan", "inf", "-1", "0", "1", "1e309", "99999999999999999999", "", "x", "--", "-",
                  self.ckpt, self.path("prep/val.bin"), self.path("nope"), self.path("base.yaml"), "💥", "0x10"]
        commands = {
            "eval": (["CKPT"], ["--data", "--tokens", "--threads", "--teacher", "--json"]),
            "generate": (["CKPT"], ["--prompt", "--temperature", "--top-k", "--top-p", "--seed", "--threads"]),
            "inspect": (["CKPT"], ["--verify"]),
            "validate": (["CFG"], ["--set", "--ranks"]),
            "tokenize": ([], ["--tokenizer", "--text", "--ids", "--framed"]),
            "detokenize": ([], ["--tokenizer", "--ids"]),
            "export": (["CKPT"], ["--out", "--format", "--gguf-type", "--context-length", "--compact"]),
            "ptq": (["CKPT"], ["--out", "--weight", "--activation", "--calibrator", "--batches", "--seed"]),
            "help": ([], []),
            "config": ([], ["--doc"]),
        }
        for i in range(n):
            cmd = self.rng.choice(list(commands))
            positional, options = commands[cmd]
            argv = [cmd]
            for pos in positional:
                argv.append(self.ckpt if (pos == "CKPT" and self.rng.random() < 0.7) else
                            self.path("base.yaml") if pos == "CFG" else self.rng.choice(values))
            for _ in range(self.rng.randint(0, 4)):
                opt = self.rng.choice(options + ["--bogus", "--help"]) if options else "--bogus"
                argv.append(opt)
                if opt not in ("--json", "--verify", "--compact", "--framed", "--help") or self.rng.random() < 0.2:
                    v = self.rng.choice(values)
                    if opt == "--out":
                        v = self.path(f"cli-out{i}")
                    argv.append(v)
            outputs = [self.path(f"cli-out{i}")] if "--out" in argv else []
            # a parse error names an option (CLI11: "--out is required"), a bad value names the value
            self.run(f"command line {i}", argv, argv[1:] + [os.path.basename(a) for a in argv if "/" in a],
                     outputs=outputs, option_names_ok=True)


def yaml_or_none(text):
    try:
        return yaml.safe_load(text)
    except Exception:
        return None


def leaves(tree):
    """The scalar leaves of a YAML/JSON tree that are strings (file paths, names)."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in leaves(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in leaves(v)]
    return [tree] if isinstance(tree, str) and tree else []


def chunk_bounds(shape):
    """The flat-order bounds of kdtrain's chunks (trainer/checkpoint/layout.cpp, chunk_bounds)."""
    numel = int(np.prod(shape)) if shape else 1
    if numel == 0:
        return [0]
    chunk, inner = [1] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        fit = max(1, (1 << 20) // inner)
        chunk[k] = min(shape[k], fit)
        if chunk[k] < shape[k]:
            break
        inner *= shape[k]
    split = next((k for k in range(len(shape) - 1, -1, -1) if chunk[k] < shape[k]), None)
    if split is None:
        return [0, numel]
    inner = int(np.prod(shape[split + 1:])) if split + 1 < len(shape) else 1
    rows = numel // (shape[split] * inner)
    bounds = [0]
    for r in range(rows):
        base = r * shape[split] * inner
        bounds += [base + i * inner for i in range(chunk[split], shape[split], chunk[split])]
        bounds.append(base + shape[split] * inner)
    return bounds


def reseal_manifest(path):
    """Recomputes the manifest of a file h5py changed (as a tool that writes consistent but
    wrong contents would), so the reader's checks behind the CRCs are exercised."""
    with h5py.File(path, "r+") as f:
        entries = []

        def attrs_text(g):
            out = ""
            for k in sorted(g.attrs.keys()):
                v = g.attrs[k]
                out += f"{k}={int(v) if np.issubdtype(np.asarray(v).dtype, np.integer) else (v.decode() if isinstance(v, bytes) else v)}\n"
            return out.encode()

        for gname, g in [("/", f), ("provenance", f.get("provenance")), ("state", f.get("state"))]:
            if g is not None and len(g.attrs):
                t = attrs_text(g)
                entries.append({"path": gname, "dtype": "attributes", "shape": [], "bytes": len(t),
                                "crc32": f"{zlib.crc32(t) & 0xffffffff:08x}"})
        names = {"float32": "f4", "float64": "f8", "int8": "i1", "uint8": "u1", "int32": "i4", "int64": "i8"}

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or name == "manifest":
                return
            if obj.dtype.kind == "S":
                t = obj[()].rstrip(b"\0")
                entries.append({"path": name, "dtype": "string", "shape": [], "bytes": len(t),
                                "crc32": f"{zlib.crc32(t) & 0xffffffff:08x}"})
                return
            dtype = next((k for k, v in names.items() if np.dtype(v) == obj.dtype.newbyteorder("<")), str(obj.dtype))
            raw = np.ascontiguousarray(obj[()]).astype(obj.dtype.newbyteorder("<")).tobytes()
            e = {"path": name, "dtype": dtype, "shape": list(obj.shape), "bytes": len(raw),
                 "crc32": f"{zlib.crc32(raw) & 0xffffffff:08x}"}
            bounds = [b * obj.dtype.itemsize for b in chunk_bounds(list(obj.shape))]
            if len(bounds) > 2:
                e["chunk_crc32"] = [f"{zlib.crc32(raw[a:b]) & 0xffffffff:08x}" for a, b in zip(bounds, bounds[1:])]
            entries.append(e)
        f.visititems(visit)
        text = json.dumps({"checksum": "crc32", "datasets": entries}).encode()
        del f["manifest"]
        f.create_dataset("manifest", data=np.array(text, dtype=f"S{len(text)}"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kdtrain")
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0, help="case counts times this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (to reproduce a case)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="kd_fuzz_")
    t0 = time.time()
    try:
        fz = Fuzzer(os.path.abspath(a.kdtrain), os.path.abspath(a.root), tmp, rng)
        fz.make_seeds()
        n = lambda k: max(1, int(k * a.scale))
        for name, fn, count in [("configs", fz.fuzz_configs, 40), ("shards", fz.fuzz_shards, 30),
                                ("checkpoints", fz.fuzz_checkpoints, 40), ("safetensors", fz.fuzz_safetensors, 30),
                                ("tokenizer.json", fz.fuzz_tokenizers, 20), ("command lines", fz.fuzz_command_lines, 50)]:
            before, t = fz.cases, time.time()
            fn(n(count))
            print(f"{name}: {fz.cases - before} cases in {time.time() - t:.1f} s", flush=True)
    finally:
        if a.keep:
            print(f"scratch directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{fz.cases} cases in {time.time() - t0:.1f} s; exit codes {dict(sorted(fz.codes.items()))}")
    for k in fz.runtime:
        print("exit 3:", k)
    for f in fz.failures:
        print("FAIL:", f)
    print(f"{len(fz.failures)} failure(s)")
    return 1 if fz.failures else 0


if __name__ == "__main__":
    sys.exit(main())
