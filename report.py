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
import os
from collections import Counter
from types import SimpleNamespace

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

import files  # noqa: E402
from configurator import UserError  # noqa: E402
from stats import ALPHA, interval95, mean_std, paired_t, parabola, seeds_needed, tost  # noqa: E402

TUNED = "learning_rate"  # with this axis in the grid, each activation is compared at its own best value
WHOLE, SUBSET = "best_full_val_loss", "best_val_loss"  # summary.json's scores of a run's best model
CLAIMS = [("gelu", "relu"), ("none", "gelu"), ("none", "relu")]
SHOWN = {"gelu": "GELU", "relu": "ReLU", "none": "'none'"}


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
        records.append(SimpleNamespace(run=run, summary=summary, evals=evals, subset=summary["best_val_loss"],
                                       host=read_optional(run, "host.json"),
                                       analysis=read_optional(run, "analysis.json")))
    metric = score_of(records)
    for r in records:
        r.best = r.summary[metric]  # what every table, test and choice of rate uses
    return records, missing


def score_of(records):
    """The summary field runs are judged by: the best model's loss on the whole validation split,
    or, for records made before runs scored it (or where one run could not), the best periodic
    evaluation's on its fixed subset, for every run alike."""
    whole = records and all(r.summary.get(WHOLE) is not None for r in records)
    return WHOLE if whole else SUBSET


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


def choice(records, sweep):
    """Each activation's learning rate and the runs that judge it at that rate. The rate is the one of
    lowest mean score over the selection seeds (`seeds`, run at every rate), or the one fixed_rates
    gives; the judges are the held-out seeds (`heldout_seeds`, never used in selection) where the
    sweep has them, else the selection seeds themselves. edge: the chosen rate is the grid's lowest
    or highest, so the optimum may lie beyond it."""
    grid, judges, out = sweep.grid.get(TUNED, []), sweep.heldout_seeds or sweep.seeds, {}
    for activation, rs in by_activation(records, sweep).items():
        selection = [r for r in rs if r.run.seed in sweep.seeds and activation not in sweep.fixed_rates]
        rate = sweep.fixed_rates.get(activation)
        if rate is None:
            rates = sorted({r.run.axes[TUNED] for r in selection})
            means = {lr: mean_std([r.best for r in selection if r.run.axes[TUNED] == lr])[0] for lr in rates}
            rate = min(rates, key=means.get)
        out[activation] = SimpleNamespace(
            rate=rate, selection=selection, fixed=activation in sweep.fixed_rates,
            edge=activation not in sweep.fixed_rates and len(grid) > 1 and rate in (min(grid), max(grid)),
            runs=[r for r in rs if r.run.axes[TUNED] == rate and r.run.seed in judges])
    return out


