//! Acceptance: grouped splits never put a group in both train and test, and on a leaky dataset
//! (near-duplicate rows per group, labels per group) an ungrouped split scores higher than the
//! grouped one. Also: stratification, several seeds, train/transfer on synthetic data.

use std::collections::HashSet;
use tell_probe::synthetic::{generate, SynthSpec};
use tell_probe::{
    cross_validate, grouped_kfold, train, transfer, ungrouped_kfold, CvOptions, Family, FitOptions,
    Matrix, Subset, L2,
};

fn cv_opts(seeds: Vec<u64>) -> CvOptions {
    CvOptions {
        folds: 5,
        seeds,
        fpr: 0.05,
        n_bootstrap: 200,
        ci_level: 0.95,
        ..Default::default()
    }
}

#[test]
fn grouped_folds_never_share_a_group() {
    let s = generate(&SynthSpec {
        n_rows: 403,
        n_features: 4,
        group_size: 7,
        signal: 1.0,
        group_noise: 1.0,
        row_noise: 1.0,
        seed: 3,
        label_seed: 3,
    });
    for seed in 0..5 {
        let folds = grouped_kfold(&s.labels, &s.groups, 5, seed).unwrap();
        let mut tested = vec![0usize; s.labels.len()];
        for f in &folds {
            let tr: HashSet<u32> = f.train.iter().map(|&r| s.groups[r]).collect();
            let te: HashSet<u32> = f.test.iter().map(|&r| s.groups[r]).collect();
            assert!(
                tr.is_disjoint(&te),
                "seed {seed}: a group is in train and test"
            );
            assert_eq!(f.train.len() + f.test.len(), s.labels.len());
            f.test.iter().for_each(|&r| tested[r] += 1);
            // Stratified: each test fold's positive share is near the overall one (~0.5).
            let pos = f.test.iter().filter(|&&r| s.labels[r]).count() as f64;
            let share = pos / f.test.len() as f64;
            assert!(
                (share - 0.5).abs() < 0.1,
                "seed {seed}: positive share {share}"
            );
        }
        assert!(
            tested.iter().all(|&t| t == 1),
            "every row is tested exactly once"
        );
    }
    // Different seeds give different assignments.
    let a = grouped_kfold(&s.labels, &s.groups, 5, 0).unwrap();
    let b = grouped_kfold(&s.labels, &s.groups, 5, 1).unwrap();
    assert_ne!(a, b);
    // Ungrouped folds do split groups (that is the leak).
    let u = ungrouped_kfold(&s.labels, 5, 0).unwrap();
    let split_groups = u.iter().any(|f| {
        let tr: HashSet<u32> = f.train.iter().map(|&r| s.groups[r]).collect();
        f.test.iter().any(|&r| tr.contains(&s.groups[r]))
    });
    assert!(split_groups);
}

#[test]
fn ungrouped_split_leaks_and_scores_higher() {
    // No class signal at all: labels are per group, rows of a group are near-duplicates.
    let s = generate(&SynthSpec {
        n_rows: 300,
        n_features: 80,
        group_size: 5,
        signal: 0.0,
        group_noise: 3.0,
        row_noise: 0.3,
        seed: 5,
        label_seed: 5,
    });
    let x = Matrix::new(&s.x, s.labels.len(), 80).unwrap();
    let fit = FitOptions {
        l2: L2::Fixed(1e-2),
        ..FitOptions::default()
    };
    let grouped = cross_validate(&x, &s.labels, &s.groups, None, &fit, &cv_opts(vec![0])).unwrap();
    let rows: Vec<u32> = (0..s.labels.len() as u32).collect();
    let ungrouped = cross_validate(&x, &s.labels, &rows, None, &fit, &cv_opts(vec![0])).unwrap();
    let (g, u) = (grouped.pooled.auroc, ungrouped.pooled.auroc);
    assert!(u > 0.9, "ungrouped split should memorise groups, got {u}");
    assert!(g < 0.65, "grouped split should see no signal, got {g}");
    assert!(u > g + 0.25, "ungrouped {u} vs grouped {g}");
    // Without signal, recall at 5% FPR must stay near 5%: the threshold comes from held-out
    // negatives, not from the probe's own (overfit) training negatives.
    let r = grouped.pooled.recall_at_fpr;
    assert!(r < 0.2, "recall at 5% FPR without signal: {r}");
}

