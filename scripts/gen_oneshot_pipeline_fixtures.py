#!/usr/bin/python3
"""Float64 reference for kdtrain's one-shot calibration pass -> tests/fixtures/oneshot_pipeline.kdt.

The block-sequential pass of docs/oneshot.md ("The calibration pass", "The methods") on a two-block Llama:
each method compresses every block linear with site inputs taken from the partly compressed model.
Independent of the C++ under trainer/ and kernels/.
Run: /usr/bin/python3 scripts/gen_oneshot_pipeline_fixtures.py tests/fixtures (about 2 s). With --float32-forward
OUT.kdt it also runs the pass with the forward in float32 (what a float32 port computes), writes those records
there and prints how far they move (about 5 s).

Sources
* The per-layer methods are scripts/gen_oneshot_fixtures.py's (GPTQ, SparseGPT, Wanda, magnitude, AWQ and its
  clip search, SmoothQuant, RTN, the Hessian; the papers are cited there), imported, not copied.
* The model is scripts/torch_ref/llama.py's (DecoderLayer, Llama, rope_tables; Hugging Face names).

Model and data (torch.Generator seeded 17, drawn in float64 in this order, then rounded to float32)
* LlamaConfig(vocab 96, d_model 64, 2 layers, 4 heads, 4 KV heads, d_ff 128, untied, rope_theta 1e4, eps 1e-5).
* embed_tokens = randn, 4 channels (randperm) x8: outlier channels of the residual stream.
* per block: input_layernorm 1 + 0.1 randn; q, k randn * 0.15; v randn * 0.06 with 4 rows (randperm) x6, the
  outlier channels of o_proj's input; o randn * 0.06; post_attention_layernorm 1 + 0.1 randn with 3 channels
  x6; gate randn * 0.1; up randn * 0.06 with 6 rows x6, the outlier channels of down_proj's input; down randn
  * 0.06. Then model.norm 1 + 0.1 randn, lm_head randn * 0.05, tokens randint [8, 32] in [0, 96).
  On the dense model the largest channel's mean|x| is 6-12x the median channel's at every site, and the
  attention is far from uniform (mean largest weight 0.33 against 0.06).
* Seed 17 is the best of seeds 0..63 for the margins below, among those with no "live edge" (see Tolerance).

The pass (what kdtrain does, in float64; the model's parameters are float32 at all times: every weight or norm
a method writes is rounded to float32)
1. x0 = the embedding rows of the tokens [8, 32, 64].
2. Per block, per input site in order: qkv (input_layernorm(x); q_proj, k_proj, v_proj), o (the attention
   output before o_proj), gate_up (post_attention_layernorm(h), h = x + o_proj(attn); gate_proj, up_proj), down
   (silu(gate) * up). For each: the block's forward (causal, RoPE positions 0..31 per sample) over all 256
   tokens with the weights as they are now, hooking the site's input X [256, cols]; then the method on the
   site's linears, in place. H = (2/N) X^T X, shared by the site's linears; B = 128, damp = 0.01.
3. After the four sites, the compressed block's outputs are the next block's inputs (kept in float64).

Cases (each from the same dense model)
* gptq_int4_g64, gptq_int3_g64_asym: gptq() of every block linear (sym int4 / asym int3, groups of 64).
* gptq_int3_g64_asym_dense_inputs: the WRONG wiring, stored so that a test can tell it from the right one:
  every site's X is the DENSE model's (as if the pass ran the uncompressed model, or kept the dense
  activations between blocks). Block 0's q/k/v are the same as gptq_int3_g64_asym's (the same X); every other
  linear differs: 21% of o_proj, 7% of gate/up, 52% of down_proj in block 0, 9-27% of each linear in block 1.
* sparsegpt_50, sparsegpt_2_4, sparsegpt_50_int4_g64 (joint, int4 g64 sym): sparsegpt().
* wanda_50, wanda_2_4: W * wanda() mask, no update.
* awq_int4_g64 (sym, clip on). Per site: awq() on the site's linears (alpha = i/20, i < 20; s = max(s_x^alpha,
  1e-4) / sqrt(max s * min s), s_x = mean|x| over X; loss = sum over the site's linears of
  E(RTN(W diag(s)) diag(s)^-1 - W) on X; ties to the smaller alpha). Then 1/s is folded into the norm in front
  (qkv, gate_up) or into the producer's rows (o: v_proj, down: up_proj; n_kv_heads = n_heads), applied to the
  producer's current (already scaled and clipped) weights; W <- W diag(s); then awq_clip() of each W diag(s)
  with inputs X/s, the clipped weight replacing it. Each step rounds to float32. Within a block the weights stay
  float; at the block's end every block linear is RTN int4 g64 sym (min/max of its current weights), so the next
  block sees them quantized.
* smoothquant: alpha 0.5 at qkv and gate_up only (smoothquant()'s s, the weight max over all rows of the
  site's linears): fold 1/s into the norm, W <- W diag(s). No quantization (W8A8 comes later, in ptq).
Baselines, only their hidden_mse stored: rtn_int4_g64, rtn_int3_g64_asym, magnitude_50, magnitude_2_4. The
script refuses to write unless these hold for hidden_mse: gptq < RTN (int4 sym, int3 asym), right wiring <
dense-input wiring, AWQ < RTN int4, SparseGPT < Wanda < magnitude (50% and 2:4), GPTQ int4 < joint.

Records (f32 = float32, i32 = int32, f64 = float64; <name> = a Hugging Face parameter name ending in .weight)
* config i32 [7] = LlamaConfig.as_list(); tokens i32 [8, 32]; dense.<name> f32: every dense parameter.
* <case>.<name> f32: the final weights of every block linear and both norms of each block.
* <case>.mask.<name> i32 (1 = kept), the weight's shape: sparsegpt_50_int4_g64 only (some kept weights quantize
  to 0 there); for sparsegpt_50, sparsegpt_2_4 and wanda_* the mask is the stored weights' nonzeros (asserted).
* <case>.scale.<name> f64, <case>.zero.<name> i32: gptq_* and sparsegpt_50_int4_g64, the method's slots
  (gen_oneshot_fixtures.slot_records: row-major, rows x cols/64).
* <case>.err.<name> f64 [1] (gptq_*, sparsegpt_*, wanda_*) = (1/N) sum_n ||(W_final - W_dense) x_n||^2, x_n the
  site's inputs under the final compressed model. For the right wiring these are exactly the inputs the site
  was compressed with (checked bit for bit); for the dense-inputs case they are not.
* awq_int4_g64.alpha f64 [8] and .alpha_margin f64 [8] (sites in order: block 0 qkv, o, gate_up, down, block 1
  ...; margin = (second-best - best loss) / second-best), awq_int4_g64.awq_scale.<l>.<site> f64 [cols].
* smoothquant.smooth_scale.<l>.<qkv|gate_up> f64 [64].
* <case>.hidden_mse f64 [1] (the baselines' too): mean over the 256 tokens of ||h_L - h_L^dense||^2, h_L the residual stream after
  the last block (before the final norm), each model's own float64 forward (Llama.forward) from the embeddings.
  For reference, mean ||h_L^dense||^2 = 348.8.

Tolerance for a float32 port (measured with --float32-forward: torch's float32 forward against float64, site
statistics then in float64; a port's own float32 sums differ from those by the same order)
* The decisions' margins on this data: masks' keep boundaries >= 1.3e-5 relative (MARGIN "rank"); GPTQ and
  joint codes >= 1.55e-6 steps from a rounding tie; AWQ alpha gaps 5.5e-3 .. 0.11 (block 0: 0.026, 0.106,
  0.0055, 0.021). The float32 forward moved quantizer inputs by <= 6e-6 steps (each code's tie distance is
  >= 16x its own move; expected flips 0.01-0.02 per case) and the two scores at a mask boundary by <= 9.5e-6 of
  the boundary score (each gap >= 133x its move).
* "Live edges": a symmetric slot's negative extreme quantizes to -(qmax-qmin)/2 up to an ulp, i.e. to code qmin
  or, a whole step away, qmin+1, as float32 rounding decides (gen_oneshot_fixtures' "edge"). In the GPTQ and
  SparseGPT sweeps that is fixed for column 0 (dense weights) but not for a group starting later (down_proj's
  column 64, updated weights). Seed 17 has none among kept weights (most seeds have 1-6; seed 9's joint case
  flipped one). AWQ cannot avoid them: its RTN sees f32(W diag(s)) with s computed from the activations, and
  every group whose extreme is negative is one (938 at the blocks' ends, plus the candidates in the searches).
* Measured float32-forward vs float64 (seed 17), and what a port can be held to:
  - gptq_*, sparsegpt_50_int4_g64: no code, zero or mask differs; weights and scales within 3.3e-7 relative;
    err within 1e-7, hidden_mse within 1.5e-7 relative. Hold codes, zeros and masks equal, weights and scales
    to rtol 1e-6, err and hidden_mse to rtol 1e-6.
  - sparsegpt_50, sparsegpt_2_4 (unquantized): masks equal; weights within 1.2e-7 absolute (small ones past
    rtol 1e-6): atol 5e-7. err and hidden_mse rtol 1e-6.
  - wanda_*: masks and weights equal (they are the dense values); err and hidden_mse within 1.1e-7 relative.
  - smoothquant: scales within 1.5e-7 relative, weights and norms within rtol 1e-6; hidden_mse is float32
    noise (1.1e-13 in float64, 2.7e-12 with the float32 forward, against 349 for ||h||^2): only hold it small.
  - awq_int4_g64: block 0's alphas and clip ratios were all the same and its scales within 4e-8, but one final
    code of 40960 differed (a live edge), so block 1 saw other inputs: its scales moved up to 2%, 14-25% of
    each site's clip ratios differed, and 86% of block 1's weights; hidden_mse 0.5416 -> 0.5615 (+3.7%). Even
    in block 0 the alpha losses moved by up to 5% (edges in the candidates) against margins of 0.55-10%. Hold
    AWQ to: block 0 qkv's alpha and scale (rtol 1e-6) and the folded input_layernorm; the rest statistically
    (hidden_mse within ~10%, below RTN's 0.984; alphas within a grid step or two).
"""
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
SEED = 17  # picked from seeds 0..63 for the margins (see the docstring)

