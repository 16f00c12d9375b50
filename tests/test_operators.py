"""Runs that survive their operators: a stop signal that arrives while the ranks agree is not lost;
one run per out_dir (a lock naming its holder, released however the run ends, under torchrun too);
a full disk or a file-size limit is one line and leaves the previous files whole; damaged records
neither stop a resume nor change out_dir before the resume is known to be valid; a run says which
vocabulary it assumed; and two torchrun agents on one machine, as two nodes, train as one process
does, through a worker killed and restarted."""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from conftest import REPO, read_metrics, run, tiny, torchrun_workers

from training import checkpoint, rundir
from training.batches import Batches
from training.devices import resolve_device
from training.processes import StopRequest


def losses(out_dir):
    return [(m["iter"], k, m[k]) for m in read_metrics(out_dir) for k in ("loss", "val_loss") if k in m]


def test_a_signal_during_the_ranks_agreement_is_not_lost(tmp_path, monkeypatch):
    """The signal arrives inside the all-reduce that combines the ranks' signals (after this rank's
    flag was read): it must stop the run at the next agreement, not be overwritten by the result."""
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        ranks = SimpleNamespace(ddp=True, rank=0, world_size=1, master=True, host=dist.group.WORLD)
        real = dist.all_reduce

        def signalled(tensor, *args, **kwargs):
            monkeypatch.setattr(dist, "all_reduce", real)  # once
            os.kill(os.getpid(), signal.SIGTERM)
            return real(tensor, *args, **kwargs)

        monkeypatch.setattr(dist, "all_reduce", signalled)
        with StopRequest() as stop:
            agreed = [stop.agreed(ranks) for _ in range(3)]
        assert agreed[0] == 0 and signal.SIGTERM in agreed[1:]
        # and agreeing never waits on the device: a host tensor, reduced asynchronously
        calls = []
        monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: calls.append((t.device.type, k)) or real(t, *a, **k))
        with StopRequest() as stop:
            stop.agreed(ranks)
        assert calls == [("cpu", dict(op=dist.ReduceOp.MAX, group=ranks.host, async_op=True))]
    finally:
        dist.destroy_process_group()


