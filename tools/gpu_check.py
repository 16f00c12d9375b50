"""
Prove the GPU paths on a CUDA machine in a few minutes: `make gpu-check` (python -m tools.gpu_check);
measure the speed goals with `make gpu-speed` (python -m tools.gpu_check --speed=True).

Each check runs the project's own scripts as a user would, in subprocesses, on tiny Shakespeare:

  train      compiled bf16 training of config/train_shakespeare_char.py; the loss falls
  resume     the same run stopped by SIGTERM half way and continued with --init_from=auto, against
             the run that was never stopped
  gpu->cpu   the GPU checkpoint continued for a few iterations on the CPU, and sampled there
  torchrun   every visible GPU (nccl) against one process doing the same global batch
  fsdp       the same over every GPU with FSDP2 and activation checkpointing, against DDP
  kv cache   sampling with and without the KV cache gives identical tokens
  float16    the train run in float16 (GradScaler) beside float32: the gradient norms logged over the
             first iterations agree (they are the unscaled ones that clipping saw), the losses end alike
  bench      bench.py on GPT-2 124M at batch 12 x 1024, compiled bf16: ms/iter, tokens/s, MFU
  memory     the dry run's memory estimate for that 124M run beside its measured peak, eager and
             compiled: FAIL when the peak is above the plan, or the plan over 1.15x the peak
  plan       the GPT-2 XL dry run

With --paths=True (`make gpu-paths`, under 10 minutes on one GPU by our estimate) it runs, instead,
the code paths only a GPU takes: training and evaluation under CUDA graphs and their refusal with
gradient accumulation, bench.py's step in that mode, DDP and FSDP on one rank compiled in bf16 (FSDP
compiling block by block), the compiled KV cache (in place, positions on the device) giving the
tokens of no cache (and faster than it), and the fused loss a GPU run takes, compiled.

With --speed=True it runs, instead, bench.py's measurements behind the speed goals: the training
step of GPT-2 124M at batch 12 with each speed lever alone and all together beside nanoGPT's
compiled step (goal: 1.15x), 124M at the largest micro-batch that fits against nanoGPT's 12 for the
same tokens (goal: 1.3x), and sampling the baby GPT and 124M with the compiled KV cache against no
cache and nanoGPT's generate (goals: 5x and 4x, identical tokens).

With --pilot=True, the µP pilot: GPT-2 124M from config/gpt2_124m_gelu_mup.py at half, once and twice its
rate η beside config/gpt2_124m_gelu.py, 2,000 iterations of 12 x 1024 tokens of data/prose_literature_gpt2
(carried), scored on the whole val split at 200, 1,000 and 2,000; it passes when µP at η ends within 0.02
of the standard config and of the best of the three, its loss never rising by over 0.5 in one step.

With --all=True (`make gpu-all`), one GPU call: the GPU extras of requirements-gpu.txt installed from
the wheels in --wheels when missing, the checks (two processes), the paths and the µP pilot side by side, then the
speed rows alone on the GPU; OUT_DIR/gpu_all.md and OUT_DIR/gpu_all.tar.gz hold everything.

It prints a table of PASS, FAIL and SKIP (a check that cannot test what it names here, such as
averaging across ranks on one GPU, says so and runs what it can) and writes it, with every command
and the tail of its output, to OUT_DIR/gpu_check.md. The scripts it runs report to it as data: run
records (rundir.py), and the JSON that bench.py and sample.py write with --json; never their printed
text. It runs with the torch already installed (`make gpu-check` installs nothing), and needs
data/shakespeare_char/input.txt (and, for the 124M rows, GPT-2's BPE ranks in TIKTOKEN_CACHE_DIR),
or a connection to fetch them: the first line of its output says what is missing.
`--smoke=True --device=cpu` rehearses every check on tiny models on a CPU (the test suite does), so
the script is known to work before a GPU is paid for.
"""

import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

from configurator import configure
from training import files, rundir, settings
from training.errors import UserError, run_main

