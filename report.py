"""
The report of a sweep, written from its runs' records alone: summary.json, metrics.jsonl,
host.json and analysis.json (never the logs, never a checkpoint: it needs no model, no GPU, and
works on a fresh clone from the committed records). sweep.py calls write(); regenerate with
`python sweep.py SWEEPFILE --report_only=True`.

Writes results/NAME/report.md, runs.csv (raw per-run values) and loss.png. The comparison is paired:
runs with the same seed share their initialisation and batches, so an activation's difference
from the reference is taken seed by seed and tested with a paired t-test (scipy.stats).
"""

import csv
import io
import json
import math
import os
from collections import Counter
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402

import files  # noqa: E402
from configurator import UserError  # noqa: E402

ALPHA = 0.05
TUNED = "learning_rate"  # with this axis in the grid, each activation is compared at its own best value
CLAIMS = [("gelu", "relu"), ("none", "gelu"), ("none", "relu")]
SHOWN = {"gelu": "GELU", "relu": "ReLU", "none": "'none'"}


# ---------------------------------------------------------------------------------------------
# Statistics

def mean_std(xs):
    """Mean and sample standard deviation (n-1); the std is nan for one value."""
    n = len(xs)
    m = sum(xs) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")


def interval95(xs):
    """95% confidence interval of the mean (Student t); None for fewer than 2 values."""
    if len(xs) < 2:
        return None
    m, s = mean_std(xs)
    half = stats.t.ppf(0.975, len(xs) - 1) * s / math.sqrt(len(xs))
    return m - half, m + half


def paired_t(xs, ys):
    """Paired t-test of xs - ys (two-sided) and the 95% interval of the mean difference; None for
    fewer than 2 pairs."""
    d = [x - y for x, y in zip(xs, ys)]
    n = len(d)
    if n < 2:
        return None
    m, s = mean_std(d)
    if s == 0:  # identical differences: no spread to test against (scipy would give nan)
        t, p = (math.copysign(math.inf, m), 0.0) if m else (0.0, 1.0)
    else:
        t, p = (float(v) for v in stats.ttest_rel(xs, ys))
    half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    return SimpleNamespace(n=n, mean=m, sd=s, t=t, p=p, lo=m - half, hi=m + half)


# ---------------------------------------------------------------------------------------------
# Records

def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_optional(run, name):
    path = os.path.join(run.dir, name)
    return read_json(path) if os.path.exists(path) else None


def summary_of(run):
    """The run's summary.json, or {} before it has one."""
    path = os.path.join(run.dir, "summary.json")
    return read_json(path) if os.path.exists(path) else {}


def is_complete(run):
    return summary_of(run).get("complete") is True


def load_records(runs):
    """The complete runs' records, and the names of runs that are not complete."""
    records, missing = [], []
    for run in runs:
        summary = summary_of(run)
        if summary.get("complete") is not True:
            missing.append(run.name)
            continue
        with open(os.path.join(run.dir, "metrics.jsonl")) as f:
            evals = [r for r in map(json.loads, f) if "val_loss" in r]
        records.append(SimpleNamespace(run=run, summary=summary, evals=evals, best=summary["best_val_loss"],
                                       host=read_optional(run, "host.json"),
                                       analysis=read_optional(run, "analysis.json")))
    return records, missing


def cell_key(axes, sweep):
    return tuple((axis, axes[axis]) for axis in sweep.grid if axis != TUNED)


def compare(runs, other_dir):
    """Lines comparing each complete run's best val loss with the run of the same name in other_dir
    (a reproduction against the committed results, say)."""
    pairs = []
    for run in runs:
        other = summary_of(SimpleNamespace(dir=os.path.join(other_dir, run.name)))
        if is_complete(run) and other.get("complete"):
            pairs.append((run.name, summary_of(run)["best_val_loss"], other["best_val_loss"]))
    if not pairs:
        return [f"no run here has a complete counterpart in {other_dir}"]
    lines = [f"best val loss, this sweep against {other_dir}:"]
    lines += [f"  {name}: {a:.6f} vs {b:.6f} ({a - b:+.2e})" for name, a, b in pairs]
    worst = max(abs(a - b) for _, a, b in pairs)
    same = sum(a == b for _, a, b in pairs)
    lines.append(f"{len(pairs)} runs compared: {same} identical, largest difference {worst:.2e}")
    return lines


