"""gpu_check.py, the GPU check run by hand on CUDA machines: its every check rehearsed on tiny models
on the CPU (the orchestration, the data each script reports back, the PASS/FAIL/SKIP table and the
log), a row that cannot test what it names on one GPU reported as SKIP, a failing check reported
as FAIL, a fused-loss row that did not get the fused loss failing, and its argument errors."""

import re
from types import SimpleNamespace

import pytest
from conftest import HAS_FUSED_LOSS, needs_fused_loss, run

import gpu_check

CHECKS = ("train", "resume", "gpu->cpu", "torchrun", "fsdp", "kv cache", "bench", "memory", "plan")


def test_every_check_passes_in_a_cpu_rehearsal(tmp_path):
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", f"--out_dir={tmp_path}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].endswith("data and BPE ranks found")
    rows = re.findall(r"^\| (\S[^|]*?) \| (PASS|FAIL|SKIP) \| \d+ s \| (.+) \|$", r.stdout, re.M)
    assert [(name, result) for name, result, _ in rows] == [(name, "PASS") for name in CHECKS]
    what = dict((name, text) for name, _, text in rows)
    assert "every loss bitwise equal to the uninterrupted run" in what["resume"]  # the CPU is deterministic
    assert "identical tokens: yes" in what["kv cache"]
    assert "1,556,840,000 parameters: 50.74 GiB per GPU under DDP; on 8 x 40 GB: FSDP (--fsdp=True)" in what["plan"]
    assert "2 ranks (gloo, fsdp=True, activation_checkpointing=True) vs ddp" in what["fsdp"]
    assert re.search(r"planned [\d.]+ GiB; nothing to measure on a CPU", what["memory"])
    log = (tmp_path / "gpu_check.md").read_text()
    # every command the checks ran exited 0 (and data/shakespeare_char/prepare.py on a fresh clone)
    exits = re.findall(r"\(exit (\d+), \d+ s\)", log)
    assert "9 of 9 checks passed, 0 failed, 0 skipped" in log and len(exits) >= 11 and set(exits) == {"0"}
    assert "(exit 143)" in log  # the resume check's SIGTERM


def test_one_gpu_skips_what_needs_two_and_runs_what_it_can(tmp_path, monkeypatch):
    """With one GPU the torchrun and fsdp rows have nothing to compare: they run one rank as a real
    run would and say SKIP, not PASS."""
    checks = gpu_check.Checks(SimpleNamespace(device="cpu", smoke=True, out_dir=str(tmp_path)))
    monkeypatch.setattr(checks, "ranks", lambda: 1)
    for check, more in ((checks.torchrun, ""), (checks.fsdp, "fsdp=True, activation_checkpointing=True, ")):
        status, what = check()
        assert status is None, what
        assert what.startswith(f"one GPU: nothing to average or shard across; 1 rank ran ({more}compile=False")
        assert "exit 0, val loss" in what and what.endswith("needs 2+ GPUs to compare")


def test_a_failing_check_is_reported(tmp_path):
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", f"--out_dir={tmp_path}", "--only=['gpu->cpu']")
    assert r.returncode == 1
    assert "FAIL  gpu->cpu: no checkpoint from the train check" in r.stdout
    assert "0 of 1 checks passed, 1 failed" in (tmp_path / "gpu_check.md").read_text()


def test_argument_errors_are_one_line(tmp_path):
    for args, message in ((["--only=['nope']"], "only=['nope'] names unknown checks ['nope']"),
                          (["--device=cpu"], "add --smoke=True")):
        r = run("gpu_check.py", f"--out_dir={tmp_path}", *args)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