DEFAULTS = dict(
    out_dir="out-gpu-check",  # emptied first; holds every run of the check and gpu_check.md
    device="cuda",  # 'cpu' with smoke=True rehearses the checks without a GPU
    smoke=False,  # tiny models, float32, no compile: a rehearsal of the script itself, in seconds
    only=[],  # names of the checks to run (default: all)
    speed=False,  # instead of the checks, the speed goals: training step and sampling against nanoGPT's
    paths=False,  # instead of the checks, the GPU-only code paths: CUDA graphs, one-rank DDP/FSDP compiled, ...
    all=False,  # one GPU call: checks and paths side by side, then the speed rows alone; 2 files out (make gpu-all)
    pilot=False,  # instead of the checks, the µP pilot: GPT-2 124M under µP at η/2, η, 2η against the standard config
    wheels="gpu-wheels",  # with all=True: GPU extras not installed are installed from the wheels in this folder
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
CHAR = "config/train_shakespeare_char.py"
ITERS, STOP_AT = 200, 100  # the train and resume runs; SIGTERM once STOP_AT is logged
RESUME_TOLERANCE = 0.02  # largest loss difference after a GPU resume that non-determinism explains (see check)
DDP_RTOL = 1e-4  # float32, highest matmul precision: only the order of additions differs
TINY = dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=8, dropout=0.0, threads=1)
STEP_GOAL = 1.15  # our training step at batch 12 against nanoGPT's compiled one
RUN_GOAL = 1.3  # our 124M config as users run it (the largest micro-batch that fits) against nanoGPT's batch 12
MEMORY_SLACK = 1.15  # the most the memory plan may exceed the measured peak
FP16_EARLY = 5  # logged iterations whose gradient norms float16 and float32 must share (before rounding compounds)
FP16_NORM_RTOL = 0.05  # float16's rounding of activations moves a norm by far less; loss scaling by 65536x
FP16_LOSS_TOL = 0.05  # float16 against float32 after the train run's iterations
PILOT_DATA = "prose_literature_gpt2"  # carried to the GPU (27 MB): 2,000 iterations are 1.9 passes over it
PILOT_ITERS, PILOT_SCORES = 2000, [200, 1000]  # and the end
PILOT_SLACK, PILOT_RISE = 0.02, 0.5
SAMPLE_GOALS = {CHAR: 5.0, "config/gpt2_124m_gelu.py": 4.0}  # tokens/s with the KV cache against none


def flags(**keys):
    return [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in keys.items()]


