//! Prefill benchmark, tell side: tokens/s of a forward pass that captures every residual.
//!
//! `cargo run --release -p tell-llama --example prefill_bench -- DIR [flex|ndarray] [batch] [seq]
//! [reps] [logits]`; `scripts/bench-prefill.sh` runs it beside transformers.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use tell_llama::{Batch, FlexBackend, Hook, Llama, Logits, NdArrayBackend, Site};

fn run<B: Backend>(
    dir: &std::path::Path,
    batch: usize,
    seq: usize,
    reps: usize,
    logits: bool,
) -> f64 {
    let device = Default::default();
    let model = Llama::<B>::load(dir, &device).expect("load");
    let cfg = model.config().clone();
    let sequences: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| ((b * 7919 + t * 104729) % cfg.vocab_size) as u32)
                .collect()
        })
        .collect();
    let input = Batch::left_padded(&sequences, 0).expect("batch");
    // HF's hidden_states: the embeddings plus every block's output.
    let mut sites = vec![Site::Block {
        layer: 0,
        hook: Hook::ResidPre,
    }];
    sites.extend((0..cfg.num_layers).map(Site::resid_post));
    let mode = if logits { Logits::All } else { Logits::None };
    let mut best = f64::INFINITY;
    for rep in 0..=reps {
        let t0 = Instant::now();
        let mut out = model.forward(&input, &sites, mode).expect("forward");
        // Wait for the values, as reading them would.
        for site in &sites {
            let v = out.captures.take(site).expect("captured");
            let _ = v.into_data();
        }
        if let Some(l) = out.logits {
            let _ = l.into_data();
        }
        let s = t0.elapsed().as_secs_f64();
        if rep > 0 {
            best = best.min(s); // rep 0 is the warm-up
        }
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .expect("usage: prefill_bench DIR [backend] [batch] [seq] [reps] [logits]"),
    );
    let backend = args.get(2).map(String::as_str).unwrap_or("ndarray");
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, seq, reps) = (num(3, 8), num(4, 128), num(5, 3));
    let logits = args.get(6).map(|s| s == "logits").unwrap_or(false);
    let seconds = match backend {
        "flex" => run::<FlexBackend>(&dir, batch, seq, reps, logits),
        _ => run::<NdArrayBackend>(&dir, batch, seq, reps, logits),
    };
    println!(
        "{{\"side\": \"tell-{backend}\", \"logits\": {logits}, \"batch\": {batch}, \"seq\": {seq}, \"seconds\": {seconds}, \"tokens_per_s\": {}}}",
        (batch * seq) as f64 / seconds
    );
}
