"""FSDP2 and activation checkpointing through a real torchrun with gloo on the CPU: 2 ranks with FSDP
compute what 1 process and DDP compute; recomputing activations changes nothing; an FSDP run
stopped by a signal resumes exactly; FSDP and single-process runs resume each other's checkpoints;
the checkpoint an FSDP run writes samples and exports like any other; the plan compares the four
ways to spread a run."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, read_metrics, run, tiny, torchrun_workers

TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
# 24 iterations of 4 global micro-steps with dropout, evaluated every 8, the whole split scored at 8 and 16
FLAGS = dict(gradient_accumulation_steps=4, dropout=0.1, max_iters=24, eval_interval=8, lr_decay_iters=24,
             score_iters=[8, 16])
RTOL = 1e-5  # only the order of float32 additions differs (the gradient reduction, the loss average)


KEYS = ("loss", "grad_norm", "train_loss", "val_loss", "full_val_loss")  # of the log lines and evaluations


def losses(folder):
    return [(m["iter"], k, m[k]) for m in read_metrics(folder) for k in KEYS if k in m]


def assert_close(got, want):
    assert [(i, k) for i, k, _ in got] == [(i, k) for i, k, _ in want]
    for (i, k, a), (_, _, b) in zip(got, want):
        assert a == pytest.approx(b, rel=RTOL, abs=0), (i, k)


@pytest.fixture(scope="module")
def runs(char_dataset, tmp_path_factory):
    """One process, 2 DDP ranks, and 2 FSDP ranks, the same 24 iterations."""
    tmp = tmp_path_factory.mktemp("sharding")
    for name, launcher, more in (("single", (), {}), ("ddp", TORCHRUN, {}), ("fsdp", TORCHRUN, {"fsdp": True})):
        r = run(*launcher, "train.py", *tiny(tmp / name, char_dataset, **FLAGS, **more))
        assert r.returncode == 0, r.stderr
    return tmp


def test_fsdp_computes_what_one_process_and_ddp_compute(runs):
    assert_close(losses(runs / "fsdp"), losses(runs / "single"))
    assert_close(losses(runs / "fsdp"), losses(runs / "ddp"))
    assert sorted(p.name for p in (runs / "fsdp").iterdir()) == [".lock", "analysis.json", "best.pt", "ckpt.pt",
                                                                  "config.json", "metrics.jsonl", "summary.json"]


def test_activation_checkpointing_changes_nothing(runs, char_dataset, tmp_path):
    """Recomputed blocks replay the same dropout masks: bit for bit, alone and with FSDP."""
    r = run("train.py", *tiny(tmp_path / "single", char_dataset, **FLAGS, activation_checkpointing=True))
    assert r.returncode == 0, r.stderr
    assert losses(tmp_path / "single") == losses(runs / "single")
    r = run(*TORCHRUN, "train.py", *tiny(tmp_path / "fsdp", char_dataset, **FLAGS, fsdp=True,
                                         activation_checkpointing=True))
    assert r.returncode == 0, r.stderr
    assert losses(tmp_path / "fsdp") == losses(runs / "fsdp")


def test_an_fsdp_run_stopped_by_a_signal_resumes_exactly(char_dataset, tmp_path):
    flags = {**FLAGS, "max_iters": 120, "lr_decay_iters": 120, "fsdp": True}
    r = run(*TORCHRUN, "train.py", *tiny(tmp_path / "ref", char_dataset, **flags))
    assert r.returncode == 0, r.stderr
    args = tiny(tmp_path / "run", char_dataset, **flags, init_from="auto")
    proc = subprocess.Popen([sys.executable, *TORCHRUN, "train.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not any("loss" in m and m["iter"] >= 20 for m in read_metrics_safe(tmp_path / "run")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    workers = torchrun_workers(proc)
    for pid in workers:  # as a scheduler stops a job: every process at once
        os.kill(pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    stopped = re.search(r"stopped by signal 15 after iteration (\d+)", out)
    assert stopped, f"workers {workers} were sent SIGTERM\n{out[-3000:]}{err}"
    r = run(*TORCHRUN, "train.py", *args)
    assert r.returncode == 0, r.stderr
    assert f"at iteration {int(stopped[1]) + 1}" in r.stdout
    assert losses(tmp_path / "run") == losses(tmp_path / "ref")  # bit for bit, before and after the stop


def read_metrics_safe(folder):
    try:
        return read_metrics(folder)
    except (FileNotFoundError, ValueError):
        return []


@pytest.mark.parametrize("first,then", [("fsdp", "single"), ("single", "fsdp")])
def test_fsdp_and_single_process_runs_resume_each_other(first, then, runs, char_dataset, tmp_path):
    modes = {"fsdp": (TORCHRUN, {"fsdp": True}), "single": ((), {})}
    launcher, more = modes[first]
    r = run(*launcher, "train.py", *tiny(tmp_path, char_dataset, **{**FLAGS, "max_iters": 8}, **more))
    assert r.returncode == 0, r.stderr
    launcher, more = modes[then]
    r = run(*launcher, "train.py", *tiny(tmp_path, char_dataset, **FLAGS, **more, init_from="resume"))
    assert r.returncode == 0, r.stderr
    assert "at iteration 8" in r.stdout
    assert_close(losses(tmp_path), losses(runs / "single"))


def test_an_fsdp_checkpoint_samples_and_exports(runs, tmp_path):
    r = run("sample.py", f"--out_dir={runs / 'fsdp'}", "--device=cpu", "--num_samples=1", "--max_new_tokens=20")
    assert r.returncode == 0, r.stderr
    pytest.importorskip("transformers")
    r = run("-m", "training.hf", f"--out_dir={runs / 'fsdp'}", f"--to={tmp_path / 'hf'}")
    assert r.returncode == 0, r.stderr


def test_under_fsdp_each_block_and_the_head_compile_on_their_own(char_dataset, tmp_path):
    """Dynamo skips FSDP's hooks: compiled whole, an FSDP model would run eager around them. Each
    block's forward and the head are compiled instead; one training step then runs without a graph
    break and computes what the eager sharded model does. (One gloo rank, compiled by inductor on
    the CPU.)"""
    from types import SimpleNamespace

    import torch
    import torch.distributed as dist

    from configurator import configure
    from training import loop, settings
    from training.batches import Batches
    from training.devices import autocast, resolve_device

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        cfg = SimpleNamespace(**configure(settings.DEFAULTS, tiny(tmp_path, char_dataset, fsdp=True, compile=True)))
        device = resolve_device(cfg)
        ranks = SimpleNamespace(ddp=True, rank=0, world_size=1, master=True, host=dist.group.WORLD)
        losses = []
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        for compiled in (False, True):
            run_ = loop.build(cfg, device)
            model = loop.compiled(run_.model, cfg, compiled)
            batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, "cpu", model.config.vocab_size)
            step = loop.Step(model, run_.optimizer, run_.scaler, batches, cfg, ranks, autocast(device))
            losses.append([step(it, loop.get_lr(it, cfg))[0].item() for it in range(2)])
        assert model is run_.model  # compiled in place: FSDP's module, its hooks and its state stay as they are
        assert all(hasattr(block.forward, "_torchdynamo_orig_callable") for block in model.transformer.h)
        assert hasattr(model.head, "_torchdynamo_orig_callable")
        assert not torch._dynamo.utils.counters["graph_break"]
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    finally:
        dist.destroy_process_group()


def test_fsdp_needs_torchrun(char_dataset, tmp_path):
    r = run("train.py", *tiny(tmp_path, char_dataset, fsdp=True))
    assert r.returncode == 1 and r.stderr.startswith("error: fsdp=True shards the model over the ranks of torchrun")
    assert not tmp_path.joinpath("config.json").exists()


def test_the_plan_compares_ddp_fsdp_and_checkpointing():
    """GPT-2 XL on 8 GPUs: DDP needs 80 GB cards; FSDP fits 40 GB; FSDP with checkpointing 24 GB."""
    for gb, cheapest in ((80, None), (40, "FSDP (--fsdp=True)"),
                         (24, "FSDP+ckpt (--fsdp=True --activation_checkpointing=True)")):
        r = run("train.py", "config/gpt2_xl_gelu.py", "--dry_run=True", "--world_size=8", f"--gpu_memory_gb={gb}")
        assert r.returncode == 0, r.stderr
        table = {line.split()[0]: line.split()[-4:] for line in r.stdout.splitlines() if line.startswith("  ")}
        gib = {part: [float(v) for v in table[part]] for part in ("weights", "AdamW", "total")}
        n = 1_556_840_000
        assert gib["weights"] == pytest.approx([4 * n / 2**30, 4 * n / 8 / 2**30] * 2, abs=0.006)
        assert gib["AdamW"] == pytest.approx([8 * n / 2**30, 8 * n / 8 / 2**30] * 2, abs=0.006)
        ddp, fsdp, ddp_ckpt, fsdp_ckpt = gib["total"]
        assert fsdp < ddp and ddp_ckpt < ddp and fsdp_ckpt < min(fsdp, ddp_ckpt)
        fits = re.search(r"this run \(DDP\): [\d.]+ GiB per GPU, (fits|does NOT fit)", r.stdout)[1]
        assert (fits == "fits") == (ddp <= 0.9 * gb)
        assert (f"the cheapest that fits: {cheapest}" in r.stdout) if cheapest else "cheapest" not in r.stdout
