#!/usr/bin/python3
"""PyTorch (CPU, fp32) reference timing of ONE knowledge-distillation training step, for kdtrain.

Same workload as shared/bench/torch_kd_bench.py (default "kd", --student-only, --qat and
--prune variants), built on the Llama module in scripts/torch_ref/llama.py
(HF parameter names, n_kv_heads = n_heads, untied output head):

  vocab 8192, seq 256, batch 8 (2048 tokens/step), random tokens (fixed seed)
  teacher: d=512, L=8, H=8, d_ff=1408 (frozen, eval, forward under no_grad)
  student: d=256, L=4, H=4, d_ff=704  (trained, AdamW lr 3e-4 wd 0.1)
  loss = 0.5*CE(student, next) + 0.5*T^2*KL(softmax(t/T) || softmax(s/T)), T=2,
         KL summed over the vocabulary and averaged over tokens
  weights: normal(0, 0.02) for matrices/embedding, RMSNorm weights = 1

FLOPs per step (analytic, dense; causal mask not halved):
  n = L*(4*d*d + 3*d*d_ff) + d*V
  student training = 6*n*tokens + 3*(4*L*T*d*tokens)
  teacher forward  = 2*n*tokens + 4*L*T*d*tokens

--qat: the student trains under eager-mode fake quantization (torch.ao.quantization.FakeQuantize,
straight-through backward), matching kdtrain's W8A8 QAT with quant.weight=int8:channel
quant.activation=int8:tensor and the rest of the `quant` section at its defaults:
  * every linear weight of the decoder layers: qint8 [-128, 127], per output channel, symmetric,
    scales from the min/max of the CURRENT weights each step (kdtrain's minmax weight calibrator;
    MovingAveragePerChannelMinMaxObserver with averaging_constant=1.0 is exactly that, whereas
    PerChannelMinMaxObserver would keep the running extremes of all past weights);
  * every linear input of the decoder layers: qint8 [-128, 127], per tensor, symmetric, a static
    scale from a MovingAverageMinMaxObserver (averaging constant 0.01). As in kdtrain, q/k/v
    read one fake-quantized input and gate/up read one (a forward pre-hook on self_attn and on
    mlp), o_proj and down_proj each fake-quantize their own input;
  * the output head (lm_head) and the embedding stay in float (kdtrain's quant.head/embedding
    default to false); observers run and fake quantization is on from the first step.
The FLOP count is the same as without --qat (fake quantization is not counted), as in kdtrain.

Run with Debian's interpreter: /usr/bin/python3 scripts/torch_kd_ref.py [--student-only] [--qat] ...
The last line is machine-readable:
  RESULT impl=pytorch variant=<kd|student-only>[+qat] step_ms=.. tokens_per_s=.. gflop_per_step=..
         gflops=.. mfu=.. peak_rss_kib=.. threads=..
"""
import argparse
import ctypes
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
from llama import LlamaConfig, make_llama  # noqa: E402

TEMP = 2.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--student-only", action="store_true", help="plain CE training of the student; no teacher")
    p.add_argument("--qat", action="store_true",
                   help="student under W8A8 fake quantization (int8 per-channel weights, int8 per-tensor inputs)")
    p.add_argument("--prune", type=float, default=0.0,
                   help="torch.nn.utils.prune.l1_unstructured(amount=P) on every linear weight of the student's "
                        "blocks (q/k/v/o/gate/up/down; the head stays dense, as kdtrain's magnitude_layer)")
    p.add_argument("--steps", type=int, default=6, help="timed steps (>= 1)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--peak-gflops", type=float,
                   default=float(os.environ.get("SGEMM_PEAK_GFLOPS", "0")) or None,
                   help="denominator for MFU (measured sgemm peak, GFLOP/s; env SGEMM_PEAK_GFLOPS)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--checkpoint", action="store_true",
                   help="also time torch.save of the student's and AdamW's state_dicts (+ fsync), and torch.load")
    p.add_argument("--show-config", action="store_true", help="print torch build and parallel info")
    a = p.parse_args()
    if a.steps < 1:
        p.error("--steps must be >= 1")
    return a


