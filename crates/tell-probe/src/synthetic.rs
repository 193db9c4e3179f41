//! Seeded synthetic activations for tests and benchmarks: grouped records (several per query)
//! whose class signal lies along a hidden direction, with correlated noise.

use crate::rng::Rng;

/// Parameters of a synthetic dataset.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    /// Records.
    pub n_rows: usize,
    /// Features.
    pub n_features: usize,
    /// Records per group (query); the label is per group.
    pub group_size: usize,
    /// Signal strength along the hidden direction (in noise standard deviations).
    pub signal: f64,
    /// Per-group shared offset scale (makes rows of a group near-duplicates when large).
    pub group_noise: f64,
    /// Per-row noise scale.
    pub row_noise: f64,
    /// Seed of the row noise.
    pub seed: u64,
    /// Seed of the labels, the signal direction and the feature scales (shared by the layers
    /// of one synthetic model).
    pub label_seed: u64,
}

/// A generated dataset.
#[derive(Clone, Debug)]
pub struct Synth {
    /// Row-major features.
    pub x: Vec<f32>,
    /// Labels.
    pub labels: Vec<bool>,
    /// Group ids.
    pub groups: Vec<u32>,
}

/// Generates a dataset: group g has label `g % 2 == 1` shuffled, a shared offset
/// `group_noise * N(0, I)`, and rows `offset + label_sign * signal * u / 2 + row_noise * N(0,I)`
/// plus a per-feature scale and mean so standardisation matters.
pub fn generate(spec: &SynthSpec) -> Synth {
    let mut lrng = Rng::new(spec.label_seed);
    let mut rng = Rng::new(spec.seed);
    let d = spec.n_features;
    let n_groups = spec.n_rows.div_ceil(spec.group_size.max(1));
    let mut u: Vec<f64> = (0..d).map(|_| lrng.normal()).collect();
    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
    u.iter_mut().for_each(|v| *v /= norm);
    let scale: Vec<f64> = (0..d).map(|_| 0.5 + lrng.uniform() * 2.0).collect();
    let shift: Vec<f64> = (0..d).map(|_| lrng.normal() * 3.0).collect();
    let mut group_labels: Vec<bool> = (0..n_groups).map(|g| g % 2 == 1).collect();
    lrng.shuffle(&mut group_labels);
    let mut x = Vec::with_capacity(spec.n_rows * d);
    let mut labels = Vec::with_capacity(spec.n_rows);
    let mut groups = Vec::with_capacity(spec.n_rows);
    let mut offset = vec![0.0f64; d];
    for i in 0..spec.n_rows {
        let g = i / spec.group_size.max(1);
        if i % spec.group_size.max(1) == 0 {
            offset
                .iter_mut()
                .for_each(|o| *o = spec.group_noise * rng.normal());
        }
        let l = group_labels[g];
        let sign = if l { 0.5 } else { -0.5 };
        // u has unit norm, so the class means are `signal` apart along it.
        let amp = sign * spec.signal;
        for j in 0..d {
            let v = offset[j] + amp * u[j] + spec.row_noise * rng.normal();
            x.push((v * scale[j] + shift[j]) as f32);
        }
        labels.push(l);
        groups.push(g as u32);
    }
    Synth { x, labels, groups }
}
