//! Grouped k-fold evaluation over several seeds: per-fold and pooled metrics, thresholds at a
//! fixed false-positive rate set on a control set (never on the test rows), and `train`, which
//! adds the final probe fitted on all rows.

use crate::data::{check_groups, check_labels, Matrix};
use crate::error::{ProbeError, Result};
use crate::metrics::{
    accuracy, auroc, balanced_accuracy, bootstrap_auroc, recall_above, threshold_at_fpr, Interval,
};
use crate::probe::{fit_rows, FitOptions, Probe};
use crate::splits::grouped_kfold;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Options of the outer cross-validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvOptions {
    /// Number of folds.
    pub folds: usize,
    /// One full k-fold per seed (different group-to-fold assignments).
    pub seeds: Vec<u64>,
    /// False-positive rate at which recall is reported.
    pub fpr: f64,
    /// Bootstrap resamples for the AUROC interval (0 turns it off).
    pub n_bootstrap: usize,
    /// Interval level (0.95 for a 95% interval).
    pub ci_level: f64,
    /// How to set the recall@FPR threshold when no control set is given.
    pub calibration: Calibration,
}

/// Threshold source without a control set. Scores of the probe's own training negatives are
/// useless for this (an overfit probe pushes them far below the boundary, so "1% FPR" on them
/// passes far more unseen negatives), hence a held-out slice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Calibration {
    /// Hold out a group-disjoint fifth of the training rows, fit the recall probe on the rest and
    /// set the threshold on the held-out negatives (one extra fit per fold).
    HeldOut,
    /// Do not report recall@FPR without a control set (threshold and recall are NaN).
    Skip,
}

impl Default for CvOptions {
    fn default() -> Self {
        CvOptions {
            folds: 5,
            seeds: vec![0, 1, 2],
            fpr: 0.01,
            n_bootstrap: 1000,
            ci_level: 0.95,
            calibration: Calibration::HeldOut,
        }
    }
}

/// A named control set (e.g. benign prompts) whose scores set the recall@FPR threshold.
#[derive(Clone, Copy, Debug)]
pub struct Control<'a> {
    /// Name recorded in reports.
    pub name: &'a str,
    /// Control rows, same features as the training matrix.
    pub matrix: Matrix<'a>,
}

/// Metrics of one test fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldMetrics {
    /// CV seed.
    pub seed: u64,
    /// Fold index.
    pub fold: usize,
    /// Training rows used.
    pub n_train: usize,
    /// Test rows scored.
    pub n_test: usize,
    /// AUROC (NaN when the test fold has one class).
    pub auroc: f64,
    /// Accuracy at threshold 0.
    pub accuracy: f64,
    /// Balanced accuracy at threshold 0.
    pub balanced_accuracy: f64,
    /// Recall of the test positives above the calibrated threshold.
    pub recall_at_fpr: f64,
    /// Calibrated threshold.
    pub threshold: f64,
    /// L2 strength used (logreg).
    pub l2: Option<f64>,
}

/// Metrics pooled over folds (out-of-fold scores), averaged over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean over seeds of the pooled AUROC.
    pub auroc: f64,
    /// Group-bootstrap percentile interval of that mean.
    pub auroc_ci: Interval,
    /// Mean pooled accuracy at threshold 0.
    pub accuracy: f64,
    /// Mean pooled balanced accuracy at threshold 0.
    pub balanced_accuracy: f64,
    /// Mean pooled recall at the fold thresholds.
    pub recall_at_fpr: f64,
    /// Target false-positive rate.
    pub fpr: f64,
    /// Where thresholds came from: `control:<name>`, `heldout-negatives` or `none`.
    pub threshold_source: String,
    /// Rows scored.
    pub n_rows: usize,
    /// Positives among them.
    pub n_pos: usize,
    /// Distinct groups among them.
    pub n_groups: usize,
}

/// Result of [`cross_validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// Per-fold metrics, seed-major.
    pub folds: Vec<FoldMetrics>,
    /// Pooled metrics.
    pub pooled: Summary,
    /// Out-of-fold scores per seed (NaN for rows not tested).
    pub oof_scores: Vec<Vec<f64>>,
}

/// Result of [`train`]: the evaluation plus the final probe (fitted on all rows when a control
/// set is given, else on 4/5 of the groups with the threshold set on the rest).
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// Cross-validated metrics.
    pub cv: CvReport,
    /// Final probe.
    pub probe: Probe,
    /// Its recall@FPR threshold (NaN with `Calibration::Skip` and no control set).
    pub threshold: f64,
}

/// One fold's outcome: seed index, metrics, (row, score) pairs, true positives at threshold.
type FoldOutcome = (usize, FoldMetrics, Vec<(usize, f64)>, usize);

