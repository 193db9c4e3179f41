//! L2-regularised logistic regression on standardised rows, solved with L-BFGS.
//!
//! Objective (the mean form that scikit-learn's lbfgs path also minimises):
//! `f(w, b) = (1/n) sum_i log(1 + exp(-s_i (x_i.w + b))) + (lambda/2) |w|^2`, intercept `b` not
//! penalised. scikit-learn's `C` relates as `lambda = 1 / (C * n)`.
//!
//! One objective+gradient evaluation is a single fused pass over the rows (dot, then axpy of the
//! same row while it is in cache), split across threads in row chunks; partial gradients are
//! summed in f64.

use crate::error::{ProbeError, Result};
use crate::kernels::{axpy, dot};
use crate::lbfgs::{minimize, LbfgsOptions};
use rayon::prelude::*;

/// Rows per parallel work item; also the f32 accumulation block before flushing to f64.
const CHUNK: usize = 128;

/// A fitted logistic model in standardised feature space.
#[derive(Clone, Debug)]
pub struct LogisticFit {
    /// Weights, one per feature.
    pub w: Vec<f64>,
    /// Intercept.
    pub b: f64,
    /// L-BFGS iterations used.
    pub iterations: usize,
    /// Whether the gradient tolerance was met.
    pub converged: bool,
}

/// Numerically stable `log(1 + exp(z))`.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Mean loss and gradient (w part, then b) at `(w, b)`, without the penalty.
fn loss_grad(xs: &[f32], d: usize, y: &[bool], w: &[f32], b: f64) -> (f64, Vec<f64>, f64) {
    xs.par_chunks(CHUNK * d)
        .zip(y.par_chunks(CHUNK))
        .map(|(rows, ys)| {
            let mut gblock = vec![0.0f32; d];
            let mut loss = 0.0f64;
            let mut rsum = 0.0f64;
            for (row, &yi) in rows.chunks_exact(d).zip(ys) {
                let z = dot(row, w) as f64 + b;
                let t = if yi { 1.0 } else { 0.0 };
                loss += softplus(z) - t * z;
                let r = sigmoid(z) - t;
                rsum += r;
                axpy(&mut gblock, r as f32, row);
            }
            (
                loss,
                gblock.into_iter().map(f64::from).collect::<Vec<f64>>(),
                rsum,
            )
        })
        .reduce(
            || (0.0, vec![0.0; d], 0.0),
            |(l1, mut g1, r1), (l2, g2, r2)| {
                g1.iter_mut().zip(&g2).for_each(|(a, b)| *a += b);
                (l1 + l2, g1, r1 + r2)
            },
        )
}

/// Fits on `n` standardised rows `xs` (row-major, `d` features) with labels `y`.
///
/// `init` warm-starts from a previous solution (e.g. the neighbouring L2 strength).
pub fn fit_logistic(
    xs: &[f32],
    d: usize,
    y: &[bool],
    lambda: f64,
    opts: &LbfgsOptions,
    init: Option<(&[f64], f64)>,
) -> Result<LogisticFit> {
    let n = y.len();
    if xs.len() != n * d || n == 0 {
        return Err(ProbeError::Shape {
            n_rows: n,
            n_cols: d,
            expected: n * d,
            got: xs.len(),
        });
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(ProbeError::InvalidOption {
            name: "l2",
            reason: format!("L2 strength must be finite and > 0, got {lambda}"),
        });
    }
    let n_pos = y.iter().filter(|&&v| v).count();
    let mut theta = vec![0.0f64; d + 1];
    match init {
        Some((w, b)) if w.len() == d => {
            theta[..d].copy_from_slice(w);
            theta[d] = b;
        }
        _ => {
            // Start at the class prior so the first steps fit the direction, not the offset.
            let p = (n_pos as f64 + 0.5) / (n as f64 + 1.0);
            theta[d] = (p / (1.0 - p)).ln();
        }
    }
    let inv_n = 1.0 / n as f64;
    let mut wf = vec![0.0f32; d];
    let res = minimize(
        &mut theta,
        |th, g| {
            wf.iter_mut()
                .zip(&th[..d])
                .for_each(|(a, &b)| *a = b as f32);
            let (loss, gw, rsum) = loss_grad(xs, d, y, &wf, th[d]);
            let mut pen = 0.0;
            for j in 0..d {
                g[j] = gw[j] * inv_n + lambda * th[j];
                pen += th[j] * th[j];
            }
            g[d] = rsum * inv_n;
            loss * inv_n + 0.5 * lambda * pen
        },
        opts,
    );
    if !res.f.is_finite() || theta.iter().any(|v| !v.is_finite()) {
        return Err(ProbeError::Solver(format!(
            "logistic objective became {}",
            res.f
        )));
    }
    let b = theta[d];
    theta.truncate(d);
    Ok(LogisticFit {
        w: theta,
        b,
        iterations: res.iterations,
        converged: res.converged,
    })
}