def cells(records, sweep):
    """Records grouped by the grid axes other than the tuned one (say, one group per model size)."""
    groups = {}
    for r in records:
        groups.setdefault(cell_key(r.run.axes, sweep), []).append(r)
    return groups


def by_activation(records, sweep):
    groups = {a: [r for r in records if r.run.activation == a] for a in sweep.activations}
    return {a: rs for a, rs in groups.items() if rs}


def at_best_rate(records, sweep):
    """Each activation's runs at its learning rate of lowest mean best val loss over the sweep's
    `seeds` (run at every rate), and that rate; confirm_seeds, run at the best rate only, are among
    the runs returned but play no part in choosing it."""
    best = {}
    for activation, rs in by_activation(records, sweep).items():
        chosen_by = [r for r in rs if r.run.seed in sweep.seeds]
        rates = sorted({r.run.axes[TUNED] for r in chosen_by})
        means = {lr: mean_std([r.best for r in chosen_by if r.run.axes[TUNED] == lr])[0] for lr in rates}
        lr = min(rates, key=means.get)
        best[activation] = (lr, [r for r in rs if r.run.axes[TUNED] == lr])
    return best


def pair(xs, ys):
    """Best val losses of two lists of runs, matched by seed."""
    x, y = ({r.run.seed: r.best for r in rs} for rs in (xs, ys))
    seeds = [s for s in x if s in y]
    return [x[s] for s in seeds], [y[s] for s in seeds]


# ---------------------------------------------------------------------------------------------
# Tables and verdicts

def fmt_p(p):
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_interval(iv):
    return f"[{iv[0]:.4f}, {iv[1]:.4f}]" if iv else "n/a"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_table(groups, reference, rates=None):
    """One row per activation: spread over seeds, and the paired difference from the reference.
    groups: activation -> runs; rates: activation -> learning rate, shown when given."""
    header = ["activation", *(["learning rate"] if rates else []), "seeds", "best val loss (mean ± std)",
              "95% CI", f"Δ vs {reference} (paired by seed)", "95% CI of Δ", "p (paired t)", "params",
              "tokens/s (mean)", "final val loss (mean)", "best at iteration"]
    rows = []
    for activation, rs in groups.items():
        losses = [r.best for r in rs]
        m, s = mean_std(losses)
        spread = f"{m:.4f} ± {s:.4f}" if len(rs) > 1 else f"{m:.4f}"
        if activation == reference:
            diff = ["reference", "", ""]
        elif reference not in groups:
            diff = ["n/a (no reference runs)", "", ""]
        else:
            test = paired_t(*pair(rs, groups[reference]))
            diff = [f"{test.mean:+.4f}", fmt_interval((test.lo, test.hi)), fmt_p(test.p)] if test \
                else ["n/a (fewer than 2 pairs)", "", ""]
        params = sorted({r.summary["n_params"] for r in rs})
        speeds = [r.summary["tokens_per_s"] for r in rs if r.summary.get("tokens_per_s")]
        rows.append([f"`{activation}`", *([f"{rates[activation]:g}"] if rates else []), len(rs), spread,
                     fmt_interval(interval95(losses)), *diff, " / ".join(f"{p:,}" for p in params),
                     f"{sum(speeds) / len(speeds):,.0f}" if speeds else "n/a",
                     f"{mean_std([r.summary['final_val_loss'] for r in rs])[0]:.4f}", best_iterations(rs)])
    return markdown_table(header, rows)


def best_iterations(rs):
    """The iterations at which runs reached their best val loss, as a range."""
    its = [min(r.evals, key=lambda e: e["val_loss"])["iter"] for r in rs]
    return f"{min(its):,}" if min(its) == max(its) else f"{min(its):,}–{max(its):,}"