@needs_fused_loss
def test_the_speed_goals_are_measured_in_a_cpu_rehearsal(tmp_path):
    """--speed=True: each row reads bench.py's JSON (on a CPU the goals themselves are not judged)."""
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", "--speed=True", f"--out_dir={tmp_path}",
            "--only=['step b12 fused loss', 'step b12 CUDA graphs', 'sample 10.6M']")
    assert r.returncode == 0, r.stdout + r.stderr
    step = re.search(r"^PASS  step b12 fused loss: batch 12, fused_loss=True: ours ([\d.]+) ms, nanoGPT's step "
                     r"([\d.]+) ms: ([\d.]+)x \(goal 1.3x\); matmul floor [\d.]+ ms$", r.stdout, re.M)
    assert step and float(step[3]) == pytest.approx(float(step[2]) / float(step[1]), abs=0.006)
    assert re.search(r"^PASS  sample 10.6M: [\d,.]+ tokens/s with the cache: [\d.]+x no cache \(goal 5.0x\), [\d.]+x "
                     r"nanoGPT's generate; identical tokens: yes$", r.stdout, re.M)
    import json

    graphs = json.loads((tmp_path / "step_b12_compile_mode.json").read_text())
    assert graphs["compile_mode"] is None  # the rehearsal runs eager; on a GPU bench.py compiles in that mode


def test_a_fused_loss_row_fails_where_torch_lacks_the_fused_loss(tmp_path, monkeypatch):
    """On a torch without linear_cross_entropy (torch 2.11), bench.py times the plain step and says
    so in its JSON; the row must not pass it off as the fused one. The subprocesses start with the
    function removed from torch (a sitecustomize), as on such a torch."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import torch.nn.functional as F\n"
                                           "vars(F).pop('linear_cross_entropy', None)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    checks = gpu_check.Checks(SimpleNamespace(device="cpu", smoke=True, out_dir=str(tmp_path)))
    ok, what = checks.step_speed(12, fused_loss=True)
    assert ok is False and what.startswith("fused_loss was asked for but this torch has no linear_cross_entropy")


def test_the_gpu_only_paths_are_rehearsed(tmp_path):
    """--paths=True: every row runs on the CPU; the refusal of accumulation under CUDA graphs has
    nothing to refuse there, and says SKIP."""
    r = run("gpu_check.py", "--device=cpu", "--smoke=True", "--paths=True", f"--out_dir={tmp_path}")
    assert r.returncode == (0 if HAS_FUSED_LOSS else 1), r.stdout + r.stderr
    rows = dict(re.findall(r"^\| (\S[^|]*?) \| (PASS|FAIL|SKIP) \| \d+ s \| .+ \|$", r.stdout, re.M))
    expected = {name: "PASS" for name in gpu_check.PATHS}
    expected["CUDA graphs refuse accumulation"] = "SKIP"
    if not HAS_FUSED_LOSS:
        expected["fused loss, one graph"] = "FAIL"
    assert rows == expected
    if HAS_FUSED_LOSS:
        assert "1 graph(s), 0 break(s)" in r.stdout


def test_what_is_missing_is_said_first(tmp_path, monkeypatch):
    checks = gpu_check.Checks(SimpleNamespace(device="cuda", smoke=False, out_dir=str(tmp_path)))
    monkeypatch.setattr(checks, "prepare", lambda dataset: None if dataset == "shakespeare_char" else "no ranks")
    missing = gpu_check.needs(checks.cfg, checks, ["train", "bench"])
    assert missing.startswith("GPT-2's BPE ranks for the 124M rows: r50k_base.tiktoken in TIKTOKEN_CACHE_DIR")
    assert gpu_check.needs(checks.cfg, checks, ["train", "resume"]) == ""


def test_the_gpu_targets_install_nothing():
    """make gpu-check, gpu-speed and gpu-paths run with the Python (and CUDA torch) already there:
    `make setup` would pip-install the pinned CPU torch over it."""
    from conftest import REPO

    rules = {line.split(":")[0]: line for line in (REPO / "Makefile").read_text().splitlines()
             if line.startswith("gpu-")}
    assert set(rules) == {"gpu-check", "gpu-speed", "gpu-paths"}
    assert all(line.split(":", 1)[1].strip() == "" for line in rules.values())
