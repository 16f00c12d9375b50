"""
Guards sweep.py and report.py: a tiny real sweep (train.py subprocesses on a small char corpus) makes
a report that agrees with its run records; a sweep stopped mid-way resumes without redoing finished
runs; a failed run is reported and the sweep goes on; every sweep file in config/ resolves; the
statistics match values computed by hand (closed forms and printed t tables); and every committed
report under results/, and the study, is what its command writes from the committed records.
"""

import csv
import glob
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import pytest

import sweep
from experiment import evidence, stats
from training.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, "config", "train_shakespeare_char_cpu.py")
TINY = dict(max_iters=4, eval_interval=2, eval_iters=2, log_interval=1, n_layer=1, n_head=2, n_embd=16,
            block_size=16, batch_size=4, device="cpu", compile=False)


def write_sweep(tmp, dataset, **keys):
    keys = {"name": "tiny", "base": BASE, "out_dir": str(tmp / "results"), "threads": 1, **keys}
    keys["overrides"] = {**TINY, "dataset": str(dataset), **keys.get("overrides", {})}
    path = tmp / f"sweep_{keys['name']}.py"
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in keys.items()))
    return str(path)


def run_sweep(path, *flags):
    """sweep.py's main in this process (its runs are train.py subprocesses all the same)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = sweep.main([path, *flags])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def summaries(run_dir):
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*", "summary.json"))):
        with open(path) as f:
            out[os.path.basename(os.path.dirname(path))] = json.load(f)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, char_dataset):
    """gelu and relu x seeds 1, 2, one run at a time: stopped (SIGINT) once the first run is
    complete, then run again to the end. Returns what the test of resumption needs."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = write_sweep(tmp, char_dataset, activations=["gelu", "relu"], seeds=[1, 2], parallel=1)
    runs_dir = str(tmp / "results" / "tiny" / "runs")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "sweep.py"), path], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not summaries(runs_dir) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stopped_output, _ = proc.communicate(timeout=120)
    before = {name: os.path.getmtime(os.path.join(runs_dir, name, "summary.json")) for name in summaries(runs_dir)}
    resumed = run_sweep(path)
    return SimpleNamespace(path=path, runs_dir=runs_dir, out_dir=os.path.dirname(runs_dir), stopped=proc,
                           stopped_output=stopped_output, before=before, resumed=resumed)