class Checks:
    """Each check returns (True: PASS, False: FAIL or None: SKIP, what was measured)."""

    def __init__(self, cfg):
        self.cfg, self.out = cfg, cfg.out_dir
        self.gpu = cfg.device != "cpu"
        self.log = [f"# gpu_check: device {cfg.device}{' (smoke)' if cfg.smoke else ''}", ""]
        self.fast = dict(compile=True, dtype="bfloat16") if self.gpu and not cfg.smoke else dict(compile=False)
        self.model = {**(TINY if cfg.smoke else {}), "device": cfg.device, **self.fast}

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

    def json_of(self, script, name, *args):
        """Run bench.py or sample.py with --json=OUT/NAME.json; (exit status, what it wrote or None)."""
        path = os.path.join(self.out, f"{name}.json")
        r = self.sh(script, *args, f"--json={path!r}")
        if r.returncode or not os.path.exists(path):
            return r.returncode, None
        with open(path) as f:
            return 0, json.load(f)

    def train_args(self, out, **more):
        keys = dict(out_dir=os.path.join(self.out, out), max_iters=ITERS, lr_decay_iters=ITERS, eval_interval=100,
                    eval_iters=20, log_interval=10, **self.model)
        return [CHAR, *flags(**{**keys, **more})]

    def ranks(self):
        return gpu_count() if self.gpu else 2

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
        resumed = resumed_at(folder)
        if r.returncode or not resumed:
            return False, f"the resumed run exited {r.returncode}" + ("" if resumed else " without resuming")
        at = resumed[-1]
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

    def float16(self):
        runs = {}
        for dtype in ("float16", "float32"):
            r = self.sh("train.py", *self.train_args(dtype, dtype=dtype, compile=False, log_interval=1))
            if r.returncode:
                return False, f"the {dtype} run exited {r.returncode}"
            runs[dtype] = rundir.read_metrics(os.path.join(self.out, dtype))[0]
        norms = [(m["grad_norm"], n["grad_norm"]) for m, n in zip(*runs.values()) if "grad_norm" in m][:FP16_EARLY]
        early = list(itertools.takewhile(lambda p: math.isfinite(p[0]), norms))
        if len(early) < 3:
            return False, f"float16 had a non-finite gradient norm at logged iteration {len(early)}"
        worst = max(abs(a / b - 1) for a, b in early)
        ends = [rundir.evaluations(rs)[-1]["val_loss"] for rs in runs.values()]
        return worst <= FP16_NORM_RTOL and abs(ends[0] - ends[1]) <= FP16_LOSS_TOL, (
            f"gradient norms of iterations 0-{len(early) - 1}: float16/float32 - 1 at most {worst:.1e} "
            f"(tolerance {FP16_NORM_RTOL}; a scaled norm would be ~{2 ** 16}x); val loss {ends[0]:.4f} against "
            f"{ends[1]:.4f} (tolerance {FP16_LOSS_TOL})")

    def mup_pilot(self):
        """GPT-2 124M under µP at half, once and twice its config's rate η, beside the standard config at
        its own rate, on the same data, batch (12 x 1024) and schedule shape for PILOT_ITERS iterations,
        each scored on the whole validation split at PILOT_SCORES: µP at η within PILOT_SLACK of the
        standard config at the end, η within PILOT_SLACK of the best of the three, and µP at η's loss
        never rising by more than PILOT_RISE from one iteration to the next."""
        iters, scores = (20, [4, 10]) if self.cfg.smoke else (PILOT_ITERS, PILOT_SCORES)
        if self.cfg.smoke:
            sp = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)]
            mup = [*sp, *flags(mup_base_width=32, mup_base_head_dim=32)]
        else:
            if not os.path.exists(os.path.join(ROOT, "data", PILOT_DATA, "train.bin")):
                return False, (f"data/{PILOT_DATA} is missing: make it with python data/prose/prepare.py "
                               "--parts=literature --tokenizers=gpt2 where the packages download, and carry it")
            sp = ["config/gpt2_124m_gelu.py", *flags(dataset=PILOT_DATA, device=self.cfg.device)]
            mup = ["config/gpt2_124m_gelu_mup.py", *sp[1:]]
        eta = configure(settings.DEFAULTS, [os.path.join(ROOT, mup[0]), *mup[1:]])["learning_rate"]
        common = flags(gradient_accumulation_steps=1, max_iters=iters, lr_decay_iters=iters, warmup_iters=iters // 20,
                       eval_interval=scores[0] // 2 if self.cfg.smoke else scores[0], eval_iters=20, log_interval=1,
                       score_iters=scores, wandb_log=False)
        runs = {"standard": (sp, None), "µP η/2": (mup, eta / 2), "µP η": (mup, eta), "µP 2η": (mup, 2 * eta)}
        got = {}
        for name, (args, lr) in runs.items():
            out = os.path.join(self.out, "pilot-" + name.replace(" ", "").replace("/", "_").replace("µ", "mu"))
            more = [] if lr is None else flags(learning_rate=lr)
            r = self.sh("train.py", *args, *common, *more, *flags(out_dir=out), timeout=1800)
            if r.returncode:
                return False, f"the {name} run exited {r.returncode}"
            records = rundir.read_metrics(out)[0]
            losses = [m["loss"] for m in records if "loss" in m]
            got[name] = (rundir.summary(out)["full_val_loss_at"], max(b - a for a, b in zip(losses, losses[1:])))
        end = str(iters)
        final = {name: at[end] for name, (at, _) in got.items()}
        rise = got["µP η"][1]
        ok = (final["µP η"] <= final["standard"] + PILOT_SLACK and rise <= PILOT_RISE
              and final["µP η"] <= min(v for k, v in final.items() if k != "standard") + PILOT_SLACK)
        what = (f"η = {eta:g}; whole-split val loss at {', '.join(got['standard'][0])}: "
                + "; ".join(f"{name} {', '.join(f'{v:.3f}' for v in at.values())}" for name, (at, _) in got.items())
                + f"; µP η's largest rise of the loss from one iteration to the next {rise:.2f}")
        return (None if self.cfg.smoke else ok), what + (" (tiny models: no verdict)" if self.cfg.smoke else "")

    def gpu_to_cpu(self):
        src, dst = os.path.join(self.out, "train"), os.path.join(self.out, "cpu")
        if not os.path.exists(rundir.path(src, rundir.CKPT)):
            return False, "no checkpoint from the train check"
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(rundir.LOCK))
        r = self.sh("train.py", *self.train_args("cpu", init_from="resume", max_iters=ITERS + 5, eval_iters=2,
                                                 device="cpu", dtype="float32", compile=False))
        if r.returncode or resumed_at(dst)[-1:] != [ITERS]:
            return False, f"resuming on the CPU exited {r.returncode}"
        loss = evals_of(dst)[-1]["val_loss"]
        code, sampled = self.json_of("sample.py", "sample_cpu", f"--out_dir={src}", "--device=cpu", "--num_samples=1",
                                     "--max_new_tokens=100")
        text = sampled["samples"][0] if sampled else ""
        ok = code == 0 and len(text) > 50
        return ok, f"continued to iteration {ITERS + 5} on the CPU (val loss {loss:.3f}); sampled " \
                   f"{len(text)} characters on the CPU" + ("" if ok else f" (sample.py exited {code})")

    def distributed(self, name, against, **more):
        """train.py under torchrun over every GPU (2 gloo ranks in a CPU rehearsal) against the run
        `against`, in float32 with exact matmuls, so that only the order of additions differs. With
        one GPU there is nothing to average or shard across: the rank runs compiled and in bf16, as
        a real run would, and the row says SKIP."""
        n = self.ranks()
        same = dict(max_iters=20, lr_decay_iters=20, eval_interval=10, eval_iters=5, log_interval=1,
                    gradient_accumulation_steps=2 * n)
        exact = dict(dtype="float32", matmul_precision="highest", compile=False)
        torchrun = ("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "train.py")
        if n < 2:
            r = self.sh(*torchrun, *self.train_args(name, **same, **more))
            evals = evals_of(os.path.join(self.out, name))
            if r.returncode or not evals:
                return False, f"torchrun over 1 GPU exited {r.returncode}"
            how = ", ".join(f"{k}={v}" for k, v in {**more, **self.fast}.items())
            return None, (f"one GPU: nothing to average or shard across; 1 rank ran ({how}): exit 0, val loss "
                          f"{evals[0]['val_loss']:.3f} -> {evals[-1]['val_loss']:.3f}; needs 2+ GPUs to compare")
        if against == "one":
            one = self.sh("train.py", *self.train_args("one", **same, **exact))
            if one.returncode:
                return False, f"one process exited {one.returncode}"
        elif not os.path.exists(rundir.path(os.path.join(self.out, against), rundir.METRICS)):
            return False, f"no {against} run from the torchrun check"
        r = self.sh(*torchrun, *self.train_args(name, **same, **exact, **more))
        if r.returncode:
            return False, f"torchrun exited {r.returncode}"
        a, b = losses(os.path.join(self.out, against)), losses(os.path.join(self.out, name))
        if set(a) != set(b):
            return False, f"torchrun logged other iterations than {against}"
        worst = max(abs(a[k] - b[k]) / abs(a[k]) for k in a)
        backend = "nccl" if self.gpu else "gloo"
        extra = "".join(f", {k}={v}" for k, v in more.items())
        return worst <= DDP_RTOL, (f"{n} ranks ({backend}{extra}) vs {'1 process' if against == 'one' else against}, "
                                   f"{len(a)} losses: largest relative difference {worst:.1e} (tolerance {DDP_RTOL:g})")

    def torchrun(self):
        return self.distributed("ddp", "one")

    def fsdp(self):
        """FSDP with activation checkpointing against DDP (the torchrun check's run), same batches."""
        return self.distributed("fsdp", "ddp", fsdp=True, activation_checkpointing=True)

    def model_124m(self):
        """train.py flags of GPT-2 124M on tiny Shakespeare in BPE (or the tiny model of a rehearsal)."""
        if self.cfg.smoke:
            return [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)]
        return ["config/gpt2_124m_gelu.py", *flags(dataset="shakespeare", device=self.cfg.device)]

    def memory(self, compile=False):
        """The plan's estimate of a run's GPU memory beside what the run held at most: the row fails
        when the run held more than planned (a plan that says "fits" for a run that does not costs a
        failed job), or when the plan is over MEMORY_SLACK above it (a plan twice the truth is no use)."""
        from tools import plan
        from training import loop

        if not self.cfg.smoke and (missing := self.prepare("shakespeare")):
            return False, missing
        out = "mem_compiled" if compile else "mem"
        args = [*self.model_124m(), *flags(gradient_accumulation_steps=1, max_iters=5, eval_interval=5, eval_iters=1,
                                           log_interval=1, out_dir=os.path.join(self.out, out),
                                           compile=compile and not self.cfg.smoke)]
        cfg = SimpleNamespace(**configure(settings.DEFAULTS, [os.path.join(ROOT, args[0]), *args[1:]]))
        estimate = plan.estimate(cfg, loop.planned_config(cfg), 1)
        planned = estimate.totals[estimate.ours] / 2**30
        r = self.sh("train.py", *args, "--wandb_log=False")
        if r.returncode:
            return False, f"the run exited {r.returncode}"
        measured = rundir.summary(os.path.join(self.out, out))["max_memory_gib"]
        if measured is None:
            return True, f"planned {planned:.2f} GiB; nothing to measure on a CPU"
        how = f"{'compiled' if compile else 'eager'}, {estimate.fused or 'plain'} loss"
        return measured <= planned <= MEMORY_SLACK * measured, (
            f"planned {planned:.2f} GiB, measured {measured:.2f} GiB (torch.cuda.max_memory_allocated, {how}): the "
            f"plan is {planned / measured:.2f}x the peak (must be 1 to {MEMORY_SLACK})")

    def kv_cache(self):
        src = os.path.join(self.out, "train")
        if not os.path.exists(rundir.path(src, rundir.CKPT)):
            return False, "no checkpoint from the train check"
        code, got = self.json_of("bench.py", "kv_cache", *self.train_args(
            "train", init_from="resume", dtype="float32", compile=False, matmul_precision="highest"),
            "--mode=sample", "--new_tokens=300", "--repeats=1", "--warmup=1")
        if got is None:
            return False, f"bench.py --mode=sample exited {code}"
        return got["identical"], (f"identical tokens: {'yes' if got['identical'] else 'NO'}; cache speedup "
                                  f"{got['speedup_no_cache']:.2f}x (eager, float32)")

    def bench(self):
        if not self.cfg.smoke and (missing := self.prepare("shakespeare")):
            return False, missing
        code, got = self.json_of("bench.py", "bench", *self.model_124m(), *flags(batch_size=12 if not self.cfg.smoke
                                 else TINY["batch_size"], gradient_accumulation_steps=1),
                                 "--warmup=10", "--iters=20", "--repeats=3")
        if got is None:
            return False, f"bench.py exited {code}"
        ours = got["ours"]
        mfu = f", MFU {100 * ours['mfu_datasheet']:.1f}% of the datasheet peak" if ours["mfu_datasheet"] else ""
        return True, f"{ours['ms']:.2f} ms/iter, {ours['tokens_per_s']:,.0f} tokens/s{mfu}"

    def plan(self):
        from tools import plan
        from training import loop

        args = ["config/gpt2_xl_gelu.py", "--dry_run=True", "--world_size=8", "--gpu_memory_gb=40"]
        r = self.sh("train.py", *args)
        if r.returncode:
            return False, f"dry run exited {r.returncode}"
        cfg = SimpleNamespace(**configure(settings.DEFAULTS, [os.path.join(ROOT, args[0]), *args[1:]]))
        e = plan.estimate(cfg, loop.planned_config(cfg), 8)
        cheapest = (f"{e.cheapest[0]} ({e.cheapest[1]})" if e.cheapest[1] else e.cheapest[0]) if e.cheapest \
            else "nothing fits"
        return True, (f"GPT-2 XL, {e.n_all:,} parameters: {e.totals['DDP'] / 2**30:.2f} GiB per GPU under DDP; "
                      f"on 8 x 40 GB: {cheapest}")

    # -------------------------------------------------------------------- the GPU-only code paths

    def cuda_graphs_train(self):
        """Training and evaluation compiled with CUDA graphs (one micro-step per rank)."""
        r = self.sh("train.py", *self.train_args("graphs", compile_mode="reduce-overhead", max_iters=60,
                                                 lr_decay_iters=60, eval_interval=20, gradient_accumulation_steps=1))
        evals = evals_of(os.path.join(self.out, "graphs"))
        if r.returncode or len(evals) < 2:
            return False, f"train.py with compile_mode='reduce-overhead' exited {r.returncode}"
        losses = [e["val_loss"] for e in evals]
        ok = all(loss < 10 for loss in losses) and losses[-1] < losses[0]
        return ok, f"val loss {' -> '.join(f'{loss:.3f}' for loss in losses)} ({self.describe()})"

    def cuda_graphs_refused(self):
        """Gradient accumulation under CUDA graphs is refused in one line."""
        if not self.gpu:
            return None, "CUDA graphs exist only on CUDA: nothing to refuse here"
        r = self.sh("train.py", *self.train_args("refused", compile_mode="reduce-overhead",
                                                 gradient_accumulation_steps=2))
        line = r.stderr.strip()
        ok = r.returncode == 1 and "\n" not in line and "pytorch/pytorch#169545" in line
        return ok, line[:160] or f"exited {r.returncode}"

    def bench_cuda_graphs(self):
        args = self.train_args("bench_graphs", compile_mode="reduce-overhead", gradient_accumulation_steps=1)
        code, got = self.json_of("bench.py", "bench_graphs", *args, "--warmup=3", "--iters=5", "--repeats=1")
        if got is None:
            return False, f"bench.py exited {code}"
        want = "reduce-overhead" if self.fast["compile"] else None
        return got["compile_mode"] == want, (f"timed in mode {got['compile_mode']}: {got['ours']['ms']:.2f} ms/iter "
                                             f"(the mode asked for: {want})")

    def one_rank(self, name, **more):
        """train.py under torchrun on one rank, as a real run would take it (compiled bf16 on a GPU)."""
        r = self.sh("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py",
                    *self.train_args(name, max_iters=40, lr_decay_iters=40, eval_interval=20, **more))
        evals = evals_of(os.path.join(self.out, name))
        if r.returncode or len(evals) < 2:
            return False, f"torchrun exited {r.returncode}"
        return evals[-1]["val_loss"] < evals[0]["val_loss"], (
            f"val loss {evals[0]['val_loss']:.3f} -> {evals[-1]['val_loss']:.3f} ({self.describe(**more)})")

    def kv_cache_compiled(self):
        src = os.path.join(self.out, "graphs")
        if not os.path.exists(rundir.path(src, rundir.CKPT)):
            return False, "no checkpoint from the CUDA graphs train row"
        code, got = self.json_of("bench.py", "kv_compiled", *self.train_args("graphs", init_from="resume"),
                                 "--mode=sample", "--new_tokens=200", "--repeats=1", "--warmup=1")
        if got is None:
            return False, f"bench.py --mode=sample exited {code}"
        same = "yes" if got["identical"] else "NO"
        # the row exists to show the fast path: slower than what it replaces is a failure (a rehearsal
        # on tiny models times nothing)
        faster = self.cfg.smoke or got["speedup_no_cache"] > 1
        return got["identical"] and faster, (
            f"compiled={got['compiled']}: identical tokens {same}; {got['tokens_per_s']['KV cache']:,.0f} tokens/s, "
            f"{got['speedup_no_cache']:.2f}x no cache (must be above 1x)")

    def fused_loss_graphs(self):
        """The fused loss a GPU run takes (Liger's; torch's in a CPU rehearsal) compiled: torch's must
        compile in one graph; Liger's Triton kernels may break it, which the row shows."""
        fused = "torch" if self.cfg.smoke else "liger"
        code, got = self.json_of("bench.py", "fused_graphs", *self.train_args("fused_graphs", fused_loss=fused),
                                 "--mode=graphs")
        if got is None:
            return False, f"bench.py --mode=graphs exited {code}"
        if got["fused_loss"] != fused:
            return False, f"fused_loss={fused!r} was asked for but the plain loss ran (train.py's output says why)"
        return fused == "liger" or got["graph_break_count"] == 0, (
            f"{fused}: {got['graph_count']} graph(s), {got['graph_break_count']} break(s)"
            + "".join(f"; {r[:80]}" for r in got["break_reasons"]))

    def describe(self, **more):
        return ", ".join(f"{k}={v}" for k, v in {**more, **self.fast}.items())

    # ------------------------------------------------------------------------------ speed goals

    def protocol(self):
        return flags(warmup=1, iters=2, repeats=1) if self.cfg.smoke else flags(warmup=10, iters=20, repeats=3)

    def levers(self):
        """bench.py --mode=levers on GPT-2 124M at batch 12: our step with each speed lever alone and
        all together (the defaults a GPU run takes), against nanoGPT's compiled step, interleaved."""
        if not self.cfg.smoke and (missing := self.prepare("shakespeare")):
            return False, missing
        batch = 12 if not self.cfg.smoke else TINY["batch_size"]
        code, got = self.json_of("bench.py", "levers_b12", *self.model_124m(), "--mode=levers",
                                 *flags(batch_size=batch, gradient_accumulation_steps=1), *self.protocol())
        if got is None:
            return False, f"bench.py --mode=levers exited {code}"
        levers = got["levers"]
        best = max((name for name in levers if name != "nanoGPT-style"), key=lambda name: levers[name]["speedup"])
        timed = ", ".join(f"{name} {v['ms']:.2f} ms ({v['speedup']:.2f}x)" for name, v in levers.items()
                          if name != "nanoGPT-style")
        return self.cfg.smoke or levers["all"]["speedup"] >= STEP_GOAL, (
            f"batch {batch}: {timed}; nanoGPT's step {levers['nanoGPT-style']['ms']:.2f} ms; goal for all: "
            f"{STEP_GOAL}x; fastest: {best}")

    def as_run(self):
        """GPT-2 124M as a user runs it on this GPU: the largest micro-batch the plan fits, for the
        config's tokens per iteration cut to 4 of nanoGPT's micro-batches of 12 (a timed iteration
        stays short), against nanoGPT's step at batch 12 doing the same tokens."""
        from tools import plan
        from training import loop

        if not self.cfg.smoke and (missing := self.prepare("shakespeare")):
            return False, missing
        args = [*self.model_124m(), *flags(batch_size=12, gradient_accumulation_steps=4)]
        cfg = SimpleNamespace(**configure(settings.DEFAULTS, [os.path.join(ROOT, args[0]), *args[1:]]))
        e = plan.estimate(cfg, loop.planned_config(cfg), 1)
        batch, accumulation = e.largest or (cfg.batch_size, cfg.gradient_accumulation_steps)
        code, got = self.json_of("bench.py", "as_run", *args, *flags(batch_size=batch,
                                 gradient_accumulation_steps=accumulation), "--reference=True",
                                 "--reference_batch_size=12", *self.protocol())
        if got is None:
            return False, f"bench.py exited {code}"
        ours, theirs = got["ours"], got["nanoGPT-style"]
        return self.cfg.smoke or got["speedup"] >= RUN_GOAL, (
            f"batch {batch} x {accumulation} (the largest that fits) against nanoGPT's 12 x 4: "
            f"{ours['tokens_per_s']:,.0f} tokens/s against {theirs['tokens_per_s']:,.0f}: {got['speedup']:.2f}x "
            f"(goal {RUN_GOAL}x)")

    def sample_speed(self, config):
        """Sampling with the KV cache (its decode step compiled) against no cache and nanoGPT's
        generate, and whether the cache changes any token."""
        if self.cfg.smoke:
            args = [CHAR, *flags(**TINY, device=self.cfg.device, compile=False)]
        else:
            if config != CHAR and (missing := self.prepare("shakespeare")):
                return False, missing
            args = [config, *flags(device=self.cfg.device, compile=True, dataset="shakespeare_char" if config == CHAR
                                   else "shakespeare")]
        code, got = self.json_of("bench.py", f"sample_{os.path.basename(config)[:-3]}", *args, "--mode=sample",
                                 "--new_tokens=200", "--repeats=3", "--warmup=1")
        if got is None:
            return False, f"bench.py --mode=sample exited {code}"
        goal = SAMPLE_GOALS[config]
        ok = got["identical"] and (self.cfg.smoke or got["speedup_no_cache"] >= goal)
        return ok, (f"{got['tokens_per_s']['KV cache']:,.1f} tokens/s with the cache: {got['speedup_no_cache']:.2f}x "
                    f"no cache (goal {goal}x), {got['speedup_nanogpt']:.2f}x nanoGPT's generate; identical "
                    f"tokens: {'yes' if got['identical'] else 'NO'}")

    def prepare(self, dataset):
        """None once data/DATASET is prepared, else why it could not be. Run as a module from the
        repository, so that it finds the project's modules whether or not the project is installed."""
        if os.path.exists(os.path.join(ROOT, "data", dataset, "train.bin")):
            return None
        r = self.sh("-m", f"data.{dataset}.prepare")
        return None if r.returncode == 0 else f"cannot prepare data/{dataset}: {r.stderr.strip()[-200:]}"


