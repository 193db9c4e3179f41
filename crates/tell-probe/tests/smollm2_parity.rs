//! Acceptance on real activations: SmolLM2-135M-Instruct last-token residuals (blocks 0, 2 and
//! 15, computed by HF transformers from the fetched GGUF) of the labelled instructions. On the
//! same standardised training rows and the same L2 strength, the logistic probe's weights have a
//! cosine of at least 0.999 with scikit-learn's `LogisticRegression(solver="lbfgs")` and the
//! test AUROC agrees within 0.002, on a fixed grouped split (both renderings of a query on one
//! side). Block 15 separates perfectly (AUROC 1); the early blocks make the AUROC check bite.
//!
//! Data: `python3 tests/parity/make_smollm2_probe.py` (run by `.ci/run`) writes
//! `checkpoints/fetched/goldens/smollm2-probe/`; without it the tests say so and pass.

use std::path::PathBuf;
use tell_probe::lbfgs::LbfgsOptions;
use tell_probe::logistic::fit_logistic;
use tell_probe::{auroc, fit, FitOptions, Matrix, Standardizer, L2};

struct Data {
    block: String,
    d: usize,
    lambda: f64,
    x_train: Vec<f32>,
    y_train: Vec<bool>,
    g_train: Vec<u32>,
    x_test: Vec<f32>,
    y_test: Vec<bool>,
    coef: Vec<f64>,
    test_auroc: f64,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../checkpoints/fetched/goldens/smollm2-probe")
}

