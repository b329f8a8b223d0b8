#!/usr/bin/python3
"""PyTorch reference of a training checkpoint at any size, for kdtrain's checkpoint benchmark.

Builds the student of a kdtrain config's `model` section (scripts/torch_ref/llama.py, the same
parameter shapes as kdtrain's), gives AdamW its state (one step on random gradients: exp_avg
and exp_avg_sq per parameter, as kdtrain's m and v), then times what a PyTorch trainer does for
a checkpoint:
  write: torch.save({"model": state_dict, "optim": state_dict}) to a temporary name in the
         directory, flush, fsync, os.replace over the final name (median of --repeats);
  read:  torch.load of it, then load_state_dict into the model and the optimizer (median), the
         file in the page cache (read_s: as torch.save left it) and not (read_disk_s: its pages
         dropped with posix_fadvise(DONTNEED) first, as for a resume in a new job; median of
         DISK_REPEATS, as kdtrain's bench: this VM's disk varies most there).
torch.load checks nothing (no checksum is read back); kdtrain's reads check every byte.
With --alternate-with FILE (a kdtrain checkpoint of the same state) each read from disk is
paired with one of FILE by `KDTRAIN inspect --verify` (every byte read and checked against
the manifest; the time it reports from the open on, as torch.load's is timed in-process),
dropped from the cache the same way,
so both sides see the disk at the same minute: this VM's disk changes speed 2x and more
within minutes, and two processes timed one after the other compare its moods.
The last line is machine-readable:
  RESULT impl=pytorch checkpoint_mb=.. write_s=.. read_s=.. read_disk_s=.. [kdtrain_verify_disk_s=..]
Usage: /usr/bin/python3 scripts/torch_ckpt_ref.py --config configs/bench-ckpt2g.yaml [--dir D] [--threads 2]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
from llama import LlamaConfig, make_llama  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a kdtrain config; its model section gives the shapes")
    p.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--alternate-with", default=None, metavar="FILE",
                   help="a kdtrain checkpoint of the same state: time its `inspect --verify` from disk, read for read")
    p.add_argument("--kdtrain", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "kdtrain"))
    a = p.parse_args()
    if a.alternate_with and not os.path.isfile(a.alternate_with):
        p.error(f"--alternate-with {a.alternate_with}: no such file")
    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        m = yaml.safe_load(f)["model"]
    cfg = LlamaConfig(vocab=m["vocab"], d_model=m["d_model"], n_layers=m["n_layers"], n_heads=m["n_heads"],
                      n_kv_heads=m.get("n_kv_heads", m["n_heads"]), d_ff=m["d_ff"],
                      tie_embeddings=bool(m.get("tie_embeddings", False)))
    g = torch.Generator().manual_seed(1234)
    model = make_llama(cfg, g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    for prm in model.parameters():
        prm.grad = torch.randn(prm.shape, generator=g) * 1e-3
    opt.step()
    opt.zero_grad(set_to_none=True)
    values = sum(p.numel() for p in model.parameters()) * 3
    other = None
    if a.alternate_with:
        def other():
            """kdtrain's whole-file read from disk: open to the last check, as inspect --verify reports it
            (its process start, ~0.16 s of loading libraries here, is left out as Python's is for torch.load)."""
            drop_cached(a.alternate_with)
            out = subprocess.run([a.kdtrain, "inspect", "--verify", a.alternate_with], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout
            m = re.search(r"checked in ([0-9.]+) s", out)
            if not m:
                sys.exit(f"kdtrain inspect --verify said no time: {out!r}")
            return float(m.group(1))
    w, r, rd, size, kd = time_checkpoint(model, opt, a.dir, a.repeats, other)
    print(f"checkpoint (torch.save of the model's and AdamW's state_dicts, fsync, rename): {values / 1e6:.2f}M "
          f"values, {size / 1e6:.1f} MB; write median {w:.3f} s of {a.repeats} ({size / 1e6 / w:.0f} MB/s), "
          f"load median {r:.3f} s (page cache), {rd:.3f} s (from disk, of {DISK_REPEATS})")
    extra = ""
    if kd is not None:
        print(f"read from disk, alternated: kdtrain inspect --verify of {a.alternate_with} median {kd:.3f} s "
              f"(open to last check), torch.load {rd:.3f} s")
        extra = f" kdtrain_verify_disk_s={kd:.3f}"
    print(f"RESULT impl=pytorch checkpoint_mb={size / 1e6:.1f} write_s={w:.3f} read_s={r:.3f} read_disk_s={rd:.3f}{extra}")


def drop_cached(path):
    """The file's pages out of the page cache (written back first): the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


DISK_REPEATS = 5  # from-disk reads, as kBenchDiskReads in trainer/cli/bench_checkpoint.h


def time_checkpoint(model, opt, directory=None, repeats=3, other=None):
    """(write, read, read from disk) medians in seconds, the file's size, and the median of
    `other()` (None without), called before each read from disk (see the docstring)."""
    with tempfile.TemporaryDirectory(dir=directory) as d:
        path = os.path.join(d, "ckpt.pt")
        writes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with open(path + ".tmp", "wb") as f:
                torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(path + ".tmp", path)
            writes.append(time.perf_counter() - t0)
        size = os.path.getsize(path)

        def load():
            t0 = time.perf_counter()
            state = torch.load(path)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optim"])
            del state
            return time.perf_counter() - t0

        disk, others = [], []
        for _ in range(DISK_REPEATS):
            if other is not None:
                others.append(other())
            drop_cached(path)
            disk.append(load())
        cached = [load() for _ in range(repeats)]
    return (statistics.median(writes), statistics.median(cached), statistics.median(disk), size,
            statistics.median(others) if others else None)


if __name__ == "__main__":
    main()
