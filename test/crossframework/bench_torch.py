#!/usr/bin/env python3
"""PyTorch peer of the trainer's Go benchmarks: full float32 training steps (forward, backward, AdamW) of the
architecture in trainer/DESIGN.md, printing one JSON line per measurement.

Configs: A (d_model 128, 4 layers, 4 heads) and B (256, 6 layers, 8 heads); batch 16 rows, context 128,
vocabulary 259. SFT trains on the 16 rows; DPO trains on the same number of tokens, 8 pairs (chosen + rejected =
16 rows), with the reference log-probs precomputed, as the Go benchmark does. trainer/model's step benchmarks
leave AdamW out: compare them with tokens_per_s_fwd_bwd. tokens/s counts every position of every row processed
(padding included, there is none here) over the median step time. Also prints torch's sgemm GFLOP/s (the best
1024^3 product), so a step's share of this machine's matrix-product peak can be compared with Go's, the CPU
seconds per step and the 1-minute load average, since wall times from a busy machine mean little.

OMP_WAIT_POLICY defaults to PASSIVE and OPENBLAS_NUM_THREADS to --threads; set either to override. On a busy
machine OPENBLAS_NUM_THREADS=1 costs less CPU per step (OpenBLAS's idle workers spin), for the same wall time.

Usage: bench_torch.py [--seconds S] [--configs A,B] [--kinds sft,dpo] [--threads N]
"""

import argparse
import json
import math
import os
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="time to measure each config and kind")
    ap.add_argument("--configs", default="A,B")
    ap.add_argument("--kinds", default="sft,dpo")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    args.configs, args.kinds = args.configs.split(","), args.kinds.split(",")
    for c in args.configs:
        if c not in ("A", "B"):
            ap.error(f"--configs: {c!r} is not A or B")
    for k in args.kinds:
        if k not in ("sft", "dpo"):
            ap.error(f"--kinds: {k!r} is not sft or dpo")
    if args.threads < 1:
        ap.error(f"--threads: {args.threads} is not >= 1")
    return args


ARGS = parse_args() if __name__ == "__main__" else None

# OpenMP and OpenBLAS read these when torch loads: a spinning wait policy steals the second core on a 2-core
# machine, and Debian's torch calls the system OpenBLAS, whose own thread pool would otherwise size itself to
# the machine rather than to --threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads if ARGS else 2))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref  # noqa: E402

CONFIGS = {"A": (128, 4, 4), "B": (256, 6, 8)}
VOCAB, CONTEXT, BATCH = 259, 128, 16


class BenchConfig:
    """The fields gpt2_ref.forward reads, without a config.json."""

    def __init__(self, d, layers, heads):
        self.vocab, self.positions, self.d, self.layers, self.heads, self.eps = VOCAB, CONTEXT, d, layers, heads, 1e-5


def init_params(cfg, gen):
    # GPT-2's initialisation as DESIGN.md states it; it matters little for speed but keeps softmax realistic.
    P = {}
    for name, shape in gpt2_ref.param_shapes(cfg).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            t = torch.ones(shape)
        elif name.endswith(".bias"):
            t = torch.zeros(shape)
        else:
            std = 0.02 / math.sqrt(2 * cfg.layers) if name.endswith("c_proj.weight") else 0.02
            t = torch.randn(shape, generator=gen) * std
        P[name] = t.requires_grad_(True)
    return P


def make_batch(gen):
    """16 rows of random bytes: BOS, a 48-byte prompt, a response to the end; the mask covers response targets."""
    tokens = torch.randint(0, 256, (BATCH, CONTEXT + 1), generator=gen)
    tokens[:, 0] = 256
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    mask = torch.zeros(BATCH, CONTEXT)
    mask[:, 48:] = 1
    return inputs, targets, mask


def seq_logps(cfg, P, inputs, targets, mask):
    logits = gpt2_ref.forward(cfg, P, inputs)
    tok = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return tok, (tok * mask).sum(-1)


def sft_loss(cfg, P, batch, _ref):
    inputs, targets, mask = batch
    tok, _ = seq_logps(cfg, P, inputs, targets, mask)
    return -(tok * mask).sum() / mask.sum()


