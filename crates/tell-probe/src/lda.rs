//! LDA-style mass-mean probe: `w = Sigma^-1 (mu_pos - mu_neg)` with a shrunk pooled within-class
//! covariance `Sigma = (1 - s) S + s (tr S / d) I`, `s` by Ledoit-Wolf or fixed.
//!
//! With d = 4096 features and a few thousand rows, forming and inverting the d x d covariance is
//! wasteful: everything needed (Ledoit-Wolf's Frobenius norms and the solve, by Woodbury when
//! n < d) comes from the Gram matrix of the smaller side, built with one GEMM.

use crate::diffmean::{class_means, midpoint_bias};
use crate::error::{ProbeError, Result};

/// How much to shrink the covariance towards a scaled identity.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Shrinkage {
    /// Ledoit-Wolf's optimal shrinkage (as `sklearn.covariance.ledoit_wolf` on the pooled,
    /// class-centred rows).
    LedoitWolf,
    /// A fixed shrinkage in (0, 1].
    Fixed(f64),
}

/// Fitted LDA direction, bias and the shrinkage used.
#[derive(Clone, Debug)]
pub struct LdaFit {
    /// Direction in standardised space.
    pub w: Vec<f64>,
    /// Midpoint bias.
    pub b: f64,
    /// Shrinkage intensity used.
    pub shrinkage: f64,
}

/// Gram matrix of the smaller side of the n x d row-major `x`: `x x^T` if n <= d else `x^T x`.
fn small_gram(x: &[f32], n: usize, d: usize) -> (Vec<f64>, usize) {
    let m = n.min(d);
    let mut k = vec![0.0f32; m * m];
    let (rsa, csa, rsb, csb, inner) = if n <= d {
        (d, 1, 1, d, d)
    } else {
        (1, d, d, 1, n)
    };
    // SAFETY: `x` holds n*d values; with these strides the m x inner operand A and the
    // inner x m operand B both index only inside `x`, and `k` holds m*m values.
    unsafe {
        matrixmultiply::sgemm(
            m,
            inner,
            m,
            1.0,
            x.as_ptr(),
            rsa as isize,
            csa as isize,
            x.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            k.as_mut_ptr(),
            m as isize,
            1,
        );
    }
    (k.into_iter().map(f64::from).collect(), m)
}

/// Solves `(p I + q K) v = r` for symmetric PSD `K` by conjugate gradients.
fn cg_solve(k: &[f64], m: usize, p: f64, q: f64, r: &[f64]) -> Vec<f64> {
    let apply = |v: &[f64], out: &mut [f64]| {
        for i in 0..m {
            let row = &k[i * m..(i + 1) * m];
            out[i] = p * v[i] + q * row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
    };
    let mut x = vec![0.0; m];
    let mut res = r.to_vec();
    let mut dir = res.clone();
    let mut ad = vec![0.0; m];
    let r0 = res.iter().map(|v| v * v).sum::<f64>();
    let mut rr = r0;
    for _ in 0..(5 * m).max(50) {
        if rr <= 1e-24 * r0 || rr == 0.0 {
            break;
        }
        apply(&dir, &mut ad);
        let alpha = rr / dir.iter().zip(&ad).map(|(a, b)| a * b).sum::<f64>();
        x.iter_mut()
            .zip(&dir)
            .for_each(|(xi, di)| *xi += alpha * di);
        res.iter_mut()
            .zip(&ad)
            .for_each(|(ri, ai)| *ri -= alpha * ai);
        let rr_new = res.iter().map(|v| v * v).sum::<f64>();
        let beta = rr_new / rr;
        dir.iter_mut()
            .zip(&res)
            .for_each(|(di, ri)| *di = ri + beta * *di);
        rr = rr_new;
    }
    x
}

/// Fits on `n` standardised rows `xs` (`d` features) with labels `y`.
pub fn fit_lda(xs: &[f32], d: usize, y: &[bool], shrinkage: Shrinkage) -> Result<LdaFit> {
    let n = y.len();
    let (mp, mn) = class_means(xs, d, y);
    let delta: Vec<f64> = mp.iter().zip(&mn).map(|(p, q)| p - q).collect();
    // Class-centred rows (pooled within-class scatter).
    let mut xc = vec![0.0f32; n * d];
    let mut sq = vec![0.0f64; n];
    for (i, (row, &l)) in xs.chunks_exact(d).zip(y).enumerate() {
        let mu = if l { &mp } else { &mn };
        let out = &mut xc[i * d..(i + 1) * d];
        let mut s = 0.0f64;
        for ((o, &v), &m) in out.iter_mut().zip(row).zip(mu) {
            let c = v as f64 - m;
            *o = c as f32;
            s += c * c;
        }
        sq[i] = s;
    }
    let (k, m) = small_gram(&xc, n, d);
    let nf = n as f64;
    let tr_s = sq.iter().sum::<f64>() / nf;
    let mu = tr_s / d as f64;
    let s = match shrinkage {
        Shrinkage::Fixed(s) => {
            if !(s > 0.0 && s <= 1.0) {
                return Err(ProbeError::InvalidOption {
                    name: "shrinkage",
                    reason: format!("fixed shrinkage must be in (0, 1], got {s}"),
                });
            }
            s
        }
        Shrinkage::LedoitWolf => {
            let k_fro2: f64 = k.iter().map(|v| v * v).sum();
            let s_fro2 = k_fro2 / (nf * nf);
            let sum_sq2: f64 = sq.iter().map(|v| v * v).sum();
            let beta = (sum_sq2 - k_fro2 / nf) / (nf * nf);
            let delta2 = s_fro2 - d as f64 * mu * mu;
            if delta2 <= 0.0 {
                1.0
            } else {
                (beta.min(delta2) / delta2).clamp(1e-6, 1.0)
            }
        }
    };
    if mu <= 0.0 {
        // No within-class spread at all: the mean difference is the only information.
        let b = midpoint_bias(&delta, &mp, &mn);
        return Ok(LdaFit {
            w: delta,
            b,
            shrinkage: s,
        });
    }
    let a = s * mu;
    let c = (1.0 - s) / nf;
    let w = if c == 0.0 {
        delta.iter().map(|v| v / a).collect()
    } else if n <= d {
        // Woodbury: (aI + c X^T X)^-1 v = (v - X^T (a/c I + X X^T)^-1 X v) / a.
        let xv: Vec<f64> = xc
            .chunks_exact(d)
            .map(|row| row.iter().zip(&delta).map(|(&x, v)| x as f64 * v).sum())
            .collect();
        let u = cg_solve(&k, m, a / c, 1.0, &xv);
        let mut w = delta.clone();
        for (row, &ui) in xc.chunks_exact(d).zip(&u) {
            w.iter_mut()
                .zip(row)
                .for_each(|(wj, &x)| *wj -= ui * x as f64);
        }
        w.iter_mut().for_each(|v| *v /= a);
        w
    } else {
        cg_solve(&k, m, a, c, &delta)
    };
    let b = midpoint_bias(&w, &mp, &mn);
    Ok(LdaFit { w, b, shrinkage: s })
}
