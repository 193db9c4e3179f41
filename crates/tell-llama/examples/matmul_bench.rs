//! The small-batch products of one SmolLM2-135M decoding step (30 layers of q/k/v, o, gate/up
//! and down in Q4_1, the tied head in Q8_0), timed alone: min and median over reps.
//!
//! `cargo run --release -p tell-llama --example matmul_bench -- ROWS [REPS] [q|f32|panel|gemm]`
//! (`panel`: `matmul_q`, which takes panels above 8 rows; `gemm`: burn-flex's product on the f32 weights,
//! what prefill uses on f32 weights).

use std::time::Instant;

use tell_llama::burn::tensor::{Tensor, TensorData};
use tell_llama::cpu::{matmul_q, small_matmul_q, small_matmul_t, QuantKind, QuantRows};
use tell_llama::FlexBackend;

/// Rows of valid blocks: f16 scales near 0.01, arbitrary nibbles / bytes.
fn rows(kind: QuantKind, n: usize, k: usize) -> (QuantRows, Vec<f32>) {
    let (per_block, bb) = kind.dtype().block_geometry();
    let nb = n * k / per_block;
    let mut data = Vec::with_capacity(nb * bb);
    for b in 0..nb {
        let start = data.len();
        data.extend((0..bb).map(|j| (j * 37 + b * 11) as u8));
        let block = &mut data[start..];
        // Where each type keeps its f16 scale (and minimum).
        let scales: &[usize] = match kind {
            QuantKind::Q4_1 | QuantKind::Q5_1 | QuantKind::Q4_K => &[0, 2],
            QuantKind::Q8_0 | QuantKind::Q4_0 | QuantKind::Q5_0 => &[0],
            QuantKind::Q6_K => &[208],
            // bf16: every value is its own "scale"; the fill bytes are finite as they are.
            QuantKind::Bf16 | QuantKind::F32 => &[],
        };
        for &at in scales {
            block[at..at + 2].copy_from_slice(&0x2100u16.to_le_bytes());
        }
    }
    let q = QuantRows::new(kind, n, k, data).expect("blocks");
    let f = vec![0.01f32; n * k];
    (q, f)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let mode = args.get(3).map(String::as_str).unwrap_or("q");
    // "hot": one layer's weights 30 times (they stay in cache), to tell compute from memory;
    // "nohead": without the LM head (prefill computes it for the last positions only).
    let hot = args.get(4).is_some_and(|s| s == "hot");
    let head = !hot && args.get(4).is_none_or(|s| s != "nohead");
    let (d, i, v) = (576, 1536, 49152);
    // The linear weights' form: `TELL_BENCH_KIND=f32` or `bf16` (default Q4_1).
    let kind = match std::env::var("TELL_BENCH_KIND").as_deref() {
        Ok("f32") => QuantKind::F32,
        Ok("bf16") => QuantKind::Bf16,
        _ => QuantKind::Q4_1,
    };
    let mut layers: Vec<(QuantRows, Vec<f32>)> = Vec::new();
    for l in 0..30 {
        if hot && l > 0 {
            for j in 0..4 {
                layers.push(layers[j].clone());
            }
            continue;
        }
        layers.push(rows(kind, 960, d));
        layers.push(rows(kind, d, d));
        layers.push(rows(kind, 2 * i, d));
        layers.push(rows(kind, d, i));
    }
    if head {
        layers.push(rows(QuantKind::Q8_0, v, d));
    }
    let x: Vec<f32> = (0..m * i)
        .map(|j| ((j % 97) as f32 - 48.0) / 97.0)
        .collect();
    let device = Default::default();
    let gemm_weights: Vec<Tensor<FlexBackend, 2>> = if mode == "gemm" {
        layers
            .iter()
            .map(|(q, f)| {
                let data = TensorData::new(f.clone(), [q.rows(), q.cols()]);
                Tensor::from_data(data, &device)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut times = Vec::new();
    let mut sink = 0f32;
    for _ in 0..reps {
        let t0 = Instant::now();
        for (l, (q, f)) in layers.iter().enumerate() {
            let k = q.cols();
            let y = match mode {
                "f32" => small_matmul_t(&x[..m * k], m, k, f, q.rows()),
                "panel" => matmul_q(&x[..m * k], m, q).expect("this CPU lacks the AVX-512 kernel"),
                "gemm" => {
                    let data = TensorData::new(x[..m * k].to_vec(), [m, k]);
                    let xt = Tensor::<FlexBackend, 2>::from_data(data, &device);
                    let y = xt.matmul(gemm_weights[l].clone().transpose());
                    y.into_data().to_vec::<f32>().expect("f32")
                }
                _ => small_matmul_q(&x[..m * k], m, q).expect("this CPU lacks the AVX-512 kernel"),
            };
            sink += y[0];
        }
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "rows {m} threads {} {}: min {:.2} ms, median {:.2} ms ({sink})",
        rayon::current_num_threads(),
        mode,
        times[0],
        times[times.len() / 2]
    );
}
