//! Statistics of a 2x2 table tier x {complied, refused}: Wilson intervals, the Newcombe interval
//! of a difference of proportions, Fisher's exact test and the odds ratio with a Woolf interval.
//!
//! Everything here is a pure function of counts, so it can be checked against scipy exactly
//! (`tests/reference/make_stats_golden.py`).

use serde::Serialize;

/// The two-sided 97.5% standard-normal quantile: the z of every 95% interval here.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A closed interval `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower end.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
}

/// A proportion `k / n` with its Wilson score 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    /// Successes.
    pub k: u64,
    /// Trials.
    pub n: u64,
    /// `k / n` (NaN when `n == 0`).
    pub rate: f64,
    /// Wilson score interval (NaN ends when `n == 0`).
    pub ci: Interval,
}

/// Wilson score interval of `k` successes in `n` trials at normal quantile `z`.
///
/// `n == 0` (or `k > n`) gives NaN ends: a made-up `[0, 1]` would look like data.
pub fn wilson(k: u64, n: u64, z: f64) -> Interval {
    if n == 0 || k > n {
        return Interval {
            lower: f64::NAN,
            upper: f64::NAN,
        };
    }
    let nf = n as f64;
    let p = k as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    // At k = 0 or k = n the exact ends are 0 and 1; clamping removes the 1e-17 rounding residue.
    Interval {
        lower: if k == 0 {
            0.0
        } else {
            (center - half).max(0.0)
        },
        upper: if k == n {
            1.0
        } else {
            (center + half).min(1.0)
        },
    }
}

/// The proportion `k / n` with its Wilson 95% interval.
pub fn proportion(k: u64, n: u64) -> Proportion {
    Proportion {
        k,
        n,
        rate: if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        },
        ci: wilson(k, n, Z95),
    }
}

/// The difference `k1/n1 - k2/n2` with Newcombe's hybrid score interval (his method 10, 1998),
/// built from the two Wilson intervals; NaN when either `n` is 0.
pub fn newcombe_diff(k1: u64, n1: u64, k2: u64, n2: u64, z: f64) -> (f64, Interval) {
    if n1 == 0 || n2 == 0 {
        return (
            f64::NAN,
            Interval {
                lower: f64::NAN,
                upper: f64::NAN,
            },
        );
    }
    let p1 = k1 as f64 / n1 as f64;
    let p2 = k2 as f64 / n2 as f64;
    let w1 = wilson(k1, n1, z);
    let w2 = wilson(k2, n2, z);
    let d = p1 - p2;
    let lower = d - ((p1 - w1.lower).powi(2) + (w2.upper - p2).powi(2)).sqrt();
    let upper = d + ((w1.upper - p1).powi(2) + (p2 - w2.lower).powi(2)).sqrt();
    (d, Interval { lower, upper })
}

/// A 2x2 table `[[a, b], [c, d]]`: rows are tiers (monitored first), columns complied / refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Table2x2 {
    /// Row 1, column 1 (monitored, complied).
    pub a: u64,
    /// Row 1, column 2 (monitored, refused).
    pub b: u64,
    /// Row 2, column 1 (unmonitored, complied).
    pub c: u64,
    /// Row 2, column 2 (unmonitored, refused).
    pub d: u64,
}

