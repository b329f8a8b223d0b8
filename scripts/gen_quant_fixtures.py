#!/usr/bin/python3
"""Reference data for kdtrain's quantization element math -> tests/fixtures/quant.kdt.

* FakeQuant forward and straight-through backward from PyTorch 1.13's own ops
  (torch.fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine), on inputs
  that include exact and near ties (k + 0.5)·scale and values far outside the range.
* FP8 tables: the value of every one of the 256 codes of E4M3 ("fn") and E5M2, computed
  here from the OCP specification's bit formula (torch 1.13 has no float8 dtypes).

Run: /usr/bin/python3 scripts/gen_quant_fixtures.py tests/fixtures
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
from llama import read_kdt, write_kdt  # noqa: E402


def fp8_value(code, ebits, mbits, bias, kind):
    sign = -1.0 if code & 0x80 else 1.0
    e = (code >> mbits) & ((1 << ebits) - 1)
    m = code & ((1 << mbits) - 1)
    if kind == "e4m3" and e == 15 and m == 7:
        return math.nan
    if kind == "e5m2" and e == 31:
        return sign * math.inf if m == 0 else math.nan
    if e == 0:
        return sign * (m / 2 ** mbits) * 2.0 ** (1 - bias)
    return sign * (1 + m / 2 ** mbits) * 2.0 ** (e - bias)


def inputs(scale, zp, qmin, qmax, n_random, gen):
    ks = torch.arange(qmin - zp - 3, qmax - zp + 3, dtype=torch.float64)
    ties = ((ks + 0.5) * scale).float()           # exact and near ties in float
    nudged = torch.cat([torch.nextafter(ties, torch.tensor(math.inf)), torch.nextafter(ties, torch.tensor(-math.inf))])
    far = torch.tensor([1e6, -1e6, 3.0e4, -3.0e4, 0.0, -0.0], dtype=torch.float32)
    rnd = (torch.randn(n_random, generator=gen) * scale * (qmax - qmin) / 3).float()
    return torch.cat([ties, nudged, far, rnd])


def main(out_dir):
    gen = torch.Generator().manual_seed(20261126)
    rec = {}
    # per-tensor: (name, scale, zero_point, qmin, qmax)
    cases = [("int8_sym", 0.1, 0, -128, 127), ("uint8_asym", 0.0473, 131, 0, 255),
             ("int4_sym", 0.37, 0, -8, 7), ("uint4_asym", 0.21, 5, 0, 15), ("int2", 0.5, 0, -2, 1)]
    for name, scale, zp, qmin, qmax in cases:
        x = inputs(scale, zp, qmin, qmax, 200, gen).requires_grad_(True)
        y = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        w = torch.randn(x.shape, generator=gen)
        y.backward(w)
        rec[f"pt.{name}.config"] = torch.tensor([scale, zp, qmin, qmax], dtype=torch.float64)
        rec[f"pt.{name}.scale"] = torch.tensor([scale], dtype=torch.float32)  # the float the op used
        rec[f"pt.{name}.x"] = x.detach()
        rec[f"pt.{name}.y"] = y.detach()
        rec[f"pt.{name}.w"] = w
        rec[f"pt.{name}.grad"] = x.grad.detach()
    # per-channel along axis 0 of a [C, K] weight
    C, K = 6, 40
    scales = torch.tensor([0.013, 0.1, 0.37, 0.0021, 1.5, 0.07], dtype=torch.float32)
    zps = torch.tensor([0, 3, -2, 0, 1, 0], dtype=torch.int32)
    x = (torch.randn(C, K, generator=gen) * scales[:, None] * 60).float()
    x[:, 0] = 0.5 * scales          # ties
    x[:, 1] = -2.5 * scales
    x[:, 2] = 1e5                   # clipped
    x.requires_grad_(True)
    y = torch.fake_quantize_per_channel_affine(x, scales, zps, 0, -128, 127)
    w = torch.randn(x.shape, generator=gen)
    y.backward(w)
    rec["pc.scales"] = scales
    rec["pc.zero_points"] = zps
    rec["pc.x"] = x.detach()
    rec["pc.y"] = y.detach()
    rec["pc.w"] = w
    rec["pc.grad"] = x.grad.detach()
    # LSQ: learnable scale and zero point (torch's private ops, present in 1.13)
    x = (torch.randn(500, generator=gen) * 3).float().requires_grad_(True)
    s_t = torch.tensor([0.3], requires_grad=True)
    z_t = torch.tensor([2.0], requires_grad=True)
    gf = 0.7
    y = torch._fake_quantize_learnable_per_tensor_affine(x, s_t, z_t, -8, 7, gf)
    w = torch.randn(x.shape, generator=gen)
    y.backward(w)
    rec["lsq_pt.config"] = torch.tensor([0.3, 2.0, -8, 7, gf], dtype=torch.float64)
    rec["lsq_pt.x"], rec["lsq_pt.y"], rec["lsq_pt.w"] = x.detach(), y.detach(), w
    rec["lsq_pt.dx"], rec["lsq_pt.dscale"], rec["lsq_pt.dzero"] = x.grad.detach(), s_t.grad.detach(), z_t.grad.detach()
    x = (torch.randn(C, K, generator=gen) * scales[:, None] * 60).float().requires_grad_(True)
    s_c = scales.clone().requires_grad_(True)
    z_c = zps.float().clone().requires_grad_(True)
    y = torch._fake_quantize_learnable_per_channel_affine(x, s_c, z_c, 0, -128, 127, gf)
    w = torch.randn(x.shape, generator=gen)
    y.backward(w)
    rec["lsq_pc.x"], rec["lsq_pc.y"], rec["lsq_pc.w"] = x.detach(), y.detach(), w
    rec["lsq_pc.dx"], rec["lsq_pc.dscale"], rec["lsq_pc.dzero"] = x.grad.detach(), s_c.grad.detach(), z_c.grad.detach()
    for kind, ebits, mbits, bias in [("e4m3", 4, 3, 7), ("e5m2", 5, 2, 15)]:
        rec[f"fp8.{kind}"] = torch.tensor([fp8_value(c, ebits, mbits, bias, kind) for c in range(256)], dtype=torch.float64)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "quant.kdt")
    write_kdt(path, rec)
    back = read_kdt(path)
    assert list(back) == list(rec)
    print(f"wrote {path}: {len(rec)} records, {os.path.getsize(path)} bytes")
    # sanity of the spec tables
    e4 = rec["fp8.e4m3"]
    assert float(e4[0x7E]) == 448.0 and math.isnan(float(e4[0x7F])) and float(e4[1]) == 2.0 ** -9
    e5 = rec["fp8.e5m2"]
    assert float(e5[0x7B]) == 57344.0 and math.isinf(float(e5[0x7C])) and float(e5[1]) == 2.0 ** -16


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
