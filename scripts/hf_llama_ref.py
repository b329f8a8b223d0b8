#!/usr/bin/python3
"""An independent check of kdtrain's Hugging Face interop: its own safetensors parser and
writer (struct + json, not kdtrain's code, not the safetensors package) and a Llama forward
with Hugging Face's semantics (LlamaForCausalLM: RMSNorm, rotate-half RoPE, GQA causal
attention, SwiGLU, tied or untied head), in float64 with python3-torch.

  make-fixture DIR [--llama3]
                     writes a small Llama as a Hugging Face directory: config.json, two
                     safetensors shards with model.safetensors.index.json, tensors in F32,
                     F16 and BF16; and reference.json + reference.safetensors: token ids and
                     the float64 forward's logits (stored F32). tests/fixtures/hf_tiny is this;
                     with --llama3 (tests/fixtures/hf_llama3): Llama 3.1's RoPE scaling, a tied
                     head, one file.
  check-export DIR FIXTURE
                     DIR is `kdtrain export --format hf` of `kdtrain import-hf FIXTURE`: its
                     config.json must describe the same model, every tensor must equal the
                     fixture's (widened to float32) bit for bit, and its forward must give the
                     fixture's reference logits. Exit 0 when all hold.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype, size = DTYPES[t["dtype"]]
        b, e = t["data_offsets"]
        assert e - b == size * math.prod(t["shape"]), name
        raw = bytearray(data[b:e])
        out[name] = torch.frombuffer(raw, dtype=dtype).reshape(t["shape"]).clone() if raw else torch.zeros(t["shape"], dtype=dtype)
    return out


def write_safetensors(path, tensors):
    header, chunks, at = {}, [], 0
    for name, (t, code) in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def forward(w, cfg, tokens):
    """LlamaForCausalLM's logits in float64. w: name -> tensor (any float dtype)."""
    w = {k: v.double() for k, v in w.items()}
    d, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // heads
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    t = tokens.shape[1]

    def norm(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g

    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rs = cfg.get("rope_scaling")
    if rs:  # transformers' _compute_llama3_parameters
        assert rs["rope_type"] == "llama3"
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = torch.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    ang = torch.outer(torch.arange(t, dtype=torch.float64), inv)
    cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)

    def rope(z):  # [B, H, T, hd]: rotate_half, as transformers' apply_rotary_pos_emb
        z1, z2 = z[..., : hd // 2], z[..., hd // 2:]
        return z * cos + torch.cat((-z2, z1), -1) * sin

    x = w["model.embed_tokens.weight"][tokens]
    b = tokens.shape[0]
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = norm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(b, t, heads, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(b, t, kv, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(b, t, kv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(heads // kv, dim=1)
        v = v.repeat_interleave(heads // kv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
        x = x + att.transpose(1, 2).reshape(b, t, heads * hd) @ w[p + "self_attn.o_proj.weight"].T
        h = norm(x, w[p + "post_attention_layernorm.weight"])
        g, u = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return norm(x, w["model.norm.weight"]) @ head.T


def make_fixture(out, llama3=False):
    """llama3: Llama 3.1's RoPE scaling (a small original context, so 13 positions feel it)
    and a tied head, in one file, instead of plain RoPE, an untied head and two shards."""
    os.makedirs(out, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 97, "hidden_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 160,
           "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": llama3,
           "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
           "attention_bias": False, "mlp_bias": False, "transformers_version": "4.46.0",
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 16} if llama3 else None}
    g = torch.Generator().manual_seed(20261127)
    d, f, v, hd = 64, 160, 97, 16
    shapes = {"model.embed_tokens.weight": [v, d], "model.norm.weight": [d]}
    if not llama3:
        shapes["lm_head.weight"] = [v, d]
    for i in range(2):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
                       p + "self_attn.q_proj.weight": [4 * hd, d], p + "self_attn.k_proj.weight": [2 * hd, d],
                       p + "self_attn.v_proj.weight": [2 * hd, d], p + "self_attn.o_proj.weight": [d, 4 * hd],
                       p + "mlp.gate_proj.weight": [f, d], p + "mlp.up_proj.weight": [f, d],
                       p + "mlp.down_proj.weight": [d, f]})
    codes = ["BF16", "F16", "F32"]  # every dtype kdtrain reads, in turn
    tensors = {}
    for n, (name, shape) in enumerate(sorted(shapes.items())):
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = torch.randn(shape, generator=g) * (0.5 if "embed" in name else 1.0 / math.sqrt(shape[-1]))
        code = codes[n % 3]
        tensors[name] = (t.to(DTYPES[code][0]), code)
    names = sorted(tensors)
    if llama3:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    else:
        shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
                  "model-00002-of-00002.safetensors": names[len(names) // 2:]}
        weight_map = {}
        for file, part in shards.items():
            write_safetensors(os.path.join(out, file), {k: tensors[k] for k in part})
            weight_map.update({k: file for k in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as fh:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, fh, indent=1)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    tokens = torch.randint(0, v, (2, 13), generator=g)
    logits = forward({k: t for k, (t, _) in tensors.items()}, cfg, tokens)
    with open(os.path.join(out, "reference.json"), "w") as fh:
        json.dump({"tokens": tokens.tolist(), "note": "LlamaForCausalLM semantics in float64 (scripts/hf_llama_ref.py)"}, fh)
    write_safetensors(os.path.join(out, "reference.safetensors"), {"logits": (logits.float(), "F32")})
    print(f"wrote {out}: {len(tensors)} tensors in {1 if llama3 else 2} file(s); reference logits {list(logits.shape)}, "
          f"max |logit| {logits.abs().max():.3f}")


def check_export(out, fixture):
    with open(os.path.join(out, "config.json")) as fh:
        cfg = json.load(fh)
    with open(os.path.join(fixture, "config.json")) as fh:
        want = json.load(fh)
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "hidden_act", "rope_scaling"):
        assert cfg[k] == want[k], f"config.json {k}: {cfg[k]} != {want[k]}"
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    got = read_safetensors(os.path.join(out, "model.safetensors"))
    src = {}
    index = os.path.join(fixture, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as fh:
            for file in set(json.load(fh)["weight_map"].values()):
                src.update(read_safetensors(os.path.join(fixture, file)))
    else:
        src = read_safetensors(os.path.join(fixture, "model.safetensors"))
    assert set(got) == set(src), f"tensor names differ: {sorted(set(got) ^ set(src))}"
    for name, t in src.items():
        assert got[name].dtype == torch.float32, name
        assert torch.equal(got[name], t.float()), f"{name} differs from the fixture's"
    with open(os.path.join(fixture, "reference.json")) as fh:
        tokens = torch.tensor(json.load(fh)["tokens"])
    ref = read_safetensors(os.path.join(fixture, "reference.safetensors"))["logits"].double()
    logits = forward(got, cfg, tokens)
    err = (logits - ref).abs().max().item() / ref.abs().max().item()
    print(f"check-export: {len(got)} tensors equal the fixture's; logits within {err:.2e} of the reference "
          f"(relative to the largest)")
    assert err < 1e-6, err


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-fixture":
        make_fixture(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "make-fixture" and sys.argv[3] == "--llama3":
        make_fixture(sys.argv[2], llama3=True)
    elif len(sys.argv) == 4 and sys.argv[1] == "check-export":
        check_export(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
