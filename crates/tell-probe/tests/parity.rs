//! Acceptance: on the same standardised data and L2 strength, the logistic probe's weights have
//! cosine >= 0.999 with scikit-learn's lbfgs solution and test AUROC within 0.002. Also checks
//! the LDA (Ledoit-Wolf) and mass-mean directions. Goldens: tests/reference/make_golden.py.

use tell_probe::lbfgs::LbfgsOptions;
use tell_probe::lda::fit_lda;
use tell_probe::logistic::fit_logistic;
use tell_probe::{auroc, fit, Family, FitOptions, Matrix, Shrinkage, Standardizer, L2};

struct Case {
    name: String,
    d: usize,
    lambda: f64,
    xtr: Vec<f32>,
    ytr: Vec<bool>,
    xte: Vec<f32>,
    yte: Vec<bool>,
    coef: Vec<f64>,
    test_auroc: f64,
    lda_shrinkage: f64,
    lda_direction: Vec<f64>,
    diffmean_direction: Vec<f64>,
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn bools(v: &serde_json::Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() == 1)
        .collect()
}

fn cases() -> Vec<Case> {
    let path = format!(
        "{}/tests/golden/logistic_parity.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            d: c["d"].as_u64().unwrap() as usize,
            lambda: c["lambda"].as_f64().unwrap(),
            xtr: floats(&c["x_train"])
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            ytr: bools(&c["y_train"]),
            xte: floats(&c["x_test"]).into_iter().map(|v| v as f32).collect(),
            yte: bools(&c["y_test"]),
            coef: floats(&c["coef"]),
            test_auroc: c["test_auroc"].as_f64().unwrap(),
            lda_shrinkage: c["lda_shrinkage"].as_f64().unwrap(),
            lda_direction: floats(&c["lda_direction"]),
            diffmean_direction: floats(&c["diffmean_direction"]),
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn standardised(c: &Case) -> (Matrix<'_>, Vec<f32>, Vec<usize>) {
    let x = Matrix::new(&c.xtr, c.ytr.len(), c.d).unwrap();
    let rows: Vec<usize> = (0..c.ytr.len()).collect();
    let st = Standardizer::fit(&x, &rows);
    let xs = st.transform_rows(&x, &rows);
    (x, xs, rows)
}

#[test]
fn logistic_weights_match_sklearn_lbfgs() {
    for c in cases() {
        let (_, xs, _) = standardised(&c);
        let opts = LbfgsOptions {
            gtol: 1e-9,
            max_iter: 5000,
            ..Default::default()
        };
        let f = fit_logistic(&xs, c.d, &c.ytr, c.lambda, &opts, None).unwrap();
        let cos = cosine(&f.w, &c.coef);
        eprintln!(
            "{}: cosine with sklearn {cos:.9}, iterations {}",
            c.name, f.iterations
        );
        assert!(cos >= 0.999, "{}: cosine {cos}", c.name);
        // The norms agree too, which checks the C <-> lambda convention, not just the direction.
        let ratio = f.w.iter().map(|v| v * v).sum::<f64>().sqrt()
            / c.coef.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((ratio - 1.0).abs() < 1e-3, "{}: norm ratio {ratio}", c.name);
    }
}

#[test]
fn logistic_probe_test_auroc_matches_sklearn() {
    for c in cases() {
        let x = Matrix::new(&c.xtr, c.ytr.len(), c.d).unwrap();
        let groups: Vec<u32> = (0..c.ytr.len() as u32).collect();
        let opts = FitOptions {
            l2: L2::Fixed(c.lambda),
            tol: 1e-9,
            ..Default::default()
        };
        let probe = fit(&x, &c.ytr, &groups, &opts).unwrap();
        let xt = Matrix::new(&c.xte, c.yte.len(), c.d).unwrap();
        let a = auroc(&probe.apply(&xt).unwrap(), &c.yte).unwrap();
        eprintln!("{}: test AUROC {a:.6}, sklearn {:.6}", c.name, c.test_auroc);
        assert!(
            (a - c.test_auroc).abs() <= 0.002,
            "{}: {a} vs sklearn {}",
            c.name,
            c.test_auroc
        );
    }
}

#[test]
fn lda_matches_ledoit_wolf_reference() {
    for c in cases() {
        let (_, xs, _) = standardised(&c);
        let f = fit_lda(&xs, c.d, &c.ytr, Shrinkage::LedoitWolf).unwrap();
        assert!(
            (f.shrinkage - c.lda_shrinkage).abs() < 1e-4,
            "{}: {}",
            c.name,
            f.shrinkage
        );
        let cos = cosine(&f.w, &c.lda_direction);
        assert!(cos >= 0.9999, "{}: lda cosine {cos}", c.name);
    }
}

#[test]
fn diffmean_matches_reference() {
    for c in cases() {
        let x = Matrix::new(&c.xtr, c.ytr.len(), c.d).unwrap();
        let groups: Vec<u32> = (0..c.ytr.len() as u32).collect();
        let p = fit(
            &x,
            &c.ytr,
            &groups,
            &FitOptions::for_family(Family::Diffmean),
        )
        .unwrap();
        let w: Vec<f64> = p.direction.iter().map(|&v| v as f64).collect();
        assert!(cosine(&w, &c.diffmean_direction) > 0.99999, "{}", c.name);
    }
}
