"""gpu_check.py, the GPU check run by hand on CUDA machines: its every check rehearsed on tiny models
on the CPU (the orchestration, the parsing of each script's output, the PASS/FAIL table and the log),
a failing check reported as FAIL, and its argument errors."""

import io
import re
from contextlib import redirect_stdout
from types import SimpleNamespace

import pytest
import torch

from conftest import run

CHECKS = ("train", "resume", "gpu->cpu", "torchrun", "fsdp", "kv cache", "bench", "memory", "plan")


def test_every_check_passes_in_a_cpu_rehearsal(tmp_path):
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = re.findall(r"^\| (\S[^|]*?) \| (PASS|FAIL) \| \d+ s \| (.+) \|$", r.stdout, re.M)
    assert [(name, result) for name, result, _ in rows] == [(name, "PASS") for name in CHECKS]
    what = dict((name, text) for name, _, text in rows)
    assert "every loss bitwise equal to the uninterrupted run" in what["resume"]  # the CPU is deterministic
    assert re.search(r"identical tokens: yes", what["kv cache"])
    assert "1,556,840,000 parameters: 50.74 GiB per GPU under DDP; on 8 x 40 GB: FSDP (--fsdp=True)" in what["plan"]
    log = (tmp_path / "gpu_check.md").read_text()
    assert "fsdp" in what and "FSDP with activation checkpointing vs DDP" in what["fsdp"]
    assert re.search(r"planned [\d.]+ GiB; nothing to measure on a CPU", what["memory"])
    # every command the checks ran exited 0 (12 of them, and data/shakespeare_char/prepare.py on a fresh clone)
    exits = re.findall(r"\(exit (\d+), \d+ s\)", log)
    assert "9 of 9 checks passed" in log and len(exits) >= 12 and set(exits) == {"0"} and "(exit 143)" in log


def test_a_failing_check_is_reported(tmp_path):
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", f"--out_dir={tmp_path}", "--only=['gpu->cpu']")
    assert r.returncode == 1
    assert "FAIL  gpu->cpu: no checkpoint from the train check" in r.stdout
    assert "0 of 1 checks passed" in (tmp_path / "gpu_check.md").read_text()


def test_argument_errors_are_one_line(tmp_path):
    for args, message in ((["--only=['nope']"], "only=['nope'] names unknown checks ['nope']"),
                          (["--device=cpu"], "add --smoke=True")):
        r = run("gpu_check.py", f"--out_dir={tmp_path}", *args)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_the_speed_goals_are_measured_in_a_cpu_rehearsal(tmp_path):
    """--speed=True: each row parses bench.py's figures (on a CPU the goals themselves are not judged)."""
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", "--speed=True", f"--out_dir={tmp_path}",
            "--only=['step b12 fused loss', 'sample 10.6M']")
    assert r.returncode == 0, r.stdout + r.stderr
    step = re.search(r"^PASS  step b12 fused loss: batch 12, fused_loss=True: ours ([\d.]+) ms \(MFU [\d.]+% of "
                     r"measured peak\), nanoGPT's step ([\d.]+) ms: ([\d.]+)x \(goal 1.3x\); matmul floor [\d.]+ ms$",
                     r.stdout, re.M)
    assert step and float(step[3]) == pytest.approx(float(step[2]) / float(step[1]), abs=0.006)
    assert re.search(r"^PASS  sample 10.6M: [\d,.]+ tokens/s with the cache: [\d.]+x no cache \(goal 5.0x\), [\d.]+x "
                     r"nanoGPT's generate; identical tokens: yes$", r.stdout, re.M)


def test_a_fused_loss_row_fails_where_torch_lacks_the_fused_loss(tmp_path, monkeypatch):
    """On a torch without linear_cross_entropy, bench.py times the plain step; the row must not
    pass it off as the fused one."""
    import subprocess

    import gpu_check
    import train

    cfg = SimpleNamespace(device="cpu", smoke=True, out_dir=str(tmp_path))
    checks = gpu_check.Checks(cfg)
    monkeypatch.delattr(torch.nn.functional, "linear_cross_entropy")
    with redirect_stdout(io.StringIO()) as note:
        train.fused_loss_works()
    bench = (f"{note.getvalue()}ours: 10.00 ms (9.90-10.10) per iteration, 1 tokens/s, MFU 1.0% of measured peak\n"
             "nanoGPT-style: 11.00 ms (10.90-11.10) per iteration, 1 tokens/s, MFU 0.9% of measured peak\n"
             "matmul floor: 5.00 ms per iteration\n")
    monkeypatch.setattr(checks, "sh", lambda *args, **kw: subprocess.CompletedProcess(args, 0, bench, ""))
    ok, what = checks.step_speed(12, fused_loss=True)
    assert not ok and what.startswith("fused_loss needs torch.nn.functional.linear_cross_entropy (torch >= 2.13")
