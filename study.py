"""
The study across sweeps: the claim at every model size with each activation at its own best
learning rate, and over longer training, in tables and three figures. Written from the sweeps' run
records alone, like their reports; regenerate with the same command.

    python study.py config/study_cpu.py

Writes OUT_DIR/NAME/study.md, size.png (the paired differences from the reference activation
against model size), lr.png (best val loss against learning rate, one panel per size) and
length.png (the paired differences against training iteration).
"""

import os
from types import SimpleNamespace

import files
import report
import stats
import sweep
from configurator import UserError, configure, run_main

plt = report.plt  # matplotlib's pyplot, on the file-only backend report.py chose

DEFAULTS = dict(
    name="",  # the study's folder under out_dir
    sizes=[],  # sweep files, one per model size, each with a learning-rate grid
    length="",  # a sweep file of longer runs, one learning rate per activation ('' for none)
    at=[],  # iterations of the longer runs at which the differences are tabulated
    compare=["relu", "none"],  # activations compared with each sweep's reference, paired by seed
    out_dir="results",  # where the study's folder goes
)


def records_of(path):
    """A sweep file's sweep and its complete runs' records (missing runs are named in its report)."""
    s = sweep.load_sweep([path])
    runs = sweep.plan(s)
    return s, report.load_records(runs + sweep.judging_runs(s, runs))[0]


def difference(xs, ys):
    """Paired difference of two lists of records by seed: SimpleNamespace(n, mean, lo, hi, p) or None."""
    return stats.paired_t(*report.pair(xs, ys))


def seeds(n):
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fmt(test):
    if test is None:
        return "n/a"
    return f"{test.mean:+.4f} [{test.lo:+.4f}, {test.hi:+.4f}], p = {report.fmt_p(test.p)}"


def size_section(study, sizes):
    """Per size: each activation's best rate and best val loss, and the paired differences."""
    header = ["size", "parameters", *(f"`{a}`: best rate, best val loss" for a in sizes[0][2]),
              *(f"{a} − {sizes[0][0].reference} [95% CI], p" for a in study.compare)]
    rows = []
    for s, records, best in sizes:
        ref = best[s.reference].runs
        cells = [f"{c.rate:g}: {stats.mean_std([r.best for r in c.runs])[0]:.4f} ({seeds(len(c.runs))})"
                 for c in best.values()]
        rows.append([s.name, f"{records[0].summary['n_params']:,}", *cells,
                     *(fmt(difference(best[a].runs, ref)) for a in study.compare)])
    return report.markdown_table(header, rows)


def size_figure(study, sizes, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for i, a in enumerate(study.compare):
        points = [(records[0].summary["n_params"], difference(best[a].runs, best[s.reference].runs))
                  for s, records, best in sizes]
        points = [(n, t) for n, t in points if t is not None]  # None: fewer than 2 seeds judge
        drawn = drawn or bool(points)
        ax.errorbar([n for n, _ in points], [t.mean for _, t in points], fmt="o-", capsize=4, color=f"C{i + 1}",
                    yerr=[[t.mean - t.lo for _, t in points], [t.hi - t.mean for _, t in points]],
                    label=f"{a} − {sizes[0][0].reference}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xscale="log" if drawn else "linear", xlabel="parameters", ylabel="Δ best val loss (paired by seed)",
           title="Each activation at its own best learning rate: 95% intervals")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    report.save_figure(fig, path)


def lr_figure(sizes, path):
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.2), squeeze=False)
    for ax, (s, records, best) in zip(axes[0], sizes):
        shown = []
        for i, (activation, c) in enumerate(best.items()):
            rs = c.selection or c.runs  # like with like: the seeds that ran at every rate
            rates = sorted({r.run.axes[report.TUNED] for r in rs})
            losses = [[r.best for r in rs if r.run.axes[report.TUNED] == lr] for lr in rates]
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
    report.save_figure(fig, path)


def at_iteration(rs, it):
    """Records whose val loss at iteration it stands in for their best, for report.pair."""
    out = []
    for r in rs:
        e = next((e for e in r.evals if e["iter"] == it), None)
        if e is not None:
            out.append(SimpleNamespace(run=r.run, best=e["val_loss"], gap=e["val_loss"] - e["train_loss"]))
    return out


def length_section(study, s, records):
    groups = report.by_activation(records, s)
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
            now = at_iteration(rs, it)
            val, gap = (stats.mean_std([getattr(r, k) for r in now])[0] for k in ("best", "gap"))
            cells.append(f"{val:.4f} ({gap:+.3f})")
        rows.append([f"{it:,}", f"{passes:.1f}", *cells,
                     *(fmt(difference(at_iteration(groups[a], it), at_iteration(ref, it))) for a in study.compare)])
    best = [f"- `{a}`: best val loss {stats.mean_std([r.best for r in rs])[0]:.4f} at iteration "
            f"{report.best_iterations(rs)}" for a, rs in groups.items()]
    return report.markdown_table(header, rows), best


def length_figure(study, s, records, path):
    groups = report.by_activation(records, s)
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
    report.save_figure(fig, path)


def main(argv):
    study = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    if not study.name or not study.sizes:
        raise UserError("a study names itself (name=...) and its sweeps (sizes=[...]); see config/study_cpu.py")
    folder = os.path.join(study.out_dir, study.name)
    os.makedirs(folder, exist_ok=True)
    sizes = []
    for path in study.sizes:
        s, records = records_of(path)
        if not records:
            raise UserError(f"sweep {s.name} has no complete runs; run python sweep.py {path} first")
        sizes.append((s, records, report.choice(records, s)))
    lines = [f"# Study `{study.name}`", "", f"Regenerate this study and its figures from the sweeps' run records: "
             f"`python study.py {' '.join(argv)}`", "", "## The claim at each model size", "",
             "Each activation at its own best learning rate (chosen as in each sweep's report); differences "
             "paired by seed. Sweeps: " + ", ".join(f"[{s.name}](../{s.name}/report.md)" for s, _, _ in sizes) + ".",
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
    path = os.path.join(folder, "study.md")
    files.atomic_write(path, lambda f: f.write(("\n".join(lines) + "\n").encode()))
    print(f"study: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
