"""gpu_check.py, the GPU check run by hand on CUDA machines: its every check rehearsed on tiny models
on the CPU (the orchestration, the data each script reports back, the PASS/FAIL/SKIP table and the
log), a row that cannot test what it names on one GPU reported as SKIP, a failing check reported
as FAIL, a fused-loss row that did not get the fused loss failing, and its argument errors."""

import re
import tarfile
from types import SimpleNamespace

import pytest
from conftest import HAS_FUSED_LOSS, run

from tools import gpu_check

CHECKS = ("train", "resume", "gpu->cpu", "kv cache", "float16", "torchrun", "fsdp", "bench", "memory",
          "memory compiled", "plan")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """make gpu-all rehearsed on tiny models on the CPU: the checks and paths side by side, then the
    speed rows, as one GPU call runs them."""
    out = tmp_path_factory.mktemp("all")
    r = run("-m", "tools.gpu_check", "--all=True", "--device=cpu", "--smoke=True", f"--out_dir={out}",
            f"--wheels={out / 'no-wheels'}")
    return r, out


def rows_of(text):
    return re.findall(r"^\| (\S[^|]*?) \| (PASS|FAIL|SKIP) \| \d+ s \| (.+) \|$", text, re.M)


def test_one_call_runs_every_part_and_brings_back_two_files(rehearsal):
    r, out = rehearsal
    assert r.returncode == 0, r.stdout + r.stderr
    summary = (out / "gpu_all.md").read_text()
    assert [name for name, _, _ in rows_of(summary)] == [*CHECKS, *gpu_check.PATHS, *gpu_check.PILOT, *gpu_check.SPEED]
    pilot = dict((name, (result, what)) for name, result, what in rows_of(summary))["µP pilot"]
    assert pilot[0] == "SKIP" and re.search(r"whole-split val loss at 4, 10, 20: standard [\d.]+, [\d.]+, [\d.]+; "
                                            r"µP η/2 .*; µP η .*; µP 2η .*\(tiny models: no verdict\)", pilot[1])
    assert "GPU extras missing and no" in summary and "liger-kernel==0.8.5" in summary
    assert re.search(r"checks \(two processes\) and paths side by side: \d+ s", summary)
    assert re.search(r"speed rows alone: \d+ s; in all \d+ s", summary)
    with tarfile.open(out / "gpu_all.tar.gz") as tar:
        names = tar.getnames()
    assert {"checks.log", "paths/gpu_check.md", "speed/levers_b12.json", "checks/train/metrics.jsonl"} <= set(names)
    assert not [n for n in names if n.endswith((".pt", ".bin"))]  # no checkpoints or token files to carry back
    # the speed rows started after every other part had finished: they ran alone
    logs = {part: (out / part / "gpu_check.md").stat().st_mtime for part in ("checks", "checks-more", "paths")}
    first_speed = min(p.stat().st_mtime for p in (out / "speed").iterdir())
    assert first_speed >= max(logs.values())


def test_every_check_passes_in_a_cpu_rehearsal(rehearsal):
    _, out = rehearsal
    first, more = ((out / part / "gpu_check.md").read_text() for part in ("checks", "checks-more"))
    rows, log = rows_of(first) + rows_of(more), first + more
    assert [(name, result) for name, result, _ in rows] == [(name, "PASS") for name in CHECKS]
    what = dict((name, text) for name, _, text in rows)
    assert "every loss bitwise equal to the uninterrupted run" in what["resume"]  # the CPU is deterministic
    assert "identical tokens: yes" in what["kv cache"]
    assert re.search(r"gradient norms of iterations 0-4: float16/float32 - 1 at most \S+ \(tolerance 0.05;",
                     what["float16"])
    assert "1,556,840,000 parameters: 50.74 GiB per GPU under DDP; on 8 x 40 GB: FSDP (--fsdp=True)" in what["plan"]
    assert "2 ranks (gloo, fsdp=True, activation_checkpointing=True) vs ddp" in what["fsdp"]
    assert re.search(r"planned [\d.]+ GiB; nothing to measure on a CPU", what["memory"])
    # every command the checks ran exited 0
    exits = re.findall(r"\(exit (\d+), \d+ s\)", log)
    assert "4 of 4 checks passed, 0 failed" in first and "7 of 7 checks passed, 0 failed" in more
    assert len(exits) >= 12 and set(exits) == {"0"}
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
    r = run("-m", "tools.gpu_check", "--device=cpu", "--smoke=True", f"--out_dir={tmp_path}", "--only=['gpu->cpu']")
    assert r.returncode == 1
    assert "FAIL  gpu->cpu: no checkpoint from the train check" in r.stdout
    assert "0 of 1 checks passed, 1 failed" in (tmp_path / "gpu_check.md").read_text()


