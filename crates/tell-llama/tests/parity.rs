//! Parity with Hugging Face transformers on the tiny checkpoints of `tests/parity/models/`
//! (goldens written by `tests/parity/make_goldens.py`), and padding invariance of batches.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use safetensors::SafeTensors;
use tell_llama::{Batch, CpuBackend, Hook, Llama, Logits, Site};

type B = CpuBackend;

const CASES: [&str; 7] = [
    "gqa",
    "llama3-rope",
    "llama3-rope-v5",
    "tied",
    "bf16",
    "sharded",
    "head-dim",
];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity/models")
        .join(name)
}

struct Golden {
    bytes: Vec<u8>,
    prompts: Vec<Vec<u32>>,
    layers: usize,
}

impl Golden {
    fn load(name: &str) -> Self {
        let dir = model_dir(name);
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
        let prompts = meta["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        Self {
            bytes,
            prompts,
            layers: meta["layers"].as_u64().unwrap() as usize,
        }
    }

    fn get(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = st
            .tensor(key)
            .unwrap_or_else(|_| panic!("golden has no {key}"));
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (view.shape().to_vec(), values)
    }
}

fn values(t: &Tensor<B, 3>) -> Vec<f32> {
    t.to_data().to_vec::<f32>().unwrap()
}

/// Rows `start..start+len` of row `b` of a `[batch, seq, width]` tensor, flattened.
fn rows(t: &Tensor<B, 3>, b: usize, start: usize, len: usize) -> Vec<f32> {
    let [_, seq, width] = t.dims();
    let all = values(t);
    let from = (b * seq + start) * width;
    all[from..from + len * width].to_vec()
}

/// max |a - b| / max |b|.
fn rel_err(actual: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(actual.len(), reference.len(), "lengths differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = actual
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn all_sites(layers: usize) -> Vec<Site> {
    let mut sites: Vec<Site> = (0..layers)
        .flat_map(|layer| Hook::ALL.map(|hook| Site::Block { layer, hook }))
        .collect();
    sites.push(Site::LnFinal);
    sites
}

#[test]
fn logits_and_every_capture_match_transformers() {
    let device = Default::default();
    for name in CASES {
        let golden = Golden::load(name);
        let model = Llama::<B>::load(&model_dir(name), &device).unwrap();
        let sites = all_sites(golden.layers);
        let mut worst = 0f32;
        for (i, prompt) in golden.prompts.iter().enumerate() {
            let batch = Batch::left_padded(std::slice::from_ref(prompt), 0).unwrap();
            let out = model.forward(&batch, &sites, Logits::All).unwrap();
            let (shape, reference) = golden.get(&format!("p{i}.logits"));
            let logits = out.logits.unwrap();
            assert_eq!(logits.dims().to_vec(), [1, shape[0], shape[1]]);
            let err = rel_err(&values(&logits), &reference);
            assert!(err <= 1e-4, "{name} prompt {i} logits: rel err {err}");
            worst = worst.max(err);
            for site in &sites {
                let (_, reference) = golden.get(&format!("p{i}.{site}"));
                let err = rel_err(&values(out.captures.get(site).unwrap()), &reference);
                assert!(err <= 1e-4, "{name} prompt {i} {site}: rel err {err}");
                worst = worst.max(err);
            }
        }
        eprintln!("{name}: worst relative error {worst:.2e}");
    }
}

#[test]
fn left_padded_batch_matches_transformers_batch() {
    let device = Default::default();
    for name in CASES {
        let golden = Golden::load(name);
        let model = Llama::<B>::load(&model_dir(name), &device).unwrap();
        let batch = Batch::left_padded(&golden.prompts, 0).unwrap();
        let logits = model
            .forward(&batch, &[], Logits::All)
            .unwrap()
            .logits
            .unwrap();
        let (shape, reference) = golden.get("batch.logits");
        let (seq, vocab) = (shape[1], shape[2]);
        for (b, len) in batch.lengths.iter().enumerate() {
            let start = batch.start(b);
            let from = (b * seq + start) * vocab;
            let want = &reference[from..from + len * vocab];
            let err = rel_err(&rows(&logits, b, start, *len), want);
            assert!(err <= 1e-4, "{name} batch row {b}: rel err {err}");
        }
    }
}

/// Prompts of lengths 1..=13 drawn from a fixed LCG, so every batch mixes lengths.
fn prompts(n: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 13;
            (0..len).map(|_| (next() % vocab) as u32).collect()
        })
        .collect()
}