fn signal_data() -> tell_probe::synthetic::Synth {
    generate(&SynthSpec {
        n_rows: 240,
        n_features: 24,
        group_size: 4,
        signal: 3.0,
        group_noise: 0.5,
        row_noise: 1.0,
        seed: 9,
        label_seed: 9,
    })
}

#[test]
fn train_reports_folds_pooled_metrics_and_interval() {
    let s = signal_data();
    let x = Matrix::new(&s.x, s.labels.len(), 24).unwrap();
    for family in Family::ALL {
        let fit = FitOptions::for_family(family);
        let r = train(&x, &s.labels, &s.groups, None, &fit, &cv_opts(vec![0, 1])).unwrap();
        assert_eq!(r.cv.folds.len(), 10);
        let p = &r.cv.pooled;
        assert!(p.auroc > 0.85 && p.auroc < 1.0, "{family:?}: {}", p.auroc);
        assert!(
            p.auroc_ci.lo < p.auroc && p.auroc < p.auroc_ci.hi,
            "{family:?}: {p:?}"
        );
        assert!(p.auroc_ci.hi - p.auroc_ci.lo < 0.2);
        assert!(p.balanced_accuracy > 0.7 && p.accuracy > 0.7);
        assert!(p.recall_at_fpr > 0.2 && p.recall_at_fpr <= 1.0);
        assert_eq!(p.threshold_source, "heldout-negatives");
        assert_eq!((p.n_rows, p.n_groups), (240, 60));
        assert!(r
            .cv
            .folds
            .iter()
            .all(|f| f.auroc > 0.7 && f.n_test + f.n_train == 240));
        // The CV-chosen L2 strength comes from the default grid.
        if family == Family::Logreg {
            let l2 = r.probe.l2.unwrap();
            assert!([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0].contains(&l2));
        }
    }
}

#[test]
fn control_set_sets_the_threshold() {
    let s = signal_data();
    let x = Matrix::new(&s.x, s.labels.len(), 24).unwrap();
    // Control = the negatives themselves: the calibrated threshold must pass at most 5% of them.
    let neg: Vec<f32> =
        s.x.chunks_exact(24)
            .zip(&s.labels)
            .filter(|(_, &l)| !l)
            .flat_map(|(r, _)| r.to_vec())
            .collect();
    let control = tell_probe::Control {
        name: "benign",
        matrix: Matrix::new(&neg, neg.len() / 24, 24).unwrap(),
    };
    let fit = FitOptions::for_family(Family::Diffmean);
    let r = train(
        &x,
        &s.labels,
        &s.groups,
        Some(&control),
        &fit,
        &cv_opts(vec![0]),
    )
    .unwrap();
    assert_eq!(r.cv.pooled.threshold_source, "control:benign");
    let cs = r.probe.apply(&control.matrix).unwrap();
    let above = cs.iter().filter(|&&v| v > r.threshold).count() as f64 / cs.len() as f64;
    assert!(above <= 0.05, "{above}");
}

#[test]
fn transfer_matrix_between_conditions() {
    let s = signal_data();
    let x = Matrix::new(&s.x, s.labels.len(), 24).unwrap();
    // Two "conditions": alternate rows of each group.
    let a: Vec<bool> = (0..240).map(|i| i % 2 == 0).collect();
    let b: Vec<bool> = a.iter().map(|v| !v).collect();
    let subsets = vec![
        Subset {
            name: "baseline".into(),
            mask: a,
        },
        Subset {
            name: "mitigation".into(),
            mask: b,
        },
    ];
    let fit = FitOptions::for_family(Family::Lda);
    let m = transfer(
        &x,
        &s.labels,
        &s.groups,
        &subsets,
        None,
        &fit,
        &cv_opts(vec![0]),
    )
    .unwrap();
    assert_eq!(m.names, vec!["baseline", "mitigation"]);
    for i in 0..2 {
        for j in 0..2 {
            assert!(m.auroc[i][j] > 0.8, "{i}->{j}: {}", m.auroc[i][j]);
        }
    }
}