# The four input sites of a block in true-sequential order, their linears, and what feeds them.
SITES = ("qkv", "o", "gate_up", "down")
LINEARS = {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "o": ("self_attn.o_proj",),
           "gate_up": ("mlp.gate_proj", "mlp.up_proj"), "down": ("mlp.down_proj",)}
NORM = {"qkv": "input_layernorm", "gate_up": "post_attention_layernorm"}  # AWQ / SmoothQuant fold into it
PRODUCER = {"o": "self_attn.v_proj", "down": "mlp.up_proj"}  # AWQ folds into its rows
HOOKED = {"qkv": "self_attn.q_proj", "o": "self_attn.o_proj", "gate_up": "mlp.gate_proj", "down": "mlp.down_proj"}
AWQ_Q = (4, True, "g64")


def pname(l, mod):
    return f"model.layers.{l}.{mod}.weight"


def block_linears(l):
    return [pname(l, m) for s in SITES for m in LINEARS[s]]


def block_params(l):
    """The block's parameters (norms and linears) in Hugging Face order."""
    return [n for n in Llama(CFG).param_names() if n.startswith(f"model.layers.{l}.")]


def f32(t):
    """A parameter write: round to float32, keep computing in float64."""
    return t.float().to(F64)


# ---------------------------------------------------------------- data
def make_dense(seed=SEED):
    """The dense model ({name: float32 values as float64}, Llama.param_names() order) and the tokens."""
    g = torch.Generator().manual_seed(seed)
    d, V, Fd = CFG.d_model, CFG.vocab, CFG.d_ff

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=F64) * std

    def pick(n, k):
        return torch.randperm(n, generator=g)[:k]

    P = {}
    emb = randn(V, d)
    emb[:, pick(d, 4)] *= 8.0  # outlier channels of the residual stream
    P["model.embed_tokens.weight"] = emb
    for l in range(CFG.n_layers):
        P[pname(l, "input_layernorm")] = 1.0 + randn(d, std=0.1)
        P[pname(l, "self_attn.q_proj")] = randn(d, d, std=0.15)
        P[pname(l, "self_attn.k_proj")] = randn(d, d, std=0.15)
        v = randn(d, d, std=0.06)
        v[pick(d, 4)] *= 6.0  # outlier rows = outlier channels of o_proj's input
        P[pname(l, "self_attn.v_proj")] = v
        P[pname(l, "self_attn.o_proj")] = randn(d, d, std=0.06)
        post = 1.0 + randn(d, std=0.1)
        post[pick(d, 3)] *= 6.0  # outlier channels of gate/up's input
        P[pname(l, "post_attention_layernorm")] = post
        P[pname(l, "mlp.gate_proj")] = randn(Fd, d, std=0.1)
        up = randn(Fd, d, std=0.06)
        up[pick(Fd, 6)] *= 6.0  # outlier rows = outlier channels of down_proj's input
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
    """Block and model forwards in one dtype: float64 (the reference) or float32 (what a float32 port
    computes). Parameters are float32 values; site inputs come back as float64 [N, cols]."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.cos, self.sin = rope_tables(T_CAL, CFG.head_dim, CFG.rope_theta, dtype=dtype)
        self.mask = torch.triu(torch.ones(T_CAL, T_CAL, dtype=torch.bool), 1)
        self.layer = DecoderLayer(CFG).to(dtype).requires_grad_(False)
        self.model = Llama(CFG).to(dtype).requires_grad_(False)
        self.caught = {}
        for site, mod in HOOKED.items():
            self.layer.get_submodule(mod).register_forward_pre_hook(self._hook(site))

    def _hook(self, site):
        def hook(_module, args):
            self.caught[site] = args[0]
        return hook

    def embed(self, state, tokens):
        return state["model.embed_tokens.weight"][tokens].to(self.dtype)

    @torch.no_grad()
    def block(self, state, l, x):
        """Block l on inputs x [S, T, d]: ({site: X [N, cols] float64}, outputs [S, T, d] in self.dtype)."""
        for n, p in self.layer.named_parameters():
            p.copy_(state[f"model.layers.{l}.{n}"])
        self.caught = {}
        out = self.layer(x, self.cos, self.sin, self.mask)
        return {s: v.reshape(-1, v.shape[-1]).to(F64) for s, v in self.caught.items()}, out

    def all_sites(self, state, tokens):
        """Every site's inputs under one model, block by block: {(l, site): X}."""
        x, out = self.embed(state, tokens), {}
        for l in range(CFG.n_layers):
            X, x = self.block(state, l, x)
            out.update({(l, s): X[s] for s in SITES})
        return out

    @torch.no_grad()
    def last_hidden(self, state, tokens):
        """h_L, the residual stream after the last block (before the final norm), by Llama.forward: [N, d]."""
        for n, p in self.model.named_parameters():
            p.copy_(state[n])
        return self.model(tokens)[1][-1].reshape(-1, CFG.d_model).to(F64)


