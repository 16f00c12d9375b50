"""
The study across sweeps: the claim at every model size with each activation at its own best
learning rate, and over longer training, in tables and three figures. Written from the sweeps' run
records alone, like their reports; regenerate with the same command.

    python study.py config/study_cpu.py

Writes OUT_DIR/NAME/study.md, size.png (the paired differences from the reference activation
against model size), lr.png (best val loss against learning rate, one panel per size) and
length.png (the paired differences against training iteration).
"""

import math
import os
from types import SimpleNamespace

import sweep
from configurator import configure
from experiment import evidence, stats
from experiment.figures import plt, save_figure
from training import files
from training.errors import UserError, run_main

DEFAULTS = dict(
    name="",  # the study's folder under out_dir
    sizes=[],  # sweep files, one per model size, each with a learning-rate grid
    length="",  # a sweep file of longer runs, one learning rate per activation ('' for none)
    at=[],  # iterations at which the longer runs' differences (or, with out_base, µP's and SP's losses) are tabulated
    compare=["relu", "none"],  # activations compared with each sweep's reference, paired by seed
    transfer=[],  # sweep files over widths, parametrizations and rates, read as one: does the best rate move?
    width_axis="width",  # the transfer sweep's grid axis of model widths
    param_axis="param",  # the transfer sweep's grid axis of parametrizations (µP or not)
    mup="mup",  # that axis's label of µP runs ...
    sp="sp",  # ... and of standard ones, which the checks of µP compare at the widest width
    out_base="",  # a sweep file at µP's base width over rates x output multipliers (mup_output_mult) ...
    out_wide=[],  # ... and sweep files at the widest width, each activation at its best multiplier there
    out_dir="results",  # where the study's folder goes
)


def records_of(path):
    """A sweep file's sweep and its complete runs' records (missing runs are named in its report)."""
    s = sweep.load_sweep([path])
    runs = sweep.plan(s)
    return s, evidence.load_records(runs + sweep.judging_runs(s, runs))[0]


def difference(xs, ys):
    """Paired difference of two lists of records by seed: SimpleNamespace(n, mean, lo, hi, p) or None."""
    return stats.paired_t(*evidence.pair(xs, ys))


def seeds(n):
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fmt(test):
    if test is None:
        return "n/a"
    return f"{test.mean:+.4f} [{test.lo:+.4f}, {test.hi:+.4f}], p = {evidence.fmt_p(test.p)}"


def size_section(study, sizes):
    """Per size: each activation's best rate and best val loss, and the paired differences."""
    header = ["size", "parameters", *(f"`{a}`: chosen rate: score" for a in sizes[0][2]),
              *(f"{a} − {sizes[0][0].reference} [95% CI], p" for a in study.compare)]
    rows = []
    for s, records, best in sizes:
        ref = best[s.reference].runs
        cells = [f"{c.rate:g}: " + (f"{stats.mean_std([r.best for r in c.runs])[0]:.4f} ({seeds(len(c.runs))})"
                                    if c.runs else "no judging run complete yet") for c in best.values()]
        rows.append([s.name, f"{records[0].summary['n_params']:,}", *cells,
                     *(fmt(difference(best[a].runs, ref)) for a in study.compare)])
    return evidence.markdown_table(header, rows)


def dataset_of(records):
    return records[0].summary["config"].get("dataset", "?")


def size_figure(study, sizes, path):
    """A panel per compared activation: its paired difference from the reference, with 95% intervals,
    against parameter count; a series per dataset (corpus and tokenizer); the sweeps' equivalence
    margin shaded around 0."""
    fig, axes = plt.subplots(1, len(study.compare), figsize=(6 * len(study.compare), 4.5), squeeze=False)
    datasets = list(dict.fromkeys(dataset_of(records) for _, records, _ in sizes))
    margin = max(s.margin for s, _, _ in sizes)
    for ax, a in zip(axes[0], study.compare):
        drawn = False
        for i, dataset in enumerate(datasets):
            points = [(records[0].summary["n_params"], difference(best[a].runs, best[s.reference].runs))
                      for s, records, best in sizes if dataset_of(records) == dataset and a in best]
            points = sorted((n, t) for n, t in points if t is not None)  # None: fewer than 2 seeds judge
            drawn = drawn or bool(points)
            ax.errorbar([n for n, _ in points], [t.mean for _, t in points], fmt="o-", capsize=4, color=f"C{i}",
                        yerr=[[t.mean - t.lo for _, t in points], [t.hi - t.mean for _, t in points]], label=dataset)
        if margin:
            ax.axhspan(-margin, margin, color="grey", alpha=0.2, label=f"±{margin:g}: equivalence margin")
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log" if drawn else "linear", xlabel="parameters", ylabel="Δ score (paired by seed)",
               title=f"{a} − {sizes[0][0].reference}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Each activation at its own best learning rate: paired differences, 95% intervals")
    fig.tight_layout()
    save_figure(fig, path)