def verdict(a, b, groups):
    """One line on 'a vs b', worded by the numbers: which is better (lower val loss), by how much,
    the 95% interval, p, and whether that is significant at ALPHA."""
    title = f"{SHOWN[a]} vs {SHOWN[b]}"
    test = paired_t(*pair(groups[a], groups[b]))
    if test is None:
        return f"- {title}: n/a (fewer than 2 seeds run with both)"
    if test.mean == 0:
        lead = f"{SHOWN[a]} and {SHOWN[b]} reach the same mean best val loss"
    else:
        better, worse = (a, b) if test.mean < 0 else (b, a)
        lead = f"{SHOWN[better]} is better than {SHOWN[worse]} by {abs(test.mean):.4f} in val loss"
    size = f"{abs(test.mean) / test.sd:.2f} sd of the paired differences" if test.sd else "no spread in the differences"
    significant = "significant" if test.p < ALPHA else "not significant"
    return (f"- {title}: {lead} ({size}; 95% CI of {SHOWN[a]} − {SHOWN[b]}: {fmt_interval((test.lo, test.hi))}; "
            f"paired t-test over {test.n} seeds, two-sided p = {fmt_p(test.p)}): {significant} at alpha "
            f"{ALPHA} at this scale")


def verdicts(groups):
    return [verdict(a, b, groups) for a, b in CLAIMS if a in groups and b in groups]


# ---------------------------------------------------------------------------------------------
# What the MLPs do, from each run's analysis.json (written by train.py when the run ended)

def analysed(rs):
    return [r for r in rs if r.analysis is not None]


def hidden_table(groups):
    rows = []
    for activation, rs in groups.items():
        stats = [r.analysis["hidden_units"]["mean"] for r in analysed(rs)]
        if not stats:
            rows.append([f"`{activation}`", 0, "n/a", "n/a", "n/a", "n/a"])
            continue
        mean = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}
        rows.append([f"`{activation}`", len(stats), f"{100 * mean['dead']:.1f}%", f"{mean['mean']:+.4f}",
                     f"{100 * mean['zeros']:.1f}%", f"{mean['abs']:.4f}"])
    return markdown_table(["activation", "runs analysed", "units never active (≤ 0 on every token)",
                           "mean output", "exact zeros", "mean abs output"], rows)


def collapse_table(records):
    rows = []
    for r in analysed(records):
        c = r.analysis["collapse"]
        rows.append([r.run.name, f"{c['diff']:.2e}", f"{c['max_logit']:.2f}", f"{c['mlp_before']:,}",
                     f"{c['mlp_after']:,}", f"{c['total_before']:,}", f"{c['total_after']:,}"])
    return markdown_table(["run", "max abs logit difference, folded vs unfolded", "max abs logit", "MLP params",
                           "MLP params folded", "model params", "model params folded"], rows)


# ---------------------------------------------------------------------------------------------
# Plot and raw values

def mean_curve(rs):
    """Mean val loss (with min and max) and mean wall time at the iterations every run evaluated."""
    iters = sorted(set.intersection(*({e["iter"] for e in r.evals} for r in rs)))
    curves = [{e["iter"]: e for e in r.evals} for r in rs]
    loss = [[c[i]["val_loss"] for c in curves] for i in iters]
    wall = [sum(c[i]["wall_s"] for c in curves) / len(curves) for i in iters]
    return iters, wall, [sum(v) / len(v) for v in loss], [min(v) for v in loss], [max(v) for v in loss]


ZOOM = 0.25  # the loss axis shows the curves from this fraction of the run on, where they differ


def plot(panels, path):
    """panels: (title, {label: runs}); one row per panel: val loss against iteration and wall time,
    the loss axis zoomed to the last three quarters of training (the first quarter's fall from
    ~4 nats is the same for every activation and would flatten the differences)."""
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 4 * len(panels)), squeeze=False)
    for row, (title, curves) in zip(axes, panels):
        shown = []
        for i, (label, rs) in enumerate(curves.items()):
            iters, wall, mean, lo, hi = mean_curve(rs)
            for ax, x in zip(row, (iters, wall)):
                ax.plot(x, mean, color=f"C{i % 10}", label=f"{label} ({len(rs)} seeds)")
                ax.fill_between(x, lo, hi, color=f"C{i % 10}", alpha=0.2)
            late = [k for k, it in enumerate(iters) if it >= ZOOM * iters[-1]]
            shown += [lo[k] for k in late] + [hi[k] for k in late]
        margin = 0.05 * (max(shown) - min(shown)) or 0.01
        for ax, xlabel in zip(row, ("iteration", "wall time (s)")):
            ax.set(xlabel=xlabel, ylabel="val loss", ylim=(min(shown) - margin, max(shown) + margin),
                   title=f"{title}: mean over seeds, band min–max")
            ax.grid(alpha=0.3)
        row[0].legend()
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    files.atomic_write(path, lambda f: f.write(buf.getvalue()))


