//! Probe families, their options, and fitting one probe on a set of rows.

use crate::data::{check_labels, Matrix};
use crate::diffmean::fit_diffmean;
use crate::error::{ProbeError, Result};
use crate::kernels::dot;
use crate::lbfgs::LbfgsOptions;
use crate::lda::{fit_lda, Shrinkage};
use crate::logistic::fit_logistic;
use crate::metrics::auroc;
use crate::splits::grouped_kfold;
use crate::standardize::Standardizer;
use serde::{Deserialize, Serialize};

/// A probe family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// L2-regularised logistic regression.
    Logreg,
    /// Difference of class means (mass-mean).
    Diffmean,
    /// Mass-mean with a shrunk covariance (LDA).
    Lda,
}

impl Family {
    /// All families, in display order.
    pub const ALL: [Family; 3] = [Family::Logreg, Family::Diffmean, Family::Lda];

    /// The name used on the command line and in files.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Logreg => "logreg",
            Family::Diffmean => "diffmean",
            Family::Lda => "lda",
        }
    }

    /// Parses `logreg`, `diffmean` or `lda`.
    pub fn parse(s: &str) -> Result<Family> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logreg" | "logistic" => Ok(Family::Logreg),
            "diffmean" | "mass-mean" | "massmean" => Ok(Family::Diffmean),
            "lda" => Ok(Family::Lda),
            other => Err(ProbeError::InvalidOption {
                name: "family",
                reason: format!("unknown probe family {other:?} (logreg, diffmean, lda)"),
            }),
        }
    }
}

/// How the logistic L2 strength is set (`lambda`, mean-loss convention; `C = 1/(lambda n)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum L2 {
    /// A given strength.
    Fixed(f64),
    /// Chosen from `grid` by the best mean AUROC of an inner grouped k-fold on the training rows.
    CrossValidated {
        /// Candidate strengths.
        grid: Vec<f64>,
        /// Inner folds.
        inner_folds: usize,
    },
}

impl Default for L2 {
    fn default() -> Self {
        L2::CrossValidated {
            grid: vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
            inner_folds: 3,
        }
    }
}

/// Options for fitting one probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Probe family.
    pub family: Family,
    /// L2 strength for `Logreg`.
    pub l2: L2,
    /// Covariance shrinkage for `Lda`.
    pub shrinkage: Shrinkage,
    /// Gradient tolerance of the logistic solver (max abs entry of the mean-loss gradient).
    pub tol: f64,
    /// Iteration cap of the logistic solver.
    pub max_iter: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            family: Family::Logreg,
            l2: L2::default(),
            shrinkage: Shrinkage::LedoitWolf,
            tol: 1e-6,
            max_iter: 1000,
        }
    }
}

impl FitOptions {
    /// Default options for a family.
    pub fn for_family(family: Family) -> Self {
        FitOptions {
            family,
            ..Default::default()
        }
    }
}

/// A fitted linear probe: `score(x) = ((x - mean) / std) . direction + bias`; positive means
/// the positive class at the natural threshold 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Family that produced it.
    pub family: Family,
    /// Standardisation fitted on the training rows.
    pub standardizer: Standardizer,
    /// Direction in standardised space.
    pub direction: Vec<f32>,
    /// Bias.
    pub bias: f32,
    /// L2 strength used (logreg), else `None`.
    pub l2: Option<f64>,
    /// Shrinkage used (lda), else `None`.
    pub shrinkage: Option<f64>,
}

impl Probe {
    /// The direction in raw activation space: `direction / std`, so that
    /// `score(x) = raw . x + (bias - raw . mean)`; what steering and ablation move along.
    pub fn raw_direction(&self) -> Vec<f32> {
        self.direction
            .iter()
            .zip(&self.standardizer.std)
            .map(|(w, s)| w / s)
            .collect()
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.direction.len()
    }

    /// Scores every row of `x` (rejects other widths and non-finite values).
    pub fn apply(&self, x: &Matrix) -> Result<Vec<f64>> {
        x.check_finite()?;
        let rows: Vec<usize> = (0..x.n_rows()).collect();
        self.score_rows(x, &rows)
    }

    /// Scores the given rows of `x` without the finiteness check (callers checked once).
    pub fn score_rows(&self, x: &Matrix, rows: &[usize]) -> Result<Vec<f64>> {
        if x.n_cols() != self.n_features() {
            return Err(ProbeError::FeatureMismatch {
                probe: self.n_features(),
                data: x.n_cols(),
            });
        }
        crate::data::check_rows(rows, x.n_rows())?;
        let d = x.n_cols();
        let mut out = Vec::with_capacity(rows.len());
        // Work in blocks so the standardised copy stays small.
        for block in rows.chunks(256) {
            let xs = self.standardizer.transform_rows(x, block);
            out.extend(
                xs.chunks_exact(d)
                    .map(|r| dot(r, &self.direction) as f64 + self.bias as f64),
            );
        }
        Ok(out)
    }
}