def lr_figure(sizes, path):
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.2), squeeze=False)
    for ax, (s, records, best) in zip(axes[0], sizes):
        shown = []
        for i, (activation, c) in enumerate(best.items()):
            rs = c.selection or c.runs  # like with like: the seeds that ran at every rate
            rates = sorted({r.run.axes[evidence.TUNED] for r in rs})
            losses = [[r.best for r in rs if r.run.axes[evidence.TUNED] == lr] for lr in rates]
            means = [stats.mean_std(v)[0] for v in losses]
            intervals = [stats.interval95(v) or (m, m) for v, m in zip(losses, means)]
            ax.errorbar(rates, means, yerr=[[m - lo for m, (lo, _) in zip(means, intervals)],
                                            [hi - m for m, (_, hi) in zip(means, intervals)]],
                        fmt="o-", capsize=3, color=f"C{i}", label=activation)
            shown += [lo for lo, _ in intervals] + means
        # a diverged seed can make one interval span the whole loss range: show where the means are
        ax.set(xscale="log", xlabel="learning rate", ylabel="score (val loss)",
               ylim=(min(shown) - 0.02, max(shown) + 0.05), title=f"{s.name} ({records[0].summary['n_params']:,} "
                                                                   "parameters)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Score against learning rate: mean over the seeds that ran at every rate, 95% interval")
    fig.tight_layout()
    save_figure(fig, path)


def at_iteration(rs, it):
    """Records whose val loss at iteration it stands in for their best, for evidence.pair."""
    out = []
    for r in rs:
        e = next((e for e in r.evals if e["iter"] == it), None)
        if e is not None:
            out.append(SimpleNamespace(run=r.run, best=e["val_loss"], gap=e["val_loss"] - e["train_loss"]))
    return out


def means_at(rs, it):
    """The mean val loss and mean val − train gap of rs at iteration it."""
    now = at_iteration(rs, it)
    return (stats.mean_std([getattr(r, k) for r in now])[0] for k in ("best", "gap"))


def length_section(study, s, records):
    groups = evidence.by_activation(records, s)
    ref = groups[s.reference]
    summary = ref[0].summary
    header = ["iteration", "passes over the training text",
              *(f"`{a}` val loss (val − train)" for a in groups),
              *(f"{a} − {s.reference} [95% CI], p" for a in study.compare)]
    rows = []
    for it in study.at:
        passes = it * summary["tokens_seen"] / summary["iters"] / summary["train_tokens"]
        cells = []
        for rs in groups.values():
            val, gap = means_at(rs, it)
            cells.append(f"{val:.4f} ({gap:+.3f})")
        rows.append([f"{it:,}", f"{passes:.1f}", *cells,
                     *(fmt(difference(at_iteration(groups[a], it), at_iteration(ref, it))) for a in study.compare)])
    best = [f"- `{a}`: best val loss {stats.mean_std([r.best for r in rs])[0]:.4f} at iteration "
            f"{evidence.best_iterations(rs)}" for a, rs in groups.items()]
    return evidence.markdown_table(header, rows), best


