"""
Run a grid of training runs (every activation x seed x the sweep's other axes) and report on them.

    python sweep.py config/sweep_claim_cpu.py
    python sweep.py config/sweep_claim_cpu.py --parallel=1 --threads=2
    python sweep.py config/sweep_claim_cpu.py --report_only=True   # rewrite the report from the records

A sweep file is Python that assigns keys of DEFAULTS below (flags override them, as for train.py).
Each run is `train.py BASE --key=value ...` with, left to right: the sweep's overrides, the run's
grid values, its activation and seed, out_dir=RESULTS/NAME/runs/RUN, and the sweep's threads and
wandb settings. A grid axis is either a train.py key with a list of values,

    grid = {"learning_rate": [3e-4, 1e-3, 3e-3]}             # runs gelu-lr3e-4-s1, ...

or a name with labelled bundles of train.py keys, for settings that must change together:

    grid = {"size": {"small": dict(n_layer=2, n_head=2, n_embd=64), "large": dict(...)}}  # gelu-small-s1

Run names are the activation, each axis in grid order, then the seed. With a learning-rate axis a
sweep has two stages: `seeds` run at every rate and choose each activation's rate, then
`heldout_seeds` run at the chosen rates only and alone give the verdict (experiment/report.py); an activation
of `fixed_rates` runs at its given rate with the judging seeds only, and `margin` fixes the
equivalence margin before any run. A run whose summary.json is
complete is skipped; one with a ckpt.pt continues from it (train.py's resume is exact), so an
interrupted sweep is finished by running the same command again. Each run's output goes to
train.log in its folder; a failed run is reported with that path and the sweep goes on, exiting 1
at the end. The report (experiment/report.py) is written from the runs' records at the end of every sweep.

The defaults, 2 runs side by side with 1 thread each, are for CPUs; GPU sweep files set their own.
Measured on a 2-core Xeon (otherwise idle), 4 runs of config/train_shakespeare_char_cpu.py at
max_iters=300 through this script: 2 runs x 1 thread took 43.6, 38.2 and 37.7 s; 1 run x 2 threads
took 52.8 and 51.4 s (about 45 vs 29 ms per iteration and run: 34k vs 27k tokens/s for the machine).
Worse, 1 run x 2 threads took 194.8 s once when another process was using the CPUs too: threads
that wait on each other lose the most when the cores are shared.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from types import SimpleNamespace

from configurator import configure
from experiment import evidence, report
from training import rundir, settings
from training.errors import UserError, run_main

DEFAULTS = dict(
    name="",  # the sweep's folder under out_dir, and its wandb group
    base="",  # the train.py config file every run starts from
    activations=[],  # names from model.ACTIVATIONS
    reference="gelu",  # the activation every other one is compared with in the report
    seeds=[1],  # every run of the grid with each of these seeds; with a learning-rate grid they choose each rate
    heldout_seeds=[],  # seeds run only at each activation's chosen rate, once chosen: they alone judge (see report)
    fixed_rates={},  # {activation: learning rate} chosen before this sweep: run at it with the judging seeds only
    margin=0.0,  # equivalence margin in nats, fixed before the runs: the report tests |difference| < margin (TOST)
    grid={},  # more axes: {train.py key: [values]} or {axis name: {label: {train.py key: value}}}
    overrides={},  # train.py keys set in every run
    parallel=2,  # runs at a time (measured best on a 2-core CPU: see above)
    threads=1,  # torch threads per training process; 0 keeps torch's default
    torchrun=0,  # processes per run under torchrun --standalone; 0 runs plain python
    wandb_log=False,  # one wandb group per sweep (its name), runs named like their folders
    out_dir="results",  # the sweep writes out_dir/name: runs/, report.md, runs.csv, loss.png
    compare_with="",  # another out_dir holding this sweep (the committed one): print each run's loss beside it
    report_only=False,  # rewrite the report from the existing runs and exit
)

# train.py keys the sweep sets for each run itself.
RUN_KEYS = ("activation", "seed", "out_dir", "threads", "wandb_log", "wandb_group", "wandb_run_name")
SHORT = {"learning_rate": "lr"}  # axis names abbreviated in run names
SAFE = re.compile(r"^[A-Za-z0-9_.]+$")
TRAIN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
POLL_S = 0.5


def load_sweep(argv):
    if (not argv or argv[0].startswith("-")) and not {"-h", "--help"} & set(argv):
        raise UserError("give a sweep file first: python sweep.py config/sweep_claim_cpu.py [--key=value ...]")
    sweep = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    validate(sweep)
    return sweep


def validate(sweep):
    if not SAFE.match(sweep.name.replace("-", "_")):
        raise UserError(f"name={sweep.name!r} must be a plain folder name (letters, digits, '_', '-', '.')")
    if not sweep.base:
        raise UserError("base='' names no train config; set base='config/train_shakespeare_char_cpu.py' or another")
    if not sweep.activations or not all(isinstance(a, str) for a in sweep.activations):
        raise UserError(f"activations={sweep.activations!r}: list one or more names of model.ACTIVATIONS")
    if len(set(sweep.activations)) < len(sweep.activations):
        raise UserError(f"activations={sweep.activations!r} repeats a name")
    if sweep.reference not in sweep.activations:
        raise UserError(f"reference={sweep.reference!r} is not among activations {sweep.activations}; add it")
    everything = sweep.seeds + sweep.heldout_seeds
    if not sweep.seeds or any(type(s) is not int for s in everything) or len(set(everything)) < len(everything):
        raise UserError(f"seeds={sweep.seeds!r} and heldout_seeds={sweep.heldout_seeds!r} must be lists of "
                        "distinct integers, seeds not empty")
    if (sweep.heldout_seeds or sweep.fixed_rates) and len(sweep.grid.get(evidence.TUNED, ())) < 2:
        raise UserError(f"heldout_seeds={sweep.heldout_seeds!r} and fixed_rates={sweep.fixed_rates!r} go with a "
                        "learning-rate choice, but the grid has no learning_rate axis with 2 or more values")
    for activation, rate in sweep.fixed_rates.items():
        if activation not in sweep.activations or not isinstance(rate, (int, float)) or rate <= 0:
            raise UserError(f"fixed_rates={sweep.fixed_rates!r} must map activations of the sweep to learning "
                            "rates > 0")
    if not isinstance(sweep.margin, (int, float)) or not 0 <= sweep.margin < 1:
        raise UserError(f"margin={sweep.margin!r} must be a loss difference in [0, 1) (0: no equivalence test)")
    if os.path.exists(sweep.out_dir) and not os.path.isdir(sweep.out_dir):
        raise UserError(f"out_dir={sweep.out_dir!r} is a file; give a folder")
    for key in ("parallel", "threads", "torchrun"):
        if getattr(sweep, key) < (1 if key == "parallel" else 0):
            raise UserError(f"{key}={getattr(sweep, key)} is out of range; see sweep.py's DEFAULTS")
    check_train_keys(sweep.overrides, "overrides")
    for axis, values in sweep.grid.items():
        if isinstance(values, dict):
            if not values or any(not SAFE.match(str(label)) or not isinstance(keys, dict)
                                 for label, keys in values.items()):
                raise UserError(f"grid axis {axis!r} must map labels (letters, digits, '_', '.') to dicts "
                                "of train.py keys, e.g. {'small': dict(n_embd=64)}")
            for keys in values.values():
                check_train_keys(keys, f"grid axis {axis!r}")
        elif isinstance(values, list) and values:
            check_train_keys({axis: values[0]}, "grid")
        else:
            raise UserError(f"grid axis {axis!r} must be a non-empty list of values or a dict of labelled bundles")


def check_train_keys(keys, where):
    for key in keys:
        if key in RUN_KEYS:
            raise UserError(f"{where} sets {key!r}, which the sweep sets for each run; use its own keys instead")
        if key not in settings.DEFAULTS:
            raise UserError(f"{where} names {key!r}, which is not a train.py key")


def label(value):
    """A grid value as it appears in a run name: 0.001 -> 1e-3, 0.2 -> 0.2, 128 -> 128."""
    if isinstance(value, float):
        mantissa, exponent = f"{value:e}".split("e")
        if int(exponent) < -1:
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    text = str(value)
    if not SAFE.match(text):
        raise UserError(f"grid value {value!r} cannot be part of a run name; use letters, digits, '_' or '.'")
    return text


def grid_runs(sweep, activations, seeds, grid):
    """Every run of activations x grid x seeds: name, folder, activation, seed, its grid values and
    its train.py keys."""
    combos = [({}, [], {})]  # (axis -> value, or label for a bundle; run-name parts; train.py keys)
    for axis, values in grid.items():
        if isinstance(values, dict):
            options = [(lab, str(lab), keys) for lab, keys in values.items()]
        else:
            options = [(v, f"{SHORT.get(axis, axis)}{label(v)}", {axis: v}) for v in values]
        combos = [({**axes, axis: value}, [*parts, part], {**keys, **more})
                  for axes, parts, keys in combos for value, part, more in options]
    return [SimpleNamespace(name=name, dir=os.path.join(sweep.out_dir, sweep.name, "runs", name),
                            activation=activation, seed=seed, axes=axes,
                            keys={**sweep.overrides, **keys, "activation": activation, "seed": seed})
            for activation in activations for axes, parts, keys in combos for seed in seeds
            for name in ["-".join([activation, *parts, f"s{seed}"])]]


def plan(sweep):
    """The runs of the first stage: every activation x the grid x the seeds, except that an activation
    of fixed_rates runs at its rate only, with the judging seeds."""
    tuned = [a for a in sweep.activations if a not in sweep.fixed_rates]
    runs = grid_runs(sweep, tuned, sweep.seeds, sweep.grid)
    for activation, rate in sweep.fixed_rates.items():
        runs += grid_runs(sweep, [activation], sweep.heldout_seeds or sweep.seeds,
                          {**sweep.grid, evidence.TUNED: [rate]})
    if len({r.name for r in runs}) < len(runs):
        raise UserError(f"grid {sweep.grid!r} gives two runs the same name; make its values distinct")
    return runs


def waiting(sweep, runs):
    """The selection runs not complete yet (still to run, running or failed), per tuned activation
    that has any: its judging waits for them."""
    tuned = set(sweep.activations) - set(sweep.fixed_rates)
    out = {}
    for r in runs:
        if r.activation in tuned and not rundir.is_complete(r.dir):
            out.setdefault(r.activation, []).append(r.name)
    return out


def judging_runs(sweep, runs):
    """The second stage: the held-out seeds at the learning rate each tuned activation chose (in
    each cell of the other axes), for every activation whose first-stage runs are all complete."""
    if not sweep.heldout_seeds:
        return []
    records, _ = evidence.load_records(runs)
    blocked = waiting(sweep, runs)
    chosen = {(key, activation): c.rate for key, rs in evidence.cells(records, sweep).items()
              for activation, c in evidence.choice(rs, sweep).items() if not c.fixed and activation not in blocked}
    tuned = [a for a in sweep.activations if a not in sweep.fixed_rates]
    return [r for r in grid_runs(sweep, tuned, sweep.heldout_seeds, sweep.grid)
            if chosen.get((cell_of(r, sweep), r.activation)) == r.axes[evidence.TUNED]]


def cell_of(run, sweep):
    return evidence.cell_key(run.axes, sweep)


def train_flags(sweep, run):
    keys = {**run.keys, "out_dir": run.dir, "threads": sweep.threads, "wandb_log": sweep.wandb_log}
    if sweep.wandb_log:
        keys.update(wandb_group=sweep.name, wandb_run_name=run.name)
    return [f"--{k}={v!r}" for k, v in keys.items()]


def check_runs(sweep, runs):
    """Fail before launching anything if a run's config is invalid, or a run folder holds a run
    made with other settings (say, max_iters changed in the sweep file without a new name).
    Returns the runs' train.py configs."""
    from training.loop import check  # (torch: the sweep's other work reads records without it)

    configs = []
    for run in runs:
        try:
            cfg = SimpleNamespace(**configure(settings.DEFAULTS, [sweep.base, *train_flags(sweep, run)]))
            check(cfg)
        except UserError as e:
            raise UserError(f"run {run.name}: {e}") from None
        configs.append(cfg)
        saved = rundir.read_json(run.dir, rundir.CONFIG)
        if saved is not None:
            for key, value in run.keys.items():
                # init_from records how the latest attempt began ('resume' after the first).
                if key != "init_from" and saved.get(key) != value:
                    raise UserError(f"{run.dir} was made with {key}={saved.get(key)!r} but the sweep asks for "
                                    f"{value!r}; give the sweep a new name or delete that folder")
    return configs


