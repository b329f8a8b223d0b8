"""Tiny Llama-style decoder + knowledge-distillation loss in PyTorch (reference for kdtrain).

The semantics here are the contract that the C++ implementation follows:

* parameters use Hugging Face Llama names and shapes (linear weights are [out, in], no biases);
  ``lm_head.weight`` is absent when ``tie_embeddings`` and the logits then use
  ``model.embed_tokens.weight``;
* RMSNorm(x) = x * rsqrt(mean(x^2, -1) + eps) * w;
* RoPE in the HF rotate-half convention, positions 0..T-1, applied to q and k;
* causal grouped-query attention (query head h uses kv head h // (H // Hkv));
* SwiGLU MLP: down(silu(gate(x)) * up(x));
* pre-norm blocks, final norm, output head;
* ``forward`` returns (logits [B, T, V], hidden states hs[0..L]), hs[0] = embedding output,
  hs[k] = residual stream after block k-1 (before the final norm).

The module is dtype-agnostic: build it (or ``.to(dtype)``) in float32 or float64.

Also here: the KD loss (:func:`kd_loss`) and a reader/writer for the ``.kdt`` tensor container
(:func:`read_kdt`, :func:`write_kdt`).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
@dataclass
class LlamaConfig:
    vocab: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if self.n_heads % self.n_kv_heads:
            raise ValueError("n_heads must be divisible by n_kv_heads")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even (RoPE)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def as_list(self) -> List[int]:
        """[V, d, L, H, Hkv, F, tie] (the layout of the fixture's ``*.config`` records)."""
        return [self.vocab, self.d_model, self.n_layers, self.n_heads, self.n_kv_heads, self.d_ff,
                int(self.tie_embeddings)]


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T: int, hd: int, theta: float = 10000.0, dtype=torch.float32, device=None):
    """cos/sin tables [T, hd] (rotate-half layout: cat([f, f])). Angles are computed in float64."""
    j = torch.arange(0, hd // 2, dtype=torch.float64, device=device)
    inv_freq = theta ** (-2.0 * j / hd)
    f = torch.outer(torch.arange(T, dtype=torch.float64, device=device), inv_freq)  # [T, hd/2]
    emb = torch.cat([f, f], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):  # x: [B, H, T, hd]; cos/sin: [T, hd]
    return x * cos + rotate_half(x) * sin


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        d, hd = cfg.d_model, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.hd = cfg.n_heads, cfg.n_kv_heads, hd
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, cfg.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        H, Hkv, hd = self.n_heads, self.n_kv_heads, self.hd
        q = self.q_proj(x).view(b, t, H, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, Hkv, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, Hkv, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if Hkv != H:  # query head h uses kv head h // (H // Hkv)
            rep = H // Hkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, H * hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Backbone(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.d_model)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_layers)])
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)


class Llama(nn.Module):
    """Llama-style causal LM. ``forward(idx [B, T]) -> (logits [B, T, V], [hs_0 .. hs_L] each [B, T, d])``."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.model = _Backbone(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self._rope_cache: Dict[tuple, tuple] = {}

    # -- parameters --------------------------------------------------------------------------
    def param_names(self) -> List[str]:
        """HF names in canonical order (embedding, layers in order, final norm, head)."""
        return [n for n, _ in self.named_parameters()]

    @torch.no_grad()
    def init_weights(self, generator: Optional[torch.Generator] = None, std: float = 0.02,
                     norm_noise: float = 0.1):
        """normal(0, std) for matrices/embedding; norm weights = 1 + norm_noise*normal.

        Random numbers are drawn in float32 (in ``named_parameters`` order) and then cast to the
        parameter dtype, so the same seed gives the same float32-representable values at any dtype.
        """
        for name, p in self.named_parameters():
            if p.dim() == 1:  # RMSNorm weights
                r = torch.randn(p.shape, generator=generator, dtype=torch.float32)
                p.copy_((1.0 + norm_noise * r).to(torch.float32))
            else:
                r = torch.randn(p.shape, generator=generator, dtype=torch.float32)
                p.copy_((std * r).to(torch.float32))
        return self

    def output_weight(self):
        return self.model.embed_tokens.weight if self.cfg.tie_embeddings else self.lm_head.weight

    # -- forward -----------------------------------------------------------------------------
    def _tables(self, T: int, dtype, device):
        key = (T, dtype, str(device))
        tab = self._rope_cache.get(key)
        if tab is None:
            cos, sin = rope_tables(T, self.cfg.head_dim, self.cfg.rope_theta, dtype=dtype, device=device)
            mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=device), 1)
            tab = (cos, sin, mask)
            self._rope_cache[key] = tab
        return tab

    def forward(self, idx):
        T = idx.shape[1]
        x = self.model.embed_tokens(idx)
        cos, sin, mask = self._tables(T, x.dtype, x.device)
        hs = [x]
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
            hs.append(x)
        logits = F.linear(self.model.norm(x), self.output_weight())
        return logits, hs


def make_llama(cfg: LlamaConfig, generator=None, dtype=torch.float32, std=0.02, norm_noise=0.1) -> Llama:
    m = Llama(cfg).init_weights(generator, std=std, norm_noise=norm_noise)
    return m.to(dtype)


# ----------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------
DIV_CODES = {"fkl": 0, "rkl": 1, "jsd": 2}
FEATURE_CODES = {"mse": 0, "cosine": 1}


def divergence(s_logits, t_logits, tau: float, div: str = "fkl", jsd_beta: float = 0.5):
    """Per-token divergence [N] between p = softmax(t/tau) and q = softmax(s/tau) (log-space)."""
    logq = F.log_softmax(s_logits / tau, dim=-1)
    logp = F.log_softmax(t_logits / tau, dim=-1)
    if div == "fkl":  # KL(p || q)
        return (logp.exp() * (logp - logq)).sum(-1)
    if div == "rkl":  # KL(q || p)
        return (logq.exp() * (logq - logp)).sum(-1)
    if div == "jsd":  # beta*KL(p||m) + (1-beta)*KL(q||m), m = beta*p + (1-beta)*q
        b = float(jsd_beta)
        if not 0.0 < b < 1.0:
            raise ValueError("jsd_beta must be in (0, 1)")
        logm = torch.logsumexp(torch.stack([logp + math.log(b), logq + math.log(1.0 - b)]), dim=0)
        kl_pm = (logp.exp() * (logp - logm)).sum(-1)
        kl_qm = (logq.exp() * (logq - logm)).sum(-1)
        return b * kl_pm + (1.0 - b) * kl_qm
    raise ValueError(f"unknown divergence {div!r}")


def feature_loss(hs_s, hs_t, W, kind: str = "mse"):
    """One pair: hs_s [N, d_s], hs_t [N, d_t], W [d_s, d_t]; target = hs_t @ W^T."""
    target = hs_t @ W.t()
    if kind == "mse":
        return (hs_s - target).pow(2).mean()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(hs_s, target, dim=-1)).mean()
    raise ValueError(f"unknown feature loss {kind!r}")


def kd_loss(s_logits, t_logits, labels, *, alpha: float, tau: float, div: str = "fkl",
            jsd_beta: float = 0.5, beta: float = 0.0, feature: str = "mse",
            pairs: Sequence[Tuple[int, int]] = (), projs: Sequence[torch.Tensor] = (),
            hs_student: Optional[Sequence[torch.Tensor]] = None,
            hs_teacher: Optional[Sequence[torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """loss = alpha*CE + (1-alpha)*tau^2*kd + beta*feat.

    s_logits, t_logits: [N, V]; labels [N]; hs_*: lists of [N, d] (flattened hidden states).
    Returns dict(loss, ce, kd, feat) (kd and feat are always computed, before weighting; feat is 0
    when there are no pairs). The teacher tensors should not require grad.
    """
    ce = F.cross_entropy(s_logits, labels)
    kd = divergence(s_logits, t_logits, tau, div, jsd_beta).mean()
    if pairs:
        feats = [feature_loss(hs_student[si], hs_teacher[ti], W, feature)
                 for (si, ti), W in zip(pairs, projs)]
        feat = torch.stack(feats).mean()
    else:
        feat = s_logits.new_zeros(())
    loss = alpha * ce + (1.0 - alpha) * tau * tau * kd + beta * feat
    return dict(loss=loss, ce=ce, kd=kd, feat=feat)


# ----------------------------------------------------------------------------------------------
# .kdt container
# ----------------------------------------------------------------------------------------------
KDT_MAGIC = b"KDTF"
KDT_VERSION = 1
_DTYPES = {0: torch.float32, 1: torch.int32, 2: torch.float64}
_CODES = {v: k for k, v in _DTYPES.items()}


def write_kdt(path: str, records: Dict[str, torch.Tensor]) -> None:
    """Write name -> tensor (float32 / int32 / float64) records, in dict order.

    Layout (little-endian): b"KDTF", u32 version=1, u32 count, then per record:
    u32 name_len, name (utf-8), u32 dtype (0 f32, 1 i32, 2 f64), u32 ndim, i64 dims[ndim], raw data.
    """
    with open(path, "wb") as f:
        f.write(KDT_MAGIC + struct.pack("<II", KDT_VERSION, len(records)))
        for name, t in records.items():
            t = t.detach().cpu().contiguous()
            if t.dtype not in _CODES:
                raise TypeError(f"{name}: unsupported dtype {t.dtype}")
            nb = name.encode("utf-8")
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", _CODES[t.dtype], t.dim()))
            f.write(struct.pack(f"<{t.dim()}q", *t.shape))
            f.write(t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes())


def read_kdt(path: str) -> Dict[str, torch.Tensor]:
    """Read a .kdt file into an ordered dict name -> tensor."""
    import numpy as np

    np_dtypes = {0: np.dtype("<f4"), 1: np.dtype("<i4"), 2: np.dtype("<f8")}
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:4] != KDT_MAGIC:
        raise ValueError("bad magic")
    version, count = struct.unpack_from("<II", buf, 4)
    if version != KDT_VERSION:
        raise ValueError(f"unsupported version {version}")
    off, out = 12, {}
    for _ in range(count):
        (nlen,) = struct.unpack_from("<I", buf, off)
        off += 4
        name = buf[off:off + nlen].decode("utf-8")
        off += nlen
        code, ndim = struct.unpack_from("<II", buf, off)
        off += 8
        dims = struct.unpack_from(f"<{ndim}q", buf, off)
        off += 8 * ndim
        dt = np_dtypes[code]
        n = 1
        for s in dims:
            n *= s
        arr = np.frombuffer(buf, dtype=dt, count=n, offset=off).reshape(dims)
        off += n * dt.itemsize
        if name in out:
            raise ValueError(f"duplicate record {name}")
        out[name] = torch.from_numpy(arr.astype(dt.newbyteorder("="), copy=True))
    if off != len(buf):
        raise ValueError(f"{len(buf) - off} trailing bytes")
    return out