def pair(xs, ys, score="best"):
    """Scores of two lists of runs, matched by seed."""
    x, y = ({r.run.seed: getattr(r, score) for r in rs} for rs in (xs, ys))
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
    header = ["activation", *(["learning rate"] if rates else []), "seeds", "score (mean ± std)",
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


def verdict(a, b, groups, margin, refused=""):
    """One line on 'a vs b', worded no stronger than its tests: 'X better' only where the paired
    t-test gives p < ALPHA, 'equivalent' only where the TOST interval lies inside the margin fixed
    before the runs, 'inconclusive' otherwise (with the seeds that would settle it), and no verdict
    at all where a learning rate was not bracketed by the grid (refused says why)."""
    title = f"{SHOWN[a]} vs {SHOWN[b]}"
    if refused:
        return f"- {title}: **no verdict**: {refused}"
    test = paired_t(*pair(groups[a], groups[b]))
    if test is None:
        return f"- {title}: n/a (fewer than 2 seeds run with both)"
    better = SHOWN[a] if test.mean < 0 else SHOWN[b]
    equivalence = tost(test, margin) if margin > 0 else None
    equivalent = equivalence is not None and equivalence.equivalent
    subset = paired_t(*pair(groups[a], groups[b], "subset"))
    facts = (f"{SHOWN[a]} − {SHOWN[b]} = {test.mean:+.4f}, 95% CI {fmt_interval((test.lo, test.hi))}, paired t-test "
             f"over {test.n} seeds p = {fmt_p(test.p)}, sd of the differences {test.sd:.4f}")
    if equivalence is not None:
        facts += f"; TOST 90% CI {fmt_interval((equivalence.lo, equivalence.hi))} against ±{margin:g}"
    if subset is not None and subset.mean != test.mean:
        facts += f"; on the periodic evaluation's subset the difference was {subset.mean:+.4f}"
    if test.p < ALPHA and equivalent:
        word = f"**{better} better, by less than the ±{margin:g} margin** (both different and equivalent)"
    elif test.p < ALPHA:
        word = f"**{better} better**"
    elif equivalent:
        word = f"**equivalent within ±{margin:g}**"
    else:
        need = seeds_needed(test.sd, margin) if margin > 0 else None
        word = "**inconclusive**" + (
            f" (no difference at alpha {ALPHA}, and no equivalence margin was fixed before these runs)" if not margin
            else f" (neither a difference at alpha {ALPHA} nor equivalence within ±{margin:g}; "
                 + (f"{need} seeds would detect a difference of {margin:g} with 80% power at this spread)"
                    if need else "no feasible number of seeds would)"))
    return f"- {title}: {word}: {facts}"


def verdicts(groups, margin, refusals=None):
    """The verdict lines of CLAIMS; refusals: activation -> why it cannot be judged."""
    refusals = refusals or {}
    return [verdict(a, b, groups, margin, "; ".join(refusals[x] for x in (a, b) if x in refusals))
            for a, b in CLAIMS if a in groups and b in groups]


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


def plot_rates(panels, path):
    """panels: (title, choice, fits): for each tuned activation, every selection seed's score (dots)
    and their mean (line) against the learning rate, the parabola around the chosen rate (dashed)
    and its minimum (star)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, chosen, fits) in zip(axes[0], panels):
        points, means = [], []
        for i, (activation, c) in enumerate(chosen.items()):
            if c.fixed:
                continue
            color, rates = f"C{i % 10}", sorted({r.run.axes[TUNED] for r in c.selection})
            mean = [mean_std([r.best for r in c.selection if r.run.axes[TUNED] == lr])[0] for lr in rates]
            ax.scatter([r.run.axes[TUNED] for r in c.selection], [r.best for r in c.selection], color=color, s=12,
                       alpha=0.5)
            ax.plot(rates, mean, "o-", color=color, label=f"{activation}: chosen {c.rate:g}")
            fit = fits.get(activation)
            if fit and fit.optimum:
                xs = np.geomspace(fit.rates[0], fit.rates[-1], 60)
                ax.plot(xs, np.polyval(fit.optimum.coef, np.log10(xs)), "--", color=color)
                ax.plot([fit.optimum.rate], [fit.optimum.loss], "*", color=color, markersize=12)
            points += [r.best for r in c.selection]
            means += mean
        if points:  # a diverged rate would flatten the rest: show up to 0.3 above the lowest point
            low = min(points) - 0.01
            ax.set_ylim(low, min(max(means) + 0.02, low + 0.3))
        ax.set(xscale="log", xlabel="learning rate", ylabel="score (val loss)", title=f"{title}: selection seeds")
        ax.grid(alpha=0.3)
        ax.legend()
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
    scores = ("best_val_loss", "final_val_loss", WHOLE, "final_full_val_loss")
    writer.writerow(["run", "activation", "seed", *sweep.grid, *scores, "n_params", "tokens_per_s", "wall_s"])
    for r in records:
        s = r.summary
        writer.writerow([r.run.name, r.run.activation, r.run.seed, *(r.run.axes[a] for a in sweep.grid),
                         *(s.get(k) for k in scores), s["n_params"], s["tokens_per_s"], s["wall_s"]])
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
    lines += ["", *score_note(records), "",
              "Every activation runs with the same seeds, and a seed fixes the initialisation and the batches, so "
              f"differences from the reference (`{sweep.reference}`) are paired by seed and tested with a "
              "two-sided paired t-test; 95% intervals use Student's t. Raw per-run values: runs.csv."]
    return lines


def score_note(records):
    """What a run's score is, and how far the periodic evaluation's subset was from it."""
    config = records[0].summary["config"]
    subset = f"{config['eval_iters'] * config['batch_size'] * config['block_size']:,} tokens"
    if score_of(records) == SUBSET:
        return [f"A run's score is its best validation loss on the periodic evaluation's fixed subset ({subset}, "
                "the same for every run); lower is better. These records predate the whole-split score."]
    gaps = [r.subset - r.best for r in records]
    tokens = distinct(f"{r.summary['full_val_tokens']:,}" for r in records)
    return [f"A run's score is the loss of its best model (the periodic evaluation's choice, best.pt) on the whole "
            f"validation split, every token once ({tokens} tokens), measured when the run ended; lower is better. "
            f"The curves and 'best at iteration' use the periodic evaluation on a fixed subset ({subset}): its best "
            f"val loss minus the whole split's was {sum(gaps) / len(gaps):+.4f} on average, from {min(gaps):+.4f} "
            f"to {max(gaps):+.4f} over runs, an error every run shares in part, which no seed interval shows."]


def cell_title(key, sweep):
    if not key:
        return "Results"
    parts = []
    for axis, value in key:
        bundle = sweep.grid[axis]
        keys = f" ({', '.join(f'{k}={v}' for k, v in bundle[value].items())})" if isinstance(bundle, dict) else ""
        parts.append(f"{axis}={value}{keys}")
    return ", ".join(parts)


def seeds_text(seeds):
    return ", ".join(map(str, seeds))


def choice_note(sweep, chosen):
    lines = [f"**Selection.** Each activation's learning rate is the one of lowest mean score over seeds "
             f"{seeds_text(sweep.seeds)}, which ran at every rate of the grid (the tables above)."]
    lines += [f"`{a}` runs at {c.rate:g}, a rate fixed before this sweep (its sweep file says where it comes "
              "from), not chosen here." for a, c in chosen.items() if c.fixed]
    if sweep.heldout_seeds:
        lines.append(f"**Judging.** Seeds {seeds_text(sweep.heldout_seeds)} ran at the chosen rates only, after the "
                     "choice, and played no part in it: they alone make the table and the verdicts below, so no "
                     "verdict is flattered by the selection.")
    else:
        lines.append("**Judging.** The seeds that chose each rate also judge it, which flatters every activation "
                     "a little (most where seeds are few); held-out seeds (`heldout_seeds`) would not.")
    return " ".join(lines)


def rate_fits(chosen, seeds):
    """Per tuned activation: a parabola in log(rate) through the mean scores at the chosen rate and
    its two neighbours on the grid (where it has both), and the same through each selection seed's
    own scores: where the optimum lies between the grid's points, and how firmly."""
    fits = {}
    for activation, c in chosen.items():
        rates = sorted({r.run.axes[TUNED] for r in c.selection})
        if c.fixed or c.edge or len(rates) < 3:
            continue
        i = rates.index(c.rate)
        three = rates[i - 1:i + 2]
        scores = {(r.run.seed, r.run.axes[TUNED]): r.best for r in c.selection}
        mean = [mean_std([v for (_, lr), v in scores.items() if lr == x])[0] for x in three]
        per_seed = [parabola(three, [scores[seed, x] for x in three]) for seed in seeds
                    if all((seed, x) in scores for x in three)]
        fits[activation] = SimpleNamespace(rates=three, mean=mean, optimum=parabola(three, mean), per_seed=per_seed)
    return fits


def rate_fit_table(chosen, fits):
    rows = []
    for activation, c in chosen.items():
        if c.fixed:
            rows.append([f"`{activation}`", f"{c.rate:g} (fixed)", "", "", "", ""])
            continue
        fit = fits.get(activation)
        if fit is None:
            rows.append([f"`{activation}`", f"{c.rate:g}", "no: at the edge of the grid" if c.edge else "n/a",
                         "", "", ""])
            continue
        located = [o.rate for o in fit.per_seed if o]
        spread = (f"{min(located):.3g} to {max(located):.3g} ({len(located)} of {len(fit.per_seed)} seeds)"
                  if located else "none")
        rows.append([f"`{activation}`", f"{c.rate:g}", f"yes: {fit.rates[0]:g} and {fit.rates[2]:g}",
                     f"{fit.optimum.rate:.3g}" if fit.optimum else "no minimum",
                     f"{fit.optimum.loss:.4f}" if fit.optimum else "", spread])
    return markdown_table(["activation", "chosen rate", "bracketed by", "fitted optimum", "fitted score",
                           "fitted optimum per selection seed"], rows)


def cell_section(title, rs, sweep):
    """The markdown of one cell, its loss curves to plot (label -> runs), the choice of rates and
    fits to plot, and its verdicts. With a learning-rate grid, each activation is judged and plotted
    at its chosen rate."""
    lines, choices = ["", f"## {title}"], None
    if len(sweep.grid.get(TUNED, ())) > 1:
        chosen = choice(rs, sweep)
        selection = [r for c in chosen.values() for r in c.selection]
        for lr in sorted({r.run.axes[TUNED] for r in selection}):
            lines += ["", f"### Learning rate {lr:g} (seeds {seeds_text(sweep.seeds)})", "",
                      comparison_table(by_activation([r for r in selection if r.run.axes[TUNED] == lr], sweep),
                                       sweep.reference)]
        groups = {a: c.runs for a, c in chosen.items()}
        curves = {f"{a}, lr {c.rate:g}": c.runs for a, c in chosen.items()}
        fits = rate_fits(chosen, sweep.seeds)
        choices = (chosen, fits)
        lines += ["", "### Each activation at its chosen learning rate", "", choice_note(sweep, chosen), "",
                  comparison_table(groups, sweep.reference, {a: c.rate for a, c in chosen.items()}),
                  "", "### The score against the learning rate", "",
                  "Where the chosen rate has a grid point on both sides, a parabola in log(rate) through the mean "
                  "scores at those three rates locates the optimum between grid points (a check that the grid "
                  "brackets it, not a replacement for measured runs); the same fit through each selection seed's "
                  "own scores shows how firmly (no minimum: those three points curve downward).", "",
                  rate_fit_table(chosen, fits), "", "![score against learning rate](rates.png)"]
        refusals = {a: f"the chosen rate of `{a}` ({c.rate:g}) is at the edge of the grid, so its best rate may lie "
                       "beyond it; widen the grid" for a, c in chosen.items() if c.edge}
    else:
        groups = curves = by_activation(rs, sweep)
        if TUNED in sweep.grid:
            lines += ["", f"Learning rate {sweep.grid[TUNED][0]:g}."]
        lines += ["", comparison_table(groups, sweep.reference)]
        refusals = {}
    found = verdicts(groups, sweep.margin, refusals)
    if found:
        lines += ["", "### Verdicts", "", verdict_rules(sweep.margin), "", *found]
    if any(r.analysis for r in rs):
        lines += mlp_sections(groups)
    return lines, curves, choices, found


def verdict_rules(margin):
    rule = (f"A verdict says **X better** only where the paired t-test gives p < {ALPHA}, **equivalent** only where "
            f"two one-sided tests put the 90% interval of the difference inside ±{margin:g}, a margin fixed in the "
            "sweep file before the runs, and **inconclusive** otherwise" if margin else
            f"A verdict says **X better** only where the paired t-test gives p < {ALPHA}, and **inconclusive** "
            "otherwise (no equivalence margin was fixed before these runs, so equivalence is not tested)")
    return rule + "; no verdict is given where a chosen rate is at the edge of the grid."


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
    panels, rate_panels, printed = [], [], []
    groups_by_cell = cells(records, sweep)
    for key, rs in groups_by_cell.items():
        title = cell_title(key, sweep)
        section, curves, choices, found = cell_section(title, rs, sweep)
        lines += section
        panels.append((title, curves))
        if choices:
            rate_panels.append((title, *choices))
        printed += [f"[{title}] {v[2:]}" if len(groups_by_cell) > 1 else v[2:] for v in found]
    lines += ["", "## Loss curves", "", "Validation loss, mean over seeds with a min–max band; "
              "each activation at its best learning rate where the grid has one. The loss axis shows the last "
              "three quarters of training, where the curves differ.", "", "![val loss](loss.png)", ""]
    write_csv(records, sweep, os.path.join(out_dir, "runs.csv"))
    plot(panels, os.path.join(out_dir, "loss.png"))
    if rate_panels:
        plot_rates(rate_panels, os.path.join(out_dir, "rates.png"))
    path = os.path.join(out_dir, "report.md")
    files.atomic_write(path, lambda f: f.write("\n".join(lines).encode()))
    return path, printed
