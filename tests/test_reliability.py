"""Reliability: exact resume after an interruption, checkpoints that survive SIGKILL mid-save, a
torchrun restart that loses nothing, non-finite losses, and refusal of unsafe checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, read_metrics, run, tiny, torchrun_workers

from training import checkpoint

LOSS_KEYS = ("loss", "train_loss", "val_loss")


def losses(metrics):
    return [(m["iter"], k, m[k]) for m in metrics for k in LOSS_KEYS if k in m]


def start(args, out_dir, torchrun=()):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, *torchrun, "train.py", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(predicate, proc, timeout=120):
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.002)


def last_iter(out_dir):
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return -1
    with open(path) as f:
        lines = f.read().splitlines()
    return max((int(line.split('"iter": ')[1].split(",")[0]) for line in lines if line.endswith("}")), default=-1)


@pytest.fixture(scope="module")
def uninterrupted(char_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = run("train.py", *tiny(out, char_dataset, max_iters=300, eval_interval=50, lr_decay_iters=300, dropout=0.1))
    assert r.returncode == 0, r.stderr
    return read_metrics(out)


def test_sigterm_then_resume_is_bitwise_exact(uninterrupted, char_dataset, tmp_path):
    args = tiny(tmp_path, char_dataset, max_iters=300, eval_interval=50, lr_decay_iters=300, dropout=0.1)
    proc = start([*args, "--init_from=auto"], tmp_path)
    wait_for(lambda: last_iter(tmp_path) >= 60, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = checkpoint.load(str(tmp_path / "ckpt.pt"))["iter_num"]
    assert 60 < stopped < 300 and f"stopped by signal {int(signal.SIGTERM)} after iteration {stopped - 1}" in out
    r = run("train.py", *args, "--init_from=auto")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {tmp_path}/ckpt.pt at iteration {stopped}" in r.stdout
    # every loss at every iteration, before and after the interruption, bit for bit
    assert losses(read_metrics(tmp_path)) == losses(uninterrupted)


def test_sigkill_during_save_keeps_the_previous_checkpoint(char_dataset, tmp_path):
    # a model big enough that a save takes a while, saving at every iteration
    args = tiny(tmp_path, char_dataset, n_layer=4, n_embd=256, n_head=4, max_iters=200, eval_interval=1,
                eval_iters=1, lr_decay_iters=200)
    proc = start(args, tmp_path)
    wait_for(lambda: (tmp_path / "ckpt.pt").exists(), proc)

    def saving():
        return any(name.startswith("ckpt.pt.") and name.endswith(".tmp") for name in os.listdir(tmp_path))

    wait_for(saving, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "the kill should land during a save"
    ckpt = checkpoint.load(str(tmp_path / "ckpt.pt"))  # the previous checkpoint, whole
    assert ckpt["iter_num"] >= 1
    r = run("train.py", *args, "--init_from=auto", "--max_iters=" + str(ckpt["iter_num"] + 2))
    assert r.returncode == 0, r.stderr
    assert f"at iteration {ckpt['iter_num']}" in r.stdout
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # stale temporaries removed


def test_torchrun_restarts_a_killed_worker_and_loses_nothing(char_dataset, tmp_path):
    # one restart must do: a restarted group must not read the addresses its dead peers left in the store
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=1")
    args = tiny(tmp_path / "run", char_dataset, max_iters=200, eval_interval=20, lr_decay_iters=200,
                gradient_accumulation_steps=4, init_from="auto")
    reference = tiny(tmp_path / "ref", char_dataset, max_iters=200, eval_interval=20, lr_decay_iters=200,
                     gradient_accumulation_steps=4)
    r = run(*torchrun, "train.py", *reference)
    assert r.returncode == 0, r.stderr
    proc = start(args, tmp_path, torchrun)
    wait_for(lambda: (tmp_path / "run" / "ckpt.pt").exists() and last_iter(tmp_path / "run") >= 50, proc)
    workers = torchrun_workers(proc)
    os.kill(workers[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming from" in out
    final = [m for m in read_metrics(tmp_path / "run") if "val_loss" in m][-1]
    expected = [m for m in read_metrics(tmp_path / "ref") if "val_loss" in m][-1]
    assert final["iter"] == 200 and final["val_loss"] == expected["val_loss"]
    assert losses(read_metrics(tmp_path / "run")) == losses(read_metrics(tmp_path / "ref"))


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_non_finite_loss(policy, char_dataset, tmp_path):
    """A learning rate of 1e30 makes the first update blow the weights up: every later gradient is
    non-finite. 'stop' stops at the first one; 'skip' skips those updates (saying so), and both stop
    once an evaluation is non-finite, since no skipped update brings such weights back. No
    checkpoint is written after the blow-up."""
    r = run("train.py", *tiny(tmp_path, char_dataset, learning_rate=1e30, warmup_iters=0, decay_lr=False,
                              eval_interval=3, max_iters=6, nonfinite=policy))
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in r.stderr
    if policy == "stop":
        assert line.startswith("error: non-finite loss or gradient norm at iteration 1 (its update was not applied)")
    else:
        assert "1 update(s) skipped for non-finite gradients, first at iteration 1" in r.stdout
        assert line.startswith("error: non-finite evaluation loss at iteration 3")
    assert line.endswith("last good checkpoint: none written yet; lower learning_rate, or set nonfinite='skip'") \
        if policy == "stop" else line.endswith("last good checkpoint: none written yet; lower learning_rate")
    assert not (tmp_path / "ckpt.pt").exists()


class Payload:
    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    torch.save({"model": {}, "extra": Payload()}, tmp_path / "ckpt.pt")
    r = run("sample.py", f"--out_dir={tmp_path}", "--device=cpu")
    assert r.returncode == 1 and "this ran while loading" not in r.stdout
    assert r.stderr.startswith(f"error: refusing to load {tmp_path}/ckpt.pt: it holds objects other than tensors")
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("what", ["checkpoint", "record"])
def test_a_file_is_on_disk_before_it_replaces_its_target_and_the_rename_after(what, tmp_path, monkeypatch):
    """A checkpoint save and a record write: the temporary file is fsynced before it is renamed over
    the target, and the folder after, so a power cut cannot leave an empty file under either name."""
    from training import rundir

    events, fsync, replace = [], os.fsync, os.replace

    def synced(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def replaced(src, dst):
        events.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "replace", replaced)
    folder = os.path.realpath(tmp_path)
    if what == "checkpoint":
        target = os.path.join(folder, "ckpt.pt")
        checkpoint.save({"w": torch.ones(3)}, target)
    else:
        target = rundir.path(folder, rundir.SUMMARY)
        rundir.write_json(folder, rundir.SUMMARY, {"complete": True})
    renames = [e for e in events if e[0] == "replace"]
    assert len(renames) == 1 and renames[0][2] == target
    tmp = renames[0][1]
    at = events.index(renames[0])
    assert ("fsync", tmp) in events[:at], "the temporary file is synced before the rename"
    assert ("fsync", folder) in events[at + 1:], "the folder is synced after the rename"