def launch(sweep, run, host):
    os.makedirs(run.dir, exist_ok=True)
    # host.json says where the run's records were made; the report's header reads it.
    rundir.write_json(run.dir, rundir.HOST, host)
    launcher = [sys.executable]
    if sweep.torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={sweep.torchrun}"]
    flags = train_flags(sweep, run)
    resumed = os.path.exists(rundir.path(run.dir, rundir.CKPT))
    if resumed:
        flags.append("--init_from='resume'")  # else the base config's own init (scratch, gpt2, ...)
    cmd = [*launcher, TRAIN_PY, sweep.base, *flags]
    with open(rundir.path(run.dir, rundir.LOG), "a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(cmd)}\n")
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), resumed


def execute(sweep, runs, stop):
    """Run what is not complete yet, `parallel` at a time, until done or stopped; return the names
    of failed runs."""
    todo = [r for r in runs if not rundir.is_complete(r.dir)]
    done = len(runs) - len(todo)
    print(f"sweep {sweep.name}: {len(runs)} runs, {done} already complete; {len(todo)} to run, "
          f"{sweep.parallel} at a time, {sweep.threads or 'default'} threads each")
    host = rundir.hardware()
    pending, running, failed, durations = list(todo), {}, [], []
    try:
        while (pending or running) and not stop.received:
            while pending and len(running) < sweep.parallel:
                run = pending.pop(0)
                running[run.name] = (run, *launch(sweep, run, host), time.time())
            time.sleep(POLL_S)
            for name, (run, proc, resumed, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                done += 1
                if proc.returncode == 0 and rundir.is_complete(run.dir):
                    took = time.time() - t0
                    if not resumed:  # the rest of a resumed run says nothing of a whole run's time
                        durations.append(took)
                    left = len(pending) + len(running)
                    eta = ""
                    if durations:
                        per_run = sum(durations) / len(durations)
                        eta = f"; ETA {evidence.duration(per_run * left / min(sweep.parallel, max(left, 1)))}"
                    print(f"[{done}/{len(runs)}] {name} finished in {took:.0f} s"
                          f"{' (resumed)' if resumed else ''}{eta}", flush=True)
                else:
                    failed.append(name)
                    print(f"[{done}/{len(runs)}] {name} FAILED (exit {proc.returncode}); "
                          f"log: {rundir.path(run.dir, rundir.LOG)}", flush=True)
    finally:
        # Stopped: each training process checkpoints on SIGTERM, so running the sweep again resumes it.
        for _, proc, _, _ in running.values():
            proc.terminate()
        for _, proc, _, _ in running.values():
            proc.wait()
    return failed


def regenerate_command(argv):
    kept = [a for a in argv if not a.startswith("--report_only=")]
    return shlex.join(["python", "sweep.py", *kept, "--report_only=True"])


def main(argv):
    sweep = load_sweep(argv)
    runs = plan(sweep)
    failed = []
    if not sweep.report_only:
        from training.batches import check_dataset  # (torch: only a sweep that trains imports it)
        from training.processes import StopRequest

        for cfg in {cfg.dataset: cfg for cfg in check_runs(sweep, runs)}.values():
            check_dataset(cfg.dataset)  # prepared, before anything is launched
        # SIGINT/SIGTERM stop the sweep between polls: no new run starts, and the running ones are
        # asked to checkpoint and exit (see execute)
        with StopRequest() as stop:
            failed = execute(sweep, runs, stop)
            if sweep.heldout_seeds and not stop.received:
                for activation, names in waiting(sweep, runs).items():
                    print(f"the judging runs of {activation} wait for its selection run(s) {', '.join(names)}, "
                          "not complete", file=sys.stderr)
                second = judging_runs(sweep, runs)
                if second:  # (none where every activation's rate was fixed before the sweep)
                    check_runs(sweep, second)
                    failed += execute(sweep, second, stop)
        if stop.received:
            print("stopped; running the same command again resumes the sweep", file=sys.stderr)
            return 128 + stop.received
    if sweep.report_only or any(rundir.is_complete(r.dir) for r in runs):  # else every run failed: nothing to report
        path, verdicts = report.write(sweep, runs + judging_runs(sweep, runs), regenerate_command(argv))
        print(f"report: {path}")
        for line in verdicts:
            print(line)
        if sweep.compare_with:
            print("\n".join(evidence.compare(runs, os.path.join(sweep.compare_with, sweep.name, "runs"))))
    if failed:
        print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}; see each run's {rundir.LOG}, fix, and "
              "run the same command again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