def length_figure(study, s, records, path):
    groups = evidence.by_activation(records, s)
    iters = sorted(set.intersection(*({e["iter"] for e in r.evals} for r in records)))
    iters = [it for it in iters if it > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, a in enumerate(study.compare):
        tests = [difference(at_iteration(groups[a], it), at_iteration(groups[s.reference], it)) for it in iters]
        ax.plot(iters, [t.mean for t in tests], color=f"C{i + 1}", label=f"{a} − {s.reference}")
        ax.fill_between(iters, [t.lo for t in tests], [t.hi for t in tests], color=f"C{i + 1}", alpha=0.2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="iteration", ylabel="Δ val loss (paired by seed)",
           title=f"{s.name}: val loss differences over training, 95% band")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def transfer_sweeps(study):
    """The transfer sweeps read as one (say, µP at every width and the standard parametrization at the
    widest alone, each over its own rates): a sweep-like union of their grids, every complete run's
    record, and the sweep each record belongs to (its grid decides what is an edge)."""
    parts = [records_of(path) for path in study.transfer]
    for s, _ in parts:
        for axis in (study.width_axis, study.param_axis, evidence.TUNED):
            if axis not in s.grid:
                raise UserError(f"transfer sweep {s.name} has no grid axis {axis!r}; set width_axis and param_axis")
    first = parts[0][0]
    grid = {axis: {k: v for s, _ in parts for k, v in s.grid[axis].items()}
            for axis in (study.width_axis, study.param_axis)}
    grid[evidence.TUNED] = sorted({lr for s, _ in parts for lr in s.grid[evidence.TUNED]})
    union = SimpleNamespace(**{**vars(first), "grid": grid, "names": [s.name for s, _ in parts]})
    return union, [r for _, rs in parts for r in rs], {id(r): s for s, rs in parts for r in rs}


def transfer_rows(study, s, records, owner):
    """[(activation, parametrization, [(width, its choice)], grid steps the best rate moves)]: each
    width's best rate over the sweep's seeds, chosen as in its report."""
    rates = sorted(s.grid[evidence.TUNED])
    out = []
    for activation, rs in evidence.by_activation(records, s).items():
        for param in s.grid[study.param_axis]:
            best = []
            for width in s.grid[study.width_axis]:
                cell = [r for r in rs
                        if r.run.axes[study.param_axis] == param and r.run.axes[study.width_axis] == width]
                if cell:
                    best.append((width, evidence.choice(cell, owner[id(cell[0])])[activation]))
            if best:  # a parametrization with no complete run yet has no row
                steps = [rates.index(c.rate) for _, c in best]
                out.append((activation, param, best, max(steps) - min(steps)))
    return out


def transfer_section(study, s, rows):
    widths = list(s.grid[study.width_axis])
    header = ["activation", study.param_axis, *(f"{w}: best rate (score)" for w in widths),
              "grid steps the best rate moves"]
    table = []
    for activation, param, best, moves in rows:
        cells = {w: f"{c.rate:g}{' (edge)' if c.edge else ''} ({stats.mean_std([r.best for r in c.runs])[0]:.4f})"
                 for w, c in best}
        table.append([f"`{activation}`", param, *(cells.get(w, "n/a") for w in widths), moves])
    return evidence.markdown_table(header, table)


SE_LIMIT, SP_SLACK = 2.0, 0.02  # the checks of µP: standard errors of a paired difference; loss against SP


def paired(xs, ys):
    """xs − ys paired by seed as (mean, mean / its standard error), or None under 2 seeds."""
    t = difference(xs, ys)
    if t is None:
        return None
    se = t.sd / t.n ** 0.5
    return t.mean, (t.mean / se if se else math.copysign(math.inf, t.mean) if t.mean else 0.0)


def mup_checks(study, s, records, rows):
    """Does µP earn its place, per activation: under µP, at the base (narrowest) width's best rate, is
    every width no worse than the one before by more than SE_LIMIT standard errors of the paired
    difference, and the widest better than the base by more than that; does the best rate move at
    most one grid step across widths; and at the widest width, is µP's best within SP_SLACK of the
    standard parametrization's best tuned there. Returns the table's rows."""
    out = []
    for activation, param, best, moves in rows:
        if param != study.mup or len(best) < 2:
            continue
        rate = best[0][1].rate
        at = {w: [r for r in records if r.run.activation == activation and r.run.axes[study.param_axis] == param
                  and r.run.axes[study.width_axis] == w and r.run.axes[evidence.TUNED] == rate] for w, _ in best}
        steps = [paired(at[w], at[v]) for (v, _), (w, _) in zip(best, best[1:])]
        every_width = [w for w, _ in best] == list(s.grid[study.width_axis])  # else the widest is not there yet
        whole = paired(at[best[-1][0]], at[best[0][0]]) if every_width else None
        sp = next((b for a, p, b, _ in rows if a == activation and p == study.sp), [])
        widest = dict(sp).get(best[-1][0])
        versus = paired(best[-1][1].runs, widest.runs) if widest else None
        holds = (None not in steps and all(z <= SE_LIMIT for _, z in steps) and whole is not None
                 and whole[1] < -SE_LIMIT, moves <= 1, versus is not None and versus[0] <= SP_SLACK)
        out.append([f"`{activation}`", f"{rate:g}",
                    ", ".join("n/a" if t is None else f"{t[0]:+.4f} ({t[1]:+.1f})" for t in steps),
                    "n/a" if whole is None else f"{whole[0]:+.4f} ({whole[1]:+.1f})", moves,
                    "n/a" if versus is None else f"{versus[0]:+.4f}",
                    ", ".join(name for name, ok in zip(("wider better", "rate transfers", "level with SP"), holds)
                              if not ok) or "all hold"])
    return out


def alpha_out(r):
    return r.run.keys.get("mup_output_mult", 1.0)


def mean_of(rs):
    return stats.mean_std([r.best for r in rs])[0]


def out_section(study, s, rows):
    """µP with its output multiplier tuned at the base, as µP's authors tune it: per activation, the
    base's best (α_out, rate) over out_base's grid (mean over seeds), the widest width at that α_out
    (out_wide's runs at that width and α_out alone, over their rates), the widest minus the base at
    the base's rate, and the widest's best minus the standard parametrization's best tuned there.
    Returns the table's rows and, per activation, the widest's best runs at that α_out with their label."""
    base_s, base_records = records_of(study.out_base)
    wide = [r for path in study.out_wide for r in records_of(path)[1]]
    widest = list(s.grid[study.width_axis])[-1]
    shape = s.grid[study.width_axis][widest].items()
    mults = sorted(base_s.grid.get("mup_output_mult", [1.0]))
    out, tuned = [], {}
    for activation, rs in evidence.by_activation(base_records, base_s).items():
        cells = {}
        for r in rs:
            cells.setdefault((alpha_out(r), r.run.axes[evidence.TUNED]), []).append(r)
        mult, rate = min(cells, key=lambda k: mean_of(cells[k]))
        edge = " (edge)" if len(mults) > 1 and mult in (mults[0], mults[-1]) else ""
        at = [r for r in wide if r.run.activation == activation and alpha_out(r) == mult
              and all(r.run.keys.get(k) == v for k, v in shape)]
        rates = sorted({r.run.axes[evidence.TUNED] for r in at})
        by_rate = {lr: [r for r in at if r.run.axes[evidence.TUNED] == lr] for lr in rates}
        sp = dict(next((b for a, p, b, _ in rows if a == activation and p == study.sp), [])).get(widest)
        best = min(rates, key=lambda lr: mean_of(by_rate[lr])) if rates else None
        whole = paired(by_rate[rate], cells[mult, rate]) if rate in by_rate else None
        versus = paired(by_rate[best], sp.runs) if best is not None and sp else None
        if best is not None:
            tuned[activation] = (f"µP, α_out {mult:g}, {best:g}", by_rate[best])
        unit = f"{mult:g}{edge}, {rate:g}: {mean_of(cells[mult, rate]):.4f}"
        out.append([f"`{activation}`", unit,
                    ", ".join(f"{lr:g}: {mean_of(v):.4f} ({seeds(len(v))})" for lr, v in by_rate.items()) or "not run",
                    "n/a" if whole is None else f"{whole[0]:+.4f} ({whole[1]:+.1f})",
                    "n/a" if versus is None else f"{versus[0]:+.4f}",
                    "n/a" if versus is None else "yes" if versus[0] <= SP_SLACK else "no"])
    return out, tuned


def over_training(study, s, rows, tuned):
    """Where µP's gap to the standard parametrization opens, at the widest width: per activation, SP's
    best, µP's best at α_out = 1 and at the base's α_out (tuned), each at its own rate: the periodic
    evaluation's val loss and train loss at the iterations `at`, mean over seeds, and µP's val loss
    minus SP's there, paired by seed."""
    widest = list(s.grid[study.width_axis])[-1]
    header = ["activation", "parametrization, rate", *(f"iteration {it:,}: val (train); µP − SP [95% CI]"
                                                       for it in study.at)]
    table = []
    for activation in dict.fromkeys(a for a, _, _, _ in rows):
        chosen = {p: dict(b).get(widest) for a, p, b, _ in rows if a == activation}
        sp, mup = chosen.get(study.sp), chosen.get(study.mup)
        if sp is None:
            continue
        lines = [(f"SP, {sp.rate:g}", sp.runs)] + ([(f"µP, α_out 1, {mup.rate:g}", mup.runs)] if mup else [])
        lines += [tuned[activation]] if activation in tuned else []
        for label, runs in lines:
            cells = []
            for it in study.at:
                val, gap = means_at(runs, it)
                t = difference(at_iteration(runs, it), at_iteration(sp.runs, it)) if runs is not sp.runs else None
                cells.append(f"{val:.4f} ({val - gap:.4f})" + ("" if t is None else
                                                                f"; {t.mean:+.4f} [{t.lo:+.4f}, {t.hi:+.4f}]"))
            table.append([f"`{activation}`", label, *cells])
    return evidence.markdown_table(header, table)


def transfer_figure(study, s, records, rows, path):
    """One panel per activation and parametrization: the mean score over seeds against the rate, a
    curve per width, each width's best rate marked (the µTransfer picture)."""
    activations = list(dict.fromkeys(a for a, _, _, _ in rows))
    params = list(s.grid[study.param_axis])
    # shared axes, so that where each parametrization's best rate and loss lie reads across the panels
    fig, axes = plt.subplots(len(activations), len(params), figsize=(5.5 * len(params), 3.8 * len(activations)),
                             squeeze=False, sharex=True, sharey=True)
    widths, low = list(s.grid[study.width_axis]), []
    for activation, param, best, _ in rows:
        ax = axes[activations.index(activation)][params.index(param)]
        for width, c in best:
            i = widths.index(width)  # a width's colour is the same in every panel
            rs = [r for r in records if r.run.activation == activation and r.run.axes[study.param_axis] == param
                  and r.run.axes[study.width_axis] == width]
            rates = sorted({r.run.axes[evidence.TUNED] for r in rs})
            means = [stats.mean_std([r.best for r in rs if r.run.axes[evidence.TUNED] == lr])[0] for lr in rates]
            ax.plot(rates, means, "o-", color=f"C{i}", markersize=3, label=f"{width}: best {c.rate:g}")
            ax.plot([c.rate], [min(means)], "*", color=f"C{i}", markersize=12)
            low.append(min(means))
        ax.set(xscale="log", xlabel="learning rate", ylabel="score (val loss)", title=f"{activation}, {param}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    grid = s.grid[evidence.TUNED]
    for ax in axes.flat:
        ax.set_xticks(grid, [f"{lr:g}" for lr in grid], rotation=45, fontsize=7)
        ax.minorticks_off()
        ax.label_outer()
    if low:
        axes[0][0].set_ylim(min(low) - 0.02, min(low) + 0.5)
    fig.suptitle("Best val loss against learning rate, one curve per width: mean over seeds")
    fig.tight_layout()
    save_figure(fig, path)


def main(argv):
    study = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    if not study.name or not (study.sizes or study.transfer):
        raise UserError("a study names itself (name=...) and its sweeps (sizes=[...] or transfer=...); see "
                        "config/study_cpu.py")
    if (study.out_base or study.out_wide) and not (study.out_base and study.out_wide and study.transfer):
        raise UserError("out_base and out_wide go together, with the transfer sweeps they extend (transfer=[...]); "
                        "see config/study_mup_cpu.py")
    folder = os.path.join(study.out_dir, study.name)
    os.makedirs(folder, exist_ok=True)
    lines = [f"# Study `{study.name}`", "", f"Regenerate this study and its figures from the sweeps' run records: "
             f"`python study.py {' '.join(argv)}`"]
    if study.sizes:
        lines += sizes_part(study, folder)
    if study.transfer:
        s, records, owner = transfer_sweeps(study)
        rows = transfer_rows(study, s, records, owner)
        lines += ["", "## Does the best learning rate transfer across widths?", "",
                  f"Sweep{'s' if len(s.names) > 1 else ''} "
                  f"{', '.join(f'[{name}](../{name}/report.md)' for name in s.names)}: each width's best rate over "
                  "seeds "
                  f"{', '.join(map(str, s.seeds))}, by parametrization; a rate marked (edge) is the grid's lowest or "
                  "highest, so the best may lie beyond it. The last column counts the steps of the rate grid between "
                  "the widths' best rates: 0 or 1 is transfer within one grid step.", "",
                  transfer_section(study, s, rows), "", "![score against learning rate per width](transfer.png)"]
        checks = mup_checks(study, s, records, rows)
        if checks:
            widths = list(s.grid[study.width_axis])
            lines += ["", "## Does µP earn its place?", "",
                      f"Under µP, at the base width's ({widths[0]}) best rate: each width's score minus the one "
                      f"before's, paired by seed (in brackets, that difference in standard errors: wider is better "
                      f"at every step when none is above +{SE_LIMIT:g}), and the widest's minus the base's (better "
                      f"by more than {SE_LIMIT:g} standard errors: below −{SE_LIMIT:g}); how many grid steps the best "
                      f"rate moves across widths (at most 1); and at the widest width µP's best score minus the "
                      f"standard parametrization's best tuned there (at most +{SP_SLACK:g}). The last column names "
                      "what fails.", "",
                      evidence.markdown_table(["activation", "base's best rate", "each width minus the one before",
                                               f"{widths[-1]} minus {widths[0]}", "grid steps the best rate moves",
                                               "widest: µP best − SP best", "fails"], checks)]
        if study.out_base:
            widths = list(s.grid[study.width_axis])
            out_rows, tuned = out_section(study, s, rows)
            lines += ["", "## µP with the output multiplier tuned at the base", "",
                      f"As µP's authors tune it: the base's best output multiplier α_out and rate together, over "
                      f"the grid of {study.out_base} (mean over seeds; α_out marked (edge) is the grid's lowest or "
                      f"highest), then the widest width ({widths[-1]}) at that α_out, untuned, at the rates of "
                      f"{', '.join(study.out_wide)}. Then the widest at the base's rate minus the base, paired by seed "
                      f"(in brackets, in standard errors), and the widest's best minus the standard "
                      f"parametrization's best tuned there, paired by seed: level with it when at most "
                      f"+{SP_SLACK:g}.", "",
                      evidence.markdown_table(["activation", f"base ({widths[0]}): best α_out, rate: score",
                                               f"{widths[-1]} at that α_out: rate: score",
                                               f"{widths[-1]} minus {widths[0]} at the base's rate",
                                               "widest: µP best − SP best", f"within +{SP_SLACK:g}"], out_rows)]
            if study.at:
                lines += ["", "## Where µP's gap opens", "",
                          f"At the widest width ({widths[-1]}), each parametrization at its best rate: the periodic "
                          "evaluation's val loss on its fixed subset, with the train loss in brackets, at the given "
                          "iterations (mean over seeds), and µP's val loss minus the standard parametrization's "
                          "there, paired by seed. Train loss tells a model that fits worse from one that "
                          "generalises worse; the iterations tell whether the gap opens early or late.", "",
                          over_training(study, s, rows, tuned)]
        transfer_figure(study, s, records, rows, os.path.join(folder, "transfer.png"))
    path = os.path.join(folder, "study.md")
    files.atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))
    print(f"study: {path}")
    return 0


