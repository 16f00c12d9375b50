"""
Guards stats.py and the verdicts report.py words from it: intervals, the paired t-test, TOST, the
power calculation and the parabola against values computed by hand or by scipy independently; and
no verdict word stronger than its test ('better' only at p < 0.05, 'equivalent' only with the TOST
interval inside the margin, none at all with a rate at the edge of the grid).
"""

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiment import evidence, stats


def test_interval_and_paired_test_agree_with_scipy_and_printed_tables():
    xs = [1.7213, 1.7282, 1.7333, 1.7190]
    ys = [1.7099, 1.7315, 1.7385, 1.7001]
    lo, hi = stats.interval95(xs)
    expected = scipy_stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=scipy_stats.sem(xs))
    assert (lo, hi) == (pytest.approx(expected[0], abs=1e-12), pytest.approx(expected[1], abs=1e-12))
    test, theirs = stats.paired_t(xs, ys), scipy_stats.ttest_rel(xs, ys)
    assert test.t == pytest.approx(theirs.statistic, rel=1e-12) and test.p == pytest.approx(theirs.pvalue, rel=1e-12)
    ci = theirs.confidence_interval(0.95)
    assert (test.lo, test.hi) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
    # t(0.975, df) from a printed table, through the interval of two values with sample sd 1/sqrt(2)
    for df, q in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        values = [0.0] * df + [1.0]  # n = df + 1 values
        m, sd = stats.mean_std(values)
        lo, hi = stats.interval95(values)
        assert (hi - lo) / 2 / (sd / math.sqrt(df + 1)) == pytest.approx(q, abs=1e-4)


