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


def main():
    d, layers, h, hkv, ff, vocab, seq, batch = ([int(a) for a in sys.argv[1:9]] + [2048, 16, 16, 16, 5632, 32000, 1024, 8][len(sys.argv) - 1:])[:8]
    torch.manual_seed(0)
    model = Teacher(d, layers, h, hkv, ff, vocab).cuda().eval()
    idx = torch.randint(0, vocab, (batch, seq), device="cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for name, fn in (("eager", model), ("compiled", torch.compile(model))):
        def run():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                fn(idx)
        ms = median_ms(run)
        print(f"pytorch {name} bf16 autocast: {ms:.1f} ms ({batch * seq / ms * 1e3:.0f} tokens/s)")
        print(f"RESULT impl=pytorch mode={name} teacher_fwd_ms={ms:.2f}")


if __name__ == "__main__":
    main()
