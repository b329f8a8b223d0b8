#!/usr/bin/python3
"""DOCSTRING PLACEHOLDER"""
import argparse
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "torch_ref"))
import gen_oneshot_fixtures as ref  # noqa: E402
from llama import DecoderLayer, Llama, LlamaConfig, rope_tables, write_kdt  # noqa: E402

F64, F32 = torch.float64, torch.float32
CFG = LlamaConfig(vocab=96, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4, d_ff=128,
                  tie_embeddings=False, rope_theta=10000.0, norm_eps=1e-5)
S_CAL, T_CAL = 8, 32
SEED = 7

# The four input sites of a block, in true-sequential order: their linears, and what feeds them.
SITES = ("qkv", "o", "gate_up", "down")
LINEARS = {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "o": ("self_attn.o_proj",),
           "gate_up": ("mlp.gate_proj", "mlp.up_proj"), "down": ("mlp.down_proj",)}
NORM = {"qkv": "input_layernorm", "gate_up": "post_attention_layernorm"}  # folded into (AWQ, SmoothQuant)
PRODUCER = {"o": "self_attn.v_proj", "down": "mlp.up_proj"}  # AWQ folds into its rows
HOOKED = {"qkv": "self_attn.q_proj", "o": "self_attn.o_proj", "gate_up": "mlp.gate_proj", "down": "mlp.down_proj"}


def pname(l, mod):
    return f"model.layers.{l}.{mod}.weight"


def block_linears(l):
    return [pname(l, m) for s in SITES for m in LINEARS[s]]


def block_params(l):
    """The block's parameters in Hugging Face order (norms and linears)."""
    return [n for n in Llama(CFG).param_names() if n.startswith(f"model.layers.{l}.")]


def f32(t):
    """A parameter write: round to float32, keep computing in float64."""
    return t.float().to(F64)


# ---------------------------------------------------------------- data
def make_dense():
    """The dense model (float32 values held as float64) and the calibration tokens."""
    g = torch.Generator().manual_seed(SEED)
    d, V, Fd = CFG.d_model, CFG.vocab, CFG.d_ff

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=F64) * std

    def pick(n, k):
        return torch.randperm(n, generator=g)[:k].sort().values

    P = {}
    emb = randn(V, d)
    emb[:, pick(d, 4)] *= 8.0  # outlier channels of the residual stream
    P["model.embed_tokens.weight"] = emb
    for l in range(CFG.n_layers):
        P[pname(l, "input_layernorm")] = 1.0 + randn(d, std=0.1)
        P[pname(l, "self_attn.q_proj")] = randn(d, d, std=0.15)
        P[pname(l, "self_attn.k_proj")] = randn(d, d, std=0.15)
        v = randn(d, d, std=0.06)
        v[pick(d, 4)] *= 6.0  # outlier rows: outlier channels of o_proj's input
        P[pname(l, "self_attn.v_proj")] = v
        P[pname(l, "self_attn.o_proj")] = randn(d, d, std=0.06)
        post = 1.0 + randn(d, std=0.1)
        post[pick(d, 3)] *= 6.0  # outlier channels of gate/up's input
        P[pname(l, "post_attention_layernorm")] = post
        P[pname(l, "mlp.gate_proj")] = randn(Fd, d, std=0.1)
        up = randn(Fd, d, std=0.06)
        up[pick(Fd, 6)] *= 6.0  # outlier rows: outlier channels of down_proj's input
        P[pname(l, "mlp.up_proj")] = up
        P[pname(l, "mlp.down_proj")] = randn(d, Fd, std=0.06)
    P["model.norm.weight"] = 1.0 + randn(d, std=0.1)
    P["lm_head.weight"] = randn(V, d, std=0.05)
    tokens = torch.randint(0, V, (S_CAL, T_CAL), generator=g, dtype=torch.int64)
    names = Llama(CFG).param_names()
    assert sorted(names) == sorted(P)
    return {n: f32(P[n]) for n in names}, tokens