# ---------------------------------------------------------------- decision log (margins; --float32-forward)
class Probe:
    """Logs, in call order, every quantizer input f32(w) * f32(1/scale) and every mask selection's scores, so
    that two runs can be compared decision by decision."""

    def __init__(self):
        self.log, self.on, self.tag = [], False, None  # tag: the linear being compressed (GPTQ, SparseGPT)
        self._fq, self._pl = ref.fake_quant, ref.prune_lowest

        def fake_quant(w, scale, zero, bits, sym):
            if self.on:
                self.log.append(("q", w.float() * torch.reciprocal(scale), (zero, bits, sym), self.tag))
            return self._fq(w, scale, zero, bits, sym)

        def prune_lowest(score, n, m=None):
            if self.on:
                self.log.append(("s", score.clone(), (n, m), self.tag))
            return self._pl(score, n, m)
        ref.fake_quant, ref.prune_lowest = fake_quant, prune_lowest


PROBE = Probe()


def codes(v, zero, bits, sym):
    qmin, qmax = ref.grid(bits, sym)
    return torch.clamp(zero + torch.round(v), qmin, qmax)


def tie_distances(v, zero, bits, sym):
    """Distances, in quantization steps, of the in-range quantizer inputs from a rounding tie, leaving out a
    symmetric slot's own extreme at +-(qmax-qmin)/2 (see gen_oneshot_fixtures' docstring); inf elsewhere."""
    qmin, qmax = ref.grid(bits, sym)
    r = torch.round(v)
    inside = (zero + r >= qmin) & (zero + r <= qmax)
    if sym:
        inside &= (v.abs() - (qmax - qmin) / 2).abs() > 1e-5
    d = (v.abs() - torch.floor(v.abs()) - 0.5).abs()
    return torch.where(inside, d, torch.full_like(d, math.inf))