def dpo_loss(cfg, P, batch, ref):
    # Rows 0..7 are the chosen responses, 8..15 the rejected ones; sigmoid loss, β = 0.1.
    inputs, targets, mask = batch
    _, s = seq_logps(cfg, P, inputs, targets, mask)
    half = BATCH // 2
    h = (s[:half] - s[half:]) - (ref[:half] - ref[half:])
    return -F.logsigmoid(0.1 * h).mean()


def sgemm_gflops(n=1024, tries=8):
    """The best of a few n×n float32 products: the best, not the mean, estimates a shared machine's peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 0.0
    for _ in range(tries):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def step_flops(cfg, tokens):
    """Matrix-product FLOPs of one training step (backward costs twice the forward), for the share of peak.
    Attention counts the full T x T products (QKᵀ and AV), as they are computed, not only the causal half."""
    D, L, T = cfg.d, cfg.layers, CONTEXT
    per_token = L * (2 * D * 3 * D + 2 * D * D + 2 * 2 * D * 4 * D + 2 * 2 * T * D) + 2 * D * VOCAB
    return 3 * per_token * tokens


def bench(name, kind, seconds, threads):
    d, layers, heads = CONFIGS[name]
    cfg = BenchConfig(d, layers, heads)
    gen = torch.Generator().manual_seed(1)
    P = init_params(cfg, gen)
    opt = torch.optim.AdamW(P.values(), lr=1e-4, weight_decay=0.01)
    batch = make_batch(gen)
    loss_fn = sft_loss if kind == "sft" else dpo_loss
    ref = None
    if kind == "dpo":
        with torch.no_grad():
            _, ref = seq_logps(cfg, P, *batch)

    def step():
        """One step; returns the loss, the forward + backward seconds and the optimiser's seconds."""
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, P, batch, ref)
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        return loss.item(), t1 - t0, time.perf_counter() - t1

    step()  # warm-up: allocator, thread pool
    times, fwd_bwd, optim = [], [], []
    start, cpu0 = time.perf_counter(), time.process_time()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        loss, fb, op = step()
        times.append(fb + op)
        fwd_bwd.append(fb)
        optim.append(op)
    # CPU seconds per step: on a busy shared machine the wall time includes waiting for a core.
    cpu = (time.process_time() - cpu0) / len(times)
    # The median step resists the other work of a shared machine better than the mean.
    median = sorted(times)[len(times) // 2]
    median_fb = sorted(fwd_bwd)[len(times) // 2]
    tokens = BATCH * CONTEXT
    return {"framework": "pytorch", "torch": torch.__version__, "threads": threads, "config": name,
            "d_model": d, "layers": layers, "heads": heads, "batch_rows": BATCH, "context": CONTEXT,
            "vocab": VOCAB, "kind": kind, "steps": len(times), "ms_per_step_median": 1e3 * median,
            "ms_per_step_min": 1e3 * min(times), "cpu_s_per_step": cpu, "tokens_per_cpu_s": tokens / cpu,
            "tokens_per_s": tokens / median,
            # Without the optimiser: what the Go model benchmarks time (SFTStep/DPOStep, AdamW apart).
            "ms_fwd_bwd_median": 1e3 * median_fb, "tokens_per_s_fwd_bwd": tokens / median_fb,
            "ms_adamw_median": 1e3 * sorted(optim)[len(optim) // 2],
            "gflops": step_flops(cfg, tokens) / median / 1e9, "last_loss": loss,
            "loadavg_1m": os.getloadavg()[0]}


def main(args):
    torch.set_num_threads(args.threads)
    peak = sgemm_gflops()
    print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "threads": args.threads,
                      "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"], "sgemm_n": 1024,
                      "sgemm_gflops": peak, "loadavg_1m": os.getloadavg()[0]}), flush=True)
    for c in args.configs:
        for k in args.kinds:
            r = bench(c, k, args.seconds, args.threads)
            r["share_of_sgemm_peak"] = r["gflops"] / peak
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main(ARGS)
