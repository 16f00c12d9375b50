"""train.py and sample.py end to end on a tiny model: training lowers the loss, writes the
checkpoint and the run records, resumes from its checkpoint, samples, and logs to wandb offline."""

import json
from pathlib import Path

import pytest
import torch
from conftest import make_text, read_metrics, run, tiny

from model import GPT, GPTConfig
from training import checkpoint


@pytest.fixture(scope="module")
def trained(char_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = run("train.py", *tiny(out, char_dataset, activation="relu", seed=7))
    assert r.returncode == 0, r.stderr
    return out, r


def test_training_lowers_the_loss(trained):
    out, _ = trained
    metrics = read_metrics(out)
    evals = [m for m in metrics if "val_loss" in m]
    steps = [m for m in metrics if "loss" in m]
    assert [m["iter"] for m in evals] == [0, 10, 20, 30]
    assert [m["iter"] for m in steps] == list(range(30))
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5
    for m in steps:
        assert m["ms_per_iter"] > 0 and m["tokens_per_s"] > 0 and m["lr"] > 0


def test_checkpoint_and_records(trained, char_dataset):
    out, _ = trained
    assert {p.name for p in out.iterdir()} >= {"ckpt.pt", "best.pt", "metrics.jsonl", "summary.json", "config.json",
                                          "analysis.json"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    ckpt = checkpoint.load(str(out / "ckpt.pt"))
    assert ckpt["iter_num"] == 30 and ckpt["model_args"]["activation"] == "relu"
    assert ckpt["config"]["seed"] == 7 and "optimizer" in ckpt
    assert "rng" not in ckpt  # every random draw is keyed by (seed, iteration, micro-step): no state to carry
    summary = json.loads((out / "summary.json").read_text())
    evals = [m for m in read_metrics(out) if "val_loss" in m]
    model = GPT(GPTConfig(**ckpt["model_args"]))
    assert summary["complete"] is True
    assert summary["activation"] == "relu" and summary["seed"] == 7
    assert summary["n_params"] == model.get_num_params()
    assert summary["best_val_loss"] == min(m["val_loss"] for m in evals)
    assert summary["final_val_loss"] == evals[-1]["val_loss"]
    assert summary["iters"] == 30 and summary["tokens_seen"] == 30 * 4 * 32 * 2
    assert summary["tokens_per_s"] > 0 and summary["wall_s"] > 0
    assert summary["torch"] == torch.__version__ and summary["config"]["dataset"] == str(char_dataset)
    assert json.loads((out / "config.json").read_text())["activation"] == "relu"
    # best.pt holds the best evaluation's weights
    best = checkpoint.load(str(out / "best.pt"))
    assert best["best_val_loss"] == summary["best_val_loss"]


def test_resume_continues_from_iter_num(trained, char_dataset, tmp_path):
    out, _ = trained
    r = run("train.py", *tiny(out, char_dataset, activation="relu", seed=7, max_iters=35, lr_decay_iters=30,
                              init_from="resume"))
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout and "at iteration 30" in r.stdout
    steps = [m["iter"] for m in read_metrics(out) if "loss" in m]
    assert steps == list(range(35))  # no iteration twice, none missing
    assert checkpoint.load(str(out / "ckpt.pt"))["iter_num"] == 35


def test_score_iters_score_the_model_of_that_iteration(char_dataset, tmp_path):
    """Scoring the whole split at iterations 10 and 20 changes nothing of the training, and each score
    is the one a run ending there (same schedule) gives its final model."""
    summaries, metrics = {}, {}
    for name, more in (("plain", {}), ("scored", dict(score_iters="[10, 20]")), ("short", dict(max_iters=20))):
        r = run("train.py", *tiny(tmp_path / name, char_dataset, **more))
        assert r.returncode == 0, r.stderr
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
        metrics[name] = [{k: v for k, v in m.items() if k not in ("wall_s", "ms_per_iter", "tokens_per_s")}
                         for m in read_metrics(tmp_path / name)]
    scores = {m["iter"]: m.pop("full_val_loss") for m in metrics["scored"] if "full_val_loss" in m}
    assert metrics["scored"] == metrics["plain"]
    assert set(scores) == {10, 20}
    at = summaries["scored"]["full_val_loss_at"]
    assert at == {"10": scores[10], "20": scores[20], "30": summaries["plain"]["final_full_val_loss"]}
    assert at["20"] == summaries["short"]["final_full_val_loss"]


def test_sample_prints_text(trained):
    """Char-level: each sample is the prompt and exactly max_new_tokens characters of the training
    text's vocabulary; the seed fixes the text, and each sample is drawn anew."""
    out, _ = trained

    def samples(seed):
        r = run("sample.py", f"--out_dir={out}", "--start=The king", "--num_samples=2", "--max_new_tokens=40",
                "--device=cpu", f"--seed={seed}")
        assert r.returncode == 0, r.stderr
        printed = r.stdout.split("\n---------------\n")
        assert len(printed) == 3 and printed[2] == ""
        return printed[:2]

    first = samples(1)
    vocabulary = set(make_text())  # the corpus char_dataset was prepared from
    for text in first:
        assert text.startswith("The king") and len(text) == len("The king") + 40
        assert set(text) <= vocabulary
    assert first[0] != first[1]
    assert samples(1) == first and samples(2) != first


def test_wandb_offline_run_holds_the_metrics(char_dataset, tmp_path):
    from wandb.proto import wandb_internal_pb2

    r = run("train.py", *tiny(tmp_path, char_dataset, max_iters=10, wandb_log=True, wandb_group="g1"))
    assert r.returncode == 0, r.stderr
    files = list(Path(tmp_path).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history, run_record = [], None
    for rec in wandb_records(files[0], wandb_internal_pb2.Record):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "run":
            run_record = rec.run
    assert run_record.display_name == "gelu-seed1337" and run_record.run_group == "g1"
    config = {i.key: json.loads(i.value_json) for i in run_record.config.update}
    assert config["activation"] == "" and config["max_iters"] == 10  # the settings as given
    assert config["decided"]["model"]["activation"] == "gelu" and config["decided"]["device"] == "cpu"
    logged = read_metrics(tmp_path)
    # every record of metrics.jsonl reached wandb, at its iteration (wall time is wandb's _runtime)
    for m in logged:
        values = {k: v for k, v in m.items() if k not in ("iter", "wall_s")}
        step = next(h for h in history if h["_step"] == m["iter"] and all(k in h for k in values))
        assert {k: step[k] for k in values} == pytest.approx(values)


def wandb_records(path, record_type):
    """Records of a .wandb file: a 7-byte header, then LevelDB-style blocks of 32 KiB holding
    chunks (crc32 4 bytes, length 2, type 1: full, first, middle, last)."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = record_type()
            rec.ParseFromString(buf)
            yield rec
            buf = b""
