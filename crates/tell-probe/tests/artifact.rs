//! Probe files: write, read back bit-identically, apply to new rows.

use tell_probe::synthetic::{generate, SynthSpec};
use tell_probe::{
    train, training_hash, CvOptions, Family, FitOptions, Matrix, ProbeArtifact, ProbeError,
    Provenance,
};

#[test]
fn save_load_apply_roundtrip() {
    let s = generate(&SynthSpec {
        n_rows: 120,
        n_features: 16,
        group_size: 3,
        signal: 3.0,
        group_noise: 0.3,
        row_noise: 1.0,
        seed: 1,
        label_seed: 1,
    });
    let x = Matrix::new(&s.x, 120, 16).unwrap();
    let cv = CvOptions {
        seeds: vec![0],
        n_bootstrap: 50,
        ..Default::default()
    };
    for family in Family::ALL {
        let r = train(
            &x,
            &s.labels,
            &s.groups,
            None,
            &FitOptions::for_family(family),
            &cv,
        )
        .unwrap();
        let prov = Provenance {
            site: "blocks.3.hook_resid_post",
            layer: 3,
            position: "last",
            label_definition: "label=deep",
        };
        let art = ProbeArtifact::from_report(&r, &prov, &x, &s.labels, &s.groups);
        assert_eq!(art.meta.threshold, r.threshold);
        assert_eq!(
            art.meta.training_data_hash,
            training_hash(&s.x, 16, &s.labels, &s.groups)
        );
        assert_eq!(
            art.meta.metrics["auroc"].as_f64().unwrap(),
            r.cv.pooled.auroc
        );
        let dir = std::env::temp_dir().join(format!(
            "tell-probe-art-{}-{}",
            std::process::id(),
            family.name()
        ));
        art.save(&dir).unwrap();
        assert!(dir.join("probe.safetensors").exists() && dir.join("probe.json").exists());
        let back = ProbeArtifact::load(&dir).unwrap();
        assert_eq!(back, art);
        let before = art.probe.apply(&x).unwrap();
        let after = back.probe.apply(&x).unwrap();
        assert_eq!(before, after);
        let pos_mean: f64 = before
            .iter()
            .zip(&s.labels)
            .filter(|(_, &l)| l)
            .map(|(v, _)| v)
            .sum::<f64>()
            / 60.0;
        let neg_mean: f64 = before
            .iter()
            .zip(&s.labels)
            .filter(|(_, &l)| !l)
            .map(|(v, _)| v)
            .sum::<f64>()
            / 60.0;
        assert!(pos_mean > neg_mean, "{family:?}");
        // Wrong width is a typed error.
        let narrow = Matrix::new(&s.x[..15 * 8], 8, 15).unwrap();
        assert!(matches!(
            back.probe.apply(&narrow),
            Err(ProbeError::FeatureMismatch {
                probe: 16,
                data: 15
            })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The hash sees every input.
    let h = training_hash(&s.x, 16, &s.labels, &s.groups);
    assert_eq!(h.len(), 64);
    let mut l2 = s.labels.clone();
    l2[0] = !l2[0];
    assert_ne!(h, training_hash(&s.x, 16, &l2, &s.groups));
}

#[test]
fn load_reports_missing_files() {
    let err = ProbeArtifact::load("/nonexistent/tell-probe").unwrap_err();
    assert!(matches!(err, ProbeError::Io { .. }), "{err}");
}
