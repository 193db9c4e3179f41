//! Limited-memory BFGS with a strong-Wolfe line search (Nocedal & Wright, alg. 7.4 and 3.5/3.6).
//!
//! Used for the smooth, strongly convex L2 logistic objective, where it needs far fewer passes
//! over the data than first-order methods.

/// Stopping rules for [`minimize`].
#[derive(Clone, Debug)]
pub struct LbfgsOptions {
    /// Number of correction pairs kept.
    pub memory: usize,
    /// Stop when the largest absolute gradient entry is at most this.
    pub gtol: f64,
    /// Stop after this many iterations.
    pub max_iter: usize,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            gtol: 1e-6,
            max_iter: 1000,
        }
    }
}

/// What the minimiser reached.
#[derive(Clone, Debug)]
pub struct LbfgsResult {
    /// Final objective value.
    pub f: f64,
    /// Iterations done.
    pub iterations: usize,
    /// Objective/gradient evaluations done (each is one pass over the data).
    pub evaluations: usize,
    /// Whether the gradient tolerance was met.
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Minimises `fg` (returns f, writes the gradient) from `x`, in place.
pub fn minimize<F>(x: &mut [f64], mut fg: F, opts: &LbfgsOptions) -> LbfgsResult
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut f = fg(x, &mut g);
    let mut evals = 1;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho: Vec<f64> = Vec::new();
    let mut d = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut alpha_buf = vec![0.0; opts.memory.max(1)];
    for iter in 0..opts.max_iter {
        if max_abs(&g) <= opts.gtol {
            return LbfgsResult {
                f,
                iterations: iter,
                evaluations: evals,
                converged: true,
            };
        }
        // Two-loop recursion: d = -H g.
        d.copy_from_slice(&g);
        let k = s_hist.len();
        for i in (0..k).rev() {
            let a = rho[i] * dot(&s_hist[i], &d);
            alpha_buf[i] = a;
            d.iter_mut()
                .zip(&y_hist[i])
                .for_each(|(di, yi)| *di -= a * yi);
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / max_abs(&g).max(1e-300).max(dot(&g, &g).sqrt())
        };
        d.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..k {
            let b = rho[i] * dot(&y_hist[i], &d);
            let a = alpha_buf[i];
            d.iter_mut()
                .zip(&s_hist[i])
                .for_each(|(di, si)| *di += (a - b) * si);
        }
        d.iter_mut().for_each(|v| *v = -*v);
        let mut dg = dot(&d, &g);
        if dg >= 0.0 {
            // Not a descent direction (lost curvature): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
            dg = -dot(&g, &g);
        }
        let step = line_search(x, f, dg, &d, &mut x_new, &mut g_new, &mut fg, &mut evals);
        let Some(f_new) = step else {
            // The line search found no decrease: we are at the precision floor.
            return LbfgsResult {
                f,
                iterations: iter,
                evaluations: evals,
                converged: false,
            };
        };
        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        let f_old = f;
        f = f_new;
        if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if s_hist.len() == opts.memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho.push(1.0 / sy);
        }
        if (f_old - f).abs() <= 1e-15 * f.abs().max(1.0) && max_abs(&g) <= opts.gtol * 10.0 {
            return LbfgsResult {
                f,
                iterations: iter + 1,
                evaluations: evals,
                converged: true,
            };
        }
    }
    let converged = max_abs(&g) <= opts.gtol;
    LbfgsResult {
        f,
        iterations: opts.max_iter,
        evaluations: evals,
        converged,
    }
}

/// Strong-Wolfe line search along `d`; writes the accepted point and gradient, returns its f.
#[allow(clippy::too_many_arguments)]
fn line_search<F>(
    x: &[f64],
    f0: f64,
    dg0: f64,
    d: &[f64],
    x_new: &mut [f64],
    g_new: &mut [f64],
    fg: &mut F,
    evals: &mut usize,
) -> Option<f64>
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let mut eval = |a: f64, x_new: &mut [f64], g_new: &mut [f64]| -> (f64, f64) {
        x_new
            .iter_mut()
            .zip(x.iter().zip(d))
            .for_each(|(xn, (xi, di))| *xn = xi + a * di);
        let f = fg(x_new, g_new);
        *evals += 1;
        (f, dot(g_new, d))
    };
    let (mut a_lo, mut f_lo, mut dg_lo) = (0.0, f0, dg0);
    let (mut a_hi, mut f_hi) = (f64::NAN, f64::NAN);
    let mut a = 1.0;
    for _ in 0..50 {
        let (f, dg) = eval(a, x_new, g_new);
        if !f.is_finite() || f > f0 + C1 * a * dg0 || (f >= f_lo && a_lo > 0.0) {
            a_hi = a;
            f_hi = if f.is_finite() { f } else { f64::INFINITY };
        } else if dg.abs() <= -C2 * dg0 {
            return Some(f);
        } else {
            if dg >= 0.0 {
                a_hi = a_lo;
                f_hi = f_lo;
            }
            a_lo = a;
            f_lo = f;
            dg_lo = dg;
        }
        a = if a_hi.is_nan() {
            a * 2.0
        } else {
            // Quadratic through (a_lo, f_lo, slope dg_lo) and (a_hi, f_hi), kept well inside the
            // bracket; bisection when the fit is useless.
            let (lo, hi) = (a_lo.min(a_hi), a_lo.max(a_hi));
            let span = a_hi - a_lo;
            let c = (f_hi - f_lo - dg_lo * span) / (span * span);
            let cand = a_lo - dg_lo / (2.0 * c);
            let margin = 0.1 * (hi - lo);
            if c > 0.0 && cand.is_finite() && cand > lo + margin && cand < hi - margin {
                cand
            } else {
                0.5 * (lo + hi)
            }
        };
        if !a_hi.is_nan() && (a_hi - a_lo).abs() <= 1e-14 * a_hi.abs().max(a_lo.abs()) {
            break;
        }
    }
    if a_lo > 0.0 && f_lo < f0 {
        let (f, _) = eval(a_lo, x_new, g_new);
        return Some(f);
    }
    None
}