CHECKS = {"train": Checks.train, "resume": Checks.resume, "gpu->cpu": Checks.gpu_to_cpu, "kv cache": Checks.kv_cache,
          "float16": Checks.float16, "torchrun": Checks.torchrun, "fsdp": Checks.fsdp, "bench": Checks.bench,
          "memory": Checks.memory, "memory compiled": lambda c: c.memory(compile=True), "plan": Checks.plan}
TRAINED = ["train", "resume", "gpu->cpu", "kv cache"]  # the checks that use the train check's run


PATHS = {
    "CUDA graphs train": Checks.cuda_graphs_train,
    "CUDA graphs refuse accumulation": Checks.cuda_graphs_refused,
    "bench in CUDA graphs": Checks.bench_cuda_graphs,
    "DDP, 1 rank": lambda c: c.one_rank("ddp1"),
    "FSDP, 1 rank, per block": lambda c: c.one_rank("fsdp1", fsdp=True),
    "KV cache compiled": Checks.kv_cache_compiled,
    "fused loss compiled": Checks.fused_loss_graphs,
}
PILOT = {"µP pilot": Checks.mup_pilot}
BPE_ROWS = {"memory", "memory compiled", "bench", "levers b12", "124M as run", "sample 124M"}  # GPT-2 124M on BPE
SPEED = {
    "levers b12": Checks.levers,
    "124M as run": Checks.as_run,
    "sample 10.6M": lambda c: c.sample_speed(CHAR),
    "sample 124M": lambda c: c.sample_speed("config/gpt2_124m_gelu.py"),
}


