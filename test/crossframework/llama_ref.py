#!/usr/bin/env python3
"""PyTorch reference of the Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
Qwen3ForCausalLM), written from transformers' documented model definitions and config fields, not from the Go
code. Plain torch and numpy (Debian's python3-torch 1.13): no transformers, no safetensors package.

Usage: llama_ref.py [--dtype float64|float32] MODEL_DIR BATCH_JSON

MODEL_DIR is a Hugging Face model directory: config.json and model.safetensors, or shards listed in
model.safetensors.index.json; tensors F32, BF16 or F16 (widened to the compute dtype). BATCH_JSON is

    {"inputs":  [[int, ...], ...],   # B rows of T token ids, padding at the end of the rows
     "targets": [[int, ...], ...],   # position t predicts targets[b][t]
     "mask":    [[0|1, ...], ...],   # 1 where the target counts
     "sft_grads": bool}              # optional: also return d(SFT loss)/d parameter, by the file's names

and the program prints one JSON object: {"architecture", "shape": [B, T, V], "logits": [B*T*V],
"token_logp": [B*T], "seq_logp": [B], "seq_tokens": [B], "sft_loss", "sft_grads": {name: [floats]}}.
SFT loss is the mean over all masked-in targets of -log p(target); seq_logp the per-row sum of log p(target).

The model (D hidden, H query heads, K key/value heads, d = head_dim):
  x = embed_tokens[ids]
  per layer: n = rmsnorm(x) · input_layernorm; q, k, v = linear projections (+ biases when configured);
             Qwen3: q, k normalised per head by rmsnorm with q_norm / k_norm weights; rotate q and k by
             rotate_half RoPE at positions 0..T-1; each query head h attends to key/value head h // (H/K),
             causally, scale 1/sqrt(d); x += o_proj(merged heads); x += down_proj(silu(gate_proj(m)) * up_proj(m))
             with m = rmsnorm(x) · post_attention_layernorm
  logits = (rmsnorm(x) · norm) @ W^T with W = lm_head.weight, or embed_tokens.weight when tied.
rmsnorm(x) = x / sqrt(mean(x^2) + rms_norm_eps). inv_freq = rope_theta^(-2i/d); rope_scaling "linear" divides
it by factor; "llama3" divides the frequencies whose wavelength 2π/f exceeds original/low_freq_factor by factor,
keeps those below original/high_freq_factor and blends linearly in between in (original/wavelength - low) /
(high - low).
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


class InputError(Exception):
    pass


_DT = {"F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2), "BF16": (np.dtype("<u2"), 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = blob[8 + hlen:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DT:
            raise InputError(f"{path}: tensor {name}: dtype {dt} not supported")
        npdt, size = _DT[dt]
        shape = info["shape"]
        begin, end = info["data_offsets"]
        if end - begin != size * math.prod(shape):
            raise InputError(f"{path}: tensor {name}: {end - begin} bytes for shape {shape} {dt}")
        arr = np.frombuffer(data, dtype=npdt, count=math.prod(shape), offset=begin)
        if dt == "BF16":  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = np.array(arr, dtype=np.float64).reshape(shape)
    return out


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        out.update(read_safetensors(os.path.join(model_dir, name)))
    return out


class Config:
    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        self.arch = (c.get("architectures") or [""])[0]
        mt = c.get("model_type")
        if mt not in ("llama", "mistral", "qwen2", "qwen3"):
            raise InputError(f"{path}: model_type {mt!r} is not a Llama-family model")
        self.vocab = c["vocab_size"]
        self.d = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv = c.get("num_key_value_heads") or self.heads
        self.hd = c.get("head_dim") or self.d // self.heads
        self.eps = c["rms_norm_eps"]
        self.tied = c.get("tie_word_embeddings", False)
        attn_bias = bool(c.get("attention_bias", False))
        self.qkv_bias = attn_bias or mt == "qwen2"
        self.o_bias = attn_bias and mt in ("llama", "qwen3")
        self.mlp_bias = mt == "llama" and bool(c.get("mlp_bias", False))
        self.qk_norm = mt == "qwen3"
        # A sliding window only changes attention when it is shorter than the rows; this reference refuses that.
        self.window = c.get("sliding_window") if mt == "mistral" or c.get("use_sliding_window") else None
        self.theta = c.get("rope_theta", 10000.0)
        self.scaling = c.get("rope_scaling")
        if c.get("hidden_act", "silu") != "silu":
            raise InputError(f"{path}: hidden_act {c.get('hidden_act')!r}")

    def inv_freq(self, dtype):
        d = self.hd
        inv = 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        s = self.scaling
        if s:
            kind = s.get("rope_type", s.get("type"))
            if kind == "linear":
                inv = inv / s["factor"]
            elif kind == "llama3":
                old, low, high, factor = (s["original_max_position_embeddings"], s["low_freq_factor"],
                                          s["high_freq_factor"], s["factor"])
                wavelen = 2 * math.pi / inv
                scaled = torch.where(wavelen > old / low, inv / factor, inv)
                smooth = (old / wavelen - low) / (high - low)
                blended = (1 - smooth) * inv / factor + smooth * inv
                mid = (wavelen <= old / low) & (wavelen >= old / high)
                inv = torch.where(mid, blended, scaled)
            elif kind not in (None, "default"):
                raise InputError(f"rope type {kind!r}")
        return inv.to(dtype)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return x * cos + rotated * sin


def forward(cfg, P, ids, linear=None):
    """Logits [B, T, V] for ids [B, T]. linear(x, name, bias), when given, replaces x @ W^T (+ b) for every
    projection named name (e.g. model.layers.0.self_attn.q_proj): the benchmark's LoRA hook."""
    B, T = ids.shape
    if cfg.window is not None and cfg.window < T:
        raise InputError(f"sliding_window {cfg.window} is shorter than the {T} positions of the rows")
    H, K, hd = cfg.heads, cfg.kv, cfg.hd
    dtype = P["model.embed_tokens.weight"].dtype
    ang = torch.arange(T, dtype=dtype)[:, None] * cfg.inv_freq(dtype)[None, :]
    cos = torch.cat((ang.cos(), ang.cos()), -1)
    sin = torch.cat((ang.sin(), ang.sin()), -1)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def lin(x, name, bias):
        if linear is not None:
            return linear(x, name, bias)
        y = x @ P[name + ".weight"].t()
        return y + P[name + ".bias"] if bias else y

    x = P["model.embed_tokens.weight"][ids]
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        n = rmsnorm(x, P[p + "input_layernorm.weight"], cfg.eps)
        q = lin(n, p + "self_attn.q_proj", cfg.qkv_bias).view(B, T, H, hd)
        k = lin(n, p + "self_attn.k_proj", cfg.qkv_bias).view(B, T, K, hd)
        v = lin(n, p + "self_attn.v_proj", cfg.qkv_bias).view(B, T, K, hd)
        if cfg.qk_norm:
            q = rmsnorm(q, P[p + "self_attn.q_norm.weight"], cfg.eps)
            k = rmsnorm(k, P[p + "self_attn.k_norm.weight"], cfg.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, hd]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k = k.repeat_interleave(H // K, dim=1)
        v = v.repeat_interleave(H // K, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~causal, float("-inf"))
        a = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(a, p + "self_attn.o_proj", cfg.o_bias)
        m = rmsnorm(x, P[p + "post_attention_layernorm.weight"], cfg.eps)
        f = F.silu(lin(m, p + "mlp.gate_proj", cfg.mlp_bias)) * lin(m, p + "mlp.up_proj", cfg.mlp_bias)
        x = x + lin(f, p + "mlp.down_proj", cfg.mlp_bias)
    x = rmsnorm(x, P["model.norm.weight"], cfg.eps)
    head = P["model.embed_tokens.weight"] if cfg.tied else P["lm_head.weight"]
    return x @ head.t()


def run(model_dir, batch_path, dtype):
    cfg = Config(os.path.join(model_dir, "config.json"))
    raw = read_weights(model_dir)
    if cfg.tied:
        raw.pop("lm_head.weight", None)
    P = {n: torch.tensor(a, dtype=dtype, requires_grad=True) for n, a in sorted(raw.items())}
    with open(batch_path) as f:
        batch = json.load(f)
    ids = torch.tensor(batch["inputs"], dtype=torch.long)
    mask = torch.tensor(batch["mask"], dtype=dtype)
    targets = torch.tensor([[t if m else 0 for t, m in zip(tr, mr)] for tr, mr in zip(batch["targets"], batch["mask"])],
                           dtype=torch.long)
    logits = forward(cfg, P, ids)
    logp = torch.log_softmax(logits, -1)
    tok = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
    seq = tok.sum(-1)
    sft = -tok.sum() / mask.sum()
    out = {
        "architecture": cfg.arch,
        "shape": list(logits.shape),
        "logits": logits.detach().to(torch.float64).reshape(-1).tolist(),
        "token_logp": tok.detach().to(torch.float64).reshape(-1).tolist(),
        "seq_logp": seq.detach().to(torch.float64).tolist(),
        "seq_tokens": [int(n) for n in mask.sum(-1).tolist()],
        "sft_loss": sft.item(),
    }
    if batch.get("sft_grads"):
        grads = torch.autograd.grad(sft, list(P.values()))
        out["sft_grads"] = {n: g.to(torch.float64).reshape(-1).tolist() for n, g in zip(P, grads)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("model_dir")
    ap.add_argument("batch")
    a = ap.parse_args()
    try:
        out = run(a.model_dir, a.batch, getattr(torch, a.dtype))
    except (InputError, OSError, KeyError, ValueError) as e:
        print(f"llama_ref.py: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