def test_argument_errors_are_one_line(tmp_path):
    for args, message in ((["--only=['nope']"], "only=['nope'] names unknown checks ['nope']"),
                          (["--device=cpu"], "add --smoke=True")):
        r = run("-m", "tools.gpu_check", f"--out_dir={tmp_path}", *args)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_the_speed_goals_are_measured_in_a_cpu_rehearsal(rehearsal):
    """--speed=True: each row reads bench.py's JSON (on a CPU the goals themselves are not judged)."""
    _, out = rehearsal
    text = (out / "speed" / "gpu_check.md").read_text()
    x = r"[\d.]+ ms \([\d.]+x\)"
    levers = re.search(r"^\| levers b12 \| PASS \| \d+ s \| batch 8: none ([\d.]+) ms \(([\d.]+)x\), fused loss "
                       rf"\(torch\) {x}, cuDNN attention {x}, all {x}; nanoGPT's step ([\d.]+) ms; goal for all: 1.15x",
                       text, re.M)
    assert levers
    # The ratio is printed from the unrounded times; the times are printed to 0.01 ms, so the ratio
    # recomputed from them lies within these bounds (and the printed ratio is itself rounded to 0.01).
    none, ratio, nanogpt = float(levers[1]), float(levers[2]), float(levers[3])
    assert (nanogpt - 0.005) / (none + 0.005) - 0.005 <= ratio <= (nanogpt + 0.005) / (none - 0.005) + 0.005
    assert re.search(r"\| 124M as run \| PASS \| \d+ s \| batch 48 x 1 \(the largest that fits\) against nanoGPT's "
                     r"12 x 4: [\d,]+ tokens/s against [\d,]+: [\d.]+x \(goal 1.3x\)", text)
    assert re.search(r"\| sample 10.6M \| PASS \| \d+ s \| [\d,.]+ tokens/s with the cache: [\d.]+x no cache "
                     r"\(goal 5.0x\), [\d.]+x nanoGPT's generate; identical tokens: yes", text)
    assert "(goal 4.0x)" in text  # 124M's sampling goal


def test_a_fused_loss_row_fails_where_the_plain_loss_ran(tmp_path, monkeypatch):
    """Where the fused loss cannot run (Liger not installed, or a torch without linear_cross_entropy)
    the run falls back to the plain loss and bench.py's JSON says so: the row must not pass it off
    as the fused one."""
    checks = gpu_check.Checks(SimpleNamespace(device="cpu", smoke=True, out_dir=str(tmp_path)))
    plain = dict(fused_loss=None, graph_count=1, graph_break_count=0, break_reasons=[])
    monkeypatch.setattr(checks, "json_of", lambda *args: (0, plain))
    ok, what = checks.fused_loss_graphs()
    assert ok is False and what.startswith("fused_loss='torch' was asked for but the plain loss ran")
    monkeypatch.setattr(checks, "json_of", lambda *args: (0, {**plain, "fused_loss": "torch", "graph_count": 2,
                                                              "graph_break_count": 1, "break_reasons": ["x"]}))
    assert checks.fused_loss_graphs()[0] is False  # torch's must compile in one graph


def test_the_gpu_only_paths_are_rehearsed(rehearsal):
    """--paths=True: every row runs on the CPU; the refusal of accumulation under CUDA graphs has
    nothing to refuse there, and says SKIP."""
    _, out = rehearsal
    text = (out / "paths" / "gpu_check.md").read_text()
    rows = {name: result for name, result, _ in rows_of(text)}
    expected = {name: "PASS" for name in gpu_check.PATHS}
    expected["CUDA graphs refuse accumulation"] = "SKIP"
    if not HAS_FUSED_LOSS:
        expected["fused loss compiled"] = "FAIL"
    assert rows == expected
    if HAS_FUSED_LOSS:
        assert "torch: 1 graph(s), 0 break(s)" in text


def test_the_gpu_extras_come_from_the_carried_wheels(tmp_path, monkeypatch):
    """A GPU machine may reach no package index: what requirements-gpu.txt lists and is missing is
    installed from the wheels folder, offline, and nothing is tried without that folder."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else
                        real(name, *a))
    calls = []

    def pip(cmd, **kw):
        calls.append(cmd)
        return SimpleNamespace(returncode=0, stdout="Successfully installed liger-kernel-0.8.5", stderr="")

    assert gpu_check.install_extras(str(tmp_path / "none"), run=pip).startswith("GPU extras missing and no")
    assert calls == []
    said = gpu_check.install_extras(str(tmp_path), run=pip)
    assert calls[0][1:] == ["-m", "pip", "install", "--no-index", "--no-deps", "--find-links", str(tmp_path),
                            "liger-kernel==0.8.5"]
    assert said.startswith(f"installed from {tmp_path}/: liger-kernel==0.8.5 (pip exit 0")


def test_what_is_missing_is_said_first(tmp_path, monkeypatch):
    checks = gpu_check.Checks(SimpleNamespace(device="cuda", smoke=False, out_dir=str(tmp_path)))
    monkeypatch.setattr(checks, "prepare", lambda dataset: None if dataset == "shakespeare_char" else "no ranks")
    missing = gpu_check.needs(checks.cfg, checks, ["train", "bench"])
    assert missing.startswith("GPT-2's BPE ranks for the 124M rows: r50k_base.tiktoken in TIKTOKEN_CACHE_DIR")
    assert gpu_check.needs(checks.cfg, checks, ["train", "resume"]) == ""


def test_the_gpu_targets_install_nothing():
    """make gpu-check, gpu-speed, gpu-paths, gpu-all and gpu-wheels run with the Python (and CUDA
    torch) already there: `make setup` would pip-install the pinned CPU torch over it."""
    from conftest import REPO

    rules = {line.split(":")[0]: line for line in (REPO / "Makefile").read_text().splitlines()
             if line.startswith("gpu-")}
    assert set(rules) == {"gpu-check", "gpu-speed", "gpu-paths", "gpu-all", "gpu-wheels"}
    assert all(line.split(":", 1)[1].strip() == "" for line in rules.values())