def openblas_info():
    """Describe the BLAS library loaded in this process (found via /proc/self/maps)."""
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    path = parts[-1]
                    base = os.path.basename(path).lower()
                    if ("openblas" in base or base.startswith("libblas")) and path not in libs:
                        libs.append(path)
    except OSError:
        pass
    if not libs:
        return "no libopenblas/libblas mapped in this process"
    lines = ["loaded BLAS libraries: " + ", ".join(libs)]
    for path in sorted(libs, key=lambda s: "openblas" not in os.path.basename(s).lower()):
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            lines.append(f"  {path}: cannot open ({e})")
            continue
        info = []
        for fn, restype in (("openblas_get_config", ctypes.c_char_p), ("openblas_get_corename", ctypes.c_char_p),
                            ("openblas_get_num_threads", ctypes.c_int), ("openblas_get_parallel", ctypes.c_int)):
            f = getattr(lib, fn, None)
            if f is None:
                continue
            f.restype, f.argtypes = restype, []
            v = f()
            if isinstance(v, bytes):
                v = v.decode(errors="replace").strip()
            info.append(f"{fn.replace('openblas_get_', '')}={v}")
        if info:
            lines.append(f"  OpenBLAS via {os.path.basename(path)}: " + "; ".join(info))
            break
    else:
        lines.append("  no openblas_get_* symbols found (not OpenBLAS?)")
    return "\n".join(lines)


def weight_fake_quant():
    """int8 symmetric per output channel, scales from the current weights' min/max."""
    from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver
    return FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
                        quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_channel_symmetric, ch_axis=0)


def input_fake_quant():
    """int8 symmetric per tensor, static scale from a moving-average min/max observer."""
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
    return FakeQuantize(observer=MovingAverageMinMaxObserver, averaging_constant=0.01,
                        quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_tensor_symmetric)


class QatLinear(nn.Module):
    """nn.Linear (no bias) whose weight, and optionally input, go through FakeQuantize."""

    def __init__(self, lin: nn.Linear, quantize_input: bool):
        super().__init__()
        assert lin.bias is None
        self.weight = lin.weight  # the same Parameter: the optimizer trains the float weight
        self.weight_fake_quant = weight_fake_quant()
        self.input_fake_quant = input_fake_quant() if quantize_input else None

    def forward(self, x):
        if self.input_fake_quant is not None:
            x = self.input_fake_quant(x)
        return F.linear(x, self.weight_fake_quant(self.weight))


def _fake_quant_first_input(module, args):
    return (module.input_fake_quant(args[0]),) + tuple(args[1:])


def prepare_qat(model):
    """Swaps in the fake quantizers of --qat (before the optimizer is built). Head, embedding: float."""
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        for m, shared, own in ((attn, ("q_proj", "k_proj", "v_proj"), "o_proj"),
                               (mlp, ("gate_proj", "up_proj"), "down_proj")):
            for name in shared:  # one fused input, fake-quantized once by the pre-hook below
                setattr(m, name, QatLinear(getattr(m, name), quantize_input=False))
            setattr(m, own, QatLinear(getattr(m, own), quantize_input=True))
            m.input_fake_quant = input_fake_quant()
            m.register_forward_pre_hook(_fake_quant_first_input)
    return model