/// Fits one probe on `rows` of `x`. `groups` (all rows) drive the inner CV of the L2 strength.
pub fn fit_rows(
    x: &Matrix,
    rows: &[usize],
    labels: &[bool],
    groups: &[u32],
    opts: &FitOptions,
) -> Result<Probe> {
    crate::data::check_rows(rows, x.n_rows())?;
    if labels.len() != x.n_rows() {
        return Err(ProbeError::LabelCount {
            labels: labels.len(),
            rows: x.n_rows(),
        });
    }
    crate::data::check_groups(groups, x.n_rows())?;
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    check_labels(&y, rows.len(), "training rows")?;
    let d = x.n_cols();
    let standardizer = Standardizer::fit(x, rows);
    let xs = standardizer.transform_rows(x, rows);
    let lbfgs = LbfgsOptions {
        gtol: opts.tol,
        max_iter: opts.max_iter,
        ..Default::default()
    };
    let (w, b, l2, shrinkage) = match opts.family {
        Family::Logreg => {
            let lambda = match &opts.l2 {
                L2::Fixed(l) => *l,
                L2::CrossValidated { grid, inner_folds } => {
                    let g: Vec<u32> = rows.iter().map(|&r| groups[r]).collect();
                    choose_l2(x, rows, &y, &g, grid, *inner_folds, &lbfgs)?
                }
            };
            let fit = fit_logistic(&xs, d, &y, lambda, &lbfgs, None)?;
            (fit.w, fit.b, Some(lambda), None)
        }
        Family::Diffmean => {
            let (w, b) = fit_diffmean(&xs, d, &y);
            (w, b, None, None)
        }
        Family::Lda => {
            let fit = fit_lda(&xs, d, &y, opts.shrinkage)?;
            (fit.w, fit.b, None, Some(fit.shrinkage))
        }
    };
    Ok(Probe {
        family: opts.family,
        standardizer,
        direction: w.into_iter().map(|v| v as f32).collect(),
        bias: b as f32,
        l2,
        shrinkage,
    })
}

/// Fits one probe on all rows (no evaluation).
pub fn fit(x: &Matrix, labels: &[bool], groups: &[u32], opts: &FitOptions) -> Result<Probe> {
    x.check_finite()?;
    check_labels(labels, x.n_rows(), "all rows")?;
    crate::data::check_groups(groups, x.n_rows())?;
    let rows: Vec<usize> = (0..x.n_rows()).collect();
    fit_rows(x, &rows, labels, groups, opts)
}

/// Seed of the inner folds that choose the L2 strength (fixed, so a fit is reproducible).
pub const INNER_SEED: u64 = 0x5eed;

/// Picks the L2 strength with the best mean inner-fold AUROC (ties: the stronger one).
fn choose_l2(
    x: &Matrix,
    rows: &[usize],
    y: &[bool],
    groups: &[u32],
    grid: &[f64],
    inner_folds: usize,
    lbfgs: &LbfgsOptions,
) -> Result<f64> {
    if grid.is_empty() {
        return Err(ProbeError::InvalidOption {
            name: "l2 grid",
            reason: "empty grid".into(),
        });
    }
    let mut grid = grid.to_vec();
    // Strongest first, so each fit warm-starts from a smoother neighbour.
    grid.sort_by(|a, b| b.total_cmp(a));
    let folds = grouped_kfold(y, groups, inner_folds, INNER_SEED)?;
    let d = x.n_cols();
    let mut totals = vec![0.0f64; grid.len()];
    for f in &folds {
        let tr: Vec<usize> = f.train.iter().map(|&i| rows[i]).collect();
        let te: Vec<usize> = f.test.iter().map(|&i| rows[i]).collect();
        let ytr: Vec<bool> = f.train.iter().map(|&i| y[i]).collect();
        let yte: Vec<bool> = f.test.iter().map(|&i| y[i]).collect();
        if check_labels(&ytr, ytr.len(), "").is_err() || check_labels(&yte, yte.len(), "").is_err()
        {
            continue;
        }
        let st = Standardizer::fit(x, &tr);
        let xtr = st.transform_rows(x, &tr);
        let xte = st.transform_rows(x, &te);
        let mut warm: Option<(Vec<f64>, f64)> = None;
        for (gi, &lambda) in grid.iter().enumerate() {
            let init = warm.as_ref().map(|(w, b)| (w.as_slice(), *b));
            let fit = fit_logistic(&xtr, d, &ytr, lambda, lbfgs, init)?;
            let wf: Vec<f32> = fit.w.iter().map(|&v| v as f32).collect();
            let s: Vec<f64> = xte
                .chunks_exact(d)
                .map(|r| dot(r, &wf) as f64 + fit.b)
                .collect();
            totals[gi] += auroc(&s, &yte)?;
            warm = Some((fit.w, fit.b));
        }
    }
    let mut best = 0;
    for i in 1..grid.len() {
        if totals[i] > totals[best] + 1e-12 {
            best = i;
        }
    }
    Ok(grid[best])
}