def tie_distance(v, zero, bits, sym):
    return tie_distances(v, zero, bits, sym).min().item() if v.numel() else math.inf


def live_edges(log, method):
    """GPTQ / SparseGPT sweeps: kept weights quantized at a symmetric slot's negative extreme -(qmax-qmin)/2 up
    to an ulp (code qmin, or qmin+1 a step away, decided by float32 rounding: gen_oneshot_fixtures' "edge") in a
    column > 0. Column 0 holds the dense weights, so its outcome is fixed; later columns hold updated weights, whose
    float32 values a float32 forward can move by an ulp, and then the code with them."""
    col, live = {}, 0
    for kind, v, par, tag in log:
        if kind != "q" or tag is None:
            continue
        c = col[tag] = col.get(tag, -1) + 1
        zero, bits, sym = par
        qmin, qmax = ref.grid(bits, sym)
        if not sym or c == 0:
            continue
        edge = (v + (qmax - qmin) / 2).abs() <= 1e-5
        keep = method.rec.get(f"mask.{tag}")
        if keep is not None:
            edge &= keep[:, c].bool()
        live += int(edge.sum())
    return live


# ---------------------------------------------------------------- methods (per site, in place)
class Method:
    stores_err = True  # the err.<linear> records

    def __init__(self):
        self.rec = {}  # method-specific records, named without the case prefix
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
            PROBE.tag = n
            Q, S, Z = ref.gptq(st[n], X, *self.q)
            assert torch.equal(Q, f32(Q))
            st[n] = Q
            self.rec[f"scale.{n}"], self.rec[f"zero.{n}"] = ref.slot_records(S, Z, self.q[2])


class SparseGpt(Method):
    def __init__(self, p=0.5, nm=None, quant=None):
        super().__init__()
        self.p, self.nm, self.quant = p, nm, quant

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            PROBE.tag = n
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
    """AWQ int4 g64 sym with clipping. Per site: alpha search on the site's linears, fold 1/s into the norm or
    the producer's rows, W diag(s), clip search with inputs X/s. Float within the block; RTN at its end."""
    stores_err = False

    def __init__(self):
        super().__init__()
        self.alpha, self.margin, self.losses, self.ratios, self.codes = [], [], [], {}, {}
        self.tie_final, self.live_edges = math.inf, 0

    def site(self, st, l, site, X):
        names = [pname(l, m) for m in LINEARS[site]]
        losses, alpha, s = ref.awq([st[n] for n in names], X)
        srt = torch.sort(losses).values
        self.alpha.append(alpha)
        self.margin.append(((srt[1] - srt[0]) / srt[1]).item())
        self.losses.append(losses)
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
            self.ratios[n], Wc = ref.awq_clip(st[n], X / s)
            st[n] = f32(Wc)

    def block_end(self, st, l):
        for n in block_linears(l):
            S, Z = ref.slot_qparams(st[n], *AWQ_Q)
            v = st[n].float() * torch.reciprocal(S)
            self.codes[n] = codes(v, Z, *AWQ_Q[:2])
            self.tie_final = min(self.tie_final, tie_distance(v, Z, *AWQ_Q[:2]))
            self.live_edges += int(((v + 7.5).abs() <= 1e-5).sum())  # f32(W diag(s)) moves with s
            st[n] = f32(ref.rtn(st[n], *AWQ_Q))


