"""
The evidence of a sweep, from its runs' records alone (summary.json, metrics.jsonl, host.json,
analysis.json through rundir.py): each activation's learning rate chosen on the selection seeds
and judged on the held-out ones, the comparison tables and the verdicts, worded no stronger than
their tests (stats.py). No plotting and no torch: sweep.py asks it which runs to launch next, and
report.py and study.py build on it.
"""

import os
from types import SimpleNamespace

from experiment.stats import ALPHA, interval95, mean_std, paired_t, parabola, seeds_needed, tost
from training import rundir

TUNED = "learning_rate"  # with this axis in the grid, each activation is compared at its own best value
WHOLE, SUBSET = "best_full_val_loss", "best_val_loss"  # summary.json's scores of a run's best model
CLAIMS = [("gelu", "relu"), ("none", "gelu"), ("none", "relu")]
SHOWN = {"gelu": "GELU", "relu": "ReLU", "none": "'none'"}


# --------------------------------------------------------------------------------------- records


def load_records(runs):
    """The complete runs' records, and the names of runs that are not complete."""
    records, missing = [], []
    for run in runs:
        summary = rundir.summary(run.dir)
        if summary.get("complete") is not True:
            missing.append(run.name)
            continue
        evals = rundir.evaluations(rundir.read_metrics(run.dir)[0])
        records.append(SimpleNamespace(run=run, summary=summary, evals=evals, subset=summary["best_val_loss"],
                                       host=rundir.read_json(run.dir, rundir.HOST),
                                       analysis=rundir.read_json(run.dir, rundir.ANALYSIS)))
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
        other = rundir.summary(os.path.join(other_dir, run.name))
        if rundir.is_complete(run.dir) and other.get("complete"):
            pairs.append((run.name, rundir.summary(run.dir)["best_val_loss"], other["best_val_loss"]))
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
        if rate is None and not selection:
            continue  # none of its selection runs is complete: no rate is chosen yet
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


# ---------------------------------------------------------------------------- tables and verdicts


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


def scored_iterations(groups):
    """The iterations at which every run of groups was scored on the whole validation split (the
    sweep's score_iters and the end), in order; empty where runs scored only their end."""
    rs = [r for runs in groups.values() for r in runs]
    common = set.intersection(*(set(r.summary.get("full_val_loss_at", {})) for r in rs)) if rs else set()
    return sorted(map(int, common)) if len(common) > 1 else []


def at_iteration(groups, it):
    """groups' runs scored by their model at iteration `it` instead of their best one: the whole
    split's loss then, and the periodic evaluation's then as the subset score."""
    return {a: [SimpleNamespace(run=r.run, summary=r.summary, best=r.summary["full_val_loss_at"][str(it)],
                                subset=next(e["val_loss"] for e in r.evals if e["iter"] == it)) for r in rs]
            for a, rs in groups.items()}


def rate_fits(chosen, seeds):
    """Per tuned activation: a parabola in log(rate) through the mean scores at the chosen rate and
    its two neighbours on the grid (where it has both), and the same through each selection seed's
    own scores: where the optimum lies between the grid's points, and how firmly."""
    fits = {}
    for activation, c in chosen.items():
        rates = sorted({r.run.axes[TUNED] for r in c.selection})
        i = rates.index(c.rate) if c.rate in rates else -1
        if c.fixed or c.edge or not 0 < i < len(rates) - 1:  # (an incomplete grid may lack a neighbour)
            continue
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


def distinct(values):
    return ", ".join(sorted({str(v) for v in values}))


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} days"


# ---------------------------------------------- what the MLPs do (analysis.json, written as runs end)


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
