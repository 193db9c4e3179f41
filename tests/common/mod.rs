//! Helpers shared by the tests that run the `tell` binary: run it, check how it ended, read the
//! parity goldens and stores. (Each test file uses some of them.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

/// The repository root (the binary runs there, so relative asset paths work).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny parity checkpoint under `tests/parity/models`.
pub fn model_dir(name: &str) -> PathBuf {
    repo().join("tests/parity/models").join(name)
}

/// Runs `tell` with `args` in the repository root.
pub fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tell")
}

/// The stdout of a run that must succeed.
pub fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tell failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks a run failed with exit code 1, without a panic, saying `want`.
pub fn fails_with(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "expected {want:?} in: {err}");
}

/// One f32 tensor of a golden safetensors file of a parity checkpoint.
pub fn golden_tensor(name: &str, file: &str, key: &str) -> Vec<f32> {
    let bytes = std::fs::read(model_dir(name).join(file)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(key)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The golden prompts of a parity checkpoint.
pub fn prompts(name: &str) -> Vec<Vec<u32>> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir(name).join("golden.json")).unwrap())
            .unwrap();
    serde_json::from_value(meta["prompts"].clone()).unwrap()
}

/// Writes a `[n]` f32 `.npy` file.
pub fn write_npy(path: &Path, values: &[f32]) {
    let mut bytes = tell_store::npy_header("<f4", &[values.len()]);
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// Token ids as `1,2,3`.
pub fn ids(tokens: &[u32]) -> String {
    tokens
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes token prompts as a prompts file with ids `p0`, `p1`, ...
pub fn write_token_prompts(path: &Path, prompts: &[Vec<u32>]) {
    let text: String = prompts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("p{i}"), "tokens": t})
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Every row of one site and layer of a store (`layer` `None` for model-level sites).
pub fn store_matrix(dir: &Path, site: &str, layer: Option<u32>) -> Vec<f32> {
    let store = tell_store::Store::open(dir).unwrap();
    let key = match layer {
        Some(l) => tell_store::SiteLayerKey::new(site, l),
        None => tell_store::SiteLayerKey::global(site),
    };
    store.matrix(&key).unwrap().data
}

/// Largest |a - b| relative to the largest |b|.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `n` of the organism suite's rendered prompts, every `step`-th line, written to `dir/p.jsonl`.
pub fn organism_prompts(dir: &Path, n: usize, step: usize) -> PathBuf {
    let all = dir.join("all.jsonl");
    ok(&tell(&[
        "suite",
        "render",
        "probes/organism/suite.toml",
        "--out",
        all.to_str().unwrap(),
    ]));
    let text: String = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .step_by(step)
        .take(n)
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("p.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// A probe at `blocks.{layer}.hook_resid_post` of width `d` with fixed pseudo-random weights.
pub fn write_probe(dir: &Path, d: usize, layer: usize) {
    use tell_probe::{Family, Probe, ProbeArtifact, ProbeMeta, Standardizer};
    let wave = |i: usize, a: f32| (i as f32 * a).sin() * 0.5;
    let probe = Probe {
        family: Family::Logreg,
        standardizer: Standardizer {
            mean: (0..d).map(|i| wave(i, 0.37)).collect(),
            std: (0..d).map(|i| 1.0 + wave(i, 0.11).abs()).collect(),
        },
        direction: (0..d).map(|i| wave(i, 1.3)).collect(),
        bias: 0.25,
        l2: Some(1.0),
        shrinkage: None,
    };
    let meta = ProbeMeta {
        site: "hook_resid_post".into(),
        layer,
        position: "mean".into(),
        family: Family::Logreg,
        threshold: 0.0,
        fpr: 0.01,
        threshold_source: "none".into(),
        label_definition: "test".into(),
        training_data_hash: String::new(),
        n_features: d,
        l2: Some(1.0),
        shrinkage: None,
        metrics: serde_json::Value::Null,
        tool_version: "test".into(),
    };
    ProbeArtifact { probe, meta }.save(dir).unwrap();
}