class SmoothQuant(Method):
    """SmoothQuant alpha 0.5 at the norm-fed sites: fold 1/s into the norm, W diag(s). No quantization."""
    stores_err = False

    def site(self, st, l, site, X):
        if site not in NORM:
            return
        names = [pname(l, m) for m in LINEARS[site]]
        saved, on = dict(ref.MARGIN), PROBE.on
        PROBE.on = False  # smoothquant() also estimates a W8A8 error; those quantizations are not this pass's
        s, _ = ref.smoothquant([st[n] for n in names], X, alpha=0.5)
        ref.MARGIN.update(saved)
        PROBE.on = on
        self.rec[f"smooth_scale.{l}.{site}"] = s
        nn_ = pname(l, NORM[site])
        st[nn_] = f32(st[nn_] / s)
        for n in names:
            st[n] = f32(st[n] * s)


class Rtn(Method):
    """Baseline (printed, not stored): round-to-nearest of the dense weights."""

    def __init__(self, bits, sym, gran):
        super().__init__()
        self.q = (bits, sym, gran)

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            st[pname(l, mod)] = f32(ref.rtn(st[pname(l, mod)], *self.q))


class Magnitude(Method):
    """Baseline (printed, not stored): per-row (or per-m-group) magnitude pruning."""

    def __init__(self, p=0.5, nm=None):
        super().__init__()
        self.p, self.nm = p, nm

    def site(self, st, l, site, X):
        for mod in LINEARS[site]:
            n = pname(l, mod)
            st[n] = f32(st[n] * ref.magnitude(st[n], self.p, self.nm))


