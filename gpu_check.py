"""
Prove the GPU paths on a CUDA machine in a few minutes: `make gpu-check` (python gpu_check.py);
measure the speed goals with `make gpu-speed` (python gpu_check.py --speed=True).

Each check runs the project's own scripts as a user would, in subprocesses, on tiny Shakespeare:

  train      compiled bf16 training of config/train_shakespeare_char.py; the loss falls
  resume     the same run stopped by SIGTERM half way and continued with --init_from=auto, against
             the run that was never stopped
  gpu->cpu   the GPU checkpoint continued for a few iterations on the CPU, and sampled there
  torchrun   every visible GPU (nccl) against one process doing the same global batch
  fsdp       the same over every GPU with FSDP2 and activation checkpointing, against DDP
  kv cache   sampling with and without the KV cache gives identical tokens
  bench      bench.py on GPT-2 124M at batch 12 x 1024, compiled bf16: ms/iter, tokens/s, MFU
  memory     the dry run's memory estimate for that 124M run beside its measured peak
  plan       the GPT-2 XL dry run

With --speed=True it runs, instead, bench.py's measurements behind the speed goals: the training
step of GPT-2 124M at batch 12 and 24 (plain, with the fused loss, with CUDA graphs) beside
nanoGPT's compiled step and the matmul floor (goal: 1.3x), and sampling the baby GPT and 124M with
the compiled KV cache against no cache and nanoGPT's generate (goal: 5x, identical tokens).

It prints a PASS/FAIL table and writes it, with every command and the tail of its output, to
OUT_DIR/gpu_check.md. Nothing is downloaded: data/shakespeare_char/input.txt (and, for bench, GPT-2's
BPE ranks in TIKTOKEN_CACHE_DIR) must be there, or reachable online. `--smoke=True --device=cpu`
rehearses every check on tiny models on a CPU (the test suite does), so the script is known to work
before a GPU is paid for.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

from configurator import UserError, configure, run_main

DEFAULTS = dict(
    out_dir="out-gpu-check",  # emptied first; holds every run of the check and gpu_check.md
    device="cuda",  # 'cpu' with smoke=True rehearses the checks without a GPU
    smoke=False,  # tiny models, float32, no compile: a rehearsal of the script itself, in seconds
    only=[],  # names of the checks to run (default: all)
    speed=False,  # instead of the checks, the speed goals: training step and sampling against nanoGPT's
)
ROOT = os.path.dirname(os.path.abspath(__file__))
CHAR = "config/train_shakespeare_char.py"
ITERS, STOP_AT = 200, 100  # the train and resume runs; SIGTERM once STOP_AT is logged
RESUME_TOLERANCE = 0.02  # largest loss difference after a GPU resume that non-determinism explains (see check)
DDP_RTOL = 1e-4  # float32, highest matmul precision: only the order of additions differs
TINY = dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=8, dropout=0.0, threads=1)
STEP_GOAL, SAMPLE_GOAL = 1.3, 5.0  # our training step against nanoGPT's compiled one; KV cache against none


def flags(**keys):
    return [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in keys.items()]


class Checks:
    def __init__(self, cfg):
        self.cfg, self.out = cfg, cfg.out_dir
        self.gpu = cfg.device != "cpu"
        self.log = [f"# gpu_check: device {cfg.device}{' (smoke)' if cfg.smoke else ''}", ""]
        fast = dict(compile=True, dtype="bfloat16") if self.gpu and not cfg.smoke else dict(compile=False)
        self.model = {**(TINY if cfg.smoke else {}), "device": cfg.device, **fast}

    def sh(self, *args, env=None, timeout=600):
        """Run a command of the repo; its command line and output tail go to the log."""
        cmd = [sys.executable, *map(str, args)]
        t0 = time.time()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        tail = (r.stdout + r.stderr).strip().splitlines()[-25:]
        self.log += [f"`{' '.join(cmd[1:])}` (exit {r.returncode}, {time.time() - t0:.0f} s)", "", "```",
                     *tail, "```", ""]
        return r

    def train_args(self, out, **more):
        keys = dict(out_dir=os.path.join(self.out, out), max_iters=ITERS, lr_decay_iters=ITERS, eval_interval=100,
                    eval_iters=20, log_interval=10, **self.model)
        return [CHAR, *flags(**{**keys, **more})]

    # ------------------------------------------------------------------------------------ checks

    def train(self):
        r = self.sh("train.py", *self.train_args("train"))
        if r.returncode:
            return False, f"train.py exited {r.returncode}"
        evals = evals_of(os.path.join(self.out, "train"))
        first, last = evals[0]["val_loss"], evals[-1]["val_loss"]
        return last < 0.8 * first, f"val loss {first:.3f} -> {last:.3f} over {ITERS} iterations"

    def resume(self):
        args = self.train_args("resume", init_from="auto")
        folder = os.path.join(self.out, "resume")
        proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and last_logged(folder) < STOP_AT:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        self.log += [f"`train.py {' '.join(args)}`: SIGTERM after iteration {last_logged(folder)} was logged "
                     f"(exit {proc.returncode})", ""]
        if proc.returncode != 128 + signal.SIGTERM:
            return False, f"the stopped run exited {proc.returncode}, not {128 + signal.SIGTERM}"
        r = self.sh("train.py", *args)
        resumed = re.search(r"at iteration (\d+)", r.stdout)
        if r.returncode or not resumed:
            return False, f"the resumed run exited {r.returncode}" + ("" if resumed else " without resuming")
        at = int(resumed[1])
        ref, got = losses(os.path.join(self.out, "train")), losses(folder)
        if set(ref) != set(got):
            return False, "the resumed run logged other iterations than the uninterrupted one"
        before = max((abs(ref[k] - got[k]) for k in ref if k[0] < at), default=0.0)
        after = max(abs(ref[k] - got[k]) for k in ref if k[0] >= at)
        if before == after == 0:
            return True, f"stopped at iteration {at}; every loss bitwise equal to the uninterrupted run"
        # Both runs compute the same thing, but some CUDA kernels (attention and embedding backward
        # accumulate with atomics) are not deterministic, so two runs drift apart by a little.
        # A resume that lost state (optimizer moments, iteration, batches) jumps by far more.
        return after <= RESUME_TOLERANCE, (
            f"stopped at iteration {at}; largest loss difference from the uninterrupted run {before:.2e} before "
            f"the stop (run-to-run non-determinism alone), {after:.2e} after (tolerance {RESUME_TOLERANCE})")

    def gpu_to_cpu(self):
        src, dst = os.path.join(self.out, "train"), os.path.join(self.out, "cpu")
        if not os.path.exists(os.path.join(src, "ckpt.pt")):
            return False, "no checkpoint from the train check"
        shutil.copytree(src, dst)
        r = self.sh("train.py", *self.train_args("cpu", init_from="resume", max_iters=ITERS + 5, eval_iters=2,
                                                 device="cpu", dtype="float32", compile=False))
        if r.returncode or f"at iteration {ITERS}" not in r.stdout:
            return False, f"resuming on the CPU exited {r.returncode}"
        loss = evals_of(dst)[-1]["val_loss"]
        s = self.sh("sample.py", f"--out_dir={src}", "--device=cpu", "--num_samples=1", "--max_new_tokens=100")
        text = s.stdout.split("---------------")[0].strip()
        ok = s.returncode == 0 and len(text) > 50
        return ok, f"continued to iteration {ITERS + 5} on the CPU (val loss {loss:.3f}); sampled " \
                   f"{len(text)} characters on the CPU" + ("" if ok else f" (sample.py exited {s.returncode})")

    def torchrun(self):
        n = gpu_count() if self.gpu else 2
        same = dict(max_iters=20, lr_decay_iters=20, eval_interval=10, eval_iters=5, log_interval=1,
                    gradient_accumulation_steps=2 * n, dtype="float32", matmul_precision="highest", compile=False)
        one = self.sh("train.py", *self.train_args("one", **same))
        many = self.sh("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "train.py",
                       *self.train_args("ddp", **same))
        if one.returncode or many.returncode:
            return False, f"one process exited {one.returncode}, torchrun exited {many.returncode}"
        a, b = losses(os.path.join(self.out, "one")), losses(os.path.join(self.out, "ddp"))
        if set(a) != set(b):
            return False, "torchrun logged other iterations than one process"
        worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in a)
        backend = "nccl" if self.gpu else "gloo"
        return worst <= DDP_RTOL, f"{n} ranks ({backend}) vs 1 process, {len(a)} losses: largest relative " \
                                  f"difference {worst:.1e} (tolerance {DDP_RTOL:g})"

    def fsdp(self):
        """FSDP over every GPU against DDP over every GPU (the torchrun check's run), same batches."""
        n = gpu_count() if self.gpu else 2
        same = dict(max_iters=20, lr_decay_iters=20, eval_interval=10, eval_iters=5, log_interval=1,
                    gradient_accumulation_steps=2 * n, dtype="float32", matmul_precision="highest", compile=False)
        if not os.path.exists(os.path.join(self.out, "ddp", "metrics.jsonl")):
            return False, "no DDP run from the torchrun check"
        r = self.sh("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "train.py",
                    *self.train_args("fsdp", **same, fsdp=True, activation_checkpointing=True))
        if r.returncode:
            return False, f"torchrun with fsdp=True exited {r.returncode}"
        a, b = losses(os.path.join(self.out, "ddp")), losses(os.path.join(self.out, "fsdp"))
        worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in a)
        return worst <= DDP_RTOL, f"{n} ranks, FSDP with activation checkpointing vs DDP, {len(a)} losses: " \
                                  f"largest relative difference {worst:.1e} (tolerance {DDP_RTOL:g})"

    def memory(self):
        """The plan's estimate of a run's GPU memory beside what the run held at most."""
        if self.cfg.smoke:
            args = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)]
        else:
            prepared = self.prepare("shakespeare")
            if prepared:
                return False, prepared
            args = ["config/gpt2_124m_gelu.py", *flags(dataset="shakespeare", gradient_accumulation_steps=1,
                                                        device=self.cfg.device, compile=False)]
        args += flags(max_iters=5, eval_interval=5, eval_iters=1, log_interval=1, out_dir=os.path.join(self.out, "mem"))
        planned = self.sh("train.py", *args, "--dry_run=True", "--world_size=1")
        estimate = re.search(r"this run \(DDP\): ([\d.]+) GiB per GPU", planned.stdout)
        r = self.sh("train.py", *args, "--wandb_log=False")
        if planned.returncode or r.returncode or not estimate:
            return False, f"the dry run exited {planned.returncode}, the run {r.returncode}"
        with open(os.path.join(self.out, "mem", "summary.json")) as f:
            measured = json.load(f)["max_memory_gib"]
        if measured is None:
            return True, f"planned {estimate[1]} GiB; nothing to measure on a CPU"
        return True, f"planned {estimate[1]} GiB, measured {measured:.2f} GiB (torch.cuda.max_memory_allocated, eager)"

    def kv_cache(self):
        src = os.path.join(self.out, "train")
        if not os.path.exists(os.path.join(src, "ckpt.pt")):
            return False, "no checkpoint from the train check"
        r = self.sh("bench.py", *self.train_args("train", init_from="resume", dtype="float32", compile=False,
                                                 matmul_precision="highest"),
                    "--mode=sample", "--new_tokens=300", "--repeats=1", "--warmup=1")
        found = re.search(r"identical tokens with and without the cache: (.*)", r.stdout)
        speed = re.search(r"cache speedup: ([\d.]+)x", r.stdout)
        if r.returncode or not found:
            return False, f"bench.py --mode=sample exited {r.returncode}"
        return found[1] == "yes", f"identical tokens: {found[1]}; cache speedup {speed[1]}x (eager, float32)"

    def bench(self):
        if self.cfg.smoke:
            args = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False, gradient_accumulation_steps=1)]
        else:
            prepared = self.prepare("shakespeare")
            if prepared:
                return False, prepared
            args = ["config/gpt2_124m_gelu.py", *flags(dataset="shakespeare", batch_size=12,
                                                        gradient_accumulation_steps=1, device=self.cfg.device)]
        r = self.sh("bench.py", *args, "--warmup=10", "--iters=20", "--repeats=3")
        ours = re.search(r"^ours: ([\d.]+) ms .*?([\d,]+) tokens/s, (MFU .*)$", r.stdout, re.M)
        if r.returncode or not ours:
            return False, f"bench.py exited {r.returncode}"
        return True, f"{ours[1]} ms/iter, {ours[2]} tokens/s, {ours[3]}"

    def plan(self):
        r = self.sh("train.py", "config/gpt2_xl_gelu.py", "--dry_run=True", "--world_size=8", "--gpu_memory_gb=40")
        params = re.search(r"parameters: ([\d,]+)", r.stdout)
        ours = re.search(r"this run \(DDP\): ([\d.]+) GiB per GPU", r.stdout)
        cheapest = re.search(r"the cheapest that fits: (.*)", r.stdout)
        if r.returncode or not (params and ours and cheapest):
            return False, f"dry run exited {r.returncode}"
        return True, f"GPT-2 XL, {params[1]} parameters: {ours[1]} GiB per GPU under DDP; on 8 x 40 GB: {cheapest[1]}"

    # ------------------------------------------------------------------------------ speed goals

    def step_speed(self, batch, **more):
        """bench.py's training step of GPT-2 124M (compiled bf16, no accumulation) beside nanoGPT's
        compiled step and the matmul floor, in one interleaved measurement."""
        if self.cfg.smoke:
            args, protocol = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)], (1, 2, 1)
        else:
            prepared = self.prepare("shakespeare")
            if prepared:
                return False, prepared
            args = ["config/gpt2_124m_gelu.py", *flags(dataset="shakespeare", device=self.cfg.device)]
            protocol = (10, 20, 3)
        args += flags(batch_size=batch, gradient_accumulation_steps=1, **more)
        r = self.sh("bench.py", *args, "--reference=True", *flags(warmup=protocol[0], iters=protocol[1],
                                                                   repeats=protocol[2]))
        ours, theirs = (re.search(rf"^{name}: ([\d.]+) ms .*?(MFU [^,\n]*)", r.stdout, re.M)
                        for name in ("ours", "nanoGPT-style"))
        floor = re.search(r"matmul floor: ([\d.]+) ms", r.stdout)
        if r.returncode or not (ours and theirs and floor):
            return False, f"bench.py exited {r.returncode}"
        unavailable = re.search(r"^fused_loss needs .*?;", r.stdout, re.M)  # then ours is the plain step
        if unavailable:
            return False, unavailable[0].rstrip(";")
        speedup = float(theirs[1]) / float(ours[1])
        return self.cfg.smoke or speedup >= STEP_GOAL, (
            f"batch {batch}{''.join(f', {k}={v}' for k, v in more.items())}: ours {ours[1]} ms ({ours[2]}), nanoGPT's "
            f"step {theirs[1]} ms: {speedup:.2f}x (goal {STEP_GOAL}x); matmul floor {floor[1]} ms")

    def sample_speed(self, config):
        """Sampling with the KV cache (its decode step compiled) against no cache and nanoGPT's
        generate, and whether the cache changes any token."""
        if self.cfg.smoke:
            args = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)]
        else:
            prepared = None if config == CHAR else self.prepare("shakespeare")
            if prepared:
                return False, prepared
            args = [config, *flags(device=self.cfg.device, compile=True, dataset="shakespeare_char" if config == CHAR
                                   else "shakespeare")]
        r = self.sh("bench.py", *args, "--mode=sample", "--new_tokens=200", "--repeats=3", "--warmup=1")
        speed = re.search(r"cache speedup: ([\d.]+)x over no cache, ([\d.]+)x over nanoGPT's generate", r.stdout)
        rate = re.search(r"^KV cache: ([\d,.]+) tokens/s", r.stdout, re.M)
        same = re.search(r"identical tokens with and without the cache: (.*)", r.stdout)
        if r.returncode or not (speed and rate and same):
            return False, f"bench.py --mode=sample exited {r.returncode}"
        ok = same[1] == "yes" and (self.cfg.smoke or float(speed[1]) >= SAMPLE_GOAL)
        return ok, (f"{rate[1]} tokens/s with the cache: {speed[1]}x no cache (goal {SAMPLE_GOAL}x), {speed[2]}x "
                    f"nanoGPT's generate; identical tokens: {same[1]}")

    def prepare(self, dataset):
        """None once data/DATASET is prepared, else why it could not be."""
        if os.path.exists(os.path.join(ROOT, "data", dataset, "train.bin")):
            return None
        r = self.sh(f"data/{dataset}/prepare.py")
        return None if r.returncode == 0 else f"cannot prepare data/{dataset}: {r.stderr.strip()[-200:]}"


