#!/usr/bin/python3
"""How unequal a model's linear-layer inputs are across channels: what Wanda's |W|·‖X_j‖ and
SmoothQuant's max|X_j| act on (docs/oneshot.md, "Results on the demo teacher").

For each input site (q/k/v, o, gate/up, down) of every block, the L2 norm of each input channel
over the calibration tokens and its max |x|; printed: the largest channel norm over the median
one, and the largest max|x| over the median one. LLMs past ~6B parameters have a few input
channels 20-100x larger than the rest (Dettmers et al. 2022; the Wanda and SmoothQuant papers'
motivation); a model without them gives those methods little to work with.

Usage: /usr/bin/python3 scripts/oneshot_channel_norms.py CHECKPOINT.h5 TRAIN_SHARD [--samples 32] [--seq-len 256]
Independent of kdtrain's C++: the model is scripts/torch_ref/llama.py in float64, read by
scripts/check_checkpoint_torch.py's reader.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_checkpoint_torch import build_model, model_config, read_checkpoint, read_shard  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("shard")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    a = ap.parse_args()
    cfg, tensors, _ = read_checkpoint(a.checkpoint)
    lc, _ = model_config(cfg, a.checkpoint)
    model = build_model(lc, tensors, a.checkpoint)
    ids, _ = read_shard(a.shard)
    rng = np.random.default_rng(7)
    starts = rng.integers(0, len(ids) - a.seq_len - 1, a.samples)
    batch = torch.from_numpy(np.stack([ids[s:s + a.seq_len] for s in starts]).astype(np.int64))
    stats = {}

    def hook(name):
        def f(_module, inputs):
            x = inputs[0].reshape(-1, inputs[0].shape[-1])
            stats[name] = (x.pow(2).sum(0).sqrt(), x.abs().max(0).values)
        return f

    for i, layer in enumerate(model.model.layers):
        for site, mod in [("q/k/v", layer.self_attn.q_proj), ("o", layer.self_attn.o_proj),
                          ("gate/up", layer.mlp.gate_proj), ("down", layer.mlp.down_proj)]:
            mod.register_forward_pre_hook(hook(f"{i} {site}"))
    with torch.no_grad():
        model(batch)
    print(f"{'block site':<12} {'max/median L2 norm':>20} {'max/median max|x|':>20}")
    for name, (norm, amax) in stats.items():
        print(f"{name:<12} {float(norm.max() / norm.median()):>20.1f} {float(amax.max() / amax.median()):>20.1f}")


if __name__ == "__main__":
    main()