CASES = [  # name, method, compress with the DENSE model's site inputs (the wrong wiring)
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
BASELINES = [  # printed only
    ("rtn_int4_g64", lambda: Rtn(4, True, "g64")), ("rtn_int3_g64_asym", lambda: Rtn(3, False, "g64")),
    ("magnitude_50", lambda: Magnitude(0.5)), ("magnitude_2_4", lambda: Magnitude(0.5, (2, 4))),
]
ORDERINGS = [  # (lhs, rhs): lhs's hidden_mse must be below rhs's
    ("gptq_int4_g64", "rtn_int4_g64"), ("gptq_int3_g64_asym", "rtn_int3_g64_asym"),
    ("gptq_int3_g64_asym", "gptq_int3_g64_asym_dense_inputs"), ("awq_int4_g64", "rtn_int4_g64"),
    ("sparsegpt_50", "wanda_50"), ("wanda_50", "magnitude_50"), ("sparsegpt_2_4", "wanda_2_4"),
    ("wanda_2_4", "magnitude_2_4"), ("gptq_int4_g64", "sparsegpt_50_int4_g64"),
]


# ---------------------------------------------------------------- the calibration pass
def pipeline(dense, tokens, method, fwd, dense_X=None):
    """kdtrain's block-sequential pass (docs/oneshot.md). Per block, per site in order: the block's forward on
    all calibration inputs with the weights as they are now, then the method on the site's linears. Then the
    compressed block's outputs are the next block's inputs. dense_X: compress with these inputs instead."""
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


def run_all(dense, tokens, fwd, baselines=True):
    """Every case: (records without config / tokens / dense, {case: info})."""
    dense_X = fwd.all_sites(dense, tokens)
    h_dense = fwd.last_hidden(dense, tokens)
    rec, info = {}, {}
    todo = [(c, f, di, True) for c, f, di in CASES]
    todo += [(c, f, False, False) for c, f in BASELINES] if baselines else []
    for case, factory, dense_inputs, stored in todo:
        t0 = time.time()
        ref.MARGIN.update(tie=math.inf, rank=math.inf, choice=math.inf, edge=0)
        m = factory()
        PROBE.log, PROBE.on, PROBE.tag = [], True, None
        st = pipeline(dense, tokens, m, fwd, dense_X if dense_inputs else None)
        PROBE.on = False
        fin_X = fwd.all_sites(st, tokens)  # the site inputs under the final (compressed) model
        h = fwd.last_hidden(st, tokens)
        it = {"hidden_mse": ((h - h_dense) ** 2).sum(1).mean().item(), "margin": dict(ref.MARGIN),
              "time": time.time() - t0, "state": st, "probe": PROBE.log, "method": m, "stored": stored,
              "err": {n: ref.out_err(st[n], dense[n], fin_X[(l, s)])
                      for l in range(CFG.n_layers) for s in SITES for n in (pname(l, mod) for mod in LINEARS[s])}}
        qlog = [e for e in PROBE.log if e[0] == "q"]
        it["code_tie"] = min((tie_distance(e[1], *e[2]) for e in qlog), default=math.inf)
        it["live_edges"] = m.live_edges if isinstance(m, Awq) else live_edges(PROBE.log, m)
        if isinstance(m, Awq):
            it["code_tie"] = m.tie_final  # the final codes only (the searches' quantizations are candidates)
        if m.stores_err and not dense_inputs:  # then the inputs a site saw are the final model's
            it["seen_vs_final"] = max((m.seen_X[k] - fin_X[k]).abs().max().item() for k in fin_X)
        info[case] = it
        if not stored:  # a baseline: its hidden_mse only (what a port's one-shot result must beat)
            rec[f"{case}.hidden_mse"] = torch.tensor([it["hidden_mse"]], dtype=F64)
            continue
        for l in range(CFG.n_layers):
            for n in block_params(l):
                rec[f"{case}.{n}"] = st[n].float()
        for kind in ("mask", "scale", "zero"):
            for k, v in m.rec.items():
                if not k.startswith(kind + "."):
                    continue
                # an unquantized pruning's mask is its weights' nonzeros (checked): not stored
                if kind == "mask" and case != "sparsegpt_50_int4_g64":
                    assert torch.equal(v != 0, st[k[len("mask."):]] != 0), f"{case}.{k}: mask is not the nonzeros"
                    continue
                rec[f"{case}.{k}"] = v
        if isinstance(m, Awq):
            rec[f"{case}.alpha"] = torch.tensor(m.alpha, dtype=F64)
            rec[f"{case}.alpha_margin"] = torch.tensor(m.margin, dtype=F64)
        for kind in ("awq_scale", "smooth_scale"):
            rec.update({f"{case}.{k}": v for k, v in m.rec.items() if k.startswith(kind + ".")})
        if m.stores_err:
            rec.update({f"{case}.err.{n}": torch.tensor([e], dtype=F64) for n, e in it["err"].items()})
        rec[f"{case}.hidden_mse"] = torch.tensor([it["hidden_mse"]], dtype=F64)
    return rec, info


# ---------------------------------------------------------------- reports
@torch.no_grad()
def data_report(dense, tokens, fwd):
    from llama import apply_rope
    X = fwd.all_sites(dense, tokens)
    print("dense model's site inputs: largest channel over the median one, of mean|x| and of max|x|")
    for (l, site), x in X.items():
        a, m = x.abs().mean(0), x.abs().amax(0)
        print(f"  block {l} {site:8s} {(a.max() / a.median()).item():6.2f} {(m.max() / m.median()).item():6.2f}")
    x = fwd.embed(dense, tokens)
    for l in range(CFG.n_layers):
        fwd.block(dense, l, x)  # loads block l into fwd.layer
        a, xn = fwd.layer.self_attn, fwd.layer.input_layernorm(x)
        q = a.q_proj(xn).view(S_CAL, T_CAL, a.n_heads, a.hd).transpose(1, 2)
        k = a.k_proj(xn).view(S_CAL, T_CAL, a.n_heads, a.hd).transpose(1, 2)
        q, k = apply_rope(q, fwd.cos, fwd.sin), apply_rope(k, fwd.cos, fwd.sin)
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(a.hd)).masked_fill(fwd.mask, -math.inf).softmax(-1)
        print(f"  block {l} attention: mean largest weight of queries 8..31 {att[:, :, 8:].amax(-1).mean().item():.3f}"
              f" (uniform: {torch.mean(1.0 / torch.arange(9, T_CAL + 1, dtype=F64)).item():.3f})")
        _, x = fwd.block(dense, l, x)


def summary(info):
    print(f"{'case':34s} {'hidden_mse':>11s} {'sum err':>9s} | MARGIN: {'rank':>8s} {'tie ulp':>7s} {'edge':>5s}"
          f" {'choice':>8s} | code tie (steps) live edges  time")
    for c, it in info.items():
        mg, e = it["margin"], sum(it["err"].values())
        es = f"{e:9.4g}" if it["method"].stores_err else f"{'-':>9s}"
        print(f"{c:34s} {it['hidden_mse']:11.5g} {es} |         {mg['rank']:8.3g} {mg['tie']:7.3g} {mg['edge']:5d}"
              f" {mg['choice']:8.3g} | {it['code_tie']:9.3g} {it['live_edges']:10d}  {it['time']:6.2f}s")
    a = info["awq_int4_g64"]
    print("awq alpha per site (block 0 qkv, o, gate_up, down, block 1 ...):", a["method"].alpha)
    print("awq alpha margins (second-best minus best loss, over second-best):",
          " ".join(f"{v:.3g}" for v in a["method"].margin))
    bad = {c: it["seen_vs_final"] for c, it in info.items() if it.get("seen_vs_final", 0) != 0}
    print("inputs each site was compressed with == the final model's site inputs (gptq, sparsegpt, wanda):",
          "yes, bit for bit" if not bad else bad)