def write_csv(records, sweep, path):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "activation", "seed", *sweep.grid, "best_val_loss", "final_val_loss", "n_params",
                     "tokens_per_s", "wall_s"])
    for r in records:
        s = r.summary
        writer.writerow([r.run.name, r.run.activation, r.run.seed, *(r.run.axes[a] for a in sweep.grid),
                         s["best_val_loss"], s["final_val_loss"], s["n_params"], s["tokens_per_s"], s["wall_s"]])
    files.atomic_write(path, lambda f: f.write(out.getvalue().encode()))


# ---------------------------------------------------------------------------------------------
# The report

def distinct(values):
    return ", ".join(sorted({str(v) for v in values}))


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h"


def host_line(host):
    if host is None:
        return "unknown (no host.json)"
    gpus = sorted(set(host["gpus"]))
    gpu = f"{len(host['gpus'])} × {gpus[0]}; " if len(gpus) == 1 else "".join(f"{g}; " for g in gpus)
    return f"{gpu}{host['cpu']}, {host['cores']} cores"


def header(sweep, records, missing, command):
    hosts = Counter(host_line(r.host) for r in records)
    tokens = distinct(f"{r.summary['tokens_seen']:,}" for r in records)
    lines = [
        f"# Sweep `{sweep.name}`: MLP activations",
        "",
        f"Regenerate this report (and runs.csv, loss.png) from the run records: `{command}`",
        "",
        f"- runs: {len(records)} of {len(records) + len(missing)} complete"
        + (f"; not complete: {', '.join(missing)}" if missing else ""),
        f"- git revision of the runs: {distinct(r.summary['git'] for r in records)}",
        f"- torch: {distinct(r.summary['torch'] for r in records)}; device: "
        f"{distinct(r.summary['device'] for r in records)}; processes per run: "
        f"{distinct(r.summary['world_size'] for r in records)}",
        "- hardware: " + "; ".join(f"{h} ({n} runs)" for h, n in hosts.items()),
        f"- iterations per run: {distinct(r.summary['iters'] for r in records)}; tokens per run: {tokens}",
        f"- total wall time of the runs: {duration(sum(r.summary['wall_s'] for r in records))} "
        "(sum over runs; runs side by side overlap)",
    ]
    passes = [r.summary["tokens_seen"] / r.summary["train_tokens"] for r in records if r.summary.get("train_tokens")]
    if passes:
        lines.append(f"- passes over the training text per run: {min(passes):.1f}"
                     + (f" to {max(passes):.1f}" if max(passes) > min(passes) + 0.05 else "")
                     + " (tokens seen / tokens in train.bin; past 1, runs see text again)")
    unanalysed = [r.run.name for r in records if r.analysis is None]
    if unanalysed:
        lines.append(f"- no analysis.json (hidden units, collapse check) for {len(unanalysed)} of {len(records)} "
                     f"runs, left out of those tables: {', '.join(unanalysed)}")
    lines += [
        "",
        "Loss is the best validation loss of a run (lower is better). Every activation runs with the same seeds, "
        "and a seed fixes the initialisation and the batches, so differences from the reference "
        f"(`{sweep.reference}`) are paired by seed and tested with a two-sided paired t-test; 95% intervals use "
        "Student's t. Raw per-run values: runs.csv.",
    ]
    return lines


def cell_title(key, sweep):
    if not key:
        return "Results"
    parts = []
    for axis, value in key:
        bundle = sweep.grid[axis]
        keys = f" ({', '.join(f'{k}={v}' for k, v in bundle[value].items())})" if isinstance(bundle, dict) else ""
        parts.append(f"{axis}={value}{keys}")
    return ", ".join(parts)


