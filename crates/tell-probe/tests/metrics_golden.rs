//! Acceptance: AUROC equals scikit-learn's `roc_auc_score` to 1e-12 on scores with ties.
//! Goldens: tests/reference/make_golden.py.

use tell_probe::metrics::{accuracy, balanced_accuracy, recall_above, threshold_at_fpr};
use tell_probe::{auroc, ProbeError};

fn golden(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json")
}

#[test]
fn auroc_matches_sklearn_with_ties() {
    let g = golden("auroc_ties.json");
    let cases = g["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    for c in cases {
        let scores: Vec<f64> = c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let labels: Vec<bool> = c["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() == 1)
            .collect();
        let want = c["auroc"].as_f64().unwrap();
        let got = auroc(&scores, &labels).unwrap();
        assert!((got - want).abs() <= 1e-12, "got {got}, sklearn {want}");
    }
}

#[test]
fn auroc_small_exact_values() {
    // One tie between a positive and a negative counts one half.
    let s = [0.1, 0.4, 0.4, 0.8];
    let y = [false, true, false, true];
    assert_eq!(auroc(&s, &y).unwrap(), 0.875);
    assert_eq!(auroc(&[1.0, 2.0], &[true, false]).unwrap(), 0.0);
    assert!(matches!(
        auroc(&[1.0, 2.0], &[true, true]),
        Err(ProbeError::OneClass { .. })
    ));
}

#[test]
fn threshold_and_recall_at_fpr() {
    // 200 controls 0..199: at 1% FPR exactly 2 lie above the threshold (198).
    let control: Vec<f64> = (0..200).map(f64::from).collect();
    let t = threshold_at_fpr(&control, 0.01).unwrap();
    assert_eq!(t, 197.0);
    assert_eq!(control.iter().filter(|&&c| c > t).count(), 2);
    let scores = [196.0, 197.0, 198.0, 500.0, 0.0];
    let labels = [true, true, true, true, false];
    assert_eq!(recall_above(&scores, &labels, t), 0.5);
    assert_eq!(
        accuracy(&[-1.0, 1.0, 2.0], &[false, true, false], 0.0),
        2.0 / 3.0
    );
    assert_eq!(
        balanced_accuracy(&[-1.0, 1.0, 2.0], &[false, true, false], 0.0),
        0.75
    );
}