/// Validates the inputs shared by every entry point.
pub(crate) fn validate(x: &Matrix, labels: &[bool], groups: &[u32], cv: &CvOptions) -> Result<()> {
    check_labels(labels, x.n_rows(), "all rows")?;
    check_groups(groups, x.n_rows())?;
    x.check_finite()?;
    if !(0.0..1.0).contains(&cv.fpr) {
        return Err(ProbeError::InvalidOption {
            name: "fpr",
            reason: format!("must be in [0, 1), got {}", cv.fpr),
        });
    }
    if cv.seeds.is_empty() {
        return Err(ProbeError::InvalidOption {
            name: "seeds",
            reason: "no CV seed".into(),
        });
    }
    Ok(())
}

/// Seed of the group-disjoint calibration slice (fixed, so results are reproducible).
const CALIBRATION_SEED: u64 = 0xca1;

/// The probe that recall@FPR is measured with and its threshold.
///
/// With a control set: the given probe, threshold on its control scores. Without one: see
/// [`Calibration`]; `HeldOut` returns a probe fitted on 4/5 of the training groups, thresholded
/// on the negatives of the other fifth. `None` when skipped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn calibrated(
    probe: &Probe,
    x: &Matrix,
    train: &[usize],
    labels: &[bool],
    groups: &[u32],
    control: Option<&Control>,
    fit: &FitOptions,
    cv: &CvOptions,
) -> Result<Option<(Probe, f64)>> {
    if let Some(c) = control {
        let rows: Vec<usize> = (0..c.matrix.n_rows()).collect();
        let thr = threshold_at_fpr(&probe.score_rows(&c.matrix, &rows)?, cv.fpr)?;
        return Ok(Some((probe.clone(), thr)));
    }
    if cv.calibration == Calibration::Skip {
        return Ok(None);
    }
    let y: Vec<bool> = train.iter().map(|&r| labels[r]).collect();
    let g: Vec<u32> = train.iter().map(|&r| groups[r]).collect();
    let split = grouped_kfold(&y, &g, 5, CALIBRATION_SEED)?;
    let fit_rows_: Vec<usize> = split[0].train.iter().map(|&i| train[i]).collect();
    let neg: Vec<usize> = split[0]
        .test
        .iter()
        .map(|&i| train[i])
        .filter(|&r| !labels[r])
        .collect();
    if neg.is_empty() {
        return Err(ProbeError::OneClass {
            n_pos: split[0].test.len(),
            n_neg: 0,
            context: "calibration slice (give a control set)".into(),
        });
    }
    // Reuse the L2 strength already chosen for this fold instead of a second inner search.
    let opts = match probe.l2 {
        Some(l2) => FitOptions {
            l2: crate::probe::L2::Fixed(l2),
            ..fit.clone()
        },
        None => fit.clone(),
    };
    let p = fit_rows(x, &fit_rows_, labels, groups, &opts)?;
    let thr = threshold_at_fpr(&p.score_rows(x, &neg)?, cv.fpr)?;
    Ok(Some((p, thr)))
}

fn source_name(control: Option<&Control>, cal: Calibration) -> String {
    match (control, cal) {
        (Some(c), _) => format!("control:{}", c.name),
        (None, Calibration::HeldOut) => "heldout-negatives".to_string(),
        (None, Calibration::Skip) => "none".to_string(),
    }
}

/// Grouped k-fold evaluation of one family on all rows.
pub fn cross_validate(
    x: &Matrix,
    labels: &[bool],
    groups: &[u32],
    control: Option<&Control>,
    fit: &FitOptions,
    cv: &CvOptions,
) -> Result<CvReport> {
    validate(x, labels, groups, cv)?;
    run_cv(x, labels, groups, None, None, control, fit, cv)
}