impl Table2x2 {
    /// The table of `k1` of `n1` against `k2` of `n2` (rows: successes, failures); None if `k > n`.
    pub fn from_counts(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<Self> {
        Some(Self {
            a: k1,
            b: n1.checked_sub(k1)?,
            c: k2,
            d: n2.checked_sub(k2)?,
        })
    }
}

/// Relative tolerance under which two table probabilities count as equal in the two-sided test.
///
/// Tables that are mathematically as likely as the observed one (mirror images) must be counted
/// in the p-value; rounding makes their computed probabilities differ by ~1e-13, far below this.
/// scipy 1.17 compares with 1 + 1e-14 on boost's pmf (older scipy used 1e-7); 1e-7 is robust to
/// our own rounding, and the golden test shows both give the same p on 2,000+ tables.
pub const FISHER_TIE_RTOL: f64 = 1e-7;

/// Two-sided p-value of Fisher's exact test, as `scipy.stats.fisher_exact(table).pvalue`: the
/// summed probability of all tables with the observed margins that are no more likely than the
/// observed one (within [`FISHER_TIE_RTOL`]).
///
/// The hypergeometric probabilities are computed relative to the first cell's lowest value by
/// the ratio recurrence `pmf(x+1)/pmf(x)` in log space and normalised by their own sum. This never
/// evaluates factorials of large counts (whose log-gamma values, ~1e4 for thousands of draws,
/// would carry absolute rounding errors of ~1e-12 into every probability) and never underflows
/// for counts in the thousands, since only logs are summed until the final ratio.
pub fn fisher_exact_two_sided(t: Table2x2) -> f64 {
    let Table2x2 { a, b, c, d } = t;
    // A zero row or column sum leaves only one possible table: scipy returns p = 1.
    if a + b == 0 || c + d == 0 || a + c == 0 || b + d == 0 {
        return 1.0;
    }
    let r1 = a + b; // first row total (white balls drawn into row 1)
    let r2 = c + d;
    let c1 = a + c; // first column total
    let lo = c1.saturating_sub(r2);
    let hi = c1.min(r1);
    // log pmf(x) - log pmf(lo) for x in lo..=hi.
    let mut logw = Vec::with_capacity((hi - lo + 1) as usize);
    let mut acc = 0.0_f64;
    logw.push(0.0);
    for x in lo..hi {
        // pmf(x+1)/pmf(x) = (r1-x)(c1-x) / ((x+1)(r2-c1+x+1))
        let num = ((r1 - x) as f64) * ((c1 - x) as f64);
        let den = ((x + 1) as f64) * ((r2 + x + 1 - c1) as f64);
        acc += (num / den).ln();
        logw.push(acc);
    }
    let obs = logw[(a - lo) as usize];
    let cut = obs + FISHER_TIE_RTOL.ln_1p();
    let max = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logw.iter().map(|w| (w - max).exp()).sum();
    let tail: f64 = logw
        .iter()
        .filter(|&&w| w <= cut)
        .map(|w| (w - max).exp())
        .sum();
    (tail / total).min(1.0)
}

/// scipy's odds-ratio statistic `a*d / (b*c)`: NaN for a zero margin, +inf when `b*c == 0`.
pub fn sample_odds_ratio(t: Table2x2) -> f64 {
    let Table2x2 { a, b, c, d } = t;
    if a + b == 0 || c + d == 0 || a + c == 0 || b + d == 0 {
        return f64::NAN;
    }
    if b > 0 && c > 0 {
        (a as f64 * d as f64) / (b as f64 * c as f64)
    } else {
        f64::INFINITY
    }
}

/// An odds ratio estimate with its Woolf (log) 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OddsRatio {
    /// `a*d / (b*c)`, from the corrected cells when `haldane` is true.
    pub estimate: f64,
    /// Woolf interval `exp(ln OR +- z sqrt(1/a + 1/b + 1/c + 1/d))`.
    pub ci: Interval,
    /// Whether 0.5 was added to every cell because one was zero (Haldane-Anscombe).
    pub haldane: bool,
}

/// Odds ratio with a Woolf 95% interval; adds 0.5 to every cell when any cell is zero, so the
/// estimate and interval stay finite (the Haldane-Anscombe correction).
pub fn odds_ratio(t: Table2x2, z: f64) -> OddsRatio {
    let haldane = t.a == 0 || t.b == 0 || t.c == 0 || t.d == 0;
    let shift = if haldane { 0.5 } else { 0.0 };
    let [a, b, c, d] = [t.a, t.b, t.c, t.d].map(|v| v as f64 + shift);
    let log_or = a.ln() + d.ln() - b.ln() - c.ln();
    let se = (1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d).sqrt();
    OddsRatio {
        estimate: log_or.exp(),
        ci: Interval {
            lower: (log_or - z * se).exp(),
            upper: (log_or + z * se).exp(),
        },
        haldane,
    }
}

/// Everything said about one monitored-vs-unmonitored comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Complied out of judged responses when monitored.
    pub monitored: Proportion,
    /// Complied out of judged responses when unmonitored.
    pub unmonitored: Proportion,
    /// Compliance gap, monitored rate minus unmonitored rate.
    pub gap: f64,
    /// Newcombe hybrid score 95% interval of the gap.
    pub gap_ci: Interval,
    /// Two-sided Fisher exact p-value (scipy's definition).
    pub fisher_p: f64,
    /// scipy's sample odds ratio (may be inf or NaN).
    pub sample_odds_ratio: f64,
    /// Odds ratio with Woolf interval (Haldane-corrected when a cell is zero).
    pub odds_ratio: OddsRatio,
}

/// Compares `k1` complied of `n1` monitored with `k2` of `n2` unmonitored; None if a `k > n`.
pub fn compare(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<Comparison> {
    let t = Table2x2::from_counts(k1, n1, k2, n2)?;
    let (gap, gap_ci) = newcombe_diff(k1, n1, k2, n2, Z95);
    Some(Comparison {
        monitored: proportion(k1, n1),
        unmonitored: proportion(k2, n2),
        gap,
        gap_ci,
        fisher_p: fisher_exact_two_sided(t),
        sample_odds_ratio: sample_odds_ratio(t),
        odds_ratio: odds_ratio(t, Z95),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scipy_docstring_example() {
        // scipy's own docstring: fisher_exact([[8, 2], [1, 5]]).pvalue == 0.034965034965034975
        let p = fisher_exact_two_sided(Table2x2 {
            a: 8,
            b: 2,
            c: 1,
            d: 5,
        });
        assert!((p - 0.034965034965034975).abs() < 1e-15, "{p}");
    }

    #[test]
    fn wilson_edges() {
        assert_eq!(wilson(0, 10, Z95).lower, 0.0);
        assert_eq!(wilson(10, 10, Z95).upper, 1.0);
        assert!(wilson(0, 0, Z95).lower.is_nan());
    }
}