def test_stopped_sweep_resumes_without_redoing_finished_runs(tiny):
    assert tiny.stopped.returncode == 128 + signal.SIGINT, tiny.stopped_output
    assert 1 <= len(tiny.before) < 4, "the sweep was stopped after its first run and before its last"
    assert tiny.resumed.returncode == 0, tiny.resumed.stdout + tiny.resumed.stderr
    assert f"{len(tiny.before)} already complete" in tiny.resumed.stdout
    after = summaries(tiny.runs_dir)
    assert sorted(after) == ["gelu-s1", "gelu-s2", "relu-s1", "relu-s2"]
    assert all(s["complete"] for s in after.values())
    for name, mtime in tiny.before.items():
        assert os.path.getmtime(os.path.join(tiny.runs_dir, name, "summary.json")) == mtime, f"{name} was redone"

    # A run killed after its last checkpoint continues from ckpt.pt; the others stay untouched.
    os.remove(os.path.join(tiny.runs_dir, "relu-s2", "summary.json"))
    mtimes = {n: os.path.getmtime(os.path.join(tiny.runs_dir, n, "summary.json")) for n in summaries(tiny.runs_dir)}
    again = run_sweep(tiny.path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 already complete; 1 to run" in again.stdout
    assert "relu-s2 finished in" in again.stdout and "(resumed)" in again.stdout
    assert "ETA" not in again.stdout  # no estimate from the rest of a resumed run
    with open(os.path.join(tiny.runs_dir, "relu-s2", "train.log")) as f:
        assert "resuming from" in f.read()
    assert summaries(tiny.runs_dir)["relu-s2"]["complete"]
    for name, mtime in mtimes.items():
        assert os.path.getmtime(os.path.join(tiny.runs_dir, name, "summary.json")) == mtime


def report_rows(text, activation):
    """The activation's row in each of the report's tables, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith(f"| `{activation}` |")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_report_agrees_with_run_records(tiny):
    assert tiny.resumed.returncode == 0
    records = summaries(tiny.runs_dir)
    with open(os.path.join(tiny.out_dir, "runs.csv")) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run"] for r in rows) == sorted(records)
    for row in rows:
        s = records[row["run"]]
        assert (row["activation"], int(row["seed"])) == (s["activation"], s["seed"])
        for key in ("best_val_loss", "final_val_loss", "best_full_val_loss", "final_full_val_loss"):
            assert float(row[key]) == s[key]
        assert int(row["n_params"]) == s["n_params"]
        assert float(row["wall_s"]) == s["wall_s"]

    with open(os.path.join(tiny.out_dir, "report.md")) as f:
        text = f.read()
    # the score: the best model on the whole validation split
    gelu = [records[f"gelu-s{i}"]["best_full_val_loss"] for i in (1, 2)]
    relu = [records[f"relu-s{i}"]["best_full_val_loss"] for i in (1, 2)]
    mean, std = sum(gelu) / 2, abs(gelu[0] - gelu[1]) / math.sqrt(2)
    row = report_rows(text, "gelu")[0]
    assert row[1] == "2"
    assert row[2] == f"{mean:.4f} ± {std:.4f}"
    assert row[7] == f"{records['gelu-s1']['n_params']:,}"
    half = 12.7062 * std / math.sqrt(2)  # t(0.975, df=1) from a printed table
    lo, hi = (float(v) for v in row[3].strip("[]").split(","))
    assert lo == pytest.approx(mean - half, abs=2e-4) and hi == pytest.approx(mean + half, abs=2e-4)
    diff = (relu[0] - gelu[0] + relu[1] - gelu[1]) / 2
    assert report_rows(text, "relu")[0][4] == f"{diff:+.4f}"
    assert "- GELU vs ReLU: " in text and "paired t-test over 2 seeds" in text
    # ReLU outputs exact zeros for every negative input; exact GELU only at 0.
    relu_units, gelu_units = report_rows(text, "relu")[1], report_rows(text, "gelu")[1]
    assert float(relu_units[-2].rstrip("%")) > 10 and gelu_units[-2] == "0.0%"
    assert "python sweep.py " in text and "--report_only=True" in text
    # loss.png: one row of two panels per cell (one cell here, 12 x 4 inches at 100 dpi), with a curve
    # in each activation's color (matplotlib's C0, C1) in both panels. Against iteration the curves
    # span the panel; against wall time, how far each reaches depends on the machine's load.
    image = plt.imread(os.path.join(tiny.out_dir, "loss.png"))[..., :3]
    assert image.shape == (400, 1200, 3)
    for color in ("C0", "C1"):
        drawn = (abs(image - matplotlib.colors.to_rgb(color)).sum(-1) < 0.05).sum(0) > 0
        assert drawn[:600].sum() > 20 and drawn[600:].sum() > 0, color  # columns the curve crosses


def test_report_only_rewrites_the_same_report(tiny):
    report_path = os.path.join(tiny.out_dir, "report.md")
    with open(report_path) as f:
        first = f.read()
    out = run_sweep(tiny.path, "--report_only=True")
    assert out.returncode == 0, out.stderr
    assert "GELU vs ReLU" in out.stdout  # the verdict is printed
    with open(report_path) as f:
        assert f.read() == first


def test_failed_run_is_reported_and_the_sweep_goes_on(tmp_path, char_dataset):
    # A context longer than the validation text: that run fails inside train.py, when it opens the
    # data (no config check can know); the next one still runs.
    path = write_sweep(tmp_path, char_dataset, name="fails", activations=["gelu"], seeds=[1],
                       grid={"block_size": [100000, 16]}, parallel=1)
    out = run_sweep(path)
    assert out.returncode == 1
    log = os.path.join(str(tmp_path), "results", "fails", "runs", "gelu-block_size100000-s1", "train.log")
    assert f"gelu-block_size100000-s1 FAILED (exit 1); log: {log}" in out.stdout
    assert "error: 1 run(s) failed: gelu-block_size100000-s1" in out.stderr
    assert summaries(os.path.dirname(os.path.dirname(log)))["gelu-block_size16-s1"]["complete"]
    with open(os.path.join(str(tmp_path), "results", "fails", "report.md")) as f:
        assert "not complete: gelu-block_size100000-s1" in f.read()


def test_bad_run_settings_stop_the_sweep_before_anything_launches(tmp_path, char_dataset):
    path = write_sweep(tmp_path, char_dataset, name="early", activations=["gelu"], seeds=[1],
                       grid={"n_head": [3, 2]})
    with pytest.raises(UserError, match=r"run gelu-n_head3-s1: n_embd=16 is not divisible by n_head=3"):
        run_sweep(path)
    assert not os.path.exists(os.path.join(str(tmp_path), "results", "early"))
    path = write_sweep(tmp_path, "no_such_dataset", name="nodata", activations=["gelu"], seeds=[1])
    with pytest.raises(UserError, match=r"dataset 'no_such_dataset' has no .*train.bin; prepare it first"):
        run_sweep(path)
    assert not os.path.exists(os.path.join(str(tmp_path), "results", "nodata"))


@pytest.mark.parametrize("keys, message", [
    (dict(activations="gelu"), "activations="),
    (dict(activations=["relu"]), "reference='gelu' is not among"),
    (dict(overrides={"seed": 3}), "which the sweep sets for each run"),
    (dict(overrides={"max_iter": 3}), "not a train.py key"),
    (dict(grid={"learning_rate": []}), "non-empty list"),
    (dict(seeds=[1, 1]), "distinct integers"),
])
def test_sweep_file_mistakes_are_user_errors(tmp_path, keys, message):
    path = write_sweep(tmp_path, "unused", **{"activations": ["gelu"], **keys})
    with pytest.raises(UserError, match=re.escape(message)):
        sweep.load_sweep([path])


def test_bad_value_type_names_the_run(tmp_path):
    s = sweep.load_sweep([write_sweep(tmp_path, "unused", activations=["gelu"], overrides={"max_iters": 2.5})])
    with pytest.raises(UserError, match=r"run gelu-s1: .*max_iters=2.5"):
        sweep.check_runs(s, sweep.plan(s))


def test_bad_value_names_the_run_before_anything_launches(tmp_path):
    s = sweep.load_sweep([write_sweep(tmp_path, "unused", activations=["gelu"], overrides={"dropout": 1.5})])
    with pytest.raises(UserError, match=r"run gelu-s1: dropout=1.5 must be in \[0, 1\)"):
        sweep.check_runs(s, sweep.plan(s))


def test_run_folder_made_with_other_settings_is_refused(tmp_path):
    s = sweep.load_sweep([write_sweep(tmp_path, "unused", activations=["gelu"])])
    run = sweep.plan(s)[0]
    os.makedirs(run.dir)
    with open(os.path.join(run.dir, "config.json"), "w") as f:
        json.dump({**run.keys, "max_iters": 2, "init_from": "resume"}, f)
    with pytest.raises(UserError, match=r"was made with max_iters=2 but the sweep asks for 4"):
        sweep.check_runs(s, [run])


def test_entry_point_prints_user_errors(tmp_path):
    path = write_sweep(tmp_path, "unused", activations=["gelu", "tanh"])
    out = subprocess.run([sys.executable, os.path.join(ROOT, "sweep.py"), path], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr == ("error: run tanh-s1: unknown activation 'tanh'; valid: gelu, gelu_tanh, relu, relu2, silu, "
                          "none, swiglu, geglu, reglu, bilinear\n")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "config", "sweep_*.py"))))
def test_sweep_files_resolve(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # base paths are relative to the repository root
    s = sweep.load_sweep([path, f"--out_dir={str(tmp_path)!r}"])
    if not os.path.isfile(s.base):
        pytest.skip(f"{s.base} is not in the repository yet")
    sweep.check_runs(s, sweep.plan(s))


def test_run_names():
    s = SimpleNamespace(name="x", out_dir="r", activations=["gelu", "none"], seeds=[1], overrides={},
                        heldout_seeds=[5, 6], fixed_rates={"none": 2e-3},
                        grid={"size": {"small": dict(n_embd=64)}, "learning_rate": [1e-3, 3e-4]})
    runs = sweep.plan(s)
    assert [r.name for r in runs] == ["gelu-small-lr1e-3-s1", "gelu-small-lr3e-4-s1",  # selection
                                      "none-small-lr2e-3-s5", "none-small-lr2e-3-s6"]  # a fixed rate: judges only
    assert runs[1].keys == dict(n_embd=64, learning_rate=3e-4, activation="gelu", seed=1)
    assert runs[1].axes == dict(size="small", learning_rate=3e-4)
    assert [sweep.label(v) for v in (0.2, 6e-4, 1.5e-3, 128)] == ["0.2", "6e-4", "1.5e-3", "128"]


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory, char_dataset):
    tmp = tmp_path_factory.mktemp("two")
    path = write_sweep(tmp, char_dataset, name="two", activations=["gelu", "relu"], seeds=[1],
                       heldout_seeds=[2], grid={"learning_rate": [1e-4, 3e-2]}, parallel=2)
    return SimpleNamespace(tmp=tmp, path=path, out=run_sweep(path))


def test_heldout_seeds_run_at_each_activations_chosen_rate_only(two_stage):
    """Two stages: seed 1 at every rate picks each activation's rate by its score (the whole
    validation split); seed 2 runs there only, and the report judges on seed 2 alone."""
    tmp_path, out = two_stage.tmp, two_stage.out
    assert out.returncode == 0, out.stdout + out.stderr
    done = summaries(os.path.join(str(tmp_path), "results", "two", "runs"))
    best = {a: min((1e-4, 3e-2), key=lambda lr: done[f"{a}-lr{sweep.label(lr)}-s1"]["best_full_val_loss"])
            for a in ("gelu", "relu")}
    assert sorted(done) == sorted([f"{a}-lr{sweep.label(lr)}-s1" for a in ("gelu", "relu") for lr in (1e-4, 3e-2)]
                                  + [f"{a}-lr{sweep.label(best[a])}-s2" for a in ("gelu", "relu")])
    with open(os.path.join(str(tmp_path), "results", "two", "report.md")) as f:
        text = f.read()
    assert "lowest mean score over seeds 1, which ran at every rate" in text
    assert "**Judging.** Seeds 2 ran at the chosen rates only" in text
    gelu = report_rows(text, "gelu")[-3]  # the chosen-rate table (then the rate fits and the hidden units)
    assert gelu[1] == f"{best['gelu']:g}" and gelu[2] == "1"
    assert "GELU vs ReLU: **no verdict**: the chosen rate of `gelu`" in text  # a two-rate grid is all edges


def test_fixed_rates_scored_along_the_run(tmp_path, char_dataset):
    """Every rate fixed, each run scored at iteration 2 as well as its end: the sweep runs the judging
    seeds alone, claims no selection, and gives the verdicts at iteration 2 from the scores there."""
    path = write_sweep(tmp_path, char_dataset, name="fx", activations=["gelu", "relu"], seeds=[1],
                       heldout_seeds=[3, 4], fixed_rates={"gelu": 3e-3, "relu": 1e-3},
                       grid={"learning_rate": [1e-3, 3e-3]}, overrides=dict(score_iters=[2]))
    out = run_sweep(path)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = tmp_path / "results" / "fx"
    done = summaries(str(folder / "runs"))
    assert sorted(done) == ["gelu-lr3e-3-s3", "gelu-lr3e-3-s4", "relu-lr1e-3-s3", "relu-lr1e-3-s4"]
    text = (folder / "report.md").read_text()
    assert "**Selection.**" not in text and "### The score against the learning rate" not in text
    assert not (folder / "rates.png").exists()
    along = text.split("### The verdicts along the run")[1]
    at2 = along.split("- at iteration 2:")[1].split("- at iteration 4:")[0]
    gaps = [done[f"gelu-lr3e-3-s{s}"]["full_val_loss_at"]["2"] - done[f"relu-lr1e-3-s{s}"]["full_val_loss_at"]["2"]
            for s in (3, 4)]
    assert f"GELU − ReLU = {sum(gaps) / 2:+.4f}" in at2
    at4 = along.split("- at iteration 4:")[1]
    gaps = [done[f"gelu-lr3e-3-s{s}"]["final_full_val_loss"] - done[f"relu-lr1e-3-s{s}"]["final_full_val_loss"]
            for s in (3, 4)]
    assert f"GELU − ReLU = {sum(gaps) / 2:+.4f}" in at4


def test_a_sweep_in_progress_reports_its_selection_before_any_judge(two_stage, tmp_path):
    """Selection complete, no held-out run yet (a sweep stopped between its stages): the report
    shows the choice, names the judging runs still missing and gives no verdict."""
    runs = os.path.join(str(two_stage.tmp), "results", "two", "runs")
    shutil.copytree(runs, tmp_path / "two" / "runs", ignore=lambda d, names: [n for n in names if n.endswith("-s2")])
    out = run_sweep(two_stage.path, "--report_only=True", f"--out_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "two" / "report.md").read_text()
    assert "runs: 4 of 6 complete; not complete: " in text
    assert re.search(r"No judging run is complete yet at the chosen rate of `gelu` \(\S+\), `relu` \(\S+\)\.", text)
    assert "### Verdicts" not in text and "GELU vs ReLU" not in out.stdout
    import study  # and a study of it tables the chosen rates, with no score where none is judged yet

    sweep_file = tmp_path / "two.py"
    sweep_file.write_text(re.sub(r"(?m)^out_dir = .*$", f"out_dir = {str(tmp_path)!r}",
                                 Path(two_stage.path).read_text()))
    (tmp_path / "st.py").write_text(f"name = 'st'\nsizes = [{str(sweep_file)!r}]\ncompare = ['relu']\n"
                                    f"out_dir = {str(tmp_path)!r}\n")
    with redirect_stdout(io.StringIO()):
        assert study.main([str(tmp_path / "st.py")]) == 0
    assert len(re.findall(r": no judging run complete yet", (tmp_path / "st" / "study.md").read_text())) == 2


def test_the_study_tables_what_the_sweeps_recorded(two_stage, tiny, tmp_path):
    """study.py over a two-stage sweep (a size) and the gelu/relu sweep (a length), from their records."""
    import study

    path = tmp_path / "study.py"
    path.write_text(f"name = 'st'\nsizes = [{two_stage.path!r}]\nlength = {tiny.path!r}\nat = [2, 4]\n"
                    f"compare = ['relu']\nout_dir = {str(tmp_path)!r}\n")
    out = io.StringIO()
    with redirect_stdout(out):
        assert study.main([str(path)]) == 0
    text = (tmp_path / "st" / "study.md").read_text()
    two = summaries(os.path.join(str(two_stage.tmp), "results", "two", "runs"))
    best = {a: min((1e-4, 3e-2), key=lambda lr: two[f"{a}-lr{sweep.label(lr)}-s1"]["best_full_val_loss"])
            for a in ("gelu", "relu")}
    size = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| two |")]
    for cell, a in zip(size[0][2:4], ("gelu", "relu")):  # judged by the held-out seed 2 alone
        assert cell == f"{best[a]:g}: {two[f'{a}-lr{sweep.label(best[a])}-s2']['best_full_val_loss']:.4f} (1 seed)"
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if re.match(r"\| [24] \|", line)}

    def evaluation(run, it):
        with open(os.path.join(tiny.runs_dir, run, "metrics.jsonl")) as f:
            return next(r for r in map(json.loads, f) if r["iter"] == it and "val_loss" in r)

    for it in (2, 4):
        e = {(a, seed): evaluation(f"{a}-s{seed}", it) for a in ("gelu", "relu") for seed in (1, 2)}
        diff = sum(e["relu", seed]["val_loss"] - e["gelu", seed]["val_loss"] for seed in (1, 2)) / 2
        assert f"{diff:+.4f} [" in rows[str(it)]
        val = sum(e["gelu", seed]["val_loss"] for seed in (1, 2)) / 2
        gap = sum(e["gelu", seed]["val_loss"] - e["gelu", seed]["train_loss"] for seed in (1, 2)) / 2
        assert f"| {val:.4f} ({gap:+.3f}) |" in rows[str(it)]
    for name in ("size.png", "lr.png", "length.png"):
        assert plt.imread(tmp_path / "st" / name).shape[2] in (3, 4)


@pytest.mark.parametrize("keys, message", [
    (dict(heldout_seeds=[2]), "no learning_rate axis with 2 or more values"),
    (dict(heldout_seeds=[1], grid={"learning_rate": [1e-3, 3e-3]}), "must be lists of distinct integers"),
    (dict(fixed_rates={"relu": 1e-3}, grid={"learning_rate": [1e-3, 3e-3]}), "must map activations of the sweep"),
    (dict(fixed_rates={"gelu": 0}, grid={"learning_rate": [1e-3, 3e-3]}), "learning rates > 0"),
    (dict(margin=-0.01), "must be a loss difference in [0, 1)"),
])
def test_two_stage_mistakes(tmp_path, keys, message):
    with pytest.raises(UserError, match=re.escape(message)):
        sweep.load_sweep([write_sweep(tmp_path, "unused", activations=["gelu"], **keys)])


def records_by_seed(activation, losses):
    """Records as report.load_records makes them, for {seed: best val loss}, in the given order."""
    return [SimpleNamespace(run=SimpleNamespace(activation=activation, seed=seed, name=f"{activation}-s{seed}"),
                            best=loss, subset=loss, evals=[{"iter": 0, "val_loss": loss}], analysis=None,
                            summary=dict(n_params=100, tokens_per_s=1.0, final_val_loss=loss))
            for seed, loss in losses.items()]


def test_differences_are_paired_by_seed_not_by_position():
    """relu's seed 3 failed and its runs come in another order: each difference must still be
    relu minus gelu of the same seed."""
    gelu = records_by_seed("gelu", {1: 2.00, 2: 2.10, 3: 2.50, 4: 2.20})
    relu = records_by_seed("relu", {4: 2.15, 2: 2.02, 1: 1.97})
    d = [2.15 - 2.20, 2.02 - 2.10, 1.97 - 2.00]  # seeds 4, 2, 1
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    test = stats.paired_t(*evidence.pair(relu, gelu))
    assert test.n == 3 and test.mean == pytest.approx(mean) and test.sd == pytest.approx(sd)
    table = evidence.comparison_table({"gelu": gelu, "relu": relu}, "gelu")
    row = report_rows(table, "relu")[0]
    assert row[1] == "3" and row[4] == f"{mean:+.4f}"
    assert "paired t-test over 3 seeds" in evidence.verdict("gelu", "relu", {"gelu": gelu, "relu": relu}, 0.0)


def regenerate(text, lead, script, out_dir):
    """Run the regenerate command a committed report or study names after `lead`, writing into out_dir."""
    command = shlex.split(re.search(lead + r": `(.+?)`", text)[1])
    assert command[:2] == ["python", script]
    r = subprocess.run([sys.executable, *command[1:], f"--out_dir={out_dir}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


COMMITTED = sorted(glob.glob(os.path.join(ROOT, "results", "*", "report.md")))


@pytest.mark.parametrize("committed", COMMITTED, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_committed_reports_regenerate_from_their_records(committed, tmp_path):
    """Each report.md and runs.csv under results/ is what its own regenerate command writes from the
    committed run records today (into a scratch folder: the committed files are not touched)."""
    folder = os.path.dirname(committed)
    with open(committed) as f:
        text = f.read()
    name = os.path.basename(folder)
    shutil.copytree(os.path.join(folder, "runs"), tmp_path / name / "runs")
    regenerate(text, "from the run records", "sweep.py", tmp_path)
    for file in ("report.md", "runs.csv"):
        with open(os.path.join(folder, file)) as f, open(tmp_path / name / file) as g:
            want, got = f.read(), g.read()
        if file == "report.md":  # the regenerate line names the scratch folder
            got = got.replace(f" --out_dir={tmp_path}", "")
        assert got == want, f"{name}/{file} differs from its regeneration"


STUDIES = sorted(glob.glob(os.path.join(ROOT, "results", "*", "study.md")))


@pytest.mark.parametrize("committed", STUDIES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_committed_studies_regenerate_from_the_sweeps_records(committed, tmp_path):
    with open(committed) as f:
        want = f.read()
    regenerate(want, "from the sweeps' run records", "study.py", tmp_path)
    name = os.path.basename(os.path.dirname(committed))
    got = (tmp_path / name / "study.md").read_text().replace(f" --out_dir={tmp_path}", "")
    assert got == want, f"{name}/study.md differs from its regeneration"


def test_the_study_tables_each_widths_best_rate_under_each_parametrization(tmp_path, char_dataset):
    """A transfer sweep (widths x parametrizations x rates): the study names each width's best rate
    (lowest score over the seeds), how many grid steps it moves across widths, and draws the curves."""
    import study

    grid = {"width": {"w16": dict(n_embd=16, n_head=2), "w32": dict(n_embd=32, n_head=2)},
            "param": {"sp": dict(mup_base_width=0), "mup": dict(mup_base_width=16)},
            "learning_rate": [1e-3, 3e-2]}
    path = write_sweep(tmp_path, char_dataset, name="tr", activations=["gelu"], seeds=[1, 2], grid=grid, parallel=2)
    assert run_sweep(path).returncode == 0
    (tmp_path / "st.py").write_text(f"name = 'st'\ntransfer = {[path]!r}\nout_dir = {str(tmp_path)!r}\n")
    with redirect_stdout(io.StringIO()):
        assert study.main([str(tmp_path / "st.py")]) == 0
    text = (tmp_path / "st" / "study.md").read_text()
    done = summaries(os.path.join(str(tmp_path), "results", "tr", "runs"))
    def score(w, param, lr, seed):
        return done[f"gelu-{w}-{param}-lr{sweep.label(lr)}-s{seed}"]["best_full_val_loss"]

    best = {}
    for param in ("sp", "mup"):
        best[param] = {w: min((1e-3, 3e-2), key=lambda lr: score(w, param, lr, 1) + score(w, param, lr, 2))
                       for w in ("w16", "w32")}
        row = [c.strip() for c in next(line for line in text.splitlines()
                                       if line.startswith(f"| `gelu` | {param} |")).strip("|").split("|")]
        for cell, w in zip(row[2:4], ("w16", "w32")):
            mean = (score(w, param, best[param][w], 1) + score(w, param, best[param][w], 2)) / 2
            assert cell == f"{best[param][w]:g} (edge) ({mean:.4f})"  # a two-rate grid is all edges
        moves = abs([1e-3, 3e-2].index(best[param]["w16"]) - [1e-3, 3e-2].index(best[param]["w32"]))
        assert row[4] == str(moves)
    # the checks of µP, worked out from the records: w32 minus w16 at w16's best rate, paired by seed
    rate = best["mup"]["w16"]
    d = [score("w32", "mup", rate, seed) - score("w16", "mup", rate, seed) for seed in (1, 2)]
    mean, se = sum(d) / 2, abs(d[0] - d[1]) / 2  # for two seeds, sd / sqrt(2) = |d1 - d2| / 2
    versus = sum(score("w32", "mup", best["mup"]["w32"], seed) - score("w32", "sp", best["sp"]["w32"], seed)
                 for seed in (1, 2)) / 2
    row = [c.strip() for c in next(line for line in text.split("## Does µP earn its place?")[1].splitlines()
                                   if line.startswith("| `gelu` |")).strip("|").split("|")]
    assert row[1] == f"{rate:g}" and row[2] == row[3] == f"{mean:+.4f} ({mean / se:+.1f})"
    assert row[5] == f"{versus:+.4f}"
    fails = [name for name, ok in (("wider better", mean / se < -2), ("rate transfers", moves <= 1),
                                   ("level with SP", versus <= 0.02)) if not ok]
    assert row[6] == (", ".join(fails) or "all hold")
    assert plt.imread(tmp_path / "st" / "transfer.png").shape[2] in (3, 4)


def test_a_study_of_a_transfer_sweep_half_done_claims_nothing_it_has_not_measured(tmp_path, char_dataset):
    """Before the widest width and the standard parametrization have run, the study shows what has
    (the µP rows, each step between measured widths) and fails the checks that need the rest."""
    import study

    grid = {"width": {w: dict(n_embd=int(w[1:]), n_head=2) for w in ("w16", "w32", "w64")},
            "param": {"mup": dict(mup_base_width=16), "sp": dict(mup_base_width=0)}, "learning_rate": [1e-3, 1e-2]}
    path = write_sweep(tmp_path, char_dataset, name="half", activations=["gelu"], seeds=[1, 2], grid=grid)
    scores = {("w16", 1): 2.0, ("w16", 2): 2.1, ("w32", 1): 1.9, ("w32", 2): 1.96}
    for (w, seed), score in scores.items():
        for lr, worse in ((1e-3, 0.5), (1e-2, 0.0)):
            fake_run(tmp_path / "results" / "half" / "runs" / f"gelu-{w}-mup-lr{sweep.label(lr)}-s{seed}", "gelu",
                     lr, seed, best_full=score + worse)
    (tmp_path / "st.py").write_text(f"name = 'st'\ntransfer = {[path]!r}\nout_dir = {str(tmp_path)!r}\n")
    with redirect_stdout(io.StringIO()):
        assert study.main([str(tmp_path / "st.py")]) == 0
    text = (tmp_path / "st" / "study.md").read_text()
    assert "| `gelu` | sp |" not in text
    row = [c.strip() for c in next(line for line in text.split("## Does µP earn its place?")[1].splitlines()
                                   if line.startswith("| `gelu` |")).strip("|").split("|")]
    assert row[1] == "0.01" and row[2] == "-0.1200 (-6.0)"  # w32 − w16 by seed: −0.10, −0.14 (SE 0.02)
    assert row[3] == "n/a" and row[5] == "n/a" and row[6] == "wider better, level with SP"


def fake_run(folder, activation, lr, seed, best_full, final_val=None, subset=None):
    """A complete run's records as train.py writes them, with the scores given."""
    folder.mkdir(parents=True)
    subset = best_full if subset is None else subset
    summary = dict(complete=True, activation=activation, seed=seed, n_params=100, best_val_loss=subset,
                   final_val_loss=subset if final_val is None else final_val, best_full_val_loss=best_full,
                   final_full_val_loss=best_full, full_val_tokens=1000, iters=10, tokens_seen=100, tokens_per_s=1.0,
                   wall_s=1.0, world_size=1, device="cpu", torch="x", git="x", train_tokens=100,
                   config=dict(eval_iters=1, batch_size=1, block_size=1, learning_rate=lr))
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "metrics.jsonl").write_text(json.dumps(dict(iter=10, train_loss=subset, val_loss=subset, lr=lr,
                                                          wall_s=1.0)) + "\n")


