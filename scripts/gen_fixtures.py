#!/usr/bin/python3
"""Generate the C++ test fixture tests/fixtures/kd_tiny.kdt (reference losses, gradients, AdamW).

Usage: /usr/bin/python3 scripts/gen_fixtures.py tests/fixtures

Random weights are drawn in float32 (seed 20261126); all math is then done in float64 from those
float32 values. Weights are stored as float32, losses/gradients/activations as float64.
The script cross-checks the model and loss against independent implementations (naive loop
forward, F.kl_div / F.cross_entropy, finite differences, torch.autograd.gradcheck, a hand-written
AdamW) and re-reads the written file to check the round trip.
"""
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
from llama import (DIV_CODES, FEATURE_CODES, LlamaConfig, divergence, kd_loss, make_llama,  # noqa: E402
                   read_kdt, write_kdt)

SEED = 20261126
F64 = torch.float64

STUDENT = LlamaConfig(vocab=67, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=40, tie_embeddings=True)
TEACHER = LlamaConfig(vocab=67, d_model=24, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=56, tie_embeddings=False)
B, T = 2, 11
PAIRS = [(1, 2), (2, 3)]

CASES = [  # name, alpha, tau, div, jsd_beta, beta, feature
    ("fkl", 0.3, 2.0, "fkl", 0.0, 0.0, "mse"),
    ("rkl", 0.3, 2.0, "rkl", 0.0, 0.0, "mse"),
    ("jsd", 0.3, 1.5, "jsd", 0.3, 0.0, "mse"),
    ("mse", 0.5, 2.0, "fkl", 0.0, 0.7, "mse"),
    ("cosine", 0.5, 2.0, "fkl", 0.0, 0.7, "cosine"),
    ("ce", 1.0, 2.0, "fkl", 0.0, 0.0, "mse"),
]
ADAMW = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, wd=0.1, max_norm=0.5, steps=4)

checks = []


def check(name, ok, detail=""):
    checks.append(name)
    print(f"  [{'ok' if ok else 'FAIL'}] {name} {detail}")
    if not ok:
        raise SystemExit(f"sanity check failed: {name}")


def close(a, b, rtol, atol=0.0):
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    err = (a - b).abs().max().item()
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol)), f"(max abs err {err:.3e})"


# ----------------------------------------------------------------------------------------------
# independent naive forward (explicit loops; pair rotation form of RoPE; explicit GQA index)
# ----------------------------------------------------------------------------------------------
def naive_forward(cfg, P, pre, idx):
    d, H, Hkv, hd, eps = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.norm_eps
    half = hd // 2

    def rms(x, w):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) / d + eps) * w

    def rope(vec, pos):  # vec [hd]; rotate pairs (j, j + hd/2) by pos * theta^(-2j/hd)
        out = vec.clone()
        for j in range(half):
            a = pos * cfg.rope_theta ** (-2.0 * j / hd)
            c, s = math.cos(a), math.sin(a)
            x1, x2 = vec[j], vec[j + half]
            out[j] = x1 * c - x2 * s
            out[j + half] = x2 * c + x1 * s
        return out

    Bn, Tn = idx.shape
    x = P[pre + "model.embed_tokens.weight"][idx]  # [B, T, d]
    hs = [x]
    for i in range(cfg.n_layers):
        L = f"{pre}model.layers.{i}."
        h = rms(x, P[L + "input_layernorm.weight"])
        q = h @ P[L + "self_attn.q_proj.weight"].t()
        k = h @ P[L + "self_attn.k_proj.weight"].t()
        v = h @ P[L + "self_attn.v_proj.weight"].t()
        y = torch.zeros(Bn, Tn, H * hd, dtype=x.dtype)
        for b in range(Bn):
            for head in range(H):
                g = head // (H // Hkv)
                qs = [rope(q[b, t, head * hd:(head + 1) * hd], t) for t in range(Tn)]
                ks = [rope(k[b, t, g * hd:(g + 1) * hd], t) for t in range(Tn)]
                for t in range(Tn):
                    sc = torch.stack([(qs[t] * ks[u]).sum() / math.sqrt(hd) for u in range(t + 1)])
                    w = torch.exp(sc - sc.max())
                    w = w / w.sum()
                    y[b, t, head * hd:(head + 1) * hd] = sum(w[u] * v[b, u, g * hd:(g + 1) * hd]
                                                             for u in range(t + 1))
        x = x + y @ P[L + "self_attn.o_proj.weight"].t()
        h = rms(x, P[L + "post_attention_layernorm.weight"])
        gt = h @ P[L + "mlp.gate_proj.weight"].t()
        up = h @ P[L + "mlp.up_proj.weight"].t()
        x = x + (gt / (1.0 + torch.exp(-gt)) * up) @ P[L + "mlp.down_proj.weight"].t()
        hs.append(x)
    head_w = P[pre + "model.embed_tokens.weight"] if cfg.tie_embeddings else P[pre + "lm_head.weight"]
    logits = rms(x, P[pre + "model.norm.weight"]) @ head_w.t()
    return logits, hs