fn load() -> Option<Vec<Data>> {
    let d = dir();
    let (Ok(bytes), Ok(json)) = (
        std::fs::read(d.join("features.safetensors")),
        std::fs::read_to_string(d.join("golden.json")),
    ) else {
        eprintln!(
            "skipped: {} is missing; run `python3 tests/parity/make_smollm2_probe.py` \
             (needs the GGUF from scripts/fetch-assets.sh)",
            d.display()
        );
        return None;
    };
    let g: serde_json::Value = serde_json::from_str(&json).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ints = |name: &str| -> Vec<i64> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (y, group, test) = (ints("y"), ints("group"), ints("test"));
    let layers = g["layers"].as_object().unwrap();
    assert_eq!(layers.len(), 3);
    let mut out = Vec::new();
    for (block, lg) in layers {
        let x = st.tensor(&format!("x.{block}")).unwrap();
        let (n, dim) = (x.shape()[0], x.shape()[1]);
        let xs: Vec<f32> = x
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!((y.len(), group.len(), test.len()), (n, n, n));
        let mut data = Data {
            block: block.clone(),
            d: dim,
            lambda: g["lambda"].as_f64().unwrap(),
            x_train: vec![],
            y_train: vec![],
            g_train: vec![],
            x_test: vec![],
            y_test: vec![],
            coef: lg["coef"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect(),
            test_auroc: lg["test_auroc"].as_f64().unwrap(),
        };
        for i in 0..n {
            let row = &xs[i * dim..(i + 1) * dim];
            if test[i] == 0 {
                data.x_train.extend_from_slice(row);
                data.y_train.push(y[i] == 1);
                data.g_train.push(group[i] as u32);
            } else {
                data.x_test.extend_from_slice(row);
                data.y_test.push(y[i] == 1);
            }
        }
        assert_eq!(data.y_train.len(), g["n_train"].as_u64().unwrap() as usize);
        assert_eq!(data.coef.len(), dim);
        out.push(data);
    }
    Some(out)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn smollm2_logistic_weights_match_sklearn_lbfgs() {
    let Some(cases) = load() else { return };
    for c in cases {
        let n = c.y_train.len();
        let x = Matrix::new(&c.x_train, n, c.d).unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let xs = Standardizer::fit(&x, &rows).transform_rows(&x, &rows);
        let opts = LbfgsOptions {
            gtol: 1e-9,
            max_iter: 5000,
            ..Default::default()
        };
        let f = fit_logistic(&xs, c.d, &c.y_train, c.lambda, &opts, None).unwrap();
        let cos = cosine(&f.w, &c.coef);
        eprintln!(
            "SmolLM2 block {}, {n} train rows x {}: cosine with sklearn {cos:.9} ({} iterations)",
            c.block, c.d, f.iterations
        );
        assert!(cos >= 0.999, "block {}: cosine {cos}", c.block);
    }
}

#[test]
fn smollm2_logistic_test_auroc_matches_sklearn() {
    let Some(cases) = load() else { return };
    for c in cases {
        let x = Matrix::new(&c.x_train, c.y_train.len(), c.d).unwrap();
        let opts = FitOptions {
            l2: L2::Fixed(c.lambda),
            tol: 1e-9,
            max_iter: 5000,
            ..Default::default()
        };
        let probe = fit(&x, &c.y_train, &c.g_train, &opts).unwrap();
        let xt = Matrix::new(&c.x_test, c.y_test.len(), c.d).unwrap();
        let a = auroc(&probe.apply(&xt).unwrap(), &c.y_test).unwrap();
        eprintln!(
            "SmolLM2 block {}: test AUROC {a:.6} on {} rows, sklearn {:.6}",
            c.block,
            c.y_test.len(),
            c.test_auroc
        );
        assert!(
            (a - c.test_auroc).abs() <= 0.002,
            "block {}: {a} vs sklearn {}",
            c.block,
            c.test_auroc
        );
        let w: Vec<f64> = probe.direction.iter().map(|&v| v as f64).collect();
        assert!(cosine(&w, &c.coef) >= 0.999, "block {}", c.block);
    }
}

/// The same SmolLM2 activations written into an activation store and swept by
/// `train_from_store` (what `tell probe train` runs): one metrics row per block x family, the
/// middle block wins, the probe files name it.
#[test]
fn smollm2_store_sweep_picks_the_middle_block() {
    use tell_probe::{train_from_store, ControlSource, CvOptions, Family, ProbeArtifact};
    use tell_store::{
        ModelIdentity, Positions, RecordMeta, SiteLayerKey, SiteSpec, StoreDtype, StoreSpec,
        StoreWriter,
    };
    let d = dir();
    let (Ok(bytes), Ok(json)) = (
        std::fs::read(d.join("features.safetensors")),
        std::fs::read_to_string(d.join("golden.json")),
    ) else {
        eprintln!("skipped: {} is missing", d.display());
        return;
    };
    let g: serde_json::Value = serde_json::from_str(&json).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let blocks: Vec<u32> = g["layers"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    let ints = |name: &str| -> Vec<i64> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (y, group) = (ints("y"), ints("group"));
    let feats: Vec<Vec<f32>> = blocks
        .iter()
        .map(|b| {
            st.tensor(&format!("x.{b}"))
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    let dim = feats[0].len() / y.len();
    let tmp = std::env::temp_dir().join(format!("tell-probe-smollm2-{}", std::process::id()));
    let acts = tmp.join("acts");
    let spec = StoreSpec::new(
        ModelIdentity {
            name: "SmolLM2-135M-Instruct (transformers)".into(),
            hash: "0".repeat(64),
        },
        vec![SiteSpec::block("hook_resid_post", dim)],
        blocks.clone(),
        Positions::Last,
        StoreDtype::F32,
    );
    let mut w = StoreWriter::create(&acts, spec, true).unwrap();
    let mut labels = String::from("id,label\n");
    for i in 0..y.len() {
        let keys: Vec<(SiteLayerKey, &[f32])> = blocks
            .iter()
            .zip(&feats)
            .map(|(&b, f)| {
                (
                    SiteLayerKey::new("hook_resid_post", b),
                    &f[i * dim..(i + 1) * dim],
                )
            })
            .collect();
        let meta = RecordMeta {
            id: format!("r{i}"),
            query_id: format!("q{}", group[i]),
            condition: "instructions".into(),
            tier: "none".into(),
            n_tokens: 1,
            n_response_tokens: 0,
            extra: vec![],
        };
        w.push_record(meta, &keys).unwrap();
        labels.push_str(&format!("r{i},{}\n", y[i]));
    }
    w.finish().unwrap();
    std::fs::write(tmp.join("labels.csv"), labels).unwrap();
    let cfg = tell_probe::TrainConfig {
        acts,
        labels: tmp.join("labels.csv"),
        label: "label".into(),
        positive: None,
        join_on: vec!["id".into()],
        group_by: "query_id".into(),
        families: vec![Family::Logreg, Family::Diffmean],
        sites: None,
        layers: None,
        fit: FitOptions {
            l2: L2::Fixed(g["lambda"].as_f64().unwrap()),
            ..Default::default()
        },
        cv: CvOptions {
            seeds: vec![0],
            n_bootstrap: 200,
            ..CvOptions::default()
        },
        control: ControlSource::None,
        skip_unlabelled: false,
        transfer_by: None,
        out: tmp.join("out"),
    };
    let o = train_from_store(&cfg).unwrap();
    assert_eq!(o.sweep.rows.len(), blocks.len() * 2);
    assert_eq!((o.n_rows, o.n_groups), (y.len(), y.len() / 2));
    for r in &o.sweep.rows {
        eprintln!(
            "block {:>2} {:<8} grouped 5-fold AUROC {:.4} [{:.4}, {:.4}]",
            r.layer,
            r.family.name(),
            r.auroc,
            r.auroc_lo,
            r.auroc_hi
        );
    }
    let best = o.sweep.best_row();
    assert_eq!(best.layer, 15);
    assert!(best.auroc > 0.99, "{best:?}");
    let art = ProbeArtifact::load(tmp.join("out")).unwrap();
    assert_eq!((art.meta.layer, art.meta.n_features), (15, dim));
}
