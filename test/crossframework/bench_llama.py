#!/usr/bin/env python3
"""Issue 10's Llama benchmark (`make bench`, part "llama"): the trainer's SFT and DPO steps on a
SmolLM2-135M-shaped model side by side with a PyTorch CPU implementation of the same model and step.

The driver (this script without --worker):
  1. writes one random model as a Hugging Face directory in a temporary folder (hack/benchllama write: the trainer's
     Llama initialisation, F32 safetensors), default SmolLM2-135M's shape: 30 layers, hidden 576, 9 heads over 3
     key/value heads, intermediate 1536, vocabulary 49152, tied head;
  2. sizes the batch: --batch × --context (default 8 × 256), halved while 2.8 × the trainer's memory estimate
     (trainer/hf EstimateMemory; both frameworks resident at once, measured at 1.13 × and 1.29 × it) exceeds the
     machine's MemAvailable;
  3. per kind (sft, dpo) and adapter (full; LoRA rank R with --lora-rank R), starts two worker processes, ours
     (hack/benchllama worker) and PyTorch's (this script with --worker torch), each loading the directory (timed),
     then alternates their steps A B A B (one untimed warm-up step each, then --steps timed each): each pair gives
     a ratio torch step time / our step time, i.e. our tokens/s over PyTorch's, and the median ratio is reported;
  4. reads each worker's peak resident set (VmHWM in /proc/PID/status) after the steps, then times the LM head and
     its log-softmax alone in each worker (forward and backward, as its step computes it: ours on the masked-in
     rows, PyTorch's on every position) for the head's share of the median step time, and stops them.

Both steps are: forward, backward, global-norm clip 1, AdamW (β 0.9/0.999, ε 1e-8, no weight decay), on one random
batch whose first --prompt positions per row are masked out; DPO (sigmoid, β 0.1) uses the first half of the rows as
chosen and the second half as rejected responses, with reference log-probs computed once before the steps.
tokens/s counts every position of every row (B × T) over the median step time. A shared machine's load makes the
figures noisy: the load average and available memory are printed with them.

LoRA (issue 12): PyTorch's side is here (W x + (alpha/r) B A x on every projection, A Kaiming-uniform, B zero, the
base frozen); the trainer's worker answers "not in this build" until it has adapters, and its cells print "-".

Output: JSON lines (one "machine" line, one per kind and adapter), then a table on stderr.

Usage: bench_llama.py --go-worker BIN [--layers 30 --hidden 576 --heads 9 --kv-heads 3 --intermediate 1536
       --vocab 49152] [--batch 8 --context 256 --prompt 32] [--steps 3] [--kinds sft,dpo] [--lora-rank 0]
       [--threads N] [--python PY]
"""

import argparse
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["torch"], help="run as PyTorch's worker (the driver starts it)")
    ap.add_argument("--model", help="worker: model directory")
    ap.add_argument("--go-worker", help="driver: the hack/benchllama binary")
    ap.add_argument("--python", default=sys.executable, help="driver: the interpreter that imports torch")
    for name, default in (("layers", 30), ("hidden", 576), ("heads", 9), ("kv-heads", 3), ("intermediate", 1536),
                          ("vocab", 49152), ("batch", 8), ("context", 256), ("prompt", 32), ("steps", 3),
                          ("lora-rank", 0), ("threads", os.cpu_count() or 1)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--lora-alpha", type=float, default=0, help="LoRA alpha (0: 2 × rank)")
    ap.add_argument("--kinds", default="sft,dpo")
    ap.add_argument("--kind", default="sft", help="worker: sft or dpo")
    ap.add_argument("--keep-model", help="driver: write the model here and keep it (default: a temporary folder)")
    a = ap.parse_args()
    a.kinds = a.kinds.split(",")
    for k in a.kinds + [a.kind]:
        if k not in ("sft", "dpo"):
            ap.error(f"--kinds: {k!r} is not sft or dpo")
    if not a.worker and not a.go_worker:
        ap.error("--go-worker is required")
    for name in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab", "batch", "context", "steps", "threads"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: {getattr(a, name)} is not >= 1")
    if not 0 <= a.prompt < a.context:
        ap.error(f"--prompt {a.prompt} must be in [0, --context {a.context})")
    if a.lora_rank < 0:
        ap.error(f"--lora-rank: {a.lora_rank} is negative")
    if a.lora_alpha == 0:
        a.lora_alpha = 2.0 * a.lora_rank
    return a


# ---------------------------------------------------------------- PyTorch worker

