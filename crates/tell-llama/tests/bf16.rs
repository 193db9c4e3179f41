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