CHECKS = {"train": Checks.train, "resume": Checks.resume, "gpu->cpu": Checks.gpu_to_cpu,
          "torchrun": Checks.torchrun, "fsdp": Checks.fsdp, "kv cache": Checks.kv_cache, "bench": Checks.bench,
          "memory": Checks.memory, "plan": Checks.plan}


SPEED = {
    "step b12": lambda c: c.step_speed(12),
    "step b12 fused loss": lambda c: c.step_speed(12, fused_loss=True),
    "step b12 CUDA graphs": lambda c: c.step_speed(12, compile_mode="reduce-overhead"),
    "step b24": lambda c: c.step_speed(24),
    "step b24 fused loss": lambda c: c.step_speed(24, fused_loss=True),
    "sample 10.6M": lambda c: c.sample_speed(CHAR),
    "sample 124M": lambda c: c.sample_speed("config/gpt2_124m_gelu.py"),
}


def gpu_count():
    import torch

    return torch.cuda.device_count()


def records(folder):
    path = os.path.join(folder, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line still being written
                break
    return out


def last_logged(folder):
    return max((r["iter"] for r in records(folder)), default=-1)


def evals_of(folder):
    return [r for r in records(folder) if "val_loss" in r]


def losses(folder):
    """(iteration, kind) -> loss, for every logged training and evaluation loss."""
    return {(r["iter"], k): r[k] for r in records(folder) for k in ("loss", "val_loss") if k in r}


def environment(cfg):
    import platform

    import torch

    from plan import cpu_name

    where = torch.cuda.get_device_name(cfg.device) if cfg.device != "cpu" else cpu_name()
    count = f"{torch.cuda.device_count()} x " if cfg.device != "cpu" else ""
    return f"{count}{where}; torch {torch.__version__}; Python {platform.python_version()}"


def validate(cfg):
    checks = SPEED if cfg.speed else CHECKS
    unknown = [name for name in cfg.only if name not in checks]
    if unknown:
        raise UserError(f"only={cfg.only!r} names unknown checks {unknown}; choose from {', '.join(checks)}")
    if cfg.device == "cpu" and not cfg.smoke:
        raise UserError("device='cpu' runs the full-size checks on a CPU, which takes hours; add --smoke=True")


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    validate(cfg)
    checks = Checks(cfg)
    checks.log[0] += f"; {environment(cfg)}"
    problem = checks.prepare("shakespeare_char")
    if problem:
        raise UserError(problem)
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    os.makedirs(cfg.out_dir)
    rows, t_start = [], time.time()
    for name, check in (SPEED if cfg.speed else CHECKS).items():
        if cfg.only and name not in cfg.only:
            continue
        t0 = time.time()
        checks.log += [f"## {name}", ""]
        try:
            ok, what = check(checks)
        except Exception as e:  # a broken check is a failed check; the others still run
            ok, what = False, f"{type(e).__name__}: {e}"
        rows.append((name, "PASS" if ok else "FAIL", f"{time.time() - t0:.0f} s", what))
        print(f"{rows[-1][1]}  {name}: {what}", flush=True)
    table = ["| check | result | time | what was measured |", "|---|---|---|---|"]
    table += [f"| {' | '.join(row)} |" for row in rows]
    passed = sum(row[1] == "PASS" for row in rows)
    summary = f"{passed} of {len(rows)} checks passed in {time.time() - t_start:.0f} s"
    path = os.path.join(cfg.out_dir, "gpu_check.md")
    with open(path, "w") as f:
        f.write("\n".join([checks.log[0], "", summary, "", *table, "", *checks.log[2:]]) + "\n")
    print("\n".join(["", *table, "", f"{summary}; log: {path}"]))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    run_main(main)
