//! Generation benchmark, tell side: new tokens/s of greedy decoding with the KV cache.
//!
//! `cargo run --release -p tell-llama --example generate_bench -- MODEL PROMPTS.jsonl BATCH NEW`;
//! `scripts/bench-generate.sh` runs it beside transformers' `generate`.

#[path = "shared/prompts.rs"]
mod prompts;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use tell_llama::{generate, FlexBackend, GenerateOptions, Llama, NdArrayBackend};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: generate_bench MODEL PROMPTS.jsonl BATCH NEW";
    let model_path = PathBuf::from(args.get(1).expect(usage));
    let prompts_path = args.get(2).expect(usage);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    let new: usize = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
    let rows = prompts::read_token_prompts(prompts_path);
    match args.get(5).map(String::as_str) {
        Some("ndarray") => bench::<NdArrayBackend>(&model_path, &rows, batch, new, "tell-ndarray"),
        _ => bench::<FlexBackend>(&model_path, &rows, batch, new, "tell"),
    }
}

fn bench<B: Backend>(
    model_path: &std::path::Path,
    rows: &[Vec<u32>],
    batch: usize,
    new: usize,
    side: &str,
) {
    let model = Llama::<B>::load(model_path, &Default::default()).expect("load");
    // No stop tokens: exactly `new` tokens per prompt, the same work as HF with min_new_tokens.
    let opts = GenerateOptions {
        max_new_tokens: new,
        pad_token: 2,
        ..Default::default()
    };
    let never = |_: usize, _: &[u32]| false;
    generate(&model, &rows[..batch], &opts, never).expect("warm-up");
    let t0 = Instant::now();
    let mut produced = 0;
    for group in rows.chunks(batch) {
        let out = generate(&model, group, &opts, never).expect("generate");
        produced += out.iter().map(|g| g.tokens.len()).sum::<usize>();
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{{\"side\": \"{side}\", \"batch\": {batch}, \"new\": {new}, \"prompts\": {}, \"seconds\": {s}, \"new_tokens_per_s\": {}}}",
        rows.len(),
        produced as f64 / s
    );
}
