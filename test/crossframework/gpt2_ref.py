#!/usr/bin/env python3
"""PyTorch reference of the trainer's GPT (trainer/DESIGN.md), written from the design, not from the Go code.

Usage: gpt2_ref.py [--dtype float64|float32] MODEL_DIR BATCH_JSON

MODEL_DIR holds model.safetensors and config.json as the Go checkpoint package writes them. BATCH_JSON is

    {"inputs":  [[int, ...], ...],        # B rows of T token ids
     "targets": [[int, ...], ...],        # B rows of T ids; position t predicts targets[b][t]
     "mask":    [[0|1, ...], ...],        # 1 where the target counts in the losses
     "sft_grads": bool,                   # optional: also return d(SFT loss)/d parameter
     "dpo": [{                            # optional: DPO losses to evaluate on the batch
        "chosen_rows": [int, ...], "rejected_rows": [int, ...],   # pair i = (rows chosen_rows[i], rejected_rows[i])
        "ref_chosen": [float, ...], "ref_rejected": [float, ...], # reference summed log-probs per pair
        "beta": float, "loss_type": "sigmoid|ipo|hinge|robust",
        "label_smoothing": float, "rpo_alpha": float,
        "grads": bool}, ...],             # optional: also return d(this loss)/d parameter
     "generate": [{"prompt": [int, ...], "max_new": int, "stop": int,   # optional: decoding runs
                   "temperature": float,    # 0: greedy; otherwise sample softmax(logits / temperature)
                   "uniforms": [float]}]}   # sampling: step i takes the first token whose CDF exceeds uniforms[i]

and the program prints one JSON object on stdout:

    {"dtype", "shape": [B, T, V], "logits": [B*T*V floats, row-major],
     "logits_checksum": {"sum", "sum_abs", "sum_sq"}, "logits_slice": logits[0][0][:8],
     "logp": [B*T*V: log-softmax of the logits], "token_logp": [B*T: log p(target), 0 where masked out],
     "seq_logp": [B], "seq_tokens": [B], "sft_loss", "sft_grads": {name: [floats, row-major]},
     "dpo": [{"loss": preference loss + rpo_alpha * nll, "preference_loss", "nll": chosen rows' token-mean NLL,
              "losses": [per pair], "chosen_rewards", "rejected_rewards", "accuracy", "margin",
              "grads": {name: [floats]}}, ...],
     "generate": [{"tokens": [new ids, ending before stop],
                   "margins": [per step: greedy, top-1 minus top-2 logit; sampling, distance of the uniform
                               to the nearest CDF boundary]}]}

Errors (a bad file, a malformed batch) go to stderr naming the file, the field and the row, with exit status 2.
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
    """Input the reference cannot use; the message names the file and field."""


# --- safetensors -----------------------------------------------------------------------------------------------
# Read in plain Python so the check needs no package beyond torch and numpy: an 8-byte little-endian header
# length, a JSON header, then raw little-endian tensors at data_offsets relative to the end of the header.

_ST_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2")}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise InputError(f"{path}: {len(blob)} bytes, too short for a safetensors header")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise InputError(f"{path}: header length {hlen} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: header is not JSON: {e}")
    data = blob[8 + hlen:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info.get("dtype")
        if dt not in _ST_DTYPES:
            raise InputError(f"{path}: tensor {name}: dtype {dt!r} is not one of {sorted(_ST_DTYPES)}")
        shape = info.get("shape")
        begin, end = info.get("data_offsets", (None, None))
        if not isinstance(shape, list) or begin is None or end is None:
            raise InputError(f"{path}: tensor {name}: missing shape or data_offsets")
        want = _ST_DTYPES[dt].itemsize * math.prod(shape)
        if end - begin != want or begin < 0 or end > len(data):
            raise InputError(f"{path}: tensor {name}: data_offsets [{begin}, {end}) hold {end - begin} bytes, "
                             f"shape {shape} {dt} needs {want} (data section {len(data)} bytes)")
        arr = np.frombuffer(data, dtype=_ST_DTYPES[dt], count=math.prod(shape), offset=begin)
        tensors[name] = arr.reshape(shape)
    return tensors


# --- model -----------------------------------------------------------------------------------------------------

class Config:
    def __init__(self, path):
        try:
            with open(path) as f:
                c = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: {e}")

        def need(key, kind=int):
            if key not in c:
                raise InputError(f"{path}: field {key!r} is missing")
            v = c[key]
            if kind is int and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise InputError(f"{path}: field {key!r} must be a positive integer, got {v!r}")
            return v

        if c.get("model_type") != "gpt2":
            raise InputError(f"{path}: field 'model_type' must be \"gpt2\", got {c.get('model_type')!r}")
        self.vocab = need("vocab_size")
        self.positions = need("n_positions")
        self.d = need("n_embd")
        self.layers = need("n_layer")
        self.heads = need("n_head")
        if self.d % self.heads:
            raise InputError(f"{path}: n_embd {self.d} is not a multiple of n_head {self.heads}")
        act = c.get("activation_function", "gelu_new")
        if act != "gelu_new":
            raise InputError(f"{path}: field 'activation_function' must be \"gelu_new\", got {act!r}")
        self.eps = float(c.get("layer_norm_epsilon", 1e-5))
        # n_inner: the MLP's width, 4 * n_embd when absent or null (Hugging Face's GPT2Config).
        inner = c.get("n_inner")
        if inner is None:
            inner = 4 * self.d
        if not isinstance(inner, int) or isinstance(inner, bool) or inner <= 0:
            raise InputError(f"{path}: field 'n_inner' must be a positive integer or null, got {inner!r}")
        self.inner = inner
        tie = c.get("tie_word_embeddings", True)
        if not isinstance(tie, bool):
            raise InputError(f"{path}: field 'tie_word_embeddings' must be true or false, got {tie!r}")
        # Tied: the LM head is wte. Untied: lm_head.weight [V, D], outside the "transformer." prefix.
        self.tied = tie


def param_shapes(cfg):
    """The tensor names and shapes the design fixes, in a stable order (lm_head.weight only when untied)."""
    V, T, D, I = cfg.vocab, cfg.positions, cfg.d, cfg.inner
    shapes = {"wte.weight": [V, D], "wpe.weight": [T, D]}
    for i in range(cfg.layers):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": [D], p + "ln_1.bias": [D],
            p + "attn.c_attn.weight": [D, 3 * D], p + "attn.c_attn.bias": [3 * D],
            p + "attn.c_proj.weight": [D, D], p + "attn.c_proj.bias": [D],
            p + "ln_2.weight": [D], p + "ln_2.bias": [D],
            p + "mlp.c_fc.weight": [D, I], p + "mlp.c_fc.bias": [I],
            p + "mlp.c_proj.weight": [I, D], p + "mlp.c_proj.bias": [D],
        })
    shapes.update({"ln_f.weight": [D], "ln_f.bias": [D]})
    if not cfg.tied:
        shapes["lm_head.weight"] = [V, D]
    return shapes


def load_params(model_dir, cfg, dtype):
    path = os.path.join(model_dir, "model.safetensors")
    raw = read_safetensors(path)
    # Hugging Face's GPT2LMHeadModel prefixes every name with "transformer." (GPT2Model's files do not); the
    # forward below uses the unprefixed names and grads_of reports the file's.
    cfg.prefix = "transformer." if any(n.startswith("transformer.") for n in raw) else ""
    # lm_head.weight stays outside the prefix, as GPT2LMHeadModel names it.
    raw = {n[len(cfg.prefix):] if n.startswith(cfg.prefix) else n: t for n, t in raw.items()}
    shapes = param_shapes(cfg)
    missing = [n for n in shapes if n not in raw]
    extra = [n for n in raw if n not in shapes]
    if missing or extra:
        raise InputError(f"{path}: tensors missing {missing}, unexpected {extra}")
    params = {}
    for name, shape in shapes.items():
        if list(raw[name].shape) != shape:
            raise InputError(f"{path}: tensor {name} has shape {list(raw[name].shape)}, config.json implies {shape}")
        params[name] = torch.tensor(np.array(raw[name], dtype=np.float64), dtype=dtype, requires_grad=True)
    return params


def forward(cfg, P, idx):
    """Logits [B, T, V] of token ids idx [B, T]."""
    B, T = idx.shape
    D, H = cfg.d, cfg.heads
    hd = D // H
    x = P["wte.weight"][idx] + P["wpe.weight"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.layers):
        p = f"h.{i}."
        h = F.layer_norm(x, (D,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], cfg.eps)
        qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(B, T, H, hd).transpose(1, 2) for t in qkv.split(D, dim=-1))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores.masked_fill(~causal, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        y = y.transpose(1, 2).reshape(B, T, D)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (D,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], cfg.eps)
        h = F.gelu(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (D,), P["ln_f.weight"], P["ln_f.bias"], cfg.eps)
    return x @ (P["wte.weight"] if cfg.tied else P["lm_head.weight"]).t()


# --- batch -----------------------------------------------------------------------------------------------------

def _int_matrix(path, batch, key, B=None, T=None):
    rows = batch.get(key)
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: field {key!r} must be a non-empty list of rows")
    B = B if B is not None else len(rows)
    if len(rows) != B:
        raise InputError(f"{path}: field {key!r} has {len(rows)} rows, 'inputs' has {B}")
    for r, row in enumerate(rows):
        if not isinstance(row, list):
            raise InputError(f"{path}: field {key!r} row {r} is not a list")
        T = T if T is not None else len(row)
        if len(row) != T:
            raise InputError(f"{path}: field {key!r} row {r} has {len(row)} entries, expected {T}")
        for t, v in enumerate(row):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise InputError(f"{path}: field {key!r} row {r} position {t}: {v!r} is not a number")
    return rows, B, T


def read_batch(path, cfg):
    try:
        with open(path) as f:
            batch = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: {e}")
    inputs, B, T = _int_matrix(path, batch, "inputs")
    targets, _, _ = _int_matrix(path, batch, "targets", B, T)
    mask, _, _ = _int_matrix(path, batch, "mask", B, T)
    if T > cfg.positions:
        raise InputError(f"{path}: rows have {T} positions, the model's context is {cfg.positions}")
    for r in range(B):
        for t in range(T):
            if mask[r][t] not in (0, 1):
                raise InputError(f"{path}: field 'mask' row {r} position {t}: {mask[r][t]!r} is not 0 or 1")
            if not (isinstance(inputs[r][t], int) and 0 <= inputs[r][t] < cfg.vocab):
                raise InputError(f"{path}: field 'inputs' row {r} position {t}: {inputs[r][t]!r} is not a token id "
                                 f"in [0, {cfg.vocab})")
            # A masked-out target never reaches a loss, so any placeholder is accepted there.
            if mask[r][t] and not (isinstance(targets[r][t], int) and 0 <= targets[r][t] < cfg.vocab):
                raise InputError(f"{path}: field 'targets' row {r} position {t}: {targets[r][t]!r} is not a token "
                                 f"id in [0, {cfg.vocab}) (the mask counts it)")
    tg = [[v if m else 0 for v, m in zip(tr, mr)] for tr, mr in zip(targets, mask)]
    out = {"inputs": torch.tensor(inputs, dtype=torch.long), "targets": torch.tensor(tg, dtype=torch.long),
           "mask": torch.tensor(mask, dtype=torch.float64), "sft_grads": batch.get("sft_grads", False)}
    if not isinstance(out["sft_grads"], bool):
        raise InputError(f"{path}: field 'sft_grads' must be true or false, got {out['sft_grads']!r}")
    dpo = batch.get("dpo", [])
    if not isinstance(dpo, list):
        raise InputError(f"{path}: field 'dpo' must be a list of DPO settings")
    out["dpo"] = [read_dpo(f"{path}: field 'dpo' entry {i}", d, B) for i, d in enumerate(dpo)]
    gen = batch.get("generate", [])
    if not isinstance(gen, list):
        raise InputError(f"{path}: field 'generate' must be a list of decoding runs")
    out["generate"] = [read_generate(f"{path}: field 'generate' entry {i}", g, cfg) for i, g in enumerate(gen)]
    return out


def read_generate(where, g, cfg):
    if not isinstance(g, dict):
        raise InputError(f"{where} must be an object")
    prompt = g.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        raise InputError(f"{where}: field 'prompt' must be a non-empty list of token ids")
    for i, v in enumerate(prompt):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < cfg.vocab:
            raise InputError(f"{where}: field 'prompt' entry {i}: {v!r} is not a token id in [0, {cfg.vocab})")
    for key in ("max_new", "stop"):
        v = g.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InputError(f"{where}: field {key!r} must be an integer >= 0, got {v!r}")
    temp = g.get("temperature", 0.0)
    if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not math.isfinite(temp) or temp < 0:
        raise InputError(f"{where}: field 'temperature' must be a finite number >= 0, got {temp!r}")
    uniforms = g.get("uniforms", [])
    if temp > 0:
        if not isinstance(uniforms, list) or len(uniforms) < g["max_new"]:
            raise InputError(f"{where}: field 'uniforms' must hold max_new ({g['max_new']}) numbers to sample with")
        for i, u in enumerate(uniforms):
            if not isinstance(u, (int, float)) or isinstance(u, bool) or not 0 <= u < 1:
                raise InputError(f"{where}: field 'uniforms' entry {i}: {u!r} is not a number in [0, 1)")
    return {"prompt": prompt, "max_new": g["max_new"], "stop": g["stop"], "temperature": float(temp),
            "uniforms": uniforms}


def read_dpo(where, d, B):
    if not isinstance(d, dict):
        raise InputError(f"{where} must be an object")
    for key in ("chosen_rows", "rejected_rows", "ref_chosen", "ref_rejected", "beta", "loss_type"):
        if key not in d:
            raise InputError(f"{where}: field {key!r} is missing")
    n = len(d["chosen_rows"]) if isinstance(d["chosen_rows"], list) else 0
    for key in ("chosen_rows", "rejected_rows", "ref_chosen", "ref_rejected"):
        if not isinstance(d[key], list) or len(d[key]) != n or n == 0:
            raise InputError(f"{where}: field {key!r} must be a list of {n or 'at least one'} entries")
    for key in ("chosen_rows", "rejected_rows"):
        for i, r in enumerate(d[key]):
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < B:
                raise InputError(f"{where}: field {key!r} entry {i}: {r!r} is not a row in [0, {B})")
    for key in ("ref_chosen", "ref_rejected"):
        for i, v in enumerate(d[key]):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise InputError(f"{where}: field {key!r} entry {i}: {v!r} is not a finite number")
    nums = {}
    for key, default in (("beta", None), ("label_smoothing", 0.0), ("rpo_alpha", 0.0)):
        v = d.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise InputError(f"{where}: field {key!r}: {v!r} is not a finite number")
        nums[key] = float(v)
    if not nums["beta"] > 0:
        raise InputError(f"{where}: field 'beta' must be > 0, got {nums['beta']}")
    if not 0 <= nums["label_smoothing"] < 0.5:
        raise InputError(f"{where}: field 'label_smoothing' must be in [0, 0.5), got {nums['label_smoothing']}")
    if nums["rpo_alpha"] < 0:
        raise InputError(f"{where}: field 'rpo_alpha' must be >= 0, got {nums['rpo_alpha']}")
    if d["loss_type"] not in ("sigmoid", "ipo", "hinge", "robust"):
        raise InputError(f"{where}: field 'loss_type' {d['loss_type']!r} is not sigmoid, ipo, hinge or robust")
    if not isinstance(d.get("grads", False), bool):
        raise InputError(f"{where}: field 'grads' must be true or false, got {d['grads']!r}")
    return {"chosen": d["chosen_rows"], "rejected": d["rejected_rows"],
            "ref_c": torch.tensor(d["ref_chosen"], dtype=torch.float64),
            "ref_r": torch.tensor(d["ref_rejected"], dtype=torch.float64),
            "beta": nums["beta"], "eps": nums["label_smoothing"], "type": d["loss_type"],
            "rpo_alpha": nums["rpo_alpha"], "grads": d.get("grads", False)}


# --- losses ----------------------------------------------------------------------------------------------------

def dpo_loss(d, seq_logp, tok_logp, mask):
    """The mean DPO loss of trainer/DESIGN.md's "Losses" over the batch's pairs, with per-pair values."""
    pc, pr = seq_logp[d["chosen"]], seq_logp[d["rejected"]]
    ref_c, ref_r = d["ref_c"].to(pc.dtype), d["ref_r"].to(pc.dtype)
    if d["type"] == "ipo":
        # TRL feeds IPO per-token means: each sequence's summed log-prob (policy and reference) over its count of
        # loss-masked tokens.
        n_c, n_r = mask[d["chosen"]].sum(-1).to(pc.dtype), mask[d["rejected"]].sum(-1).to(pc.dtype)
        pc, pr, ref_c, ref_r = pc / n_c, pr / n_r, ref_c / n_c, ref_r / n_r
    beta, eps = d["beta"], d["eps"]
    h = (pc - pr) - (ref_c - ref_r)
    if d["type"] == "sigmoid":
        losses = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif d["type"] == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif d["type"] == "hinge":
        losses = torch.relu(1 - beta * h)
    else:  # robust
        losses = ((1 - eps) * -F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)
    pref = losses.mean()
    loss = pref
    nll = None
    if tok_logp is not None:
        # RPO's NLL is a token mean over all chosen responses of the batch (as TRL computes it).
        rows = d["chosen"]
        nll = -(tok_logp[rows] * mask[rows]).sum() / mask[rows].sum()
        loss = loss + d["rpo_alpha"] * nll
    chosen = beta * (pc - ref_c)
    rejected = beta * (pr - ref_r)
    return loss, {
        "preference_loss": pref.item(),
        "nll": None if nll is None else nll.item(),
        "losses": losses.tolist(),
        "chosen_rewards": chosen.tolist(),
        "rejected_rewards": rejected.tolist(),
        "accuracy": (chosen > rejected).to(torch.float64).mean().item(),
        "margin": (chosen - rejected).mean().item(),
    }


@torch.no_grad()
def generate(cfg, P, g):
    """Greedy decoding or inverse-CDF sampling with the given uniforms; once the sequence outgrows the context
    the model sees its last n_positions tokens."""
    seq, new, margins = list(g["prompt"]), [], []
    while len(new) < g["max_new"]:
        window = seq[-cfg.positions:]
        logits = forward(cfg, P, torch.tensor([window]))[0, -1].to(torch.float64)
        if g["temperature"] == 0:
            top = torch.topk(logits, 2)
            margins.append((top.values[0] - top.values[1]).item())
            nxt = int(top.indices[0])
        else:
            cdf = torch.cumsum(torch.softmax(logits / g["temperature"], dim=-1), dim=0)
            u = g["uniforms"][len(new)]
            nxt = min(int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype), right=True)), cfg.vocab - 1)
            lo = cdf[nxt - 1].item() if nxt > 0 else 0.0
            margins.append(min(u - lo, cdf[nxt].item() - u))
        if nxt == g["stop"]:
            break
        new.append(nxt)
        seq.append(nxt)
    return {"tokens": new, "margins": margins}


def grads_of(loss, P, prefix=""):
    grads = torch.autograd.grad(loss, list(P.values()), retain_graph=True)
    # The file's names: every tensor under the prefix except the untied head, which GPT2LMHeadModel keeps apart.
    return {(n if n == "lm_head.weight" else prefix + n): g.to(torch.float64).reshape(-1).tolist()
            for n, g in zip(P, grads)}


def run(model_dir, batch_path, dtype):
    cfg = Config(os.path.join(model_dir, "config.json"))
    P = load_params(model_dir, cfg, dtype)
    b = read_batch(batch_path, cfg)
    logits = forward(cfg, P, b["inputs"])
    mask = b["mask"].to(dtype)
    logp = torch.log_softmax(logits, dim=-1)
    tok_logp = logp.gather(-1, b["targets"].unsqueeze(-1)).squeeze(-1) * mask
    seq_logp = tok_logp.sum(-1)
    seq_tokens = mask.sum(-1)
    if seq_tokens.sum() == 0:
        raise InputError(f"{batch_path}: field 'mask' is all zero: no target to score")
    sft = -tok_logp.sum() / seq_tokens.sum()
    flat = logits.detach().to(torch.float64)
    out = {
        "dtype": str(dtype).replace("torch.", ""),
        "shape": list(logits.shape),
        "logits": flat.reshape(-1).tolist(),
        "logits_checksum": {"sum": flat.sum().item(), "sum_abs": flat.abs().sum().item(),
                            "sum_sq": (flat * flat).sum().item()},
        "logits_slice": flat[0, 0, :8].tolist(),
        "logp": logp.detach().to(torch.float64).reshape(-1).tolist(),
        "token_logp": tok_logp.detach().to(torch.float64).reshape(-1).tolist(),
        "seq_logp": seq_logp.tolist(),
        "seq_tokens": [int(n) for n in seq_tokens.tolist()],
        "sft_loss": sft.item(),
        "dpo": [],
    }
    if b["sft_grads"]:
        out["sft_grads"] = grads_of(sft, P, cfg.prefix)
    for d in b["dpo"]:
        loss, metrics = dpo_loss(d, seq_logp, tok_logp, mask)
        res = {"loss": loss.item(), **metrics}
        if d["grads"]:
            res["grads"] = grads_of(loss, P, cfg.prefix)
        out["dpo"].append(res)
    out["generate"] = [generate(cfg, P, g) for g in b["generate"]]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("model_dir")
    ap.add_argument("batch")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        out = run(args.model_dir, args.batch, getattr(torch, args.dtype))
    except InputError as e:
        print(f"gpt2_ref: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
