"""
A run's folder (out_dir), and the one place its files are named, written and read.

    config.json    every setting of the latest attempt (train.py)
    metrics.jsonl  one JSON object per log line and per evaluation, appended as the run goes
    summary.json   written last, when the run is complete: the mark sweeps look for
    analysis.json  what the final model's MLPs do (analysis.py), written with the summary
    host.json      the machine a sweep ran it on (sweep.py)
    train.log      what the run printed, when a sweep ran it
    ckpt.pt        the latest checkpoint; best.pt a copy of the best evaluation's (checkpoint.py)
    .lock          held by the run while it lives, naming it

No torch here: reports and sweeps read runs without it.
"""

import fcntl
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import time

from training import files
from training.errors import UserError

CONFIG, METRICS, SUMMARY, ANALYSIS = "config.json", "metrics.jsonl", "summary.json", "analysis.json"
HOST, LOG = "host.json", "train.log"
CKPT, BEST, LOCK = "ckpt.pt", "best.pt", ".lock"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the code, whose revision a run records


def path(out_dir, name):
    return os.path.join(out_dir, name)


# ---------------------------------------------------------------------------------------- holding it


class Lock:
    """One run per folder. The run holds an exclusive lock (flock) on out_dir/.lock for as long as
    its process lives; the system releases it when the process ends, however it ends (a crash, a
    kill), so a lock is never left stale. The file says who holds it. A run that fails before it
    wrote anything leaves the folder as it found it."""

    def __init__(self, out_dir):
        self.out_dir, self.file = out_dir, None

    def __enter__(self):
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise UserError(f"out_dir={self.out_dir!r} is a file; give a folder")
        created = not os.path.isdir(self.out_dir)
        try:
            os.makedirs(self.out_dir, exist_ok=True)
            self.file = open(path(self.out_dir, LOCK), "a+")
        except OSError as e:
            raise UserError(f"cannot write to out_dir={self.out_dir!r} ({e.strerror}); choose a writable folder") \
                from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "a process that has not yet said who it is"
            self.file.close()
            raise UserError(f"out_dir={self.out_dir!r} is in use by another run ({holder}); wait for it to end or "
                            "stop it, or give this run another out_dir") from None
        self.created = created
        self.file.truncate(0)
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                        f"{shlex.join([os.path.basename(sys.executable), *sys.argv])}\n")
        self.file.flush()
        return self

    def __exit__(self, kind, error, trace):
        untouched = kind is not None and set(os.listdir(self.out_dir)) == {LOCK}
        if untouched:  # refused before anything was written: leave no trace
            os.remove(self.file.name)
            if self.created:
                os.rmdir(self.out_dir)
        self.file.close()  # releases the lock


# ------------------------------------------------------------------------------------- reading it


def read_json(out_dir, name):
    """A JSON file of the run, or None where it has none; a one-line error where it is damaged."""
    p = path(out_dir, name)
    if not os.path.exists(p):
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {p} ({getattr(e, 'strerror', None) or e}): the run's records are damaged; "
                        "restore the file, or delete the run's folder and run it again") from None


def write_json(out_dir, name, obj):
    files.write_json(path(out_dir, name), obj)


def is_record(r):
    return isinstance(r, dict) and isinstance(r.get("iter"), int) and not isinstance(r["iter"], bool)


def read_metrics(out_dir):
    """The records of metrics.jsonl in order, and how many lines were not records: a line a killed
    process left half written, or one damaged by hand. Empty where there is no file yet."""
    p = path(out_dir, METRICS)
    if not os.path.exists(p):
        return [], 0
    records, bad = [], 0
    try:
        f = open(p, encoding="utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"cannot read {p} ({e.strerror}): restore it, or delete the run's folder and run it "
                        "again") from None
    with f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                r = None
            if is_record(r):
                records.append(r)
            elif line.strip():
                bad += 1
    return records, bad


def evaluations(records):
    return [r for r in records if "val_loss" in r]


def summary(out_dir):
    """The run's summary.json, or {} before it has one."""
    return read_json(out_dir, SUMMARY) or {}


def is_complete(out_dir):
    return summary(out_dir).get("complete") is True


# ------------------------------------------------------------------------------------- writing it


class Records:
    """What a run writes as it goes (rank 0 only): config.json, metrics.jsonl and wandb. Made once
    the run is known to be valid (a resume checked), so that a refused attempt changes nothing.
    On resume, metrics.jsonl keeps what was logged up to the checkpoint: what a crashed process
    logged after it is logged again, identically, by the resumed run."""

    def __init__(self, cfg, start, decided):
        kept, self.damaged = read_metrics(cfg.out_dir)
        kept = [r for r in kept if r["iter"] < start.iter or (start.evaluated and r["iter"] == start.iter
                                                                and "val_loss" in r)]
        # was the checkpoint's iteration evaluated, on the record? (if not, the run evaluates it again)
        self.evaluated = any(r["iter"] == start.iter and "val_loss" in r for r in kept)
        try:
            files.remove_stale_temporaries(cfg.out_dir)
            # config.json first: whoever sees metrics.jsonl can read what run wrote it
            write_json(cfg.out_dir, CONFIG, vars(cfg))
            files.write_bytes(path(cfg.out_dir, METRICS), "".join(json.dumps(r) + "\n" for r in kept).encode())
            self.file = open(path(cfg.out_dir, METRICS), "a")
        except OSError as e:
            raise UserError(f"cannot write to out_dir={cfg.out_dir!r} ({e.strerror}); choose a writable folder") \
                from None
        self.evals = evaluations(kept)
        self.resumes = [r for r in kept if "resumed_with" in r]
        self.wandb = None
        if cfg.wandb_log:
            import wandb

            name = f"{decided['model']['activation']}-seed{cfg.seed}"
            self.wandb = wandb.init(project=cfg.wandb_project, group=cfg.wandb_group or None, dir=cfg.out_dir,
                                    name=cfg.wandb_run_name or name, config={**vars(cfg), "decided": decided},
                                    id=start.wandb_id, resume="allow")
        if start.iter:  # where this process resumed, and the settings it changed, on the record
            self.log(dict(iter=start.iter, resumed_with=start.changes))

    def log(self, record):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if "val_loss" in record:
            self.evals.append(record)
        if "resumed_with" in record:
            self.resumes.append(record)
        elif self.wandb is not None:
            # wall_s is left to wandb's own _runtime: an eval and a train record share a step
            self.wandb.log({k: v for k, v in record.items() if k not in ("iter", "wall_s")}, step=record["iter"])

    def close(self):
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


# ---------------------------------------------------------------------------------- where it ran


def git_revision():
    """The code's commit, with '-dirty' when a tracked file outside results/ differs from it (a
    sweep rewrites its own reports under results/ as it runs: they are not the code)."""
    def git(*args):
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=ROOT)
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and changed else commit or None


def cpu_name():
    """The CPU's model name, as /proc/cpuinfo gives it where there is one."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware():
    """CPU model, core count and GPU names of this machine (nvidia-smi, so that a process that does
    not train never takes GPU memory): host.json."""
    gpus = []
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True)
        gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return dict(cpu=cpu_name(), cores=os.cpu_count(), gpus=gpus)