def selection_sweep(tmp_path, scores, heldout=(3,)):
    """A sweep of gelu over three rates, seeds 1 and 2 selecting and `heldout` judging, whose runs
    have the records `scores` gives: {(lr, seed): dict(best_full=..., ...)}."""
    s = SimpleNamespace(name="sel", out_dir=str(tmp_path), activations=["gelu"], seeds=[1, 2],
                        heldout_seeds=list(heldout), fixed_rates={}, overrides={}, reference="gelu", margin=0.0,
                        grid={"learning_rate": [1e-3, 3e-3, 1e-2]})
    for (lr, seed), score in scores.items():
        fake_run(tmp_path / "sel" / "runs" / f"gelu-lr{sweep.label(lr)}-s{seed}", "gelu", lr, seed, **score)
    return s


def test_the_rate_is_chosen_by_the_best_models_whole_split_score(tmp_path):
    """Not by the final val loss, nor by the periodic sample's, where the whole split's is recorded."""
    scores = {(lr, seed): dict(best_full=full, final_val=final, subset=subset)
              for seed in (1, 2)
              for lr, full, final, subset in ((1e-3, 1.90, 1.80, 1.80), (3e-3, 1.70, 1.95, 1.85), (1e-2, 1.80, 1.70,
                                                                                                     1.70))}
    s = selection_sweep(tmp_path, scores)
    records, _ = evidence.load_records(sweep.plan(s))
    assert evidence.choice(records, s)["gelu"].rate == 3e-3