def check_orderings(info):
    ok = True
    for a, b in ORDERINGS:
        x, y = info[a]["hidden_mse"], info[b]["hidden_mse"]
        ok &= x < y
        print(f"  [{'ok' if x < y else 'FAIL'}] hidden_mse {a} {x:.5g} < {b} {y:.5g}")
    return ok


def wiring_report(info):
    a, b = info["gptq_int3_g64_asym"]["state"], info["gptq_int3_g64_asym_dense_inputs"]["state"]
    print("gptq_int3_g64_asym vs the dense-inputs wiring: fraction of weights that differ")
    for l in range(CFG.n_layers):
        parts = [f"{m.split('.')[1]} {(a[pname(l, m)] != b[pname(l, m)]).double().mean().item():.3f}"
                 for s in SITES for m in LINEARS[s]]
        ns = block_linears(l)
        tot = sum((a[n] != b[n]).sum().item() for n in ns) / sum(a[n].numel() for n in ns)
        print(f"  block {l}: {tot:.3f} ({', '.join(parts)})")


def probe_compare(log64, log32):
    """Walk two runs' decision logs in step, up to the first decision that differs. Codes: the float64 run's
    least tie distance (steps), the largest quantizer-input move (steps), the least distance/move of one
    element, and the expected number of flips for such moves (2 sum |dv|, uniform fractional parts). Masks:
    the least relative gap at a keep boundary, the largest move of the two scores there (relative to the
    boundary score), the least gap/move of one selection. And the first differing decision, or None."""
    r = dict(tie=math.inf, dq=0.0, qsafe=math.inf, flips=0.0, gap=math.inf, ds=0.0, ssafe=math.inf, first=None)
    for i, (e1, e2) in enumerate(zip(log64, log32)):
        a, b = e1[1], e2[1]
        where = f"call {i + 1}/{len(log64)}"
        if e1[0] != e2[0] or a.shape != b.shape:
            r["first"] = f"{where}: a different call"
            break
        if e1[0] == "q":
            zero, bits, sym = e1[2]
            ca, cb = codes(a, zero, bits, sym), codes(b, zero, bits, sym)
            if not torch.equal(ca, cb):
                j = tuple(torch.nonzero(ca != cb)[0].tolist())
                r["first"] = f"a code at {where} (v {a[j].item():.9g} vs {b[j].item():.9g})"
                break
            d, mv = tie_distances(a, zero, bits, sym), (a - b).abs()
            r["tie"] = min(r["tie"], d.min().item())
            r["dq"] = max(r["dq"], mv.max().item())
            r["qsafe"] = min(r["qsafe"], (d / mv.clamp(min=1e-300)).min().item())
            r["flips"] += 2 * mv[d < math.inf].sum().item()
        else:
            n, m = e1[2]
            sa, sb = (a, b) if m is None else (a.reshape(a.shape[0], -1, m), b.reshape(b.shape[0], -1, m))
            srt = torch.sort(sa, dim=-1, stable=True)
            v, j = srt.values, srt.indices[..., n - 1:n + 1]  # the last pruned and the first kept
            bound = v[..., n].abs().clamp(min=1e-300)
            gap = (v[..., n] - v[..., n - 1]) / bound
            mv = (sa.gather(-1, j) - sb.gather(-1, j)).abs().amax(-1) / bound
            r["gap"], r["ds"] = min(r["gap"], gap.min().item()), max(r["ds"], mv.max().item())
            r["ssafe"] = min(r["ssafe"], (gap / mv.clamp(min=1e-300)).min().item())
            if not torch.equal(PROBE._pl(a, n, m), PROBE._pl(b, n, m)):
                r["first"] = f"a mask at {where}"
                break
    return r


def awq_compare(m64, m32):
    """Per site: alpha, the loss curve's and the scales' largest relative moves, the clip ratios that differ; per
    block: the final codes that differ."""
    out, k = [], 0
    for l in range(CFG.n_layers):
        for site in SITES:
            ns = [pname(l, mod) for mod in LINEARS[site]]
            dl = ((m64.losses[k] - m32.losses[k]).abs() / m64.losses[k]).max().item()
            nr = sum((m64.ratios[n] != m32.ratios[n]).sum().item() for n in ns)
            tot = sum(m64.ratios[n].numel() for n in ns)
            s64, s32 = m64.rec[f"awq_scale.{l}.{site}"], m32.rec[f"awq_scale.{l}.{site}"]
            ds = ((s64 - s32).abs() / s64).max().item()
            out.append(f"    block {l} {site:8s} alpha {m64.alpha[k]:.2f} / {m32.alpha[k]:.2f} (margin "
                       f"{m64.margin[k]:.3g}), losses moved <= {dl:.2e} rel, scales <= {ds:.2e} rel, "
                       f"clip ratios differing {nr}/{tot}")
            k += 1
        nc = sum((m64.codes[n] != m32.codes[n]).sum().item() for n in block_linears(l))
        tot = sum(m64.codes[n].numel() for n in block_linears(l))
        out.append(f"    block {l} end: RTN codes differing {nc}/{tot}")
    return out


