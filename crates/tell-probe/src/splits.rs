//! k-fold splits grouped by a column (no group in both train and test), stratified by label as
//! far as whole groups allow, seeded.

use crate::error::{ProbeError, Result};
use crate::rng::Rng;

/// One train/test split of row indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Fold {
    /// Training rows, ascending.
    pub train: Vec<usize>,
    /// Test rows, ascending.
    pub test: Vec<usize>,
}

/// Splits rows into `k` folds by whole groups, balancing each fold's positives and negatives.
///
/// Groups are shuffled with `seed`, then placed largest first, each into the fold whose class
/// counts it brings closest to the per-fold targets (the greedy rule of scikit-learn's
/// `StratifiedGroupKFold`, simplified to squared deviations).
pub fn grouped_kfold(labels: &[bool], groups: &[u32], k: usize, seed: u64) -> Result<Vec<Fold>> {
    if groups.len() != labels.len() {
        return Err(ProbeError::GroupCount {
            groups: groups.len(),
            rows: labels.len(),
        });
    }
    if k < 2 {
        return Err(ProbeError::InvalidOption {
            name: "folds",
            reason: format!("need at least 2 folds, got {k}"),
        });
    }
    let (groups, n_groups) = crate::data::dense_groups(groups);
    let groups = groups.as_slice();
    // (positives, negatives) per group.
    let mut counts = vec![(0usize, 0usize); n_groups];
    for (&g, &l) in groups.iter().zip(labels) {
        let c = &mut counts[g as usize];
        if l {
            c.0 += 1
        } else {
            c.1 += 1
        }
    }
    let mut order: Vec<usize> = (0..n_groups)
        .filter(|&g| counts[g].0 + counts[g].1 > 0)
        .collect();
    if order.len() < k {
        return Err(ProbeError::TooFewGroups {
            groups: order.len(),
            folds: k,
        });
    }
    Rng::new(seed).shuffle(&mut order);
    order.sort_by_key(|&g| std::cmp::Reverse(counts[g].0 + counts[g].1));
    let n_pos = labels.iter().filter(|&&l| l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    let (tp, tn) = (n_pos / k as f64, n_neg / k as f64);
    let mut fold_of = vec![usize::MAX; n_groups];
    let mut fp = vec![0.0f64; k];
    let mut fneg = vec![0.0f64; k];
    let mut empty = k;
    for (placed, &g) in order.iter().enumerate() {
        let (gp, gn) = (counts[g].0 as f64, counts[g].1 as f64);
        let remaining = order.len() - placed;
        let mut best = usize::MAX;
        let mut best_cost = f64::INFINITY;
        for f in 0..k {
            let is_empty = fp[f] + fneg[f] == 0.0;
            // Every fold must get a group: once only enough groups remain, fill empty folds.
            if remaining <= empty && !is_empty {
                continue;
            }
            let before = (fp[f] - tp).powi(2) + (fneg[f] - tn).powi(2);
            let after = (fp[f] + gp - tp).powi(2) + (fneg[f] + gn - tn).powi(2);
            let cost = after - before;
            if cost < best_cost - 1e-12 {
                best_cost = cost;
                best = f;
            }
        }
        if fp[best] + fneg[best] == 0.0 {
            empty -= 1;
        }
        fold_of[g] = best;
        fp[best] += gp;
        fneg[best] += gn;
    }
    let mut folds = vec![
        Fold {
            train: Vec::new(),
            test: Vec::new()
        };
        k
    ];
    for (i, &g) in groups.iter().enumerate() {
        let f = fold_of[g as usize];
        for (j, fold) in folds.iter_mut().enumerate() {
            if j == f {
                fold.test.push(i);
            } else {
                fold.train.push(i);
            }
        }
    }
    Ok(folds)
}

/// Stratified k-fold that ignores groups (each row its own group): leaks near-duplicates; kept
/// to show the leak and for data without a group column.
pub fn ungrouped_kfold(labels: &[bool], k: usize, seed: u64) -> Result<Vec<Fold>> {
    let groups: Vec<u32> = (0..labels.len() as u32).collect();
    grouped_kfold(labels, &groups, k, seed)
}
