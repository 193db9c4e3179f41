//! The `flex` CPU backend runs a block through its host fast paths (`tell_llama::cpu`); every other
//! backend runs burn's generic ops. Both must compute the same model: prefill (a prompt longer than
//! the host attention takes, and a short one), cached decoding, and a batch that loses a row.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor};
use tell_llama::{Batch, FlexBackend, Hook, KvCache, Llama, Logits, NdArrayBackend, Site};

fn load<B: Backend>(name: &str) -> Llama<B> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/parity/models")
        .join(name);
    Llama::load(&dir, &Default::default()).unwrap()
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn assert_close(flex: &[f32], generic: &[f32], what: &str) {
    assert_eq!(flex.len(), generic.len(), "{what}: lengths");
    let scale = generic.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = flex
        .iter()
        .zip(generic)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-5 * scale,
        "{what}: max error {err} (scale {scale})"
    );
}

/// Prefill with every residual captured, then decoding steps, rows dropped, more steps.
fn run<B: Backend>(model: &Llama<B>, prompts: &[Vec<u32>]) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    let batch = Batch::left_padded(prompts, 0).unwrap();
    let sites: Vec<Site> = (0..model.config().num_layers)
        .map(|layer| Site::Block {
            layer,
            hook: Hook::ResidPost,
        })
        .collect();
    let forward = model.forward(&batch, &sites, Logits::All).unwrap();
    out.push(("forward logits".into(), host(forward.logits.unwrap())));
    for site in &sites {
        let value = forward.captures.get(site).unwrap().clone();
        out.push((format!("forward {site:?}"), host(value)));
    }
    let (prefill, mut cache): (_, KvCache<B>) = model.prefill(&batch, &[], Logits::Last).unwrap();
    out.push(("prefill logits".into(), host(prefill.logits.unwrap())));
    let vocab = model.config().vocab_size as u32;
    for step in 0..3u32 {
        let next: Vec<u32> = (0..cache.rows() as u32)
            .map(|r| (7 * r + 3 * step + 1) % vocab)
            .collect();
        let logits = model.decode(&next, &mut cache).unwrap();
        out.push((format!("decode step {step}"), host(logits)));
    }
    cache.retain(&[2, 0]);
    for step in 3..5u32 {
        let next: Vec<u32> = (0..2).map(|r| (5 * r + step) % vocab).collect();
        let logits = model.decode(&next, &mut cache).unwrap();
        out.push((format!("decode step {step} after retain"), host(logits)));
    }
    out
}

#[test]
fn flex_fast_paths_equal_the_generic_ops() {
    // 70 tokens: more new positions than the host attention takes (64), so the prefill's scores
    // go through gemm on flex; the decoding steps take the host attention.
    let long: Vec<u32> = (0..70).map(|i| (i * 13 + 5) % 90).collect();
    let prompts = vec![long, vec![5, 9, 11, 3], (1..67).collect()];
    for name in ["gqa", "tied", "head-dim"] {
        let flex = run(&load::<FlexBackend>(name), &prompts);
        let generic = run(&load::<NdArrayBackend>(name), &prompts);
        for ((what, f), (_, g)) in flex.iter().zip(&generic) {
            assert_close(f, g, &format!("{name}: {what}"));
        }
        // And short prompts only, where prefill takes the host attention too.
        let short = [vec![1, 2, 3], vec![4, 5, 6, 7, 8], vec![9]];
        let flex = run(&load::<FlexBackend>(name), &short);
        let generic = run(&load::<NdArrayBackend>(name), &short);
        for ((what, f), (_, g)) in flex.iter().zip(&generic) {
            assert_close(f, g, &format!("{name} short: {what}"));
        }
    }
}
