//! Statistics against the golden CSV written by `tests/reference/make_stats_golden.py` (scipy).

use tell_faking::stats::{
    compare, fisher_exact_two_sided, odds_ratio, sample_odds_ratio, wilson, Table2x2, Z95,
};

const GOLDEN: &str = include_str!("reference/stats_golden.csv");

struct Row {
    t: Table2x2,
    v: Vec<f64>,
}

fn rows() -> Vec<Row> {
    let mut lines = GOLDEN.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header[0..4], ["a", "b", "c", "d"]);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n: Vec<u64> = f[0..4].iter().map(|x| x.parse().expect("count")).collect();
            Row {
                t: Table2x2 {
                    a: n[0],
                    b: n[1],
                    c: n[2],
                    d: n[3],
                },
                v: f[4..].iter().map(|x| x.parse().expect("float")).collect(),
            }
        })
        .collect()
}

/// Relative closeness; NaN equals NaN and infinities must match exactly.
fn close(got: f64, want: f64, rtol: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= rtol * want.abs().max(got.abs()) || (got - want).abs() < 1e-300
}

#[test]
fn fisher_p_values_equal_scipy_on_golden_tables() {
    let rows = rows();
    assert!(rows.len() >= 2000, "only {} tables", rows.len());
    let zeros = rows
        .iter()
        .filter(|r| [r.t.a, r.t.b, r.t.c, r.t.d].contains(&0))
        .count();
    let large = rows
        .iter()
        .filter(|r| [r.t.a, r.t.b, r.t.c, r.t.d].iter().any(|&v| v >= 1000))
        .count();
    assert!(zeros >= 100 && large >= 300, "zeros {zeros}, large {large}");
    let mut bad = Vec::new();
    for r in &rows {
        let p = fisher_exact_two_sided(r.t);
        // Below ~1e-300 the f64 tails of both implementations are at the edge of underflow.
        let ok = if r.v[0] < 1e-300 {
            p < 1e-300
        } else {
            close(p, r.v[0], 1e-9)
        };
        if !ok {
            bad.push(format!("{:?}: ours {p:e}, scipy {:e}", r.t, r.v[0]));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn odds_ratios_and_intervals_equal_reference() {
    for r in rows() {
        let t = r.t;
        let sor = sample_odds_ratio(t);
        assert!(
            close(sor, r.v[1], 1e-12),
            "{t:?} sample OR {sor} vs {}",
            r.v[1]
        );
        let or = odds_ratio(t, Z95);
        assert!(close(or.estimate, r.v[2], 1e-12), "{t:?} {or:?}");
        assert!(close(or.ci.lower, r.v[3], 1e-12), "{t:?} {or:?}");
        assert!(close(or.ci.upper, r.v[4], 1e-12), "{t:?} {or:?}");
        assert_eq!(or.haldane, r.v[5] == 1.0, "{t:?}");
    }
}

#[test]
fn wilson_and_newcombe_equal_reference() {
    for r in rows() {
        let t = r.t;
        let w1 = wilson(t.a, t.a + t.b, Z95);
        let w2 = wilson(t.c, t.c + t.d, Z95);
        for (got, want) in [
            (w1.lower, r.v[6]),
            (w1.upper, r.v[7]),
            (w2.lower, r.v[8]),
            (w2.upper, r.v[9]),
        ] {
            assert!(
                close(got, want, 1e-9) || (got - want).abs() < 1e-14,
                "{t:?} wilson {got} vs {want}"
            );
        }
        let c = compare(t.a, t.a + t.b, t.c, t.c + t.d).expect("valid counts");
        for (got, want) in [
            (c.gap, r.v[10]),
            (c.gap_ci.lower, r.v[11]),
            (c.gap_ci.upper, r.v[12]),
        ] {
            assert!(
                close(got, want, 1e-9) || (got - want).abs() < 1e-12,
                "{t:?} gap {got} vs {want}"
            );
        }
    }
}

#[test]
fn paper_counts_give_the_published_p_values() {
    // Koorndijk (2025), complied/total, free vs paid tier, with the published p-values.
    // The last field is half a unit in the last published digit: rounding must reproduce it.
    let cases = [
        (15, 98, 4, 96, 0.014, 0.0005),
        (17, 100, 9, 100, 0.14, 0.005),
        (6, 99, 1, 97, 0.118, 0.0005),
        (44, 100, 19, 100, 0.0002, 0.00005),
        (16, 99, 8, 86, 0.19, 0.005),
    ];
    for (k1, n1, k2, n2, want, half_unit) in cases {
        let c = compare(k1, n1, k2, n2).expect("valid");
        assert!(
            (c.fisher_p - want).abs() <= half_unit,
            "{k1}/{n1} vs {k2}/{n2}: p = {}, published {want}",
            c.fisher_p
        );
    }
    let b2 = compare(51, 100, 17, 100).expect("valid");
    assert!(b2.fisher_p < 1e-4, "{}", b2.fisher_p);
    let b1 = compare(15, 98, 4, 96).expect("valid");
    assert!((b1.fisher_p - 0.013941696025512276).abs() < 1e-15);
    assert!((b1.sample_odds_ratio - 4.156626506024097).abs() < 1e-12);
}