# ---------------------------------------------------------------- forward (llama.py's modules)
class Forward:
    """Block and model forwards in one dtype (float64: the reference; float32: what a float32 port computes).
    Parameters are the float32 values; site inputs come back as float64 [N, cols]."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.cos, self.sin = rope_tables(T_CAL, CFG.head_dim, CFG.rope_theta, dtype=dtype)
        self.mask = torch.triu(torch.ones(T_CAL, T_CAL, dtype=torch.bool), 1)
        self.layer = DecoderLayer(CFG).to(dtype)
        self.model = Llama(CFG).to(dtype)
        self.layer.requires_grad_(False)
        self.model.requires_grad_(False)
        self.caught = {}
        for site, mod in HOOKED.items():
            self.layer.get_submodule(mod).register_forward_pre_hook(self._hook(site))

    def _hook(self, site):
        def hook(_module, args):
            self.caught[site] = args[0]
        return hook

    @torch.no_grad()
    def embed(self, state, tokens):
        return state["model.embed_tokens.weight"][tokens].to(self.dtype)

    @torch.no_grad()
    def block(self, state, l, x):
        """Block l on inputs x [S, T, d] (self.dtype): ({site: X [N, cols] float64}, outputs [S, T, d])."""
        for n, p in self.layer.named_parameters():
            p.copy_(state[f"model.layers.{l}.{n}"])
        self.caught = {}
        out = self.layer(x, self.cos, self.sin, self.mask)
        X = {s: v.reshape(-1, v.shape[-1]).to(F64) for s, v in self.caught.items()}
        return X, out

    @torch.no_grad()
    def all_sites(self, state, tokens):
        """Every site's inputs under one model, block by block: {(l, site): X}."""
        x, out = self.embed(state, tokens), {}
        for l in range(CFG.n_layers):
            X, x = self.block(state, l, x)
            out.update({(l, s): X[s] for s in SITES})
        return out

    @torch.no_grad()
    def last_hidden(self, state, tokens):
        """h_L (the residual stream after the last block, before the final norm) by Llama.forward, [N, d]."""
        for n, p in self.model.named_parameters():
            p.copy_(state[n])
        _, hs = self.model(tokens)
        return hs[-1].reshape(-1, CFG.d_model).to(F64)


# ---------------------------------------------------------------- methods (per site, in place)
class Method:
    stores_err = True  # the err.<linear> records

    def __init__(self):
        self.rec = {}  # method-specific records, names without the case prefix
        self.seen_X = {}  # (l, site) -> the X the site was compressed with

    def site(self, st, l, site, X):
        raise NotImplementedError

    def block_end(self, st, l):
        pass


class Gptq(Method):
    def __init__(self, bits, sym, gran):
        super().__init__()
        self.q = (bits, sym, gran)

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            Q, S, Z = ref.gptq(st[n], X, *self.q)
            assert torch.equal(Q, f32(Q))
            st[n] = f32(Q)
            self.rec[f"scale.{n}"], self.rec[f"zero.{n}"] = ref.slot_records(S, Z, self.q[2])


class SparseGpt(Method):
    def __init__(self, p=0.5, nm=None, quant=None):
        super().__init__()
        self.p, self.nm, self.quant = p, nm, quant

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            Wp, keep, S, Z = ref.sparsegpt(st[n], X, self.p, self.nm, self.quant, scales=True)
            st[n] = f32(Wp)
            self.rec[f"mask.{n}"] = keep.to(torch.int32)
            if self.quant:
                self.rec[f"scale.{n}"], self.rec[f"zero.{n}"] = ref.slot_records(S, Z, self.quant[2])


class Wanda(Method):
    def __init__(self, p=0.5, nm=None):
        super().__init__()
        self.p, self.nm = p, nm

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            keep = ref.wanda(st[n], X, self.p, self.nm)
            st[n] = f32(st[n] * keep)
            self.rec[f"mask.{n}"] = keep.to(torch.int32)


class Awq(Method):
    """AWQ int4 g64 sym with clipping: scale search + fold + clip per site, float within the block, RTN at
    the block's end."""
    stores_err = False

    def __init__(self):
        super().__init__()
        self.alpha, self.margin, self.tie_final = [], [], math.inf

    def site(self, st, l, site, X):
        names = [pname(l, m) for m in LINEARS[site]]
        losses, alpha, s = ref.awq([st[n] for n in names], X)
        srt = torch.sort(losses).values
        self.alpha.append(alpha)
        self.margin.append(((srt[1] - srt[0]) / srt[1]).item())
        self.rec[f"awq_scale.{l}.{site}"] = s
        if site in NORM:
            nn_ = pname(l, NORM[site])
            st[nn_] = f32(st[nn_] / s)
        else:
            pn = pname(l, PRODUCER[site])
            st[pn] = f32(st[pn] / s.unsqueeze(1))
        for n in names:
            st[n] = f32(st[n] * s)
        for n in names:
            _, Wc = ref.awq_clip(st[n], X / s)
            st[n] = f32(Wc)

    def block_end(self, st, l):
        saved = dict(ref.MARGIN)
        ref.MARGIN.update(tie=math.inf)
        for n in block_linears(l):
            st[n] = f32(ref.rtn(st[n], 4, True, "g64"))
        self.tie_final = min(self.tie_final, ref.MARGIN["tie"])
        ref.MARGIN.update(tie=min(saved["tie"], ref.MARGIN["tie"]))