def robustness_report(rec64, info64, rec32, info32):
    print("float32 forward vs float64 forward, decisions (up to the first that differs):")
    for c, *_ in CASES:
        r = probe_compare(info64[c]["probe"], info32[c]["probe"])
        parts = []
        if r["tie"] < math.inf:
            parts.append(f"codes: tie distance >= {r['tie']:.3g} steps, moves <= {r['dq']:.3g}, least distance/move "
                         f"{r['qsafe']:.3g}, expected flips {r['flips']:.3g}")
        if r["gap"] < math.inf:
            parts.append(f"masks: boundary gap >= {r['gap']:.3g} rel, moves <= {r['ds']:.3g}, least gap/move "
                         f"{r['ssafe']:.3g}")
        print(f"  {c:34s} {'; '.join(parts) or '-'}; first differing: {r['first'] or 'none'}")
        if c.startswith("awq"):
            print("\n".join(awq_compare(info64[c]["method"], info32[c]["method"])))
    print("float32 forward vs float64 forward, results (weights as float32 values, rtol 1e-6):")
    for c, *_ in CASES:
        diff = {}
        for l in range(CFG.n_layers):
            ks = [f"{c}.{n}" for n in block_params(l)]
            diff[l] = (sum((~torch.isclose(rec64[k].double(), rec32[k].double(), rtol=1e-6, atol=0.0)).sum().item()
                           for k in ks) / sum(rec64[k].numel() for k in ks))
        wmax = max((rec64[k].double() - rec32[k].double()).abs().max().item()
                   for k in rec64 if k.startswith(c + ".model."))
        mk = [k for k in rec64 if k.startswith(c + ".mask.")]
        masks = (f"{sum((rec64[k] != rec32[k]).sum().item() for k in mk) / sum(rec64[k].numel() for k in mk):.2e}"
                 if mk else "-")
        e64, e32 = info64[c]["err"], info32[c]["err"]
        err = (f"{max(abs(e32[n] - e64[n]) / e64[n] for n in e64):.2e}" if info64[c]["method"].stores_err else "-")
        h64, h32 = info64[c]["hidden_mse"], info32[c]["hidden_mse"]
        sc = [k for k in rec64 if k.startswith(c + ".") and k.split(".")[1] in ("scale", "awq_scale", "smooth_scale")]
        scales = "-"
        if sc:
            rel = [((rec64[k] - rec32[k]).abs() / rec64[k].abs()).max().item() for k in sc]
            scales = f"{max(rel):.2e}" + (f" (block 0 qkv {rel[0]:.2e})" if "awq" in c else "")
        print(f"  {c:34s} weights differing: block 0 {diff[0]:.2e}, block 1 {diff[1]:.2e} (max abs {wmax:.2e});"
              f" masks differing {masks}; scales max rel {scales}; err max rel change {err};"
              f" hidden_mse {h64:.6g} / {h32:.6g} (rel {abs(h32 - h64) / h64:.2e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default="tests/fixtures")
    ap.add_argument("--float32-forward", metavar="OUT.kdt",
                    help="also run the pass with the forward in float32, write its records there, and compare")
    ap.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)  # for choosing the data
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic summation order for the records
    t0 = time.time()
    dense, tokens = make_dense(args.seed)
    fwd64 = Forward(F64)
    data_report(dense, tokens, fwd64)
    rec, info = run_all(dense, tokens, fwd64)
    summary(info)
    wiring_report(info)
    if not check_orderings(info):
        sys.exit("an ordering check failed; fixture not written")
    head = {"config": torch.tensor(CFG.as_list(), dtype=torch.int32), "tokens": tokens.to(torch.int32)}
    head.update({f"dense.{n}": t.float() for n, t in dense.items()})
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "oneshot_pipeline.kdt")
    write_kdt(path, {**head, **rec})
    print(f"wrote {path}: {len(head) + len(rec)} records, {os.path.getsize(path)} bytes, {time.time() - t0:.1f} s")
    if args.float32_forward:
        rec32, info32 = run_all(dense, tokens, Forward(F32), baselines=False)
        write_kdt(args.float32_forward, {**head, **rec32})
        print(f"wrote {args.float32_forward} (the same pass with the forward in float32)")
        robustness_report(rec, info, rec32, info32)


if __name__ == "__main__":
    main()
