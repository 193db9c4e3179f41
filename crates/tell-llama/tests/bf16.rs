//! A bf16 safetensors checkpoint keeps its linear weights as bf16 on the CPU (2 bytes a value,
//! widened in registers; an f32 one as f32, for the same kernels), and its logits stay within the parity tolerance of transformers'
//! (the parity tests compare every site; here the weights' form is checked).

use std::path::Path;

use tell_llama::cpu::QuantKind;
use tell_llama::Checkpoint;

#[test]
fn bf16_linear_weights_are_held_as_bf16() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/parity/models/bf16");
    let ck = Checkpoint::open(&dir).unwrap();
    let (d, ff) = (ck.config.hidden_size, ck.config.intermediate_size);
    let q = ck
        .source()
        .read_quantized("model.layers.0.mlp.up_proj.weight", &[ff, d])
        .unwrap()
        .expect("a bf16 matrix is held as bf16");
    assert_eq!(q.kind(), QuantKind::Bf16);
    assert_eq!((q.rows(), q.cols()), (ff, d));
    assert_eq!(q.bytes().len(), 2 * ff * d);
    // Widening the held bytes gives exactly the f32 values the checkpoint reads as.
    let f32s = ck
        .source()
        .read_f32("model.layers.0.mlp.up_proj.weight", &[ff, d])
        .unwrap();
    let widened: Vec<f32> = q
        .bytes()
        .chunks_exact(2)
        .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
        .collect();
    assert_eq!(widened, f32s);
    // An f32 checkpoint's weights are held as f32, for the same kernels.
    let f32_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/parity/models/gqa");
    let ck = Checkpoint::open(&f32_dir).unwrap();
    let (d, ff) = (ck.config.hidden_size, ck.config.intermediate_size);
    let q = ck
        .source()
        .read_quantized("model.layers.0.mlp.up_proj.weight", &[ff, d])
        .unwrap()
        .expect("an f32 matrix");
    assert_eq!((q.kind(), q.bytes().len()), (QuantKind::F32, 4 * ff * d));
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

#[test]
fn a_bf16_checkpoint_is_within_bf16_rounding_of_transformers_bf16_forward() {
    use tell_llama::{Batch, CpuBackend, Llama, Logits};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/parity/models/bf16");
    // Written by tests/parity/make_bf16_golden.py: transformers computing in bf16 on these
    // weights, and how far that lies from its own f32 forward (the size of bf16 rounding here).
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("golden-bf16.json")).unwrap()).unwrap();
    let yardstick = meta["hf_bf16_vs_f32"].as_f64().unwrap() as f32;
    assert!(
        yardstick > 1e-4 && yardstick < 5e-2,
        "bf16 rounding should show, and stay small: {yardstick}"
    );
    let bytes = std::fs::read(dir.join("golden-bf16.safetensors")).unwrap();
    let golden = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let model = Llama::<CpuBackend>::load(&dir, &Default::default()).unwrap();
    let prompts = meta["prompts"].as_array().unwrap();
    let mut worst = 0f32;
    for (i, prompt) in prompts.iter().enumerate() {
        let ids: Vec<u32> = prompt
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        let batch = Batch::left_padded(std::slice::from_ref(&ids), 0).unwrap();
        let logits = model
            .forward(&batch, &[], Logits::All)
            .unwrap()
            .logits
            .unwrap();
        let got = logits.to_data().to_vec::<f32>().unwrap();
        let want: Vec<f32> = golden
            .tensor(&format!("p{i}.logits"))
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        worst = worst.max(rel_err(&got, &want));
    }
    // tell computes in f32 on the bf16 weights (transformers' f32 forward to 1e-4, in
    // parity.rs), so it stands from the bf16 forward where transformers' f32 forward does.
    eprintln!("tell vs transformers' bf16 forward: {worst:.3e} (bf16 vs f32 in transformers: {yardstick:.3e})");
    assert!(
        worst <= 1.05 * yardstick + 1e-4,
        "tell is {worst} from transformers' bf16 forward, beyond bf16 rounding ({yardstick})"
    );
}