def test_judging_seeds_take_no_part_in_the_choice(tmp_path):
    """Held-out runs at other rates (say, left from an earlier sweep) do not move the choice, and the
    comparison at the chosen rate holds the held-out seeds alone."""
    scores = {(lr, seed): dict(best_full=full) for seed in (1, 2)
              for lr, full in ((1e-3, 1.90), (3e-3, 1.70), (1e-2, 1.80))}
    scores.update({(1e-2, 3): dict(best_full=0.50), (3e-3, 3): dict(best_full=1.72)})
    s = selection_sweep(tmp_path, scores)
    runs = sweep.plan(s)
    records, _ = evidence.load_records(runs + sweep.judging_runs(s, runs))
    chosen = evidence.choice(records, s)["gelu"]
    assert chosen.rate == 3e-3 and not chosen.edge
    assert [r.run.seed for r in chosen.runs] == [3] and {r.run.seed for r in chosen.selection} == {1, 2}
    assert [r.name for r in sweep.judging_runs(s, runs)] == ["gelu-lr3e-3-s3"]


def test_judging_waits_for_every_selection_run_of_its_activation(tmp_path, char_dataset, monkeypatch):
    """One selection run of gelu not complete (failed, or still running: no complete summary) holds
    back gelu's judging runs, even one left complete on disk: none is launched, none reaches the
    report, and the sweep names the run it waits for; relu, whose selection is complete, is judged."""
    path = write_sweep(tmp_path, char_dataset, name="st", activations=["gelu", "relu"], seeds=[1, 2],
                       heldout_seeds=[3], grid={"learning_rate": [1e-3, 3e-3, 1e-2]})
    runs_dir = tmp_path / "results" / "st" / "runs"
    for activation in ("gelu", "relu"):
        for lr, full in ((1e-3, 1.90), (3e-3, 1.70), (1e-2, 1.80)):
            for seed in (1, 2):
                if (activation, lr, seed) != ("gelu", 1e-2, 2):
                    fake_run(runs_dir / f"{activation}-lr{sweep.label(lr)}-s{seed}", activation, lr, seed, full)
    (runs_dir / "gelu-lr1e-2-s2").mkdir()
    (runs_dir / "gelu-lr1e-2-s2" / "train.log").write_text("Traceback: it failed\n")
    fake_run(runs_dir / "gelu-lr3e-3-s3", "gelu", 3e-3, 3, 1.71)  # a judge left from an earlier attempt
    launched, reported = [], []
    monkeypatch.setattr(sweep, "execute", lambda s, runs, stop: launched.append([r.name for r in runs]) or [])
    monkeypatch.setattr(sweep.report, "write", lambda s, runs, command: reported.extend(r.name for r in runs)
                        or ("report.md", []))
    out = run_sweep(path)
    assert out.returncode == 0, out.stderr
    assert launched[1] == ["relu-lr3e-3-s3"]
    assert "gelu-lr3e-3-s3" not in reported and "relu-lr3e-3-s3" in reported
    assert "the judging runs of gelu wait for its selection run(s) gelu-lr1e-2-s2, not complete" in out.stderr

    fake_run(runs_dir / "gelu-lr1e-2-s2-done", "gelu", 1e-2, 2, 1.80)  # the failed run, completed on a retry
    shutil.rmtree(runs_dir / "gelu-lr1e-2-s2")
    (runs_dir / "gelu-lr1e-2-s2-done").rename(runs_dir / "gelu-lr1e-2-s2")
    launched.clear()
    assert run_sweep(path).returncode == 0
    assert launched[1] == ["gelu-lr3e-3-s3", "relu-lr3e-3-s3"]