# ----------------------------------------------------------------------------------------------
def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "kd_tiny.kdt")
    torch.set_num_threads(1)

    # ---- random weights in float32 ----------------------------------------------------------
    gen = torch.Generator().manual_seed(SEED)
    student32 = make_llama(STUDENT, gen, dtype=torch.float32)
    teacher32 = make_llama(TEACHER, gen, dtype=torch.float32)
    d_s, d_t = STUDENT.d_model, TEACHER.d_model
    projs32 = [(0.1 * torch.randn(d_s, d_t, generator=gen, dtype=torch.float32)).to(torch.float32)
               for _ in PAIRS]
    seq = torch.randint(0, STUDENT.vocab, (B, T + 1), generator=gen)
    tokens, labels = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    y = labels.reshape(-1)
    N = B * T
    assert "lm_head.weight" not in dict(student32.named_parameters())
    proj_names = [f"distill.feature_proj.{k}.weight" for k in range(len(PAIRS))]

    # ---- float64 copies, from the float32 values ----------------------------------------------
    student64 = copy.deepcopy(student32).to(F64)
    teacher64 = copy.deepcopy(teacher32).to(F64).eval().requires_grad_(False)
    with torch.no_grad():
        t_logits, t_hs = teacher64(tokens)
    t_logits = t_logits.reshape(N, -1)
    t_hs = [h.reshape(N, -1) for h in t_hs]

    rec = {}
    rec["student.config"] = torch.tensor(STUDENT.as_list(), dtype=torch.int32)
    rec["teacher.config"] = torch.tensor(TEACHER.as_list(), dtype=torch.int32)
    rec["feature.pairs"] = torch.tensor(PAIRS, dtype=torch.int32)
    rec["batch.config"] = torch.tensor([B, T], dtype=torch.int32)
    rec["tokens"] = tokens.to(torch.int32)
    rec["labels"] = labels.to(torch.int32)
    for n, p in student32.named_parameters():
        rec[f"student.{n}"] = p.detach().clone()
    for n, p in teacher32.named_parameters():
        rec[f"teacher.{n}"] = p.detach().clone()
    for n, W in zip(proj_names, projs32):
        rec[n] = W.clone()

    print("sanity checks:")
    # ---- model vs independent naive implementation -------------------------------------------
    s_logits0, s_hs0 = student64(tokens)
    for tag, cfg, model, lg, hs in (("student", STUDENT, student64, s_logits0, s_hs0),
                                     ("teacher", TEACHER, teacher64, t_logits, t_hs)):
        P = {f"{tag}.{n}": p.detach() for n, p in model.named_parameters()}
        nl, nhs = naive_forward(cfg, P, f"{tag}.", tokens)
        ok, det = close(lg.reshape(N, -1), nl.reshape(N, -1), 1e-12, 1e-12)
        check(f"{tag} logits == naive loop forward (RoPE pair form, explicit GQA)", ok, det)
        ok = all(close(a.reshape(N, -1), b.reshape(N, -1), 1e-12, 1e-12)[0] for a, b in zip(hs, nhs))
        check(f"{tag} hidden states hs[0..{cfg.n_layers}] == naive", ok and len(hs) == cfg.n_layers + 1)
    check("student hs[0] == embedding rows",
          torch.equal(s_hs0[0], student64.model.embed_tokens.weight[tokens]))
    rec["teacher.logits"] = t_logits.detach().clone()
    rec["student.logits"] = s_logits0.reshape(N, -1).detach().clone()
    for k, h in enumerate(s_hs0):
        rec[f"student.hidden.{k}"] = h.reshape(N, -1).detach().clone()
    for k, h in enumerate(t_hs):
        rec[f"teacher.hidden.{k}"] = h.detach().clone()

    # ---- loss components vs torch.nn.functional ----------------------------------------------
    s = s_logits0.reshape(N, -1).detach()
    for tau in (1.0, 2.0):
        ls, lt = F.log_softmax(s / tau, -1), F.log_softmax(t_logits / tau, -1)
        ok, det = close(divergence(s, t_logits, tau, "fkl").mean(),
                        F.kl_div(ls, lt, log_target=True, reduction="batchmean"), 1e-13)
        check(f"fkl (tau={tau}) == F.kl_div(log q, log p, batchmean)", ok, det)
        ok, det = close(divergence(s, t_logits, tau, "rkl").mean(),
                        F.kl_div(lt, ls, log_target=True, reduction="batchmean"), 1e-13)
        check(f"rkl (tau={tau}) == F.kl_div(log p, log q, batchmean)", ok, det)
    for b in (0.3, 0.5, 0.9):
        p, q = F.softmax(t_logits / 1.5, -1), F.softmax(s / 1.5, -1)
        m = b * p + (1 - b) * q
        ref = (b * (p * (p / m).log()).sum(-1) + (1 - b) * (q * (q / m).log()).sum(-1)).mean()
        ok, det = close(divergence(s, t_logits, 1.5, "jsd", b).mean(), ref, 1e-10, 1e-14)
        check(f"jsd (beta={b}) == probability-space formula", ok, det)
    ok, det = close(F.cross_entropy(s, y), -F.log_softmax(s, -1)[torch.arange(N), y].mean(), 1e-13)
    check("CE == -mean log_softmax[label]", ok, det)
    d0 = divergence(s, s, 2.0, "jsd", 0.3).abs().max().item() + divergence(s, s, 2.0, "fkl").abs().max().item()
    check("divergences vanish for identical logits", d0 < 1e-14, f"({d0:.1e})")

    # ---- cases -------------------------------------------------------------------------------
    def run_case(model, projs, cfg):
        _, alpha, tau, div, jb, beta, feat = cfg
        logits, hs = model(tokens)
        return kd_loss(logits.reshape(N, -1), t_logits, y, alpha=alpha, tau=tau, div=div, jsd_beta=jb,
                       beta=beta, feature=feat, pairs=PAIRS, projs=projs,
                       hs_student=[h.reshape(N, -1) for h in hs], hs_teacher=t_hs)

    def fresh():
        m = copy.deepcopy(student64)
        pr = [W.to(F64).clone().requires_grad_(True) for W in projs32]
        return m, pr

    fd_gen = torch.Generator().manual_seed(7)
    for cfg in CASES:
        name, alpha, tau, div, jb, beta, feat = cfg
        model, projs = fresh()
        out = run_case(model, projs, cfg)
        model.zero_grad(set_to_none=True)
        out["loss"].backward()
        pre = f"case.{name}."
        for key in ("loss", "ce", "kd", "feat"):
            rec[pre + key] = out[key].detach().reshape(1).clone()
        rec[pre + "config"] = torch.tensor([alpha, tau, DIV_CODES[div], jb, beta, FEATURE_CODES[feat]], dtype=F64)
        params = list(model.named_parameters()) + list(zip(proj_names, projs))
        grads = []
        for n, p in params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            rec[pre + "grad." + n] = g.detach().clone()
            grads.append(g.detach().clone())
        recomb = alpha * out["ce"] + (1 - alpha) * tau * tau * out["kd"] + beta * out["feat"]
        ok, det = close(out["loss"], recomb, 1e-14)
        check(f"{name}: loss == alpha*ce + (1-alpha)*tau^2*kd + beta*feat", ok, det)
        if beta == 0.0:
            check(f"{name}: projection grads are zero (beta=0)",
                  all(float(rec[pre + "grad." + n].abs().max()) == 0.0 for n in proj_names))
        # directional central finite differences over ALL trained tensors, Richardson-extrapolated
        def loss_at(dirs, step):
            m2, pr2 = fresh()
            with torch.no_grad():
                for (_, p2), u in zip(list(m2.named_parameters()) + list(zip(proj_names, pr2)), dirs):
                    p2.add_(step * u)
                return run_case(m2, pr2, cfg)["loss"].item()

        worst = 0.0
        for _ in range(3):
            dirs = [torch.randn(p.shape, generator=fd_gen, dtype=F64) for _, p in params]
            ana = sum((g * u).sum() for g, u in zip(grads, dirs)).item()
            h = 1e-4
            d1 = (loss_at(dirs, h) - loss_at(dirs, -h)) / (2 * h)
            d2 = (loss_at(dirs, h / 2) - loss_at(dirs, -h / 2)) / h
            num = (4 * d2 - d1) / 3
            worst = max(worst, abs(num - ana) / abs(ana))
        check(f"{name}: grad . u == finite difference (3 random directions over all tensors)",
              worst < 1e-8, f"(worst rel err {worst:.2e})")

    # ---- torch.autograd.gradcheck on a subset, all loss paths on -------------------------------
    sel = ["model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.self_attn.k_proj.weight",
           "model.layers.0.post_attention_layernorm.weight"]
    for div, feat in (("jsd", "cosine"), ("rkl", "mse")):
        model, projs = fresh()
        named = dict(model.named_parameters())
        base = {n: named[n].detach().clone() for n in sel}

        def f(*xs):
            ps = list(xs[:len(sel)])
            # functional forward: overwrite selected params with the gradcheck inputs
            m2 = copy.deepcopy(model)
            for n, x in zip(sel, ps):
                mod = m2
                *path, last = n.split(".")
                for part in path:
                    mod = getattr(mod, part)
                delattr(mod, last)
                setattr(mod, last, x)
            return run_case(m2, [xs[len(sel)], projs[1]],
                            ("gc", 0.4, 1.7, div, 0.35, 0.6, feat))["loss"]

        inputs = tuple(base[n].clone().requires_grad_(True) for n in sel) + (projs[0].detach().clone().requires_grad_(True),)
        ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
        check(f"torch.autograd.gradcheck (div={div}, feature={feat}, beta=0.6) on {len(inputs)} tensors "
              f"({sum(x.numel() for x in inputs)} elements)", ok)

    # ---- AdamW trajectory on case `mse` -------------------------------------------------------
    mse_cfg = [c for c in CASES if c[0] == "mse"][0]
    A = ADAMW
    model, projs = fresh()
    named = list(model.named_parameters())
    decay = [p for _, p in named if p.dim() == 2]
    no_decay = [p for _, p in named if p.dim() != 2] + projs
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=A["wd"]), dict(params=no_decay, weight_decay=0.0)],
                            lr=A["lr"], betas=(A["beta1"], A["beta2"]), eps=A["eps"])
    all_params = decay + no_decay
    losses, norms = [], []
    # hand-written AdamW on plain tensors, for cross-checking torch's
    man = {id(p): p.detach().clone() for p in all_params}
    wd_of = {id(p): A["wd"] for p in decay}
    wd_of.update({id(p): 0.0 for p in no_decay})
    mom = {k: torch.zeros_like(v) for k, v in man.items()}
    vel = {k: torch.zeros_like(v) for k, v in man.items()}
    for step in range(1, A["steps"] + 1):
        opt.zero_grad(set_to_none=True)
        out = run_case(model, projs, mse_cfg)
        out["loss"].backward()
        gn = torch.nn.utils.clip_grad_norm_(all_params, max_norm=A["max_norm"])
        losses.append(out["loss"].item())
        norms.append(float(gn))
        # manual reference (uses the model's clipped grads, checks the update rule)
        for p in all_params:
            k = id(p)
            g = p.grad.detach()
            man[k] = man[k] * (1 - A["lr"] * wd_of[k])
            mom[k] = A["beta1"] * mom[k] + (1 - A["beta1"]) * g
            vel[k] = A["beta2"] * vel[k] + (1 - A["beta2"]) * g * g
            mhat = mom[k] / (1 - A["beta1"] ** step)
            vhat = vel[k] / (1 - A["beta2"] ** step)
            man[k] = man[k] - A["lr"] * mhat / (vhat.sqrt() + A["eps"])
        opt.step()
    # independent check of the clip: recompute loss/grad norm at step 0 from a fresh copy
    m3, pr3 = fresh()
    o3 = run_case(m3, pr3, mse_cfg)
    o3["loss"].backward()
    gn0 = torch.sqrt(sum((p.grad ** 2).sum() for p in list(m3.parameters()) + pr3)).item()
    ok, det = close(norms[0], gn0, 1e-13)
    check("adamw: grad_norms[0] == sqrt(sum ||g||^2) over all trained tensors", ok, det)
    ok, det = close(losses[0], rec["case.mse.loss"][0], 1e-14)
    check("adamw: losses[0] == case.mse.loss", ok, det)
    worst = max((man[id(p)] - p.detach()).abs().max().item() for p in all_params)
    check("adamw: torch.optim.AdamW == hand-written decoupled AdamW (wd: p *= 1 - lr*wd)", worst < 1e-13,
          f"(max abs err {worst:.1e})")
    check("adamw: trajectory exercises both clipped and unclipped steps",
          any(n > A["max_norm"] for n in norms) and any(n <= A["max_norm"] for n in norms),
          f"(norms {', '.join(f'{n:.3f}' for n in norms)})")
    check("adamw: loss decreases", losses[-1] < losses[0], f"(losses {', '.join(f'{l:.6f}' for l in losses)})")
    rec["adamw.config"] = torch.tensor([A["lr"], A["beta1"], A["beta2"], A["eps"], A["wd"], A["max_norm"]], dtype=F64)
    rec["adamw.losses"] = torch.tensor(losses, dtype=F64)
    rec["adamw.grad_norms"] = torch.tensor(norms, dtype=F64)
    for n, p in list(model.named_parameters()) + list(zip(proj_names, projs)):
        rec["adamw.final." + n] = p.detach().clone()

    # ---- write + round trip ------------------------------------------------------------------
    write_kdt(path, rec)
    back = read_kdt(path)
    ok = list(back) == list(rec) and all(
        back[n].dtype == t.dtype and back[n].shape == t.shape and torch.equal(back[n], t) for n, t in rec.items())
    check(f"round trip: {len(rec)} records re-read bit-exactly (names, order, dtype, shape, data)", ok)
    with open(path, "rb") as fh:
        head = fh.read(12)
    check("header magic/version/count", head[:4] == b"KDTF" and int.from_bytes(head[4:8], "little") == 1
          and int.from_bytes(head[8:12], "little") == len(rec))
    print(f"wrote {path}: {len(rec)} records, {os.path.getsize(path)} bytes; {len(checks)} checks passed")
    for name, *_ in CASES:
        print(f"  case {name:7s} loss={rec[f'case.{name}.loss'][0]:.12f} ce={rec[f'case.{name}.ce'][0]:.9f} "
              f"kd={rec[f'case.{name}.kd'][0]:.9f} feat={rec[f'case.{name}.feat'][0]:.9f}")


if __name__ == "__main__":
    main()
