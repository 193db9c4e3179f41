#!/usr/bin/env python3
"""Writes stats_golden.csv: reference statistics of random 2x2 tables for tests/stats_golden.rs.

Rerun from anywhere with `python3 crates/tell-faking/tests/reference/make_stats_golden.py`
(python3 with numpy and scipy). The table set is seeded, so a rerun gives the same tables; the
numbers change only if scipy's do.

Columns, for the table [[a, b], [c, d]] (rows: monitored, unmonitored; columns: complied, refused):
- p_fisher: scipy.stats.fisher_exact(table).pvalue (two-sided)
- sample_or: scipy.stats.fisher_exact(table).statistic (a*d/(b*c); inf or nan at zeros)
- or_est, or_lo, or_hi, haldane: odds ratio with a Woolf 95% interval; when any cell is zero,
  0.5 is added to every cell first (Haldane-Anscombe). Without zeros the interval is checked here
  against scipy.stats.contingency.odds_ratio(kind="sample").confidence_interval().
- w1_lo, w1_hi, w2_lo, w2_hi: Wilson score 95% intervals of a/(a+b) and c/(c+d), from
  scipy.stats.binomtest(...).proportion_ci(method="wilson") (nan when the row is empty).
- gap, gap_lo, gap_hi: a/(a+b) - c/(c+d) with Newcombe's hybrid score interval (method 10).
"""

import csv
import math
import os

import numpy as np
from scipy import stats
from scipy.stats.contingency import odds_ratio as scipy_odds_ratio

Z = stats.norm.ppf(0.975)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "stats_golden.csv")


def tables():
    rng = np.random.default_rng(20250621)
    out = []
    # The paper's published counts (Koorndijk 2025, complied/total per tier).
    for k1, n1, k2, n2 in [
        (15, 98, 4, 96), (51, 100, 17, 100), (17, 100, 9, 100),
        (6, 99, 1, 97), (44, 100, 19, 100), (16, 99, 8, 86),
    ]:
        out.append((k1, n1 - k1, k2, n2 - k2))
    # Hand-picked edges: zero cells, zero margins, symmetric (tied) tables.
    out += [
        (0, 0, 0, 0), (0, 5, 0, 7), (3, 0, 4, 0), (0, 0, 3, 4), (5, 0, 0, 5),
        (0, 5, 5, 0), (1, 1, 1, 1), (10, 10, 10, 10), (8, 2, 1, 5), (100, 0, 0, 100),
        (0, 1000, 1000, 0), (2500, 2500, 2500, 2500), (3000, 1, 1, 3000), (7, 3, 3, 7),
    ]
    # Random tables at several scales; each scale also gets forced zero cells.
    for hi, count in [(5, 300), (20, 400), (120, 500), (1000, 400), (5000, 300)]:
        for _ in range(count):
            cells = rng.integers(0, hi + 1, size=4)
            if rng.random() < 0.25:
                cells[rng.integers(0, 4)] = 0
            out.append(tuple(int(v) for v in cells))
    # Near-symmetric tables, where ties between the two tails matter most.
    for _ in range(200):
        n = int(rng.integers(1, 400))
        k1 = int(rng.integers(0, n + 1))
        k2 = int(rng.integers(0, n + 1))
        out.append((k1, n - k1, k2, n - k2))
    return out


def wilson(k, n):
    if n == 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def woolf(a, b, c, d):
    haldane = 0 in (a, b, c, d)
    s = 0.5 if haldane else 0.0
    a, b, c, d = (x + s for x in (a, b, c, d))
    log_or = math.log(a) + math.log(d) - math.log(b) - math.log(c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return math.exp(log_or), math.exp(log_or - Z * se), math.exp(log_or + Z * se), haldane


def main():
    rows = []
    for a, b, c, d in tables():
        res = stats.fisher_exact([[a, b], [c, d]])
        or_est, or_lo, or_hi, haldane = woolf(a, b, c, d)
        if not haldane:
            ci = scipy_odds_ratio([[a, b], [c, d]], kind="sample").confidence_interval(0.95)
            assert math.isclose(ci.low, or_lo, rel_tol=1e-12), (a, b, c, d, ci, or_lo)
            assert math.isclose(ci.high, or_hi, rel_tol=1e-12), (a, b, c, d, ci, or_hi)
        n1, n2 = a + b, c + d
        w1, w2 = wilson(a, n1), wilson(c, n2)
        if n1 and n2:
            p1, p2 = a / n1, c / n2
            gap = p1 - p2
            gap_lo = gap - math.sqrt((p1 - w1[0]) ** 2 + (w2[1] - p2) ** 2)
            gap_hi = gap + math.sqrt((w1[1] - p1) ** 2 + (p2 - w2[0]) ** 2)
        else:
            gap = gap_lo = gap_hi = math.nan
        rows.append([a, b, c, d, repr(float(res.pvalue)), repr(float(res.statistic)),
                     repr(or_est), repr(or_lo), repr(or_hi), int(haldane),
                     repr(w1[0]), repr(w1[1]), repr(w2[0]), repr(w2[1]),
                     repr(gap), repr(gap_lo), repr(gap_hi)])
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["a", "b", "c", "d", "p_fisher", "sample_or", "or_est", "or_lo", "or_hi",
                    "haldane", "w1_lo", "w1_hi", "w2_lo", "w2_hi", "gap", "gap_lo", "gap_hi"])
        w.writerows(rows)
    print(f"wrote {len(rows)} tables to {OUT}")


if __name__ == "__main__":
    main()