#[test]
fn padding_never_changes_a_real_token() {
    let device = Default::default();
    for name in ["gqa", "llama3-rope", "head-dim"] {
        let model = Llama::<B>::load(&model_dir(name), &device).unwrap();
        let cfg = model.config().clone();
        let mut sites = all_sites(cfg.num_layers);
        sites.push(Site::Logits);
        let all = prompts(8, cfg.vocab_size);
        let alone: Vec<_> = all
            .iter()
            .map(|p| {
                let batch = Batch::left_padded(std::slice::from_ref(p), 0).unwrap();
                model
                    .forward(&batch, &sites, Logits::None)
                    .unwrap()
                    .captures
            })
            .collect();
        for size in [1, 3, 8] {
            let group = &all[..size];
            // Padding with a real token id proves padded tokens are masked, not merely zeros.
            let batch = Batch::left_padded(group, 7).unwrap();
            let together = model
                .forward(&batch, &sites, Logits::None)
                .unwrap()
                .captures;
            for (b, len) in batch.lengths.iter().enumerate() {
                for site in &sites {
                    let got = rows(together.get(site).unwrap(), b, batch.start(b), *len);
                    let want = values(alone[b].get(site).unwrap());
                    let err = rel_err(&got, &want);
                    assert!(err <= 1e-5, "{name} batch {size} row {b} {site}: {err}");
                }
            }
        }
    }
}

#[test]
fn last_logits_equal_the_last_row_of_all_logits() {
    let device = Default::default();
    let model = Llama::<B>::load(&model_dir("gqa"), &device).unwrap();
    let batch = Batch::left_padded(&prompts(3, 96), 0).unwrap();
    let all = model.forward(&batch, &[], Logits::All).unwrap();
    let last = model.forward(&batch, &[], Logits::Last).unwrap();
    let all = all.logits.unwrap();
    let last = last.logits.unwrap();
    assert_eq!(last.dims(), [3, 1, 96]);
    for b in 0..3 {
        // One row through the LM head instead of many: equal up to summation order.
        let want = rows(&all, b, batch.seq - 1, 1);
        let err = rel_err(&rows(&last, b, 0, 1), &want);
        assert!(err <= 1e-6, "row {b}: {err}");
    }
    let none = model.forward(&batch, &[], Logits::None).unwrap();
    assert!(none.logits.is_none());
    assert_eq!(none.captures.sites().count(), 0, "nothing kept unasked");
}

#[test]
fn logits_as_a_capture_site_match_transformers_without_asking_for_logits() {
    let device = Default::default();
    let golden = Golden::load("tied");
    let model = Llama::<B>::load(&model_dir("tied"), &device).unwrap();
    let prompt = &golden.prompts[0];
    let batch = Batch::left_padded(std::slice::from_ref(prompt), 0).unwrap();
    let out = model
        .forward(&batch, &[Site::Logits], Logits::None)
        .unwrap();
    assert!(out.logits.is_none());
    let (_, reference) = golden.get("p0.logits");
    let err = rel_err(
        &values(out.captures.get(&Site::Logits).unwrap()),
        &reference,
    );
    assert!(err <= 1e-4, "logits site: rel err {err}");
    // The head on ln_final rows gives the same logits.
    let (shape, normed) = golden.get("p0.ln_final");
    let rows = Tensor::<B, 2>::from_data(
        burn::tensor::TensorData::new(normed, [shape[0], shape[1]]),
        &device,
    );
    let err = rel_err(
        &model.head(rows).to_data().to_vec::<f32>().unwrap(),
        &reference,
    );
    assert!(err <= 1e-4, "head: rel err {err}");
}
