//! Acceptance: dequantization of every supported type equals the `gguf` Python package's
//! `gguf.quants.dequantize`, (a) on small files written per type by
//! tests/reference/make_quant_goldens.py, (b) on every tensor of the real SmolLM2 GGUF.

mod common;

use sha2::{Digest, Sha256};
use tell_gguf::{GgmlType, GgufFile, Value};

/// Distance in units in the last place between two f32 (0 = identical bits).
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        // Map the sign-magnitude float order onto a monotone integer line.
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

fn check_type(name: &str, dtype: GgmlType, expected_tensors: &[&str]) {
    let file = GgufFile::open(common::reference(&format!("quant_{name}.gguf"))).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.header().alignment, 32);
    assert_eq!(
        file.get("tell.test.type"),
        Some(&Value::String(name.to_owned()))
    );
    assert_eq!(
        file.get("general.architecture"),
        Some(&Value::String("llama".to_owned()))
    );
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, expected_tensors);

    let mut ours = Vec::new();
    for t in file.tensors() {
        assert_eq!(t.dtype, dtype);
        assert_eq!(t.dims.len(), 2);
        assert_eq!(t.dims[1], 4, "4 rows");
        let (v, dims) = file.tensor_f32(&t.name).unwrap();
        assert_eq!(dims, t.dims);
        assert_eq!(v.len() as u64, t.dims[0] * t.dims[1]);
        ours.extend(v);
    }
    let golden: Vec<f32> = std::fs::read(common::reference(&format!("quant_{name}.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(ours.len(), golden.len(), "{name}: element count");
    let mut worst = 0;
    for (i, (&a, &b)) in ours.iter().zip(&golden).enumerate() {
        let d = ulps(a, b);
        assert!(
            d <= 1,
            "{name}: element {i}: ours {a:e} vs gguf-py {b:e} ({d} ulps)"
        );
        worst = worst.max(d);
    }
    // Same arithmetic order as the reference, so in practice the bits are identical.
    assert_eq!(worst, 0, "{name}: expected bit-identical results");
    // Guard against a vacuous pass (all zeros).
    assert!(golden.iter().filter(|x| **x != 0.0).count() > golden.len() / 2);
}

#[test]
fn golden_f32() {
    check_type("F32", GgmlType::F32, &["random", "quantized", "special"]);
}
#[test]
fn golden_f16() {
    check_type("F16", GgmlType::F16, &["random", "quantized", "special"]);
}
#[test]
fn golden_bf16() {
    check_type("BF16", GgmlType::BF16, &["random", "quantized", "special"]);
}
#[test]
fn golden_q8_0() {
    check_type("Q8_0", GgmlType::Q8_0, &["random", "quantized"]);
}
#[test]
fn golden_q4_0() {
    check_type("Q4_0", GgmlType::Q4_0, &["random", "quantized"]);
}
#[test]
fn golden_q4_1() {
    check_type("Q4_1", GgmlType::Q4_1, &["random", "quantized"]);
}
#[test]
fn golden_q5_0() {
    check_type("Q5_0", GgmlType::Q5_0, &["random", "quantized"]);
}
#[test]
fn golden_q5_1() {
    check_type("Q5_1", GgmlType::Q5_1, &["random", "quantized"]);
}
#[test]
fn golden_q4_k() {
    check_type("Q4_K", GgmlType::Q4_K, &["random"]);
}
#[test]
fn golden_q6_k() {
    check_type("Q6_K", GgmlType::Q6_K, &["random"]);
}

#[test]
fn special_values_survive_f16_and_bf16() {
    // Spot values pinned by hand, independent of the golden files.
    let f = GgufFile::open(common::reference("quant_F16.gguf")).unwrap();
    let (v, _) = f.tensor_f32("special").unwrap();
    assert_eq!(v[0].to_bits(), 0.0f32.to_bits());
    assert_eq!(v[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!(v[2], f32::INFINITY);
    assert_eq!(v[3], f32::NEG_INFINITY);
    assert_eq!(v[6], 65504.0);
    assert_eq!(v[19], 2.0f32.powi(-24)); // smallest f16 subnormal
    let b = GgufFile::open(common::reference("quant_BF16.gguf")).unwrap();
    let (v, _) = b.tensor_f32("special").unwrap();
    assert_eq!(v[4], 1.0);
    assert_eq!(v[2], f32::INFINITY);
    assert_eq!(v[14], 1.5);
}

/// Every tensor of the real SmolLM2 file (272 tensors: Q4_1, Q8_0, F32) against the sha256 of
/// the Python dequantization recorded in smollm2_dequant.json.
#[test]
fn smollm2_every_tensor_matches_gguf_python() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::reference("smollm2_dequant.json")).unwrap(),
    )
    .unwrap();
    let expected = json["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(expected.len(), 272);
    let mut by_type = std::collections::BTreeMap::new();
    for t in file.tensors() {
        let e = &expected[&t.name];
        assert_eq!(
            e["type"].as_str().unwrap(),
            format!("{:?}", t.dtype),
            "{}",
            t.name
        );
        let dims: Vec<u64> = e["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(dims, t.dims, "{}", t.name);
        let (v, _) = file.tensor_f32(&t.name).unwrap();
        for (i, first) in e["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(v[i], first.as_f64().unwrap() as f32, "{} [{i}]", t.name);
        }
        let mut h = Sha256::new();
        for x in &v {
            h.update(x.to_le_bytes());
        }
        let got = format!("{:x}", h.finalize());
        assert_eq!(
            got,
            e["sha256_f32le"].as_str().unwrap(),
            "{}: dequantized bytes differ",
            t.name
        );
        *by_type.entry(format!("{:?}", t.dtype)).or_insert(0) += 1;
    }
    assert_eq!(by_type.get("Q4_1"), Some(&210));
    assert_eq!(by_type.get("F32"), Some(&61));
    assert_eq!(by_type.get("Q8_0"), Some(&1));
}