def start(args, **kw):
    return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def wait_until(predicate, proc, timeout=300):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_run_into_a_held_out_dir_is_refused_and_a_killed_run_releases_it(char_dataset, tmp_path):
    out = tmp_path / "out"
    first = start(["train.py", *tiny(out, char_dataset, max_iters=100000, eval_interval=50)])
    wait_until(lambda: (out / rundir.METRICS).exists(), first)
    config = (out / rundir.CONFIG).read_bytes()
    for launcher in ((), ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")):
        second = run(*launcher, "train.py", *tiny(out, char_dataset, activation="relu"))
        assert second.returncode == 1
        line = [x for x in second.stderr.splitlines() if "in use by another run" in x][0]
        assert line.startswith(f"error: out_dir={str(out)!r} is in use by another run (pid {first.pid} on ")
        assert "train.py" in line
        assert 'train.py", line' not in second.stderr  # no traceback from the run (torchrun prints its own)
    assert (out / rundir.CONFIG).read_bytes() == config  # the first run's records, untouched
    first.kill()  # however a run ends, its lock goes with it
    first.wait()
    at = checkpoint.load(str(out / rundir.CKPT))["iter_num"]
    resumed = run("train.py", *tiny(out, char_dataset, max_iters=at + 5, eval_interval=50, init_from="auto"))
    assert resumed.returncode == 0, resumed.stderr


def test_a_refused_run_leaves_no_folder_behind(char_dataset, tmp_path):
    r = run("train.py", *tiny(tmp_path / "new", char_dataset, init_from="resume"))
    assert r.returncode == 1 and "no checkpoint at" in r.stderr
    assert not (tmp_path / "new").exists()


def limited(nbytes):
    """preexec_fn: files this process writes may not grow past nbytes (as on a full disk)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def test_a_checkpoint_that_does_not_fit_is_one_line_and_the_previous_one_is_whole(char_dataset, tmp_path):
    out = tmp_path / "out"
    assert run("train.py", *tiny(out, char_dataset, max_iters=10, eval_interval=10)).returncode == 0
    before = (out / rundir.CKPT).read_bytes()
    size = len(before)
    args = tiny(out, char_dataset, max_iters=20, eval_interval=10, init_from="resume")
    r = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
                       preexec_fn=limited(size // 2))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: cannot write {out / rundir.CKPT} (File too large): it needs "
                                                "about ")
    assert "bytes are free there; the previous ckpt.pt is intact" in line
    assert (out / rundir.CKPT).read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_data_that_does_not_fit_is_one_line(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\n" * 20000)
    r = subprocess.run([sys.executable, "data/prepare_text.py", str(text), "--out_dir", str(tmp_path / "data")],
                       cwd=REPO, capture_output=True, text=True, preexec_fn=limited(100_000))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: cannot write {tmp_path / 'data' / 'train.bin'} (")
    assert "nothing was written" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "data" / "train.bin").exists()


@pytest.fixture
def finished(char_dataset, tmp_path):
    out = tmp_path / "out"
    r = run("train.py", *tiny(out, char_dataset, max_iters=8, eval_interval=4))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("damage", ["[1, 2]\n", '{"loss": 2.0}\n', '{"iter": "4", "loss": 2.0}\n', "null\n"])
def test_lines_that_are_not_records_are_dropped_with_a_note(finished, char_dataset, damage):
    with open(finished / rundir.METRICS, "a") as f:
        f.write(damage)
    r = run("train.py", *tiny(finished, char_dataset, max_iters=12, eval_interval=4, init_from="resume"))
    assert r.returncode == 0, r.stderr
    assert "metrics.jsonl: 1 line(s) that are not records (half written or damaged) dropped" in r.stdout
    assert all(rundir.is_record(m) for m in read_metrics(finished))
    assert json.loads((finished / rundir.SUMMARY).read_text())["iters"] == 12


def test_a_finished_run_with_emptied_records_evaluates_again(finished, char_dataset):
    (finished / rundir.METRICS).write_text("")
    r = run("train.py", *tiny(finished, char_dataset, max_iters=8, eval_interval=4, init_from="resume"))
    assert r.returncode == 0, r.stderr
    evals = [m for m in read_metrics(finished) if "val_loss" in m]
    assert [m["iter"] for m in evals] == [8]  # the checkpoint's iteration, scored again
    assert json.loads((finished / rundir.SUMMARY).read_text())["best_val_loss"] == evals[0]["val_loss"]


def test_a_refused_resume_changes_nothing_in_out_dir(finished, char_dataset):
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.name != rundir.LOCK}
    r = run("train.py", *tiny(finished, char_dataset, max_iters=4, init_from="resume", learning_rate=1e-4))
    assert r.returncode == 1 and "past max_iters=4" in r.stderr
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.name != rundir.LOCK} == before


def test_a_dataset_without_a_vocabulary_says_which_one_it_assumed(char_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(char_dataset, data)
    (data / "meta.json").unlink()
    r = run("train.py", *tiny(tmp_path / "out", data, max_iters=1))
    assert r.returncode == 0, r.stderr
    assert (f"vocabulary: GPT-2's BPE ({data} has no meta.json); its token ids are all below 256: if it holds "
            "characters, prepare it again to write its meta.json") in r.stdout
    r = run("train.py", *tiny(tmp_path / "chars", char_dataset, max_iters=1))
    assert f"vocabulary: 65 characters ({char_dataset / 'meta.json'})" in r.stdout or "characters (" in r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args, port, restarts=0, env=None):
    """Two torchrun agents on this machine, each one 'node' of one worker, meeting through a c10d
    rendezvous on localhost: what the README's multi-node command runs on each node."""
    node = ("-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=test{port}", f"--max-restarts={restarts}",
            "--monitor-interval=0.5")
    return [subprocess.Popen([sys.executable, *node, "train.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}) for _ in range(2)]


def test_two_nodes_train_as_one_process_and_survive_a_killed_worker(char_dataset, tmp_path):
    flags = dict(max_iters=120, eval_interval=20, lr_decay_iters=120, gradient_accumulation_steps=4, dropout=0.1)
    one = run("train.py", *tiny(tmp_path / "one", char_dataset, **flags))
    assert one.returncode == 0, one.stderr
    nodes = two_nodes(tiny(tmp_path / "two", char_dataset, **flags), free_port())
    for node in nodes:
        out, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    for (i, k, a), (j, m, b) in zip(losses(tmp_path / "two"), losses(tmp_path / "one"), strict=True):
        assert (i, k) == (j, m) and a == pytest.approx(b, rel=1e-5), (i, k)
    # restarts across nodes need a store per restart: without one, a run refuses to start
    refused = two_nodes(tiny(tmp_path / "refused", char_dataset, **flags), free_port(), restarts=1)
    for node in refused:
        _, err = node.communicate(timeout=600)
        assert node.returncode != 0 and "start torchrun on every node with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in err
    # with one: a worker killed on one node, both agents restart their workers, which resume from the checkpoint
    out = tmp_path / "restarted"
    nodes = two_nodes(tiny(out, char_dataset, **flags, init_from="auto"), free_port(), restarts=1,
                      env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})
    wait_until(lambda: (out / rundir.CKPT).exists() and max([m["iter"] for m in read_metrics(out)] or [0]) >= 50,
               nodes[0])
    os.kill(torchrun_workers(nodes[1], n=1)[0], signal.SIGKILL)
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    assert any("resumed_with" in m for m in read_metrics(out))
    final = [m for m in read_metrics(out) if "val_loss" in m][-1]
    expected = [m for m in read_metrics(tmp_path / "one") if "val_loss" in m][-1]
    assert final["iter"] == 120 and final["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-5)


def test_the_lock_names_its_holder_and_is_released_with_it(tmp_path):
    folder = str(tmp_path / "run")
    take = (f"from training import errors, rundir\ntry:\n    rundir.Lock({folder!r}).__enter__()\n    print('taken')\n"
            "except errors.UserError as e:\n    print(e)")
    with rundir.Lock(folder):
        holder = (tmp_path / "run" / rundir.LOCK).read_text().strip()
        assert holder.startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
        child = subprocess.run([sys.executable, "-c", take], cwd=REPO, capture_output=True, text=True)
        assert child.stdout.strip() == (f"out_dir={folder!r} is in use by another run ({holder}); wait for it to end "
                                        "or stop it, or give this run another out_dir")
    child = subprocess.run([sys.executable, "-c", take], cwd=REPO, capture_output=True, text=True)
    assert child.stdout.strip() == "taken"


def test_when_rank_0_cannot_write_the_records_every_rank_stops(char_dataset, tmp_path):
    """Rank 0 alone writes the records; when it cannot (here config.json is a folder), the other
    ranks learn it and stop too, instead of waiting in the first collective until torchrun kills them."""
    (tmp_path / "config.json").mkdir()
    r = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
            *tiny(tmp_path, char_dataset), timeout=300)  # a rank left waiting would run past it
    assert r.returncode != 0
    assert "error: cannot write to out_dir=" in r.stderr
    assert "error: rank 0 could not write the run's records (its error says why)" in r.stderr


def test_evaluating_a_checkpoint_past_max_iters_works(finished, char_dataset):
    r = run("train.py", *tiny(finished, char_dataset, max_iters=4, init_from="resume", eval_only=True))
    assert r.returncode == 0, r.stderr
    assert "step 8: train loss" in r.stdout and "(eval_only: nothing written)" in r.stdout


def test_a_damaged_best_pt_does_not_stop_the_run_from_finishing(finished, char_dataset, capsys):
    """best.pt is read only at the very end, for its whole-split score: damaged, the run still
    finishes, says why that one score is missing, and records none for it."""
    from contextlib import nullcontext

    from configurator import configure
    from train import whole_split_scores
    from training import loop, settings

    (finished / rundir.BEST).write_bytes(b"not a checkpoint")
    cfg = SimpleNamespace(**configure(settings.DEFAULTS, tiny(finished, char_dataset, init_from="resume")))
    device = resolve_device(cfg)
    model = loop.build(cfg, device).model
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, "cpu", model.config.vocab_size)
    scores = whole_split_scores(cfg, model, batches, SimpleNamespace(evals=[]), nullcontext(), best_iter=4)
    assert scores["best_full_val_loss"] is None and scores["final_full_val_loss"] > 0
    assert "no whole-split score for the best model: checkpoint" in capsys.readouterr().out