def read_f32(model_dir, torch):
    """The F32 tensors of model.safetensors, each read straight into its own torch tensor (no second copy)."""
    path = os.path.join(model_dir, "model.safetensors")
    out = {}
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen).decode("utf-8"))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] != "F32":
                raise ValueError(f"{path}: tensor {name} is {info['dtype']}; the benchmark writes F32")
            t = torch.empty(info["shape"], dtype=torch.float32)
            begin, end = info["data_offsets"]
            f.seek(8 + hlen + begin)
            buf = t.numpy().reshape(-1).view("uint8")
            if f.readinto(buf) != end - begin or end - begin != buf.nbytes:
                raise ValueError(f"{path}: tensor {name}: short read")
            out[name] = t
    return out


PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def torch_worker(a):
    threads = a.threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import llama_ref

    torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = llama_ref.Config(os.path.join(a.model, "config.json"))
    P = read_f32(a.model, torch)
    if cfg.tied:
        P.pop("lm_head.weight", None)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0

    lora = {}
    scale = a.lora_alpha / a.lora_rank if a.lora_rank else 0.0
    if a.lora_rank:
        gen = torch.Generator().manual_seed(2)
        for name in list(P):
            if any(name.endswith(p + ".weight") for p in PROJECTIONS):
                out_f, in_f = P[name].shape
                A = torch.empty(a.lora_rank, in_f)
                bound = 1 / math.sqrt(in_f)  # kaiming_uniform_(a=sqrt(5)), as torch.nn.Linear and PEFT's lora_A
                A.uniform_(-bound, bound, generator=gen)
                lora[name[:-len(".weight")]] = (A.requires_grad_(True), torch.zeros(out_f, a.lora_rank, requires_grad=True))
        trainable = [t for ab in lora.values() for t in ab]
    else:
        for t in P.values():
            t.requires_grad_(True)
        trainable = list(P.values())

    def linear(x, name, bias):
        y = x @ P[name + ".weight"].t()
        if bias:
            y = y + P[name + ".bias"]
        if name in lora:
            A, B = lora[name]
            y = y + scale * ((x @ A.t()) @ B.t())
        return y

    opt = torch.optim.AdamW(trainable, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    B, T = a.batch, a.context
    inputs = torch.randint(0, cfg.vocab, (B, T), generator=gen)
    targets = torch.randint(0, cfg.vocab, (B, T), generator=gen)
    mask = torch.zeros(B, T)
    mask[:, a.prompt:] = 1

    def seq_logps():
        logits = llama_ref.forward(cfg, P, inputs, linear=linear)
        tok = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
        return tok

    ref = None
    if a.kind == "dpo":
        with torch.no_grad():
            ref = seq_logps().sum(-1)

    def loss_fn():
        tok = seq_logps()
        if a.kind == "sft":
            return -tok.sum() / mask.sum()
        s, half = tok.sum(-1), B // 2
        h = (s[:half] - s[half:]) - (ref[:half] - ref[half:])
        return -F.logsigmoid(0.1 * h).mean()

    def reply(obj):
        print(json.dumps(obj), flush=True)

    n_params = sum(t.numel() for t in P.values())
    reply({"ready": True, "framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"], "parameters": n_params,
           "trainable": sum(t.numel() for t in trainable), "load_s": load_s, "load_cpu_s": load_cpu})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "step":
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            reply({"step_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "loss": loss.item()})
        elif cmd == "head":
            # The head and its log-softmax as the step runs them: every position of every row, then the gather.
            W = P["model.embed_tokens.weight" if cfg.tied else "lm_head.weight"].detach().clone().requires_grad_(True)
            x = torch.randn(B * T, cfg.d, generator=gen, requires_grad=True)
            tg, m = targets.reshape(-1, 1), mask.reshape(-1)
            times = []
            for i in range(4):
                t0 = time.perf_counter()
                lp = torch.log_softmax(x @ W.t(), -1).gather(-1, tg).squeeze(-1)
                (-(lp * m).sum() / m.sum()).backward()
                x.grad, W.grad = None, None
                if i:
                    times.append(time.perf_counter() - t0)
            reply({"head_s": statistics.median(times)})
        elif cmd == "quit":
            return
        else:
            raise SystemExit(f"bench_llama.py worker: unknown command {cmd!r}")


# ---------------------------------------------------------------- driver

def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def vm_hwm(pid):
    """Peak resident set of a live process, bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Worker:
    def __init__(self, name, argv, env):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"{self.name} worker exited with status {code} (its errors are above)")
        return json.loads(line)

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        """Stops the worker; returns its ru_maxrss in bytes (the peak over its whole life, head timing included),
        0 when it had already exited and been reaped."""
        if self.proc.returncode is not None:
            return 0
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            _, status, ru = os.wait4(self.proc.pid, 0)
        except ChildProcessError:
            return 0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return ru.ru_maxrss * 1024


def log(msg):
    print(f"bench_llama: {msg}", file=sys.stderr, flush=True)


def run_pair(a, model_dir, kind, rank, batch):
    common = ["--kind", kind, "--batch", str(batch), "--context", str(a.context), "--prompt", str(a.prompt)]
    if rank:
        common += ["--lora-rank", str(rank)]
    env = dict(os.environ, GOMAXPROCS=str(a.threads))
    ours = Worker("trainer", [a.go_worker, "worker", model_dir] + common, env)
    torch_argv = [a.python, os.path.abspath(__file__), "--worker", "torch", "--model", model_dir,
                  "--threads", str(a.threads), "--lora-alpha", str(a.lora_alpha)] + common
    theirs = Worker("pytorch", torch_argv, env)
    workers = [w for w in (ours, theirs) if w.info.get("ready")]
    for w in (ours, theirs):
        if not w.info.get("ready"):
            log(f"{kind} {'LoRA r%d' % rank if rank else 'full'}: {w.name}: {w.info.get('error')}")
    times = {w.name: [] for w in workers}
    cpu = {w.name: [] for w in workers}
    losses = {w.name: [] for w in workers}
    for i in range(a.steps + 1):  # step 0 warms up (graph building, allocator, thread pools)
        for w in workers:
            r = w.ask("step")
            if i:
                times[w.name].append(r["step_s"])
                cpu[w.name].append(r["cpu_s"])
            losses[w.name].append(r["loss"])
        log(f"{kind} r{rank} step {i}: " + ", ".join(f"{w.name} {times[w.name][-1] if i else 0:.2f} s" for w in workers))
    peak = {w.name: vm_hwm(w.proc.pid) for w in workers}
    head = {w.name: w.ask("head")["head_s"] for w in workers}
    maxrss = {w.name: w.close() for w in workers}
    for w in (ours, theirs):
        if w not in workers:
            w.close()
    tokens = batch * a.context
    out = {"kind": kind, "adapter": f"lora-r{rank}" if rank else "full", "batch_rows": batch, "context": a.context,
           "tokens_per_step": tokens, "loadavg_1m": os.getloadavg()[0]}
    for w in workers:
        med = statistics.median(times[w.name])
        out[w.name] = {"tokens_per_s": tokens / med, "step_s_median": med, "step_s": times[w.name],
                       "cpu_s_median": statistics.median(cpu[w.name]), "peak_rss_bytes": peak[w.name],
                       "maxrss_with_head_bytes": maxrss[w.name], "load_s": w.info["load_s"],
                       "head_s": head[w.name], "head_share": head[w.name] / med, "losses": losses[w.name],
                       **{k: w.info[k] for k in ("estimate_bytes", "blas", "torch", "threads", "gomaxprocs",
                                                  "parameters", "trainable") if k in w.info}}
    if len(workers) == 2:
        ratios = [t / o for o, t in zip(times["trainer"], times["pytorch"])]
        out["ratio_tokens_per_s"] = statistics.median(ratios)
        out["ratios"] = ratios
        # CPU seconds per step are steadier than wall time on a shared machine (no waiting for a core).
        out["ratio_tokens_per_cpu_s"] = statistics.median(t / o for o, t in zip(cpu["trainer"], cpu["pytorch"]))
        out["ratio_peak_rss"] = peak["trainer"] / peak["pytorch"]
    return out


def gib(b):
    return f"{b / 2**30:.2f}" if b else "-"


def table(a, rows):
    log("")
    print(f"Llama benchmark: {a.layers} layers, hidden {a.hidden}, {a.heads} heads / {a.kv_heads} KV, intermediate "
          f"{a.intermediate}, vocab {a.vocab}, tied; {a.threads} threads each; medians of {a.steps} interleaved steps",
          file=sys.stderr)
    print("ratio: median over step pairs of PyTorch step time / ours (ours tokens/s over PyTorch's); cpu: the same "
          "with CPU seconds (steadier on a busy machine); RSS: peak resident set (VmHWM) after the steps, est.: the "
          "trainer's memory estimate (trainer/hf); head: LM head + log-softmax, fwd+bwd, timed after the steps, as a share of "
          "the median step (above 100% only when the machine's load rose in between)",
          file=sys.stderr)
    hdr = (f"{'kind':5} {'adapter':8} {'rows':>4} | {'tok/s ours':>10} {'torch':>7} {'ratio':>6} {'cpu':>5} | {'RSS GiB ours':>12} "
           f"{'torch':>6} {'ratio':>6} {'est.':>6} | {'load s ours':>11} {'torch':>6} | {'head ours':>9} {'torch':>6}")
    print(hdr, file=sys.stderr)
    for r in rows:
        o, t = r.get("trainer", {}), r.get("pytorch", {})

        def f(d, k, fmt):
            return fmt.format(d[k]) if k in d else "-"
        print(f"{r['kind']:5} {r['adapter']:8} {r['batch_rows']:>4} | {f(o, 'tokens_per_s', '{:.0f}'):>10} "
              f"{f(t, 'tokens_per_s', '{:.0f}'):>7} {f(r, 'ratio_tokens_per_s', '{:.2f}'):>6} "
              f"{f(r, 'ratio_tokens_per_cpu_s', '{:.2f}'):>5} | "
              f"{gib(o.get('peak_rss_bytes')):>12} {gib(t.get('peak_rss_bytes')):>6} {f(r, 'ratio_peak_rss', '{:.2f}'):>6} "
              f"{gib(o.get('estimate_bytes')):>6} | {f(o, 'load_s', '{:.2f}'):>11} {f(t, 'load_s', '{:.2f}'):>6} | "
              f"{f(o, 'head_share', '{:.0%}'):>9} {f(t, 'head_share', '{:.0%}'):>6}", file=sys.stderr)
    # Issue 12's goal, per framework: LoRA's peak memory at most half of full fine-tuning's, and LoRA faster.
    for kind in dict.fromkeys(r["kind"] for r in rows):
        full = next((r for r in rows if r["kind"] == kind and r["adapter"] == "full"), None)
        for lora in (r for r in rows if r["kind"] == kind and r["adapter"] != "full"):
            if not full:
                continue
            cells = []
            for name, label in (("trainer", "ours"), ("pytorch", "torch")):
                fo, lo = full.get(name, {}), lora.get(name, {})
                if fo.get("peak_rss_bytes") and lo.get("peak_rss_bytes") and fo.get("tokens_per_s") and lo.get("tokens_per_s"):
                    cells.append(f"{label} RSS {lo['peak_rss_bytes'] / fo['peak_rss_bytes']:.2f}x, "
                                 f"tokens/s {lo['tokens_per_s'] / fo['tokens_per_s']:.2f}x")
            if cells:
                print(f"{kind} {lora['adapter']} vs full (goal: RSS <= 0.5x, tokens/s > 1x): " + "; ".join(cells),
                      file=sys.stderr)


# Both workers are resident at once. Measured at SmolLM2-135M's shape, SFT batch 8 × 256 (2026-11-30, each alone):
# the trainer's peak RSS was 1.13 × its memory estimate (9.0 GB for 7.94) and PyTorch's 1.29 × (10.3 GB), 2.42 × for
# the pair; 2.8 leaves room for the rest of the machine.
FIT = 2.8


def driver(a):
    print(json.dumps({"machine": True, "cores": os.cpu_count(), "threads": a.threads, "loadavg": os.getloadavg(),
                      "mem_available_bytes": meminfo("MemAvailable"), "mem_total_bytes": meminfo("MemTotal")}),
          flush=True)
    tmp = None
    model_dir = a.keep_model
    if not model_dir:
        tmp = tempfile.mkdtemp(prefix="bench-llama-")
        model_dir = os.path.join(tmp, "model")
    try:
        t0 = time.perf_counter()
        subprocess.run([a.go_worker, "write", model_dir, "--layers", str(a.layers), "--hidden", str(a.hidden),
                        "--heads", str(a.heads), "--kv-heads", str(a.kv_heads), "--intermediate", str(a.intermediate),
                        "--vocab", str(a.vocab)], check=True)
        log(f"model written to {model_dir} in {time.perf_counter() - t0:.1f} s")
        rows = []
        for rank in [0] + ([a.lora_rank] if a.lora_rank else []):
            for kind in a.kinds:
                batch = a.batch
                while True:
                    est = json.loads(subprocess.run(
                        [a.go_worker, "estimate", model_dir, "--kind", kind, "--batch", str(batch),
                         "--context", str(a.context), "--prompt", str(a.prompt)],
                        check=True, capture_output=True, text=True).stdout)["estimate_bytes"]
                    avail = meminfo("MemAvailable")
                    if FIT * est <= avail or batch <= 2:
                        break
                    log(f"{kind}: batch {batch}: {FIT} × the trainer's estimate ({gib(FIT * est)} GiB) exceeds "
                        f"MemAvailable ({gib(avail)} GiB); halving the batch")
                    batch //= 2
                r = run_pair(a, model_dir, kind, rank, batch)
                print(json.dumps(r), flush=True)
                rows.append(r)
        table(a, rows)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.worker == "torch":
        torch_worker(ARGS)
    else:
        driver(ARGS)