class SmoothQuant(Method):
    stores_err = False

    def site(self, st, l, site, X):
        if site not in NORM:
            return
        names = [pname(l, m) for m in LINEARS[site]]
        saved = dict(ref.MARGIN)
        s, _ = ref.smoothquant([st[n] for n in names], X, alpha=0.5)
        ref.MARGIN.update(saved)  # its W8A8 error estimate's quantizations are not part of this pass
        self.rec[f"smooth_scale.{l}.{site}"] = s
        nn_ = pname(l, NORM[site])
        st[nn_] = f32(st[nn_] / s)
        for n in names:
            st[n] = f32(st[n] * s)


class Rtn(Method):
    """Baseline (printed, not stored): round-to-nearest of the dense weights, no calibration."""

    def __init__(self, bits, sym, gran):
        super().__init__()
        self.q = (bits, sym, gran)

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            st[pname(l, mod)] = f32(ref.rtn(st[pname(l, mod)], *self.q))


class Magnitude(Method):
    """Baseline (printed, not stored): per-row magnitude pruning, no calibration."""

    def __init__(self, p=0.5, nm=None):
        super().__init__()
        self.p, self.nm = p, nm

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            st[n] = f32(st[n] * ref.magnitude(st[n], self.p, self.nm))


CASES = [  # name, method factory, compress with the dense model's site inputs (the wrong wiring)
    ("gptq_int4_g64", lambda: Gptq(4, True, "g64"), False),
    ("gptq_int3_g64_asym", lambda: Gptq(3, False, "g64"), False),
    ("gptq_int3_g64_asym_dense_inputs", lambda: Gptq(3, False, "g64"), True),
    ("sparsegpt_50", lambda: SparseGpt(0.5), False),
    ("sparsegpt_2_4", lambda: SparseGpt(0.5, (2, 4)), False),
    ("sparsegpt_50_int4_g64", lambda: SparseGpt(0.5, None, (4, True, "g64")), False),
    ("wanda_50", lambda: Wanda(0.5), False),
    ("wanda_2_4", lambda: Wanda(0.5, (2, 4)), False),
    ("awq_int4_g64", Awq, False),
    ("smoothquant", SmoothQuant, False),
]
BASELINES = [
    ("rtn_int4_g64", lambda: Rtn(4, True, "g64")), ("rtn_int3_g64_asym", lambda: Rtn(3, False, "g64")),
    ("magnitude_50", lambda: Magnitude(0.5)), ("magnitude_2_4", lambda: Magnitude(0.5, (2, 4))),
]


# ---------------------------------------------------------------- the calibration pass
def pipeline(dense, tokens, method, fwd, dense_X=None):
    """kdtrain's block-sequential pass (docs/oneshot.md): per block, per site, a forward of the block on all
    calibration inputs with the weights as they are now, then the method on the site's linears; then the
    compressed block's outputs feed the next block. dense_X: use these site inputs instead (wrong wiring)."""
    st = dict(dense)
    x = fwd.embed(st, tokens)
    for l in range(CFG.n_layers):
        for site in SITES:
            X, _ = fwd.block(st, l, x)
            X = X[site] if dense_X is None else dense_X[(l, site)]
            method.seen_X[(l, site)] = X
            method.site(st, l, site, X)
        method.block_end(st, l)
        _, x = fwd.block(st, l, x)
    return st