def test_mean_std_interval():
    m, s = stats.mean_std([1, 2, 3, 4, 5])
    assert m == 3 and s == pytest.approx(math.sqrt(2.5))
    lo, hi = stats.interval95([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # = 1.9632
    assert (lo, hi) == (pytest.approx(3 - half, abs=1e-6), pytest.approx(3 + half, abs=1e-6))
    assert stats.interval95([1.0]) is None


def test_paired_t():
    # d = (0.5, 0.2, 0.6, 0.1): mean 0.35, sd sqrt(0.17 / 3) = 0.238048, t = 0.35 / (sd / 2) = 2.940588.
    test = stats.paired_t([1.0, 2.0, 3.0, 4.0], [0.5, 1.8, 2.4, 3.9])
    assert test.n == 4 and test.mean == pytest.approx(0.35)
    assert test.sd == pytest.approx(math.sqrt(0.17 / 3))
    assert test.t == pytest.approx(2.940588, abs=1e-6)
    # df = 3 has a closed form: F(t) = 1/2 + (u / (1 + u^2) + atan(u)) / pi with u = t / sqrt(3).
    u = test.t / math.sqrt(3)
    assert test.p == pytest.approx(2 * (0.5 - (u / (1 + u * u) + math.atan(u)) / math.pi), abs=1e-12)
    assert test.p == pytest.approx(0.0605, abs=1e-4)
    assert stats.paired_t([1.0], [2.0]) is None


@pytest.mark.parametrize("seed", range(20))
def test_tost_interval_is_the_two_one_sided_tests(seed):
    """Equivalence by the 90% interval inside (-m, m) is the same decision as both of scipy's
    one-sided paired t-tests (difference > -m, difference < m) rejecting at 0.05."""
    rng = random.Random(seed)
    n, margin = rng.randint(3, 12), rng.choice([0.005, 0.01, 0.02])
    xs = [rng.gauss(0, 0.01) for _ in range(n)]
    ys = [x + rng.gauss(rng.uniform(-0.015, 0.015), rng.uniform(0.001, 0.02)) for x in xs]
    test = stats.paired_t(xs, ys)
    d = np.subtract(xs, ys)
    above = scipy_stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    below = scipy_stats.ttest_1samp(d, margin, alternative="less").pvalue
    assert stats.tost(test, margin).equivalent == (max(above, below) < stats.ALPHA)


def test_seeds_needed_for_80_percent_power():
    # Standard values for a two-sided one-sample (paired) t-test at alpha 0.05 and 80% power
    # (Cohen's tables, G*Power): effect 1.0 sd -> 10 pairs, 0.5 sd -> 34, 0.8 sd -> 15.
    assert stats.seeds_needed(0.01, 0.01) == 10
    assert stats.seeds_needed(0.02, 0.01) == 34
    assert stats.seeds_needed(0.0125, 0.01) == 15
    # and the power at that n, by simulation: paired differences with mean = margin
    rng = np.random.default_rng(0)
    d = rng.normal(0.01, 0.01, size=(20000, 10))
    simulated = (scipy_stats.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05).mean()
    assert simulated == pytest.approx(stats.power(10, 1.0), abs=0.01)
    assert stats.power(9, 1.0) < 0.8 <= stats.power(10, 1.0)


def test_parabola_finds_the_minimum_between_grid_points():
    rates = [1e-3, 3e-3, 1e-2]
    loss = lambda r: 1.7 + 0.4 * (math.log10(r) - math.log10(5e-3)) ** 2
    fit = stats.parabola(rates, [loss(r) for r in rates])
    assert fit.rate == pytest.approx(5e-3) and fit.loss == pytest.approx(1.7)
    assert stats.parabola(rates, [1.8, 1.9, 1.8]) is None  # curving downward: no minimum


def runs(activation, losses, subset=None):
    subset = subset or losses
    return [SimpleNamespace(run=SimpleNamespace(activation=activation, seed=i), best=v, subset=s)
            for i, (v, s) in enumerate(zip(losses, subset))]


def test_verdict_words_follow_their_tests():
    """Random pairs of activations: the verdict's word never claims more than its test shows."""
    rng = random.Random(1)
    seen = set()
    for _ in range(300):
        n, margin = rng.randint(2, 12), rng.choice([0.0, 0.01])
        gelu = [1.7 + rng.gauss(0, 0.01) for _ in range(n)]
        relu = [g + rng.gauss(rng.uniform(-0.02, 0.02), rng.uniform(0.0005, 0.02)) for g in gelu]
        line = evidence.verdict("gelu", "relu", {"gelu": runs("gelu", gelu), "relu": runs("relu", relu)}, margin)
        test = stats.paired_t(gelu, relu)
        equivalent = margin > 0 and stats.tost(test, margin).equivalent
        word = line.split(": ", 1)[1].split("**")[1]
        seen.add(word.split(",")[0])
        assert ("better" in word) == (test.p < stats.ALPHA), line
        if "better" in word:
            assert word.startswith("ReLU" if test.mean > 0 else "GELU"), line
        assert ("equivalent" in word or "margin" in word) == equivalent, line
        assert (word == "inconclusive") == (test.p >= stats.ALPHA and not equivalent), line
        if word == "inconclusive" and margin:
            assert f"{stats.seeds_needed(test.sd, margin)} seeds would detect a difference of 0.01" in line
    assert {"GELU better", "ReLU better", "equivalent within ±0.01", "inconclusive"} <= seen


def test_no_verdict_with_a_rate_at_the_edge():
    groups = {"gelu": runs("gelu", [1.70, 1.71, 1.72]), "relu": runs("relu", [1.60, 1.61, 1.62])}
    lines = evidence.verdicts(groups, 0.01, {"relu": "the chosen rate of `relu` (0.001) is at the edge"})
    assert lines == ["- GELU vs ReLU: **no verdict**: the chosen rate of `relu` (0.001) is at the edge"]


def test_a_verdict_shows_the_subset_difference_beside_the_whole_split():
    groups = {"gelu": runs("gelu", [1.70, 1.71, 1.72], [1.69, 1.73, 1.70]),
              "relu": runs("relu", [1.60, 1.61, 1.62], [1.61, 1.60, 1.66])}
    line = evidence.verdict("gelu", "relu", groups, 0.0)
    assert "GELU − ReLU = +0.1000" in line and "the difference was +0.0833" in line
