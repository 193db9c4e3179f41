//! Per-feature standardisation (z-scores), fitted on training rows only.

use crate::data::Matrix;

/// Floor on a feature's standard deviation, so constant features map to 0 instead of NaN.
pub const STD_FLOOR: f64 = 1e-8;

/// Per-feature mean and standard deviation (population, ddof = 0, as scikit-learn's scaler).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f32>,
    /// Feature standard deviations (floored at [`STD_FLOOR`]).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits on the given rows of `x`, accumulating in f64 (two passes, for precision).
    pub fn fit(x: &Matrix, rows: &[usize]) -> Self {
        let d = x.n_cols();
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; d];
        for &r in rows {
            for (m, &v) in mean.iter_mut().zip(x.row(r)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for &r in rows {
            for ((s, &v), &m) in var.iter_mut().zip(x.row(r)).zip(&mean) {
                let c = v as f64 - m;
                *s += c * c;
            }
        }
        let std = var
            .iter()
            .map(|s| ((s / n).sqrt().max(STD_FLOOR)) as f32)
            .collect();
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Identity transform for `d` features (mean 0, std 1).
    pub fn identity(d: usize) -> Self {
        Standardizer {
            mean: vec![0.0; d],
            std: vec![1.0; d],
        }
    }

    /// Standardised copy of the given rows, row-major.
    pub fn transform_rows(&self, x: &Matrix, rows: &[usize]) -> Vec<f32> {
        let d = x.n_cols();
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        let mut out = vec![0.0f32; rows.len() * d];
        for (o, &r) in out.chunks_exact_mut(d).zip(rows) {
            for (((o, &v), &m), &i) in o.iter_mut().zip(x.row(r)).zip(&self.mean).zip(&inv) {
                *o = (v - m) * i;
            }
        }
        out
    }
}
