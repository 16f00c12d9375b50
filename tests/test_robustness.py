"""What a run's folder can take: best.pt is a second copy that a run can resume from; evaluating
a checkpoint leaves its records alone; a resumed run records the settings it changed; a checkpoint
carries its tokenizer, so it samples the same after its dataset is prepared again; upstream
nanoGPT checkpoints sample as GELU models; and every entry point explains itself with --help."""

import importlib
import json
import os
import shutil

import pytest
import torch
from conftest import read_metrics, run, tiny

import configurator
from training import checkpoint, settings, tokenizer

SCRIPTS = {"train.py": "train", "sample.py": "sample", "bench.py": "bench", "sweep.py": "sweep",
           "-m training.hf": "training.hf", "-m tools.gpu_check": "tools.gpu_check"}


@pytest.fixture(scope="module")
def trained(char_dataset, tmp_path_factory):
    """A run on its own copy of the dataset (which tests may prepare again), 20 iterations."""
    tmp = tmp_path_factory.mktemp("robust")
    data = tmp / "data"
    shutil.copytree(char_dataset, data)
    r = run("train.py", *tiny(tmp / "run", data, max_iters=20, eval_interval=5))
    assert r.returncode == 0, r.stderr
    return tmp / "run", data


def copy_of(run_dir, tmp_path):
    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def test_best_pt_is_an_independent_copy_that_a_run_resumes_from(trained, tmp_path):
    out = copy_of(trained[0], tmp_path)
    best = checkpoint.load(str(out / "best.pt"))
    assert os.stat(out / "best.pt").st_nlink == 1 and os.stat(out / "ckpt.pt").st_nlink == 1
    with open(out / "ckpt.pt", "r+b") as f:  # damaged in place
        f.truncate(1000)
    r = run("train.py", *tiny(out, trained[1], max_iters=20, eval_interval=5, init_from="resume"))
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: checkpoint {out}/ckpt.pt is truncated or corrupt; resume from best.pt " \
                               "with --checkpoint=best.pt, or start a new out_dir"
    r = run("train.py", *tiny(out, trained[1], max_iters=25, eval_interval=5, init_from="resume",
                              checkpoint="best.pt"))
    assert r.returncode == 0, r.stderr
    assert f"resuming from {out}/best.pt at iteration {best['iter_num']}" in r.stdout
    assert checkpoint.load(str(out / "ckpt.pt"))["iter_num"] == 25
    with open(out / "best.pt", "r+b") as f:
        f.truncate(1000)
    r = run("sample.py", f"--out_dir={out}", "--checkpoint=best.pt", "--device=cpu")
    assert "resume from ckpt.pt with --checkpoint=ckpt.pt" in r.stderr


def test_evaluating_a_checkpoint_prints_its_losses_and_writes_nothing(trained, tmp_path):
    out = copy_of(trained[0], tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = run("train.py", *tiny(out, trained[1], init_from="resume", eval_only=True, max_iters=20))
    assert r.returncode == 0, r.stderr
    last = [m for m in read_metrics(out) if "val_loss" in m][-1]
    # the same held-out batches and weights as the run's last evaluation: the same losses
    assert f"step 20: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}" in r.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_resumed_run_records_the_settings_it_changed(trained, tmp_path):
    out = copy_of(trained[0], tmp_path)
    r = run("train.py", *tiny(out, trained[1], init_from="resume", max_iters=25, lr_decay_iters=25, eval_interval=5))
    assert r.returncode == 0, r.stderr
    changed = {"max_iters": [20, 25], "lr_decay_iters": [30, 25]}
    assert "resuming from" in r.stdout and "max_iters 20 -> 25; lr_decay_iters 30 -> 25" in r.stdout
    assert [m for m in read_metrics(out) if "resumed_with" in m] == [{"iter": 20, "resumed_with": changed}]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_with"] == [{"iter": 20, "resumed_with": changed}] and summary["config"]["max_iters"] == 25


def test_a_checkpoint_samples_with_its_own_vocabulary(trained, tmp_path):
    out, data = trained
    flags = [f"--out_dir={out}", "--start=The king", "--num_samples=1", "--max_new_tokens=60", "--device=cpu"]
    before = run("sample.py", *flags)
    assert before.returncode == 0, before.stderr
    chars = tokenizer.read_chars(str(data))
    assert checkpoint.load(str(out / "ckpt.pt"))["tokenizer"] == {"kind": "char", "chars": "".join(chars)}
    # the dataset prepared again from text with the same number of characters, in another order
    (data / "meta.json").write_text(tokenizer.vocab_json(chars[::-1]), encoding="utf-8")
    try:
        after = run("sample.py", *flags)
        assert after.returncode == 0 and after.stdout == before.stdout
        r = run("train.py", *tiny(out, data, init_from="resume", max_iters=25))
        assert r.returncode == 1 and "was trained on another vocabulary than" in r.stderr
    finally:
        (data / "meta.json").write_text(tokenizer.vocab_json(chars), encoding="utf-8")


def test_a_nanogpt_checkpoint_samples_as_a_gelu_model(trained, tmp_path):
    out = trained[0]
    ours = run("sample.py", f"--out_dir={out}", "--num_samples=1", "--max_new_tokens=30", "--device=cpu")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    del ckpt["model_args"]["activation"], ckpt["tokenizer"]  # as nanoGPT writes them
    ckpt["model"] = {f"_orig_mod.{k}": v for k, v in ckpt["model"].items()}
    (tmp_path / "nanogpt").mkdir()
    torch.save(ckpt, tmp_path / "nanogpt" / "ckpt.pt")
    theirs = run("sample.py", f"--out_dir={tmp_path / 'nanogpt'}", "--num_samples=1", "--max_new_tokens=30",
                 "--device=cpu")
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout == ours.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_every_option_with_its_default_and_meaning(script):
    r = run(*script.split(), "--help")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith(f"usage: python {script} [CONFIG_FILE ...] [--key=value ...]")
    module = importlib.import_module(SCRIPTS[script])
    # train.py's settings, which bench.py takes too, are documented in settings.py
    sources = [module.__file__] + ([settings.__file__] if script in ("train.py", "bench.py") else [])
    docs = {}
    for path in sources:
        docs.update(configurator.key_docs(path))
    for key, value in module.DEFAULTS.items():
        assert docs.get(key, ("", ""))[1], f"{script}: {key} has no meaning beside it in DEFAULTS"
        line = next(line for line in r.stdout.splitlines() if line.startswith(f"  --{key}="))
        assert line.startswith(f"  --{key}={value!r}") and docs[key][1] in line


def test_report_py_says_how_reports_are_written():
    r = run("-m", "experiment.report", "--help")
    assert r.returncode == 0 and "python sweep.py SWEEPFILE --report_only=True" in r.stdout


def test_a_half_written_metrics_line_does_not_stop_a_resume(trained, tmp_path):
    out = copy_of(trained[0], tmp_path)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"iter": 21, "loss": 2.')  # what a process killed mid-write leaves
    r = run("train.py", *tiny(out, trained[1], init_from="resume", max_iters=22, eval_interval=5))
    assert r.returncode == 0, r.stderr
    metrics = read_metrics(out)  # every line parses again
    assert [m["iter"] for m in metrics if "loss" in m][-2:] == [20, 21]
