"""
The statistics the reports and the study judge by, with no plotting and no torch (scipy.stats).

Runs with the same seed share their initial weights and batches, so two activations are compared
seed by seed: the paired differences d_i = loss_a,i - loss_b,i. Three questions are asked of them:
- is there a difference? a two-sided paired t-test (p < ALPHA);
- is the difference smaller than a margin m fixed before the runs? two one-sided tests (TOST):
  equivalent when the 90% interval of the mean difference lies inside (-m, +m);
- how many seeds would settle it? the smallest n at which a paired t-test detects a difference of
  m with 80% power, given the spread of the differences measured.
"""

import math
from types import SimpleNamespace

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8


def mean_std(xs):
    """Mean and sample standard deviation (n-1); the std is nan for one value."""
    n = len(xs)
    m = sum(xs) / n
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")


def interval(m, s, n, level):
    """Student-t interval of a mean m with sample std s over n values."""
    half = stats.t.ppf(0.5 + level / 2, n - 1) * s / math.sqrt(n)
    return m - half, m + half


def interval95(xs):
    """95% confidence interval of the mean (Student t); None for fewer than 2 values."""
    return interval(*mean_std(xs), len(xs), 0.95) if len(xs) > 1 else None


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
    lo, hi = interval(m, s, n, 0.95)
    return SimpleNamespace(n=n, mean=m, sd=s, t=t, p=p, lo=lo, hi=hi)


def tost(test, margin):
    """Two one-sided tests of |mean difference| < margin on a paired_t result: the 90% interval
    (each one-sided test at ALPHA) and whether it lies inside (-margin, +margin)."""
    lo, hi = interval(test.mean, test.sd, test.n, 1 - 2 * ALPHA)
    return SimpleNamespace(lo=lo, hi=hi, equivalent=-margin < lo and hi < margin)


def power(n, effect):
    """Power of a two-sided paired t-test at ALPHA over n pairs when the true mean difference is
    effect standard deviations of the differences (the noncentral t distribution)."""
    df, nc = n - 1, effect * math.sqrt(n)
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(sd, margin, most=10_000):
    """The fewest pairs at which a paired t-test detects a mean difference of margin with POWER,
    for differences of standard deviation sd; None if more than `most`."""
    if sd == 0:
        return 2
    n = 2
    while power(n, margin / sd) < POWER:
        n += 1
        if n > most:
            return None
    return n


def parabola(rates, losses):
    """The minimum of a parabola through (log10 rate, loss): SimpleNamespace(rate, loss, coef) with
    coef for numpy.polyval of log10 rate, or None where the points curve downward or lie on a line
    (no minimum)."""
    coef = np.polyfit(np.log10(rates), losses, 2)
    a, b, c = coef
    if a <= 0:
        return None
    return SimpleNamespace(rate=float(10 ** (-b / (2 * a))), loss=float(c - b * b / (4 * a)), coef=coef)