def gpu_count():
    import torch

    return torch.cuda.device_count()


def last_logged(folder):
    return max((r["iter"] for r in rundir.read_metrics(folder)[0]), default=-1)


def evals_of(folder):
    return rundir.evaluations(rundir.read_metrics(folder)[0])


def resumed_at(folder):
    """The iterations at which a run's processes resumed, from its records."""
    return [r["iter"] for r in rundir.read_metrics(folder)[0] if "resumed_with" in r]


def losses(folder):
    """(iteration, kind) -> loss, for every logged training and evaluation loss."""
    return {(r["iter"], k): r[k] for r in rundir.read_metrics(folder)[0] for k in ("loss", "val_loss") if k in r}


def environment(cfg):
    import platform

    import torch

    from training.devices import describe_device

    count = f"{torch.cuda.device_count()} x " if cfg.device != "cpu" else ""
    return f"{count}{describe_device(cfg.device)}; torch {torch.__version__}; Python {platform.python_version()}"


def validate(cfg):
    checks = SPEED if cfg.speed else PATHS if cfg.paths else PILOT if cfg.pilot else CHECKS
    unknown = [name for name in cfg.only if name not in checks]
    if unknown:
        raise UserError(f"only={cfg.only!r} names unknown checks {unknown}; choose from {', '.join(checks)}")
    if cfg.device == "cpu" and not cfg.smoke:
        raise UserError("device='cpu' runs the full-size checks on a CPU, which takes hours; add --smoke=True")
    if cfg.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"device={cfg.device!r} but this torch ({torch.__version__}) sees no CUDA GPU; run it on a "
                            "GPU machine, or rehearse it here with --device=cpu --smoke=True")