def flops_per_step(cfg: LlamaConfig, tokens: int, T: int, train: bool):
    d, L, dff, V = cfg.d_model, cfg.n_layers, cfg.d_ff, cfg.vocab
    n = L * (4 * d * d + 3 * d * dff) + d * V
    attn_fwd = 4 * L * T * d * tokens
    if train:
        return 6 * n * tokens + 3 * attn_fwd, n
    return 2 * n * tokens + attn_fwd, n


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.show_config:
        print(torch.__config__.show())
        print(torch.__config__.parallel_info())

    V, T, B = args.vocab, args.seq, args.batch
    s_cfg = LlamaConfig(vocab=V, d_model=256, n_layers=4, n_heads=4, n_kv_heads=4, d_ff=704, tie_embeddings=False)
    t_cfg = LlamaConfig(vocab=V, d_model=512, n_layers=8, n_heads=8, n_kv_heads=8, d_ff=1408, tie_embeddings=False)
    # global RNG (seeded above); RMSNorm weights exactly 1 as in the shared benchmark
    student = make_llama(s_cfg, None, dtype=torch.float32, std=0.02, norm_noise=0.0)
    if args.qat:
        prepare_qat(student)
    if args.prune > 0:
        import torch.nn.utils.prune as tprune
        for layer in student.model.layers:
            for m in layer.modules():
                if isinstance(m, nn.Linear):
                    tprune.l1_unstructured(m, "weight", amount=args.prune)
    teacher = None
    if not args.student_only:
        teacher = make_llama(t_cfg, None, dtype=torch.float32, std=0.02, norm_noise=0.0)
        teacher.eval()
        teacher.requires_grad_(False)
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=3e-4, weight_decay=0.1)

    gen = torch.Generator().manual_seed(args.seed)
    data = [torch.randint(0, V, (B, T + 1), generator=gen) for _ in range(4)]
    tokens = B * T

    f_s, n_s = flops_per_step(s_cfg, tokens, T, train=True)
    f_t, n_t = (0, 0) if teacher is None else flops_per_step(t_cfg, tokens, T, train=False)
    f_total = f_s + f_t
    variant = ("student-only" if args.student_only else "kd") + ("+qat" if args.qat else "") + \
        (f"+prune{args.prune:g}" if args.prune > 0 else "")

    def step(i):
        batch = data[i % len(data)]
        x, y = batch[:, :-1], batch[:, 1:]
        t0 = time.perf_counter()
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(x)[0].reshape(-1, V)
        t1 = time.perf_counter()
        s_logits = student(x)[0].reshape(-1, V)
        ce = F.cross_entropy(s_logits, y.reshape(-1))
        if teacher is not None:
            log_q = F.log_softmax(s_logits / TEMP, dim=-1)
            log_p = F.log_softmax(t_logits / TEMP, dim=-1)
            # KL(p || q): sum over the vocabulary, mean over tokens
            kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
            loss = 0.5 * ce + 0.5 * TEMP * TEMP * kl
        else:
            loss = ce
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        return float(loss), dict(teacher_fwd=t1 - t0, student_fwd_loss=t2 - t1, backward=t3 - t2,
                                 optim=t4 - t3, total=t4 - t0)

    print(f"impl=pytorch variant={variant} torch={torch.__version__} python={sys.version.split()[0]} "
          f"B={B} T={T} V={V} seed={args.seed}")
    print(f"torch.get_num_threads()={torch.get_num_threads()} "
          f"torch.get_num_interop_threads()={torch.get_num_interop_threads()}")
    print(openblas_info())
    print(f"student N_nonemb(incl head)={n_s/1e6:.3f}M  teacher N_nonemb(incl head)={n_t/1e6:.3f}M")
    print(f"FLOPs/step: student train {f_s/1e9:.2f} G + teacher fwd {f_t/1e9:.2f} G = {f_total/1e9:.2f} G")
    print("loadavg before:", open("/proc/loadavg").read().strip())
    for i in range(args.warmup):
        l, ph = step(i)
        print(f"warmup {i}: loss {l:.4f} {ph['total']*1e3:.0f} ms")
    times, phases = [], []
    for i in range(args.steps):
        l, ph = step(args.warmup + i)
        times.append(ph["total"])
        phases.append(ph)
        print(f"step {i}: loss {l:.4f} {ph['total']*1e3:.0f} ms")
    print("loadavg after:", open("/proc/loadavg").read().strip())

    med = statistics.median(times)
    tps = tokens / med
    gfs = f_total / med / 1e9
    print("phase medians (ms): " + " ".join(
        f"{k}={statistics.median(p[k] for p in phases)*1e3:.1f}"
        for k in ("teacher_fwd", "student_fwd_loss", "backward", "optim")))
    print(f"median step {med*1e3:.1f} ms (min {min(times)*1e3:.1f}, max {max(times)*1e3:.1f}); "
          f"tokens/s {tps:.1f}; achieved {gfs:.1f} GFLOP/s")
    mfu = gfs / args.peak_gflops if args.peak_gflops else float("nan")
    if args.peak_gflops:
        print(f"MFU {mfu:.3f} of peak {args.peak_gflops:.1f} GFLOP/s")
    else:
        print("MFU: n/a (pass --peak-gflops or set SGEMM_PEAK_GFLOPS)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS {rss} KiB ({rss/1024:.1f} MiB)")
    print(f"RESULT impl=pytorch variant={variant} step_ms={med*1e3:.1f} tokens_per_s={tps:.1f} "
          f"gflop_per_step={f_total/1e9:.2f} gflops={gfs:.1f} mfu={mfu:.3f} peak_rss_kib={rss} "
          f"threads={torch.get_num_threads()}")
    if args.checkpoint:
        checkpoint_reference(student, opt)


def checkpoint_reference(student, opt):
    """What a PyTorch trainer does for a checkpoint: torch.save of the model's and the optimizer's
    state_dicts to a temporary name, fsync, rename (median of 3); then torch.load of it into the
    model and optimizer (median of 3), from the page cache and from disk (scripts/torch_ckpt_ref.py)."""
    from torch_ckpt_ref import time_checkpoint
    w, read, read_disk, size, _ = time_checkpoint(student, opt)
    print(f"checkpoint (torch.save, state_dicts of the student and AdamW, fsync, rename): {size/1e6:.1f} MB, "
          f"write median {w:.3f} s of 3, load median {read:.3f} s of 3 (page cache), {read_disk:.3f} s (from disk)")
    print(f"RESULT impl=pytorch checkpoint_mb={size/1e6:.1f} write_s={w:.3f} read_s={read:.3f} read_disk_s={read_disk:.3f}")


if __name__ == "__main__":
    main()
