//! Transfer matrix: train under one subset (condition), evaluate under another, with folds drawn
//! by group over all rows so a query never sits in train and test even across conditions.

use crate::cv::{run_cv, validate, Control, CvOptions};
use crate::data::Matrix;
use crate::error::{ProbeError, Result};
use crate::metrics::Interval;
use crate::probe::FitOptions;
use serde::{Deserialize, Serialize};

/// A named subset of rows, e.g. one condition.
#[derive(Clone, Debug)]
pub struct Subset {
    /// Name (e.g. `baseline`).
    pub name: String,
    /// Row membership, one flag per row.
    pub mask: Vec<bool>,
}

/// Pooled metrics for each (train subset, test subset) pair; row = train, column = test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferMatrix {
    /// Subset names, in row/column order.
    pub names: Vec<String>,
    /// Pooled AUROC.
    pub auroc: Vec<Vec<f64>>,
    /// Its bootstrap interval.
    pub auroc_ci: Vec<Vec<Interval>>,
    /// Pooled recall at the target FPR.
    pub recall_at_fpr: Vec<Vec<f64>>,
}

/// Runs grouped CV for every (train, test) subset pair; the diagonal is plain within-subset CV.
pub fn transfer(
    x: &Matrix,
    labels: &[bool],
    groups: &[u32],
    subsets: &[Subset],
    control: Option<&Control>,
    fit: &FitOptions,
    cv: &CvOptions,
) -> Result<TransferMatrix> {
    validate(x, labels, groups, cv)?;
    for s in subsets {
        if s.mask.len() != x.n_rows() {
            return Err(ProbeError::Subset {
                name: s.name.clone(),
                reason: format!("mask has {} flags for {} rows", s.mask.len(), x.n_rows()),
            });
        }
        let pos = s.mask.iter().zip(labels).filter(|(&m, &l)| m && l).count();
        let all = s.mask.iter().filter(|&&m| m).count();
        if pos == 0 || pos == all {
            return Err(ProbeError::Subset {
                name: s.name.clone(),
                reason: format!("{all} rows with {pos} positives: needs both classes"),
            });
        }
    }
    let k = subsets.len();
    let mut out = TransferMatrix {
        names: subsets.iter().map(|s| s.name.clone()).collect(),
        auroc: vec![vec![f64::NAN; k]; k],
        auroc_ci: vec![
            vec![
                Interval {
                    lo: f64::NAN,
                    hi: f64::NAN
                };
                k
            ];
            k
        ],
        recall_at_fpr: vec![vec![f64::NAN; k]; k],
    };
    for (i, a) in subsets.iter().enumerate() {
        for (j, b) in subsets.iter().enumerate() {
            let r = run_cv(
                x,
                labels,
                groups,
                Some(&a.mask),
                Some(&b.mask),
                control,
                fit,
                cv,
            )
            .map_err(|e| ProbeError::Subset {
                name: format!("{} -> {}", a.name, b.name),
                reason: e.to_string(),
            })?;
            out.auroc[i][j] = r.pooled.auroc;
            out.auroc_ci[i][j] = r.pooled.auroc_ci;
            out.recall_at_fpr[i][j] = r.pooled.recall_at_fpr;
        }
    }
    Ok(out)
}
