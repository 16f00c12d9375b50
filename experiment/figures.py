"""
Figures written as files (matplotlib's Agg backend: no display needed), for report.py and study.py:
the loss curves of a sweep and its score against the learning rate.
"""

import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiment.evidence import TUNED  # noqa: E402
from experiment.stats import mean_std  # noqa: E402
from training import files  # noqa: E402


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
        margin = (0.05 * (max(shown) - min(shown)) or 0.01) if shown else None
        for ax, xlabel in zip(row, ("iteration", "wall time (s)")):
            ax.set(xlabel=xlabel, ylabel="val loss", title=f"{title}: mean over seeds, band min–max")
            ax.grid(alpha=0.3)
            if shown:  # (a sweep in progress may have no judged run to draw yet)
                ax.set_ylim(min(shown) - margin, max(shown) + margin)
        if curves:
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
