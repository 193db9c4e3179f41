//! Difference of class means (mass-mean probe) in standardised feature space.

/// Class means (positives, negatives) of standardised rows, accumulated in f64.
pub fn class_means(xs: &[f32], d: usize, y: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let (mut mp, mut mn) = (vec![0.0f64; d], vec![0.0f64; d]);
    let (mut np, mut nn) = (0usize, 0usize);
    for (row, &l) in xs.chunks_exact(d).zip(y) {
        let (m, c) = if l {
            (&mut mp, &mut np)
        } else {
            (&mut mn, &mut nn)
        };
        *c += 1;
        m.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    mp.iter_mut().for_each(|v| *v /= np.max(1) as f64);
    mn.iter_mut().for_each(|v| *v /= nn.max(1) as f64);
    (mp, mn)
}

/// Bias that puts the decision boundary half-way between the projected class means.
pub fn midpoint_bias(w: &[f64], mp: &[f64], mn: &[f64]) -> f64 {
    -0.5 * w
        .iter()
        .zip(mp.iter().zip(mn))
        .map(|(w, (p, n))| w * (p + n))
        .sum::<f64>()
}

/// Mass-mean direction `mu_pos - mu_neg` and the midpoint bias.
pub fn fit_diffmean(xs: &[f32], d: usize, y: &[bool]) -> (Vec<f64>, f64) {
    let (mp, mn) = class_means(xs, d, y);
    let w: Vec<f64> = mp.iter().zip(&mn).map(|(p, n)| p - n).collect();
    let b = midpoint_bias(&w, &mp, &mn);
    (w, b)
}
