#!/usr/bin/env python3
"""PyTorch reference of a LoRA adapter in PEFT's layout applied to its base model, written from PEFT's documented
behaviour (LoraConfig, LoraLayer.get_delta_weight / merge), not from the Go code. Plain torch and numpy; the base
models are llama_ref.py's (Llama family) and gpt2_ref.py's (GPT2LMHeadModel), imported.

Usage: lora_ref.py [--dtype float64|float32] [--merged MERGED_DIR] BASE_DIR ADAPTER_DIR BATCH_JSON

ADAPTER_DIR holds adapter_config.json (peft_type LORA, r, lora_alpha, fan_in_fan_out, bias "none") and
adapter_model.safetensors with base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r].
Each target module's weight W becomes W + (lora_alpha / r) * B @ A (for GPT-2's Conv1D layers, W is [in, out]
and fan_in_fan_out is true: W + (lora_alpha / r) * (B @ A)^T), which is what PeftModel computes in eval mode
(dropout off), merged or not. BATCH_JSON is llama_ref.py's ({"inputs": [[ids]]}; the other fields are ignored).

Prints one JSON object: {"shape": [B, T, V], "logits": [B*T*V] of base + adapter, "targets": number of modules
adapted, "merged_logits": [B*T*V] of MERGED_DIR's model (when given), "merged_weight_diff": the largest
|MERGED_DIR's weight - (W + scaling * delta)| over all tensors, "merged_weight_scale": the largest |W + delta|}.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

import gpt2_ref
import llama_ref

PREFIX = "base_model.model."


class InputError(Exception):
    pass


def model_type(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f).get("model_type")


def load(model_dir, dtype):
    """(forward(ids) -> logits, params by the file's names, name -> forward's key)."""
    if model_type(model_dir) == "gpt2":
        cfg = gpt2_ref.Config(os.path.join(model_dir, "config.json"))
        P = gpt2_ref.load_params(model_dir, cfg, dtype)
        named = {cfg.prefix + n: n for n in P}
        return (lambda ids: gpt2_ref.forward(cfg, P, ids)), P, named
    cfg = llama_ref.Config(os.path.join(model_dir, "config.json"))
    raw = llama_ref.read_weights(model_dir)
    if cfg.tied:
        raw.pop("lm_head.weight", None)
    P = {n: torch.tensor(a, dtype=dtype) for n, a in raw.items()}
    return (lambda ids: llama_ref.forward(cfg, P, ids)), P, {n: n for n in P}


def apply_adapter(adapter_dir, P, named, dtype):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        c = json.load(f)
    if c.get("peft_type") != "LORA" or c.get("bias", "none") != "none" or c.get("use_dora") or c.get("use_rslora"):
        raise InputError(f"{adapter_dir}: not a plain LoRA adapter: {c}")
    scaling = c["lora_alpha"] / c["r"]
    tensors = llama_ref.read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    modules = sorted({n[len(PREFIX):-len(".lora_A.weight")] for n in tensors if n.endswith(".lora_A.weight")})
    if len(tensors) != 2 * len(modules):
        raise InputError(f"{adapter_dir}: {len(tensors)} tensors for {len(modules)} lora_A")
    for m in modules:
        a = torch.tensor(tensors[PREFIX + m + ".lora_A.weight"], dtype=dtype)
        b = torch.tensor(tensors[PREFIX + m + ".lora_B.weight"], dtype=dtype)
        if a.shape[0] != c["r"] or b.shape[1] != c["r"]:
            raise InputError(f"{adapter_dir}: {m}: lora_A {list(a.shape)}, lora_B {list(b.shape)}, r {c['r']}")
        delta = b @ a  # [out, in]
        if c.get("fan_in_fan_out"):
            delta = delta.t()  # Conv1D weights are [in, out]
        key = named[m + ".weight"]
        with torch.no_grad():
            P[key] = P[key].detach() + scaling * delta
    return len(modules)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--merged")
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("batch")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)
    try:
        with open(a.batch) as f:
            ids = torch.tensor(json.load(f)["inputs"], dtype=torch.long)
        fwd, P, named = load(a.base, dtype)
        n = apply_adapter(a.adapter, P, named, dtype)
        with torch.no_grad():
            logits = fwd(ids)
        out = {"shape": list(logits.shape), "logits": logits.to(torch.float64).reshape(-1).tolist(), "targets": n}
        if a.merged:
            mfwd, M, _ = load(a.merged, dtype)
            with torch.no_grad():
                out["merged_logits"] = mfwd(ids).to(torch.float64).reshape(-1).tolist()
            out["merged_weight_diff"] = max(float((M[k].detach() - P[k].detach()).abs().max()) for k in P)
            out["merged_weight_scale"] = max(float(P[k].detach().abs().max()) for k in P)
    except (InputError, llama_ref.InputError, gpt2_ref.InputError, OSError, KeyError, ValueError) as e:
        print(f"lora_ref.py: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