@pytest.mark.parametrize("best", [1e-3, 1e-2])
def test_a_rate_chosen_at_either_edge_of_the_grid_is_marked_as_such(tmp_path, best):
    scores = {(lr, seed): dict(best_full=1.70 if lr == best else 1.80) for seed in (1, 2) for lr in (1e-3, 3e-3, 1e-2)}
    s = selection_sweep(tmp_path, scores)
    records, _ = evidence.load_records(sweep.plan(s))
    chosen = evidence.choice(records, s)["gelu"]
    assert chosen.rate == best and chosen.edge
    scores[best, 1] = scores[best, 2] = dict(best_full=1.75)
    scores[3e-3, 1] = scores[3e-3, 2] = dict(best_full=1.60)
    inner = selection_sweep(tmp_path / "inner", scores)
    records, _ = evidence.load_records(sweep.plan(inner))
    chosen = evidence.choice(records, inner)["gelu"]
    assert chosen.rate == 3e-3 and not chosen.edge


@pytest.mark.parametrize("name", ["verdict_baby_gpu", "verdict_literature_gpu"])
def test_the_gpu_verdict_sweeps_rehearsed_on_the_cpu(name, char_dataset, tmp_path):
    """Each GPU verdict sweep, as its file says, with a tiny model on the CPU and one seed per stage:
    every selection run, the judges at each chosen rate, and a report with the verdicts (or the
    refusals a rate at the grid's edge earns)."""
    path = os.path.join(ROOT, "config", f"sweep_{name}.py")
    file = sweep.load_sweep([path])
    dataset = char_dataset
    if "literature" in name:  # a small GPT-2 BPE dataset in place of the prose one
        from data import prepare_text

        dataset = tmp_path / "bpe"
        with redirect_stdout(io.StringIO()):
            prepare_text.prepare(Path(ROOT, "README.md").read_text(), str(dataset), "gpt2")
    smoke = {**file.overrides, **TINY, "dataset": str(dataset), "lr_decay_iters": 4, "warmup_iters": 1,
             "dtype": "float32"}
    out = run_sweep(path, f"--out_dir={tmp_path}", "--seeds=[1]", "--heldout_seeds=[3]", "--parallel=2",
                    "--threads=1", f"--overrides={smoke!r}")
    assert out.returncode == 0, out.stdout + out.stderr
    done = summaries(str(tmp_path / name / "runs"))
    rates = file.grid["learning_rate"]
    selection = [f"{a}-lr{sweep.label(lr)}-s1" for a in ("gelu", "relu") for lr in rates]
    assert set(selection) < set(done) and len(done) == len(selection) + 3
    assert {n for n in done if n.endswith("-s3")} >= {f"none-lr{sweep.label(file.fixed_rates['none'])}-s3"}
    text = (tmp_path / name / "report.md").read_text()
    assert "### Verdicts" in text and "- 'none' vs GELU: " in text