def needs(cfg, checks, names):
    """What the chosen checks need and this machine lacks, as one line ('' when nothing): the data
    they train on, and GPT-2's BPE ranks for the 124M rows."""
    missing = []
    if checks.prepare("shakespeare_char"):
        missing.append("data/shakespeare_char/input.txt (tiny Shakespeare), or a connection to download it")
    if not cfg.smoke and set(names) & BPE_ROWS and checks.prepare("shakespeare"):
        missing.append("GPT-2's BPE ranks for the 124M rows: r50k_base.tiktoken in TIKTOKEN_CACHE_DIR, named "
                       "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4 (or a connection to download them)")
    return "; ".join(missing)


def install_extras(folder, run=subprocess.run):
    """Install what requirements-gpu.txt lists and this Python lacks, from the wheels carried in
    folder (a GPU machine may reach no package index): pip install --no-index. Returns a line."""
    import importlib.util

    with open(os.path.join(ROOT, "requirements-gpu.txt")) as f:
        wanted = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
    missing = [req for req in wanted if importlib.util.find_spec(req.split("=")[0].replace("-", "_")) is None]
    if not missing:
        return f"GPU extras already installed: {', '.join(wanted)}"
    if not os.path.isdir(folder):
        return f"GPU extras missing and no {folder}/ to install them from: {', '.join(missing)} (make gpu-wheels)"
    r = run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", folder, *missing],
            capture_output=True, text=True)
    tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
    return f"installed from {folder}/: {', '.join(missing)} (pip exit {r.returncode}: {tail[0][:200]})"