/// Cross-validation restricted to training rows in `train_mask` and test rows in `test_mask`
/// (folds are always drawn on all rows by group, so a group never crosses train and test).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_cv(
    x: &Matrix,
    labels: &[bool],
    groups: &[u32],
    train_mask: Option<&[bool]>,
    test_mask: Option<&[bool]>,
    control: Option<&Control>,
    fit: &FitOptions,
    cv: &CvOptions,
) -> Result<CvReport> {
    if let Some(c) = control {
        if c.matrix.n_cols() != x.n_cols() {
            return Err(ProbeError::FeatureMismatch {
                probe: x.n_cols(),
                data: c.matrix.n_cols(),
            });
        }
        c.matrix.check_finite()?;
    }
    let keep = |m: Option<&[bool]>, r: usize| m.is_none_or(|m| m[r]);
    let mut jobs = Vec::new();
    for (si, &seed) in cv.seeds.iter().enumerate() {
        for (fi, f) in grouped_kfold(labels, groups, cv.folds, seed)?
            .into_iter()
            .enumerate()
        {
            let train: Vec<usize> = f
                .train
                .into_iter()
                .filter(|&r| keep(train_mask, r))
                .collect();
            let test: Vec<usize> = f.test.into_iter().filter(|&r| keep(test_mask, r)).collect();
            jobs.push((si, seed, fi, train, test));
        }
    }
    let results: Vec<Result<FoldOutcome>> = jobs
        .par_iter()
        .map(|(si, seed, fi, train, test)| {
            let probe = fit_rows(x, train, labels, groups, fit)?;
            let s = probe.score_rows(x, test)?;
            let y: Vec<bool> = test.iter().map(|&r| labels[r]).collect();
            let (recall, thr, tp) =
                match calibrated(&probe, x, train, labels, groups, control, fit, cv)? {
                    Some((p, thr)) => {
                        let rs = if control.is_some() {
                            s.clone()
                        } else {
                            p.score_rows(x, test)?
                        };
                        let tp = rs.iter().zip(&y).filter(|(&v, &l)| l && v > thr).count();
                        (recall_above(&rs, &y, thr), thr, tp)
                    }
                    None => (f64::NAN, f64::NAN, 0),
                };
            let m = FoldMetrics {
                seed: *seed,
                fold: *fi,
                n_train: train.len(),
                n_test: test.len(),
                auroc: auroc(&s, &y).unwrap_or(f64::NAN),
                accuracy: accuracy(&s, &y, 0.0),
                balanced_accuracy: balanced_accuracy(&s, &y, 0.0),
                recall_at_fpr: recall,
                threshold: thr,
                l2: probe.l2,
            };
            Ok((*si, m, test.iter().copied().zip(s).collect(), tp))
        })
        .collect();
    let n = x.n_rows();
    let mut oof = vec![vec![f64::NAN; n]; cv.seeds.len()];
    let mut tp_per_seed = vec![0usize; cv.seeds.len()];
    let mut folds = Vec::with_capacity(results.len());
    for r in results {
        let (si, m, scored, tp) = r?;
        for (row, s) in scored {
            oof[si][row] = s;
        }
        tp_per_seed[si] += tp;
        folds.push(m);
    }
    let rows: Vec<usize> = (0..n).filter(|&r| keep(test_mask, r)).collect();
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    let g: Vec<u32> = rows.iter().map(|&r| groups[r]).collect();
    let (n_pos, _) = check_labels(&y, y.len(), "test rows")?;
    let sets: Vec<Vec<f64>> = oof
        .iter()
        .map(|s| rows.iter().map(|&r| s[r]).collect())
        .collect();
    let k = sets.len() as f64;
    let mut au = 0.0;
    let (mut acc, mut bacc) = (0.0, 0.0);
    for s in &sets {
        au += auroc(s, &y)? / k;
        acc += accuracy(s, &y, 0.0) / k;
        bacc += balanced_accuracy(s, &y, 0.0) / k;
    }
    let skipped = control.is_none() && cv.calibration == Calibration::Skip;
    let recall = if skipped {
        f64::NAN
    } else {
        tp_per_seed
            .iter()
            .map(|&t| t as f64 / n_pos as f64)
            .sum::<f64>()
            / k
    };
    let auroc_ci = bootstrap_auroc(&sets, &y, &g, cv.n_bootstrap, cv.ci_level, 0xb007)?;
    let mut distinct = g.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Ok(CvReport {
        folds,
        pooled: Summary {
            auroc: au,
            auroc_ci,
            accuracy: acc,
            balanced_accuracy: bacc,
            recall_at_fpr: recall,
            fpr: cv.fpr,
            threshold_source: source_name(control, cv.calibration),
            n_rows: rows.len(),
            n_pos,
            n_groups: distinct.len(),
        },
        oof_scores: oof,
    })
}

/// Cross-validates, then fits the final probe on all rows and calibrates its threshold.
pub fn train(
    x: &Matrix,
    labels: &[bool],
    groups: &[u32],
    control: Option<&Control>,
    fit: &FitOptions,
    cv: &CvOptions,
) -> Result<ProbeReport> {
    let report = cross_validate(x, labels, groups, control, fit, cv)?;
    let rows: Vec<usize> = (0..x.n_rows()).collect();
    let full = fit_rows(x, &rows, labels, groups, fit)?;
    // Without a control set the saved probe is the held-out-calibrated one (fitted on 4/5 of
    // the groups), so that its threshold belongs to it.
    let (probe, threshold) = match calibrated(&full, x, &rows, labels, groups, control, fit, cv)? {
        Some((p, t)) => (p, t),
        None => (full, f64::NAN),
    };
    Ok(ProbeReport {
        cv: report,
        probe,
        threshold,
    })
}