def test_a_study_reads_a_mup_sweep_and_a_standard_one_at_the_widest_width_as_one(tmp_path):
    """µP at two widths over its rates, the standard parametrization at the wider one over lower
    rates, in two sweeps: the study tables both, marks a rate at the edge of its own sweep's grid (not
    of the two grids together), and compares µP's best at the widest width with SP's."""
    import study

    widths = {"w16": dict(n_embd=16, n_head=2), "w32": dict(n_embd=32, n_head=4)}
    mup = dict(name="mu", grid={"width": widths, "param": {"mup": dict(mup_base_width=16)},
                                "learning_rate": [1e-3, 2e-3, 4e-3]})
    sp = dict(name="sd", grid={"width": {"w32": widths["w32"]}, "param": {"sp": dict(mup_base_width=0)},
                               "learning_rate": [2.5e-4, 5e-4, 1e-3]})
    scores = {("mu", "w16", 2e-3): (2.00, 2.02), ("mu", "w32", 2e-3): (1.90, 1.91), ("sd", "w32", 1e-3): (1.95, 1.97)}
    paths = []
    for keys in (mup, sp):
        paths.append(write_sweep(tmp_path, "unused", activations=["gelu"], seeds=[1, 2], **keys))
        s = sweep.load_sweep([paths[-1]])
        for run in sweep.plan(s):
            width, param, lr = (run.axes[k] for k in ("width", "param", "learning_rate"))
            best = scores.get((s.name, width, lr), (2.5, 2.5))[run.seed - 1]
            fake_run(Path(run.dir), "gelu", lr, run.seed, best)
    (tmp_path / "st.py").write_text(f"name = 'st'\ntransfer = {paths!r}\nout_dir = {str(tmp_path)!r}\n")
    with redirect_stdout(io.StringIO()):
        assert study.main([str(tmp_path / "st.py")]) == 0
    text = (tmp_path / "st" / "study.md").read_text()
    assert "Sweeps [mu](../mu/report.md), [sd](../sd/report.md)" in text
    assert "| `gelu` | mup | 0.002 (2.0100) | 0.002 (1.9050) | 0 |" in text
    assert "| `gelu` | sp | n/a | 0.001 (edge) (1.9600) | 0 |" in text
    checks = next(line for line in text.split("## Does µP earn its place?")[1].splitlines() if "`gelu`" in line)
    # w32 − w16 at 2e-3: differences 0.10 and 0.11, mean 0.105 better, standard error 0.005: −21.0
    assert checks == "| `gelu` | 0.002 | -0.1050 (-21.0) | -0.1050 (-21.0) | 0 | -0.0550 | all hold |"