def run_all(cfg):
    """One GPU call: the checks and the GPU-only paths side by side (correctness may share the GPU),
    then the speed rows alone on it; everything they wrote goes into OUT/gpu_all.tar.gz (checkpoints
    and token files left out) and the three tables into OUT/gpu_all.md."""
    import tarfile

    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    os.makedirs(cfg.out_dir)
    t0, head = time.time(), [f"# gpu_check --all: {environment(cfg)}", "", install_extras(cfg.wheels)]
    print(head[-1], flush=True)
    base = [sys.executable, "-m", "tools.gpu_check", f"--device={cfg.device!r}", f"--smoke={cfg.smoke}"]
    checks = Checks(SimpleNamespace(**{**vars(cfg), "out_dir": cfg.out_dir}))
    for dataset in ("shakespeare_char",) if cfg.smoke else ("shakespeare_char", "shakespeare"):
        if missing := checks.prepare(dataset):  # once, before two parts would prepare it at the same time
            head.append(missing)

    def start(part, *more):
        log = open(os.path.join(cfg.out_dir, f"{part}.log"), "w")
        return subprocess.Popen([*base, *more, f"--out_dir={os.path.join(cfg.out_dir, part)!r}"], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT), log

    # three processes side by side, so that the longest (about 3 minutes on an H200) sets the time
    codes, rest = {}, [name for name in CHECKS if name not in TRAINED]
    together = {"checks": start("checks", f"--only={TRAINED!r}"),
                "checks-more": start("checks-more", f"--only={rest!r}"), "paths": start("paths", "--paths=True"),
                "pilot": start("pilot", "--pilot=True")}
    for part, (proc, log) in together.items():
        codes[part] = proc.wait()
        log.close()
    head.append(f"checks (two processes) and paths side by side: {time.time() - t0:.0f} s")
    t1 = time.time()
    proc, log = start("speed", "--speed=True")
    codes["speed"] = proc.wait()
    log.close()
    head.append(f"speed rows alone: {time.time() - t1:.0f} s; in all {time.time() - t0:.0f} s")
    parts = [*head, ""]
    for part, code in codes.items():
        path = os.path.join(cfg.out_dir, part, "gpu_check.md")
        text = open(path).read().split("\n## ")[0] if os.path.exists(path) else f"(no table: exit {code})\n"
        parts += [f"## {part} (exit {code})", "", *text.splitlines()[1:], ""]
    files.write_bytes(os.path.join(cfg.out_dir, "gpu_all.md"), "\n".join(parts).encode())
    archive = os.path.join(cfg.out_dir, "gpu_all.tar.gz")
    with tarfile.open(archive + ".tmp", "w:gz") as tar:
        for part in codes:
            tar.add(os.path.join(cfg.out_dir, f"{part}.log"), arcname=f"{part}.log")
            tar.add(os.path.join(cfg.out_dir, part), arcname=part,
                    filter=lambda info: None if info.name.endswith((".pt", ".bin", rundir.LOCK)) else info)
    os.replace(archive + ".tmp", archive)
    print("\n".join(parts) + f"\nresults: {os.path.join(cfg.out_dir, 'gpu_all.md')} and {archive}")
    return 1 if any(codes.values()) else 0


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    validate(cfg)
    if cfg.all:
        return run_all(cfg)
    table = SPEED if cfg.speed else PATHS if cfg.paths else PILOT if cfg.pilot else CHECKS
    names = [name for name in table if not cfg.only or name in cfg.only]
    checks = Checks(cfg)
    checks.log[0] += f"; {environment(cfg)}"
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    os.makedirs(cfg.out_dir)
    missing = needs(cfg, checks, names)
    print(f"gpu_check: {environment(cfg)}; " + (f"MISSING: {missing}" if missing else "data and BPE ranks found"),
          flush=True)
    if checks.prepare("shakespeare_char"):
        raise UserError(f"gpu_check needs {missing}")
    rows, t_start = [], time.time()
    for name in names:
        t0 = time.time()
        checks.log += [f"## {name}", ""]
        try:
            ok, what = table[name](checks)
        except Exception as e:  # a broken check is a failed check; the others still run
            ok, what = False, f"{type(e).__name__}: {e}"
        rows.append((name, {True: "PASS", False: "FAIL", None: "SKIP"}[ok], f"{time.time() - t0:.0f} s", what))
        print(f"{rows[-1][1]}  {name}: {what}", flush=True)
    lines = ["| check | result | time | what was measured |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    count = {status: sum(row[1] == status for row in rows) for status in ("PASS", "FAIL", "SKIP")}
    summary = (f"{count['PASS']} of {len(rows)} checks passed, {count['FAIL']} failed, {count['SKIP']} skipped "
               f"in {time.time() - t_start:.0f} s")
    path = os.path.join(cfg.out_dir, "gpu_check.md")
    files.write_bytes(path, "\n".join([checks.log[0], "", summary, "", *lines, "", *checks.log[2:], ""]).encode())
    print("\n".join(["", *lines, "", f"{summary}; log: {path}"]))
    return 1 if count["FAIL"] else 0


if __name__ == "__main__":
    run_main(main)
