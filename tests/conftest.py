"""Shared helpers: the repo's scripts run as subprocesses on a small char-level corpus made here."""

import json
import os
import random
import sys
import time
from pathlib import Path

import launch
import pytest
import torch

# In-process tests use tiny models: one thread is fastest, and does not fight the test's subprocesses.
torch.set_num_threads(1)

# The fused loss (torch.nn.functional.linear_cross_entropy) came with torch 2.13; on older torch the
# tests of what it computes are skipped (those of the fallback run everywhere).
HAS_FUSED_LOSS = hasattr(torch.nn.functional, "linear_cross_entropy")
needs_fused_loss = pytest.mark.skipif(not HAS_FUSED_LOSS, reason=f"the fused loss needs torch >= 2.13, here "
                                                                  f"{torch.__version__}")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ("the king is dead long live the queen my lord what news from the north "
         "speak thou shalt not pass tomorrow and tomorrow creeps in this petty pace").split()


def make_text(n_lines=3000, seed=0):
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
        lines.append(line.capitalize() + rng.choice(".,;!?"))
    return "\n".join(lines) + "\n"


def run(*args, env=None, timeout=600, cwd=REPO):
    """Run a python script of the repo (python script.py args, or -m module args) as a process of its
    own (see launch.py); returns the CompletedProcess (never raises on exit status)."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    return launch.run(list(map(str, args)), cwd, full_env, timeout)


def tiny(out_dir, dataset, **overrides):
    """train.py flags for a model that trains in seconds on a CPU."""
    flags = dict(out_dir=str(out_dir), dataset=str(dataset), device="cpu", compile=False, n_layer=2, n_head=2,
                 n_embd=32, block_size=32, batch_size=4, gradient_accumulation_steps=2, max_iters=30,
                 eval_interval=10, eval_iters=2, log_interval=1, learning_rate=3e-3, warmup_iters=5,
                 lr_decay_iters=30, min_lr=3e-4, threads=1)
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def torchrun_workers(proc, n=2):
    """The PIDs of the n worker processes that a torchrun launcher (a Popen) started, found by their
    parent PID across /proc (a thread's /proc children list can miss processes)."""
    deadline = time.time() + 60
    while True:
        pids = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue  # exited while we looked
            if ppid == proc.pid:
                pids.append(int(entry))
        if len(pids) == n:
            return pids
        assert proc.poll() is None and time.time() < deadline, f"torchrun has workers {pids}, not {n}"
        time.sleep(0.05)


def read_metrics(out_dir):
    with open(Path(out_dir) / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def char_dataset(tmp_path_factory):
    from data import prepare_text

    folder = tmp_path_factory.mktemp("chars")
    prepare_text.prepare(make_text(), str(folder), "char")
    return folder
