//! Classification metrics on probe scores: exact AUROC, bootstrap intervals, accuracy, balanced
//! accuracy, and recall at a false-positive rate calibrated on a control set.

use crate::error::{ProbeError, Result};
use crate::rng::Rng;

/// Exact AUROC as the Mann-Whitney statistic with mid-ranks for ties (equals the trapezoidal
/// ROC area that scikit-learn computes). Errors if a class is absent.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Result<f64> {
    if scores.len() != labels.len() {
        return Err(ProbeError::LabelCount {
            labels: labels.len(),
            rows: scores.len(),
        });
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(ProbeError::NonFinite {
            row: i,
            col: 0,
            value: f32::NAN,
        });
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(ProbeError::OneClass {
            n_pos,
            n_neg,
            context: "AUROC".into(),
        });
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of (doubled) mid-ranks of the positives; doubling keeps the sums exact integers.
    let mut rank2_pos: u128 = 0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // 1-based ranks i+1..=j+1, mid-rank doubled = (i+1)+(j+1).
        let mid2 = (i + j + 2) as u128;
        let pos_in_tie = idx[i..=j].iter().filter(|&&k| labels[k]).count() as u128;
        rank2_pos += mid2 * pos_in_tie;
        i = j + 1;
    }
    let (p, q) = (n_pos as u128, n_neg as u128);
    // U = R_pos - p(p+1)/2, all doubled.
    let u2 = rank2_pos - p * (p + 1);
    Ok(u2 as f64 / (2.0 * p as f64 * q as f64))
}

/// Fraction of correct predictions, predicting positive where `score > threshold`.
pub fn accuracy(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|(&s, &l)| (s > threshold) == l)
        .count();
    correct as f64 / scores.len().max(1) as f64
}

/// Mean of the recall of each class (NaN for a class that is absent).
pub fn balanced_accuracy(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let (mut tp, mut p, mut tn, mut q) = (0usize, 0usize, 0usize, 0usize);
    for (&s, &l) in scores.iter().zip(labels) {
        if l {
            p += 1;
            tp += (s > threshold) as usize;
        } else {
            q += 1;
            tn += (s <= threshold) as usize;
        }
    }
    0.5 * (tp as f64 / p as f64 + tn as f64 / q as f64)
}

/// Threshold such that at most a fraction `fpr` of the control scores lie strictly above it.
///
/// With control scores sorted descending, it is the `floor(fpr * m)`-th (0-based) one, so with
/// 200 controls and 1% FPR, two controls lie above it (fewer on ties).
pub fn threshold_at_fpr(control_scores: &[f64], fpr: f64) -> Result<f64> {
    if control_scores.is_empty() {
        return Err(ProbeError::InvalidOption {
            name: "control",
            reason: "control set has no rows".into(),
        });
    }
    if !(0.0..1.0).contains(&fpr) {
        return Err(ProbeError::InvalidOption {
            name: "fpr",
            reason: format!("false-positive rate must be in [0, 1), got {fpr}"),
        });
    }
    let mut s = control_scores.to_vec();
    s.sort_unstable_by(|a, b| b.total_cmp(a));
    let k = (fpr * s.len() as f64 + 1e-9).floor() as usize;
    Ok(s[k.min(s.len() - 1)])
}

/// Fraction of positives scored strictly above `threshold` (NaN without positives).
pub fn recall_above(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let p = labels.iter().filter(|&&l| l).count();
    let tp = scores
        .iter()
        .zip(labels)
        .filter(|(&s, &l)| l && s > threshold)
        .count();
    tp as f64 / p as f64
}

/// A two-sided percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// AUROC of a weighted sample (integer weights = multiplicities) given the ascending sort order
/// of the scores; equals [`auroc`] on the sample with each row repeated `weight` times.
fn weighted_auroc_sorted(order: &[usize], scores: &[f64], labels: &[bool], w: &[u32]) -> f64 {
    let (mut neg_below, mut num, mut tot_p, mut tot_n) = (0u64, 0u64, 0u64, 0u64);
    let mut i = 0;
    while i < order.len() {
        let (mut p, mut q) = (0u64, 0u64);
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            let k = order[j];
            if labels[k] {
                p += w[k] as u64;
            } else {
                q += w[k] as u64;
            }
            j += 1;
        }
        // Doubled: each positive beats the negatives below and ties half of those level with it.
        num += p * (2 * neg_below + q);
        neg_below += q;
        tot_p += p;
        tot_n += q;
        i = j;
    }
    if tot_p == 0 || tot_n == 0 {
        return f64::NAN;
    }
    num as f64 / (2.0 * tot_p as f64 * tot_n as f64)
}