def run_all(dense, tokens, fwd, baselines=True, verbose=True):
    """Every case: (records {name: tensor} without config/tokens/dense, info {case: dict})."""
    dense_X = fwd.all_sites(dense, tokens)
    h_dense = fwd.last_hidden(dense, tokens)
    rec, info = {}, {}
    todo = [(c, f, di, True) for c, f, di in CASES] + ([(c, f, False, False) for c, f in BASELINES] if baselines else [])
    for case, factory, dense_inputs, stored in todo:
        t0 = time.time()
        ref.MARGIN.update(tie=math.inf, rank=math.inf, choice=math.inf, edge=0)
        m = factory()
        st = pipeline(dense, tokens, m, fwd, dense_X if dense_inputs else None)
        fin_X = fwd.all_sites(st, tokens)
        h = fwd.last_hidden(st, tokens)
        hmse = ((h - h_dense) ** 2).sum(1).mean().item()
        it = {"hidden_mse": hmse, "margin": dict(ref.MARGIN), "time": time.time() - t0, "state": st}
        if not dense_inputs:  # the inputs a site saw when compressed are the final model's
            it["seen_vs_final"] = max((m.seen_X[k] - fin_X[k]).abs().max().item() for k in fin_X)
        errs = {}
        for l in range(CFG.n_layers):
            for site in SITES:
                for mod in LINEARS[site]:
                    n = pname(l, mod)
                    errs[n] = ref.out_err(st[n], dense[n], fin_X[(l, site)])
        it["err"] = errs
        if isinstance(m, Awq):
            it.update(alpha=m.alpha, alpha_margin=m.margin, tie_final=m.tie_final)
        info[case] = it
        if not stored:
            continue
        for l in range(CFG.n_layers):
            for n in block_params(l):
                rec[f"{case}.{n}"] = st[n].float()
        for kind in ("mask", "scale", "zero"):
            for n in [k for k in m.rec if k.startswith(kind + ".")]:
                rec[f"{case}.{n}"] = m.rec[n]
        if isinstance(m, Awq):
            rec[f"{case}.alpha"] = torch.tensor(m.alpha, dtype=F64)
            rec[f"{case}.alpha_margin"] = torch.tensor(m.margin, dtype=F64)
        for kind in ("awq_scale", "smooth_scale"):
            for n in [k for k in m.rec if k.startswith(kind + ".")]:
                rec[f"{case}.{n}"] = m.rec[n]
        if m.stores_err:
            for n, e in errs.items():
                rec[f"{case}.err.{n}"] = torch.tensor([e], dtype=F64)
        rec[f"{case}.hidden_mse"] = torch.tensor([hmse], dtype=F64)
    return rec, info


# ---------------------------------------------------------------- reports
def data_report(dense, tokens, fwd):
    X = fwd.all_sites(dense, tokens)
    print("dense model, site inputs: max over channels of mean|x| / median channel's; max|x| / median")
    for (l, site), x in X.items():
        a, m = x.abs().mean(0), x.abs().amax(0)
        print(f"  block {l} {site:8s} mean|x| {(a.max() / a.median()).item():6.2f}   max|x| {(m.max() / m.median()).item():6.2f}")
    # attention sharpness: the mean over queries (position >= 8) of the largest attention weight
    layer = fwd.layer
    for l in range(CFG.n_layers):
        x = fwd.embed(dense, tokens)
        for j in range(l):
            _, x = fwd.block(dense, j, x)
        for n, p in layer.named_parameters():
            p.copy_(dense[f"model.layers.{l}.{n}"])
        with torch.no_grad():
            xn = layer.input_layernorm(x)
            a = layer.self_attn
            b, t, _ = x.shape
            q = a.q_proj(xn).view(b, t, a.n_heads, a.hd).transpose(1, 2)
            k = a.k_proj(xn).view(b, t, a.n_heads, a.hd).transpose(1, 2)
            from llama import apply_rope
            q, k = apply_rope(q, fwd.cos, fwd.sin), apply_rope(k, fwd.cos, fwd.sin)
            att = ((q @ k.transpose(-2, -1)) / math.sqrt(a.hd)).masked_fill(fwd.mask, float("-inf")).softmax(-1)
            top = att[:, :, 8:, :].amax(-1).mean().item()
        print(f"  block {l} attention: mean largest weight {top:.3f} (uniform over 9..32 keys: ~0.06)")


def summary(info):
    print(f"{'case':34s} {'hidden_mse':>11s} {'sum err':>11s}  margins: rank   tie(ulp) edge  clip-choice  time")
    for c, it in info.items():
        mg = it["margin"]
        print(f"{c:34s} {it['hidden_mse']:11.5g} {sum(it['err'].values()):11.5g}   "
              f"{mg['rank']:9.3g} {mg['tie']:8.3g} {mg['edge']:5d} {mg['choice']:9.3g}  {it['time']:5.2f}s")
    a = info["awq_int4_g64"]
    print("awq alphas (block 0 qkv, o, gate_up, down, block 1 ...):", a["alpha"])
    print("awq alpha margins (best vs second-best loss, relative):", " ".join(f"{v:.3g}" for v in a["alpha_margin"]),
          f"  final RTN tie distance {a['tie_final']:.3g} ulp")
    bad = {c: it["seen_vs_final"] for c, it in info.items() if it.get("seen_vs_final", 0) != 0}
    print("site inputs at compression == final model's:", "yes (all cases)" if not bad else bad)