def test_a_study_tables_mup_with_the_output_multiplier_tuned_at_the_base(tmp_path):
    """The base's best (α_out, rate) over a grid of both; the widest width at that α_out only (a run at
    another α_out or another width is not its evidence, however good); the widest's best against the
    standard parametrization's best there, paired by seed."""
    import study

    widths = {"w16": dict(n_embd=16, n_head=2), "w32": dict(n_embd=32, n_head=4)}
    sweeps = dict(
        mu=dict(grid={"width": widths, "param": {"mup": dict(mup_base_width=16)}, "learning_rate": [1e-3, 2e-3]}),
        sd=dict(grid={"width": {"w32": widths["w32"]}, "param": {"sp": dict(mup_base_width=0)},
                      "learning_rate": [5e-4, 1e-3]}),
        out=dict(overrides=dict(widths["w16"], mup_base_width=16),
                 grid={"learning_rate": [1e-3, 2e-3], "mup_output_mult": [1.0, 2.0]}),
        wide=dict(overrides=dict(widths["w32"], mup_base_width=16, mup_output_mult=2.0),
                  grid={"learning_rate": [1e-3, 2e-3]}),
        other=dict(overrides=dict(widths["w32"], mup_base_width=16, mup_output_mult=1.0),
                   grid={"learning_rate": [1e-3]}),
        narrow=dict(overrides=dict(widths["w16"], mup_base_width=16, mup_output_mult=2.0),
                    grid={"learning_rate": [1e-3]}))
    scores = {("sd", "gelu-w32-sp-lr1e-3"): (1.90, 1.92), ("out", "gelu-lr2e-3-mup_output_mult2"): (2.00, 2.02),
              ("wide", "gelu-lr1e-3"): (1.92, 1.93), ("wide", "gelu-lr2e-3"): (1.95, 1.96),
              ("other", "gelu-lr1e-3"): (1.00, 1.00), ("narrow", "gelu-lr1e-3"): (1.00, 1.00)}
    paths = {}
    for name, keys in sweeps.items():
        paths[name] = write_sweep(tmp_path, "unused", name=name, activations=["gelu"], seeds=[1, 2], **keys)
        for run in sweep.plan(sweep.load_sweep([paths[name]])):
            best = scores.get((name, run.name.rsplit("-s", 1)[0]), (2.5, 2.5))[run.seed - 1]
            fake_run(Path(run.dir), "gelu", run.axes["learning_rate"], run.seed, best)
    wide = [paths[n] for n in ("wide", "other", "narrow")]
    (tmp_path / "st.py").write_text(f"name = 'st'\ntransfer = {[paths['mu'], paths['sd']]!r}\n"
                                    f"out_base = {paths['out']!r}\nout_wide = {wide!r}\nout_dir = {str(tmp_path)!r}\n"
                                    "at = [10]\n")
    with redirect_stdout(io.StringIO()):
        assert study.main([str(tmp_path / "st.py")]) == 0
    text = (tmp_path / "st" / "study.md").read_text().split("## µP with the output multiplier tuned at the base")[1]
    # at iteration 10 (each fake run's one evaluation, train loss = val loss = its score): SP's best (1e-3),
    # µP's at α_out = 1 (every rate 2.5: the first) and at α_out = 2 (1e-3), each minus SP's paired by
    # seed; for two seeds the 95% interval is the mean ± t(0.975, 1) = 12.706 times |d1 − d2| / 2
    over = text.split("## Where µP's gap opens")[1]
    assert "| `gelu` | SP, 0.001 | 1.9100 (1.9100) |" in over
    assert "| `gelu` | µP, α_out 1, 0.001 | 2.5000 (2.5000); +0.5900 [+0.4629, +0.7171] |" in over
    assert "| `gelu` | µP, α_out 2, 0.001 | 1.9250 (1.9250); +0.0150 [-0.0485, +0.0785] |" in over
    text = text.split("## Where µP's gap opens")[0]
    # w32 − w16 at 2e-3 and α_out = 2: −0.05 and −0.06, standard error 0.005; w32's best (1e-3) − SP's: +0.02, +0.01
    assert ("| `gelu` | 2 (edge), 0.002: 2.0100 | 0.001: 1.9250 (2 seeds), 0.002: 1.9550 (2 seeds) | "
            "-0.0550 (-11.0) | +0.0150 | yes |") in text
