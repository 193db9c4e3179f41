//! Where generation time goes: prefill of a left-padded batch, then decoding steps, timed apart
//! (the work of `generate_bench`'s first batch: the same prompts, `NEW` tokens per row in all).
//!
//! `cargo run --release -p tell-llama --example decode_profile -- MODEL PROMPTS.jsonl BATCH NEW [ROUNDS]`

#[path = "shared/prompts.rs"]
mod prompts;

use std::path::PathBuf;
use std::time::Instant;

use tell_llama::{Batch, FlexBackend, Llama, Logits};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: decode_profile MODEL PROMPTS.jsonl BATCH NEW [ROUNDS]";
    let model_path = PathBuf::from(args.get(1).expect(usage));
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    let new: usize = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
    let rows = prompts::read_token_prompts(args.get(2).expect(usage));
    let model = Llama::<FlexBackend>::load(&model_path, &Default::default()).expect("load");
    let group = &rows[..batch];
    let b = Batch::left_padded(group, 2).expect("batch");
    let rounds: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(2);
    for round in 0..rounds {
        let t0 = Instant::now();
        let (out, mut cache) = model.prefill(&b, &[], Logits::Last).expect("prefill");
        let _ = out.logits.unwrap().into_data();
        let prefill = t0.elapsed().as_secs_f64();
        let mut steps = Vec::new();
        let tokens = vec![100u32; batch];
        for _ in 1..new {
            let t = Instant::now();
            let _ = model
                .decode(&tokens, &mut cache)
                .expect("decode")
                .into_data();
            steps.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if steps.is_empty() {
            println!(
                "round {round}: batch {batch} seq {} prefill {:.1} ms",
                b.seq,
                prefill * 1e3
            );
            continue;
        }
        let mean = steps.iter().sum::<f64>() / steps.len() as f64;
        println!(
            "round {round}: batch {batch} seq {} prefill {:.1} ms, {} decode steps mean {mean:.1} ms (first {:.1}, last {:.1}), total {:.2} s, {:.1} new tok/s",
            b.seq,
            prefill * 1e3,
            steps.len(),
            steps[0],
            steps[steps.len() - 1],
            t0.elapsed().as_secs_f64(),
            (batch * new) as f64 / t0.elapsed().as_secs_f64()
        );
    }
}