def wiring_report(info):
    a, b = info["gptq_int3_g64_asym"]["state"], info["gptq_int3_g64_asym_dense_inputs"]["state"]
    print("gptq_int3_g64_asym vs its dense-inputs wiring: fraction of weights that differ")
    for l in range(CFG.n_layers):
        parts = [f"{m.split('.')[1]} {(a[pname(l, m)] != b[pname(l, m)]).double().mean().item():.3f}"
                 for s in SITES for m in LINEARS[s]]
        tot = sum((a[n] != b[n]).sum().item() for n in block_linears(l)) / sum(a[n].numel() for n in block_linears(l))
        print(f"  block {l}: {tot:.3f}  ({', '.join(parts)})")


def robustness_report(rec64, info64, rec32, info32):
    print("float32 forward vs float64 forward (weights compared as float32 with rtol 1e-6):")
    for c, *_ in CASES:
        nw = dw = nm = dm = 0
        for k in rec64:
            if not k.startswith(c + ".") or k[len(c) + 1:].split(".")[0] != "model":
                continue
            a, b = rec64[k].double(), rec32[k].double()
            nw += a.numel()
            dw += (~torch.isclose(a, b, rtol=1e-6, atol=0.0)).sum().item()
        for k in rec64:
            if k.startswith(c + ".mask."):
                nm += rec64[k].numel()
                dm += (rec64[k] != rec32[k]).sum().item()
        e64, e32 = info64[c]["err"], info32[c]["err"]
        rel = max(abs(e32[n] - e64[n]) / abs(e64[n]) for n in e64) if e64 else float("nan")
        h = abs(info32[c]["hidden_mse"] - info64[c]["hidden_mse"]) / info64[c]["hidden_mse"]
        per_block = []
        for l in range(CFG.n_layers):
            ks = [f"{c}.{n}" for n in block_linears(l)]
            per_block.append(sum((~torch.isclose(rec64[k].double(), rec32[k].double(), rtol=1e-6, atol=0.0)).sum().item()
                                 for k in ks) / sum(rec64[k].numel() for k in ks))
        line = (f"  {c:34s} weights differ {dw / nw:.2e} (block 0 {per_block[0]:.2e}, block 1 {per_block[1]:.2e})"
                f"  masks {dm / nm if nm else float('nan'):.2e}  max rel err change {rel:.2e}  hidden_mse {h:.2e}")
        if c == "awq_int4_g64":
            line += f"  alphas changed: {[i for i, (x, y) in enumerate(zip(info64[c]['alpha'], info32[c]['alpha'])) if x != y]}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default="tests/fixtures")
    ap.add_argument("--float32-forward", metavar="OUT.kdt",
                    help="also run the pass with the forward in float32, write its records there, and compare")
    ap.add_argument("--no-baselines", action="store_true", help="skip the printed RTN / magnitude baselines")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic summation order for the records
    t0 = time.time()
    dense, tokens = make_dense()
    fwd64 = Forward(F64)
    data_report(dense, tokens, fwd64)
    rec, info = run_all(dense, tokens, fwd64, baselines=not args.no_baselines)
    summary(info)
    wiring_report(info)
    head = {"config": torch.tensor(CFG.as_list(), dtype=torch.int32), "tokens": tokens.to(torch.int32)}
    head.update({f"dense.{n}": t.float() for n, t in dense.items()})
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "oneshot_pipeline.kdt")
    write_kdt(path, {**head, **rec})
    print(f"wrote {path}: {len(head) + len(rec)} records, {os.path.getsize(path)} bytes, {time.time() - t0:.1f}s")
    if args.float32_forward:
        rec32, info32 = run_all(dense, tokens, Forward(F32), baselines=False)
        write_kdt(args.float32_forward, {**head, **rec32})
        print(f"wrote {args.float32_forward} (float32 forward)")
        robustness_report(rec, info, rec32, info32)


if __name__ == "__main__":
    main()