def best_rate_note(sweep):
    seeds = ", ".join(map(str, sweep.seeds))
    note = (f"An activation's best learning rate is the one of lowest mean best val loss over seeds {seeds}, "
            "which ran at every rate. ")
    if sweep.confirm_seeds:
        more = ", ".join(map(str, sweep.confirm_seeds))
        return note + (f"Seeds {more} then ran at that rate only: they count in the comparison below but played "
                       "no part in choosing the rate, so they judge it without the flattery of selection.")
    return note + ("It is chosen on the same runs it is then judged by, which flatters every activation a "
                   "little (most where seeds are few).")


def cell_section(title, rs, sweep):
    """The markdown of one cell, its loss curves to plot (label -> runs) and its verdicts. With a
    learning-rate axis, each activation is judged and plotted at its best rate."""
    lines = ["", f"## {title}"]
    if len(sweep.grid.get(TUNED, ())) > 1:
        for lr in sorted({r.run.axes[TUNED] for r in rs}):
            lines += ["", f"### Learning rate {lr:g}", "",
                      comparison_table(by_activation([r for r in rs if r.run.axes[TUNED] == lr], sweep),
                                       sweep.reference)]
        best = at_best_rate(rs, sweep)
        groups = {a: runs for a, (_, runs) in best.items()}
        curves = {f"{a}, lr {lr:g}": runs for a, (lr, runs) in best.items()}
        lines += ["", "### Each activation at its own best learning rate", "", best_rate_note(sweep), "",
                  comparison_table(groups, sweep.reference, {a: lr for a, (lr, _) in best.items()})]
        grid = sweep.grid[TUNED]
        lines += [f"\n**The best rate of `{a}` ({lr:g}) is at the edge of the grid**: a rate beyond it may be "
                  "better; widen the grid." for a, (lr, _) in best.items() if lr in (min(grid), max(grid))]
    else:
        groups = curves = by_activation(rs, sweep)
        if TUNED in sweep.grid:
            lines += ["", f"Learning rate {sweep.grid[TUNED][0]:g}."]
        lines += ["", comparison_table(groups, sweep.reference)]
    found = verdicts(groups)
    if found:
        lines += ["", "### Verdicts", "", *found]
    if any(r.analysis for r in rs):
        lines += mlp_sections(groups)
    return lines, curves, found


def mlp_sections(groups):
    lines = ["", "### MLP hidden units", "",
             "The activation's output act(x·W_fc) (for gated MLPs, the gate act(x·W)), from forward hooks on "
             "c_fc, on the first validation batches through each run's final model (analysis.json, written when "
             "the run ended); averaged over layers, then over runs. A unit never active gives ≤ 0 on every "
             "token (a dead unit, for ReLU-like activations).", "", hidden_table(groups)]
    if analysed(groups.get("none", [])):
        lines += ["", "### Linear collapse of 'none'", "",
                  "Each MLP of the final model folded into one n_embd × n_embd Linear (MLP.folded()); logits "
                  "of the folded and the unfolded model compared on a validation batch.", "",
                  collapse_table(groups["none"])]
    return lines


def write(sweep, runs, command):
    """Write report.md, runs.csv and loss.png; return the report's path and its verdict lines."""
    records, missing = load_records(runs)
    out_dir = os.path.join(sweep.out_dir, sweep.name)
    if not records:
        raise UserError(f"no complete runs under {os.path.join(out_dir, 'runs')}; run the sweep first")
    lines = header(sweep, records, missing, command)
    panels, printed = [], []
    groups_by_cell = cells(records, sweep)
    for key, rs in groups_by_cell.items():
        title = cell_title(key, sweep)
        section, curves, found = cell_section(title, rs, sweep)
        lines += section
        panels.append((title, curves))
        printed += [f"[{title}] {v[2:]}" if len(groups_by_cell) > 1 else v[2:] for v in found]
    lines += ["", "## Loss curves", "", "Validation loss, mean over seeds with a min–max band; "
              "each activation at its best learning rate where the grid has one. The loss axis shows the last "
              "three quarters of training, where the curves differ.", "", "![val loss](loss.png)", ""]
    write_csv(records, sweep, os.path.join(out_dir, "runs.csv"))
    plot(panels, os.path.join(out_dir, "loss.png"))
    path = os.path.join(out_dir, "report.md")
    files.atomic_write(path, lambda f: f.write("\n".join(lines).encode()))
    return path, printed