/// Percentile bootstrap interval for the mean AUROC over several score vectors of the same rows
/// (one per CV seed), resampling whole groups (cluster bootstrap) so near-duplicates of one
/// query move together. Resamples with one class are redrawn. Each resample is a weight vector
/// over presorted scores, so it costs O(rows), not a sort.
pub fn bootstrap_auroc(
    score_sets: &[Vec<f64>],
    labels: &[bool],
    groups: &[u32],
    n_boot: usize,
    level: f64,
    seed: u64,
) -> Result<Interval> {
    if n_boot == 0 {
        return Ok(Interval {
            lo: f64::NAN,
            hi: f64::NAN,
        });
    }
    if groups.len() != labels.len() {
        return Err(ProbeError::GroupCount {
            groups: groups.len(),
            rows: labels.len(),
        });
    }
    if score_sets
        .iter()
        .any(|s| s.len() != labels.len() || s.iter().any(|v| v.is_nan()))
    {
        return Err(ProbeError::InvalidOption {
            name: "bootstrap",
            reason: "score vectors must be complete (no NaN) and match the labels".into(),
        });
    }
    let (dense, n_groups) = crate::data::dense_groups(groups);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (i, &g) in dense.iter().enumerate() {
        members[g as usize].push(i);
    }
    let orders: Vec<Vec<usize>> = score_sets
        .iter()
        .map(|s| {
            let mut o: Vec<usize> = (0..s.len()).collect();
            o.sort_unstable_by(|&a, &b| s[a].total_cmp(&s[b]));
            o
        })
        .collect();
    let mut rng = Rng::new(seed);
    let mut stats = Vec::with_capacity(n_boot);
    let mut w = vec![0u32; labels.len()];
    let mut tries = 0;
    while stats.len() < n_boot && tries < n_boot * 20 {
        tries += 1;
        w.iter_mut().for_each(|v| *v = 0);
        for _ in 0..members.len() {
            for &i in &members[rng.below(members.len())] {
                w[i] += 1;
            }
        }
        let mut acc = 0.0;
        for (s, o) in score_sets.iter().zip(&orders) {
            acc += weighted_auroc_sorted(o, s, labels, &w);
        }
        if acc.is_finite() {
            stats.push(acc / score_sets.len() as f64);
        }
    }
    if stats.is_empty() {
        return Err(ProbeError::OneClass {
            n_pos: 0,
            n_neg: 0,
            context: "bootstrap".into(),
        });
    }
    stats.sort_unstable_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let pos = p * (stats.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos - pos.floor());
        stats[i] + f * (stats[(i + 1).min(stats.len() - 1)] - stats[i])
    };
    let alpha = (1.0 - level) / 2.0;
    Ok(Interval {
        lo: q(alpha),
        hi: q(1.0 - alpha),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_auroc_equals_auroc_of_repeated_rows() {
        let mut rng = Rng::new(4);
        let n = 60;
        let s: Vec<f64> = (0..n).map(|_| rng.below(7) as f64).collect();
        let y: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let w: Vec<u32> = (0..n).map(|_| rng.below(4) as u32).collect();
        let mut o: Vec<usize> = (0..n).collect();
        o.sort_unstable_by(|&a, &b| s[a].total_cmp(&s[b]));
        let (mut rs, mut ry) = (Vec::new(), Vec::new());
        for i in 0..n {
            for _ in 0..w[i] {
                rs.push(s[i]);
                ry.push(y[i]);
            }
        }
        let want = auroc(&rs, &ry).unwrap();
        assert!((weighted_auroc_sorted(&o, &s, &y, &w) - want).abs() < 1e-15);
    }
}
