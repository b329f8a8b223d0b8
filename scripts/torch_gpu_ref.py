#!/usr/bin/env python3
"""PyTorch's time for the teacher forward that tests/gpu_bench_teacher.cpp times on kdtrain's
CUDA backend: the same Llama shape (trunk + head over every token), bf16 autocast on the GPU,
attention through F.scaled_dot_product_attention (its flash kernel), eager and torch.compile.
Usage: python3 scripts/torch_gpu_teacher_ref.py [d layers heads kv_heads d_ff vocab seq batch]
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h, hkv, ff):
        super().__init__()
        self.h, self.hkv, self.hd = h, hkv, d // h
        self.n1, self.n2 = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, (h + 2 * hkv) * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.gu = nn.Linear(d, 2 * ff, bias=False)
        self.down = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.n1(x)).split([self.h * self.hd, self.hkv * self.hd, self.hkv * self.hd], dim=-1)
        q = q.view(b, t, self.h, self.hd).transpose(1, 2)
        k = k.view(b, t, self.hkv, self.hd).transpose(1, 2)
        v = v.view(b, t, self.hkv, self.hd).transpose(1, 2)

        def rope(z):
            z1, z2 = z.chunk(2, dim=-1)
            return z * cos + torch.cat((-z2, z1), dim=-1) * sin

        y = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True, enable_gqa=self.hkv != self.h)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, -1))
        g, u = self.gu(self.n2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


class Teacher(nn.Module):
    def __init__(self, d, layers, h, hkv, ff, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, h, hkv, ff) for _ in range(layers))
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.head = nn.Linear(d, vocab, bias=False)
        self.hd = d // h

    def forward(self, idx):
        t = idx.shape[1]
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, device=idx.device, dtype=torch.float32) / self.hd))
        ang = torch.outer(torch.arange(t, device=idx.device, dtype=torch.float32), inv)
        cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
        x = self.emb(idx)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.head(self.norm(x))


def median_ms(f, warmup=2, runs=5):
    for _ in range(warmup):
        f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


TEACHER = dict(d=2048, layers=16, h=16, hkv=16, ff=5632)
STUDENT = dict(d=1024, layers=8, h=8, hkv=8, ff=2816)
VOCAB, SEQ, BATCH = 32000, 1024, 8


def matmul_params(m):
    return m["layers"] * (4 * m["d"] ** 2 + 3 * m["d"] * m["ff"]) + m["d"] * VOCAB


def attn_fwd_flops(m, tokens):
    return 4.0 * m["layers"] * SEQ * m["d"] * tokens


def peak():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: torch.matmul(a, b), warmup=3, runs=10)
    tflops = 2.0 * n ** 3 / ms / 1e9
    print(f"cuBLAS bf16 GEMM {n}^3: {ms:.2f} ms, {tflops:.1f} TFLOP/s")
    print(f"RESULT impl=cublas bf16_peak_tflops={tflops:.1f}")


def teacher_fwd():
    model = Teacher(TEACHER["d"], TEACHER["layers"], TEACHER["h"], TEACHER["hkv"], TEACHER["ff"], VOCAB).cuda().eval()
    idx = torch.randint(0, VOCAB, (BATCH, SEQ), device="cuda")
    for name, fn in (("eager", model), ("compiled", torch.compile(model))):
        def run():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                fn(idx)
        ms = median_ms(run)
        print(f"pytorch {name} bf16 autocast: {ms:.1f} ms ({BATCH * SEQ / ms * 1e3:.0f} tokens/s)")
        print(f"RESULT impl=pytorch mode={name} teacher_fwd_ms={ms:.2f}")


def kd_step(peak_tflops):
    t, s = TEACHER, STUDENT
    teacher = Teacher(t["d"], t["layers"], t["h"], t["hkv"], t["ff"], VOCAB).cuda().eval().requires_grad_(False)
    student = Teacher(s["d"], s["layers"], s["h"], s["hkv"], s["ff"], VOCAB).cuda().train()
    opt = torch.optim.AdamW(student.parameters(), lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, fused=True)
    idx = torch.randint(0, VOCAB, (BATCH, SEQ + 1), device="cuda")
    inputs, labels = idx[:, :-1], idx[:, 1:]
    tokens = BATCH * SEQ
    flops = (6.0 * matmul_params(s) * tokens + 3.0 * attn_fwd_flops(s, tokens) +
             2.0 * matmul_params(t) * tokens + attn_fwd_flops(t, tokens))
    tau, alpha = 2.0, 0.5
    for name, (tm, sm) in (("eager", (teacher, student)), ("compiled", (torch.compile(teacher), torch.compile(student)))):
        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                with torch.no_grad():
                    zt = tm(inputs)
                zs = sm(inputs)
            zs, zt = zs.float().view(-1, VOCAB), zt.float().view(-1, VOCAB)
            ce = F.cross_entropy(zs, labels.reshape(-1))
            kl = F.kl_div(F.log_softmax(zs / tau, -1), F.log_softmax(zt / tau, -1), log_target=True,
                          reduction="batchmean")
            loss = alpha * ce + (1 - alpha) * tau * tau * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ms = median_ms(step, warmup=3, runs=6)
        tps = tokens / ms * 1e3
        tflops = flops / ms / 1e9
        mfu = tflops / peak_tflops if peak_tflops > 0 else float("nan")
        print(f"pytorch {name} KD step (bf16 autocast): {ms:.1f} ms, {tps:.0f} tokens/s, {tflops:.1f} TFLOP/s, "
              f"MFU {mfu:.3f}")
        print(f"RESULT impl=pytorch mode={name} step_ms={ms:.2f} tokens_per_s={tps:.1f} tflops={tflops:.1f} "
              f"mfu={mfu:.3f}")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "teacher"
    peak_tflops = float(sys.argv[sys.argv.index("--peak-tflops") + 1]) if "--peak-tflops" in sys.argv else 0.0
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    {"peak": peak, "teacher": teacher_fwd, "kd-step": lambda: kd_step(peak_tflops)}[mode]()


if __name__ == "__main__":
    main()