def sizes_part(study, folder):
    """The size and length sections of the study, and their figures."""
    sizes, pending = [], []
    for path in study.sizes:
        s, records = records_of(path)
        if records:
            sizes.append((s, records, evidence.choice(records, s)))
        else:
            pending.append(f"`python sweep.py {path}`")
    if not sizes:
        raise UserError(f"none of the sweeps {', '.join(study.sizes)} has a complete run; run them first")
    lines = ["", "## The claim at each model size", "",
             "Each activation at its own learning rate, chosen and judged as in each sweep's report (by held-out "
             "seeds where the sweep has them, and scored as its report says); differences paired by seed. Sweeps: "
             + ", ".join(f"[{s.name}](../{s.name}/report.md) ({dataset_of(records)})" for s, records, _ in sizes)
             + "." + (f" Not run yet: {', '.join(pending)}." if pending else ""),
             "", size_section(study, sizes), "", "![differences against size](size.png)", "",
             "![best val loss against learning rate](lr.png)"]
    size_figure(study, sizes, os.path.join(folder, "size.png"))
    lr_figure(sizes, os.path.join(folder, "lr.png"))
    if study.length:
        s, records = records_of(study.length)
        table, best = length_section(study, s, records)
        lines += ["", "## Over longer training", "", f"Sweep [{s.name}](../{s.name}/report.md): val loss at "
                  "given iterations of the same runs, differences paired by seed; in brackets, the mean gap "
                  "between val and train loss, which widens as a model memorises the text it sees again. The "
                  "learning rate follows one cosine over all the iterations, so an early row is not a shorter run "
                  "(those are in the size table).", "", table, "", *best, "",
                  "![differences over training](length.png)"]
        length_figure(study, s, records, os.path.join(folder, "length.png"))
    return lines


if __name__ == "__main__":
    run_main(main)
