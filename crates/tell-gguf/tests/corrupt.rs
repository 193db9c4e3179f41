//! Corrupt, truncated and lying inputs give a typed error, never a panic or a huge allocation.

mod common;

use common::Builder;
use tell_gguf::{Array, GgufError, GgufFile, GgufHeader, Value};

/// A small valid file with every metadata value type (including a nested array), two tensors
/// and a custom alignment, built by hand.
fn all_types_file() -> Vec<u8> {
    let mut b = Builder::default();
    b.header(3, 2, 15);
    let kv = |b: &mut Builder, k: &str, ty: u32| {
        b.string(k).u32(ty);
    };
    kv(&mut b, "general.architecture", 8);
    b.string("llama");
    kv(&mut b, "general.alignment", 4);
    b.u32(64);
    kv(&mut b, "t.u8", 0);
    b.u8(200);
    kv(&mut b, "t.i8", 1);
    b.u8(0xFE);
    kv(&mut b, "t.u16", 2);
    b.raw(&60000u16.to_le_bytes());
    kv(&mut b, "t.i16", 3);
    b.raw(&(-300i16).to_le_bytes());
    kv(&mut b, "t.i32", 5);
    b.raw(&(-7i32).to_le_bytes());
    kv(&mut b, "t.f32", 6);
    b.raw(&1.5f32.to_le_bytes());
    kv(&mut b, "t.bool", 7);
    b.u8(1);
    kv(&mut b, "t.u64", 10);
    b.u64(u64::MAX);
    kv(&mut b, "t.i64", 11);
    b.raw(&i64::MIN.to_le_bytes());
    kv(&mut b, "t.f64", 12);
    b.raw(&(-2.25f64).to_le_bytes());
    kv(&mut b, "t.strings", 9);
    b.u32(8).u64(3).string("a").string("").string("ünï");
    kv(&mut b, "t.nested", 9);
    b.u32(9).u64(2);
    b.u32(4).u64(2).u32(1).u32(2);
    b.u32(7).u64(1).u8(0);
    kv(&mut b, "t.empty", 9);
    b.u32(6).u64(0);
    b.tensor("a", &[32, 2], 0, 0); // F32, 256 bytes
    b.tensor("b", &[32], 8, 256); // Q8_0, 34 bytes, at a 64-aligned offset
    b.pad(64);
    for i in 0..64u32 {
        b.raw(&(i as f32).to_le_bytes());
    }
    b.raw(&[0x00, 0x3C]); // f16 1.0
    for i in 0..32u8 {
        b.u8(i.wrapping_sub(16));
    }
    b.bytes.clone()
}

#[test]
fn hand_built_file_reads_every_value_type() {
    let f = GgufFile::from_bytes(all_types_file()).unwrap();
    let md = f.metadata();
    assert_eq!(md.len(), 15);
    assert_eq!(f.header().alignment, 64);
    assert_eq!(md.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(md.get("t.i8"), Some(&Value::I8(-2)));
    assert_eq!(md.get("t.u16"), Some(&Value::U16(60000)));
    assert_eq!(md.get("t.i16"), Some(&Value::I16(-300)));
    assert_eq!(md.get("t.i32"), Some(&Value::I32(-7)));
    assert_eq!(md.get("t.f32"), Some(&Value::F32(1.5)));
    assert_eq!(md.get("t.bool"), Some(&Value::Bool(true)));
    assert_eq!(md.get("t.u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(md.get("t.i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(md.get("t.f64"), Some(&Value::F64(-2.25)));
    assert_eq!(
        md.get_string_array_opt("t.strings").unwrap().unwrap(),
        &["a".to_owned(), String::new(), "ünï".to_owned()]
    );
    assert_eq!(
        md.get("t.nested"),
        Some(&Value::Array(Array::Array(vec![
            Array::U32(vec![1, 2]),
            Array::Bool(vec![false])
        ])))
    );
    assert_eq!(md.get("t.empty"), Some(&Value::Array(Array::F32(vec![]))));
    assert!(matches!(
        md.get_str("t.u8"),
        Err(GgufError::WrongValueType { .. })
    ));
    assert!(matches!(
        md.get_u64("t.i8"),
        Err(GgufError::InvalidValue { .. })
    ));
    assert!(matches!(
        md.get_u64("nope"),
        Err(GgufError::MissingKey { .. })
    ));

    let (a, dims) = f.tensor_f32("a").unwrap();
    assert_eq!(dims, vec![32, 2]);
    assert_eq!(a[63], 63.0);
    let (b, _) = f.tensor_f32("b").unwrap();
    assert_eq!(b[0], -16.0);
    assert_eq!(b[31], 15.0);
    assert!(matches!(
        f.tensor_f32("c"),
        Err(GgufError::TensorNotFound { .. })
    ));
}

/// Every prefix of a valid file is rejected with an error (the last tensor ends at the end of
/// the file, so no proper prefix is a valid file).
#[test]
fn every_truncation_is_an_error() {
    for name in ["quant_Q4_K.gguf", "quant_F16.gguf", "quant_Q5_1.gguf"] {
        let full = std::fs::read(common::reference(name)).unwrap();
        let whole = GgufHeader::parse(&full).unwrap();
        let last_end = whole
            .tensors
            .iter()
            .map(|t| t.offset + t.n_bytes)
            .max()
            .unwrap();
        assert_eq!(
            whole.data_offset + last_end,
            full.len() as u64,
            "{name}: no trailing bytes"
        );
        for cut in 0..full.len() {
            let r = GgufHeader::parse(&full[..cut]);
            assert!(r.is_err(), "{name}: prefix of {cut} bytes parsed");
        }
    }
    let full = all_types_file();
    for cut in 0..full.len() {
        assert!(
            GgufFile::from_bytes(full[..cut].to_vec()).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn truncation_errors_name_the_field() {
    let full = all_types_file();
    let e = GgufHeader::parse(&full[..6]).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("version"), "{e}");
    // Counts are checked against the bytes left, so a short file fails at the count.
    let e = GgufHeader::parse(&full[..30]).unwrap_err();
    assert!(e.to_string().contains("tensor count claims 2"), "{e}");
    // Cut inside the key of the first metadata entry.
    let mut b = Builder::default();
    b.header(3, 0, 1).string("general.architecture");
    let e = GgufHeader::parse(&b.bytes[..b.bytes.len() - 3]).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge {
                count: 20,
                remaining: 17,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("length of key of metadata entry 0"),
        "{e}"
    );
    // Cut inside the tensor bytes.
    let e = GgufHeader::parse(&full[..full.len() - 1]).unwrap_err();
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { ref tensor, .. } if tensor == "b"),
        "{e}"
    );
}

/// Flip each header byte to several values: any outcome but a panic is fine, and whatever
/// parses must still have all tensors inside the file.
#[test]
fn flipped_bytes_never_panic() {
    let mut files = vec![all_types_file()];
    files.push(std::fs::read(common::reference("quant_Q6_K.gguf")).unwrap());
    for full in files {
        let header_len = GgufHeader::parse(&full).unwrap().data_offset as usize;
        for i in 0..header_len {
            for v in [0x00, 0xFF, 0x80, 0x7F, full[i] ^ 0x01, full[i] ^ 0x40] {
                let mut b = full.clone();
                b[i] = v;
                if let Ok(f) = GgufFile::from_bytes(b) {
                    for t in f.tensors() {
                        let bytes = f.tensor_bytes(t).unwrap();
                        assert_eq!(bytes.len() as u64, t.n_bytes);
                        let _ = f.tensor_f32(&t.name);
                    }
                }
            }
        }
    }
}

fn err_of(b: &Builder) -> GgufError {
    GgufHeader::parse(&b.bytes).unwrap_err()
}

#[test]
fn bad_magic_and_version() {
    let mut b = Builder::default();
    b.raw(b"GGML").u32(3).u64(0).u64(0);
    assert!(matches!(err_of(&b), GgufError::BadMagic { found } if &found == b"GGML"));
    for v in [0u32, 1, 4, 0x0300_0000] {
        let mut b = Builder::default();
        b.header(v, 0, 0);
        assert!(matches!(err_of(&b), GgufError::UnsupportedVersion { version } if version == v));
    }
    let mut b = Builder::default();
    b.header(2, 0, 0);
    assert_eq!(
        GgufHeader::parse(&b.bytes).unwrap().version,
        2,
        "v2 is read"
    );
}

#[test]
fn lying_counts_are_bounded_by_the_file_size() {
    // Tensor and kv counts far beyond what the bytes could hold: rejected before allocating.
    for (nt, nkv) in [
        (u64::MAX, 0),
        (0, u64::MAX),
        (1 << 40, 0),
        (0, 1 << 40),
        (3, 0),
        (0, 5),
    ] {
        let mut b = Builder::default();
        b.header(3, nt, nkv).raw(&[0u8; 40]);
        assert!(
            matches!(err_of(&b), GgufError::CountTooLarge { .. }),
            "{nt} {nkv}"
        );
    }
    // A string length larger than the file.
    let mut b = Builder::default();
    b.header(3, 0, 1).u64(u64::MAX - 3).raw(&[b'a'; 20]);
    let e = err_of(&b);
    assert!(
        matches!(e, GgufError::CountTooLarge { ref what, .. } if what.contains("key of metadata entry 0")),
        "{e}"
    );
    // An array length larger than the file, for each element size.
    for (ty, n) in [(0u32, 100u64), (10, 13), (8, 2), (9, 1 << 62)] {
        let mut b = Builder::default();
        b.header(3, 0, 1)
            .string("k")
            .u32(9)
            .u32(ty)
            .u64(n)
            .raw(&[0u8; 12]);
        let e = err_of(&b);
        assert!(
            matches!(
                e,
                GgufError::CountTooLarge { .. } | GgufError::Truncated { .. }
            ),
            "{ty}: {e}"
        );
    }
}

#[test]
fn invalid_values_and_types() {
    let mut b = Builder::default();
    b.header(3, 0, 1).string("k").u32(13).u32(0);
    assert!(matches!(
        err_of(&b),
        GgufError::InvalidValueType { type_id: 13, .. }
    ));
    let mut b = Builder::default();
    b.header(3, 0, 1).string("k").u32(7).u8(2);
    assert!(matches!(err_of(&b), GgufError::InvalidBool { byte: 2, .. }));
    let mut b = Builder::default();
    b.header(3, 0, 1)
        .string("k")
        .u32(8)
        .u64(2)
        .raw(&[0xC3, 0x28]);
    assert!(matches!(err_of(&b), GgufError::InvalidUtf8 { .. }));
    let mut b = Builder::default();
    b.header(3, 0, 2)
        .string("k")
        .u32(0)
        .u8(1)
        .string("k")
        .u32(0)
        .u8(2);
    assert!(matches!(err_of(&b), GgufError::DuplicateKey { ref key } if key == "k"));
    // Arrays nested 100 deep: a bounded error, not a stack overflow.
    let mut b = Builder::default();
    b.header(3, 0, 1).string("deep").u32(9);
    for _ in 0..100 {
        b.u32(9).u64(1);
    }
    b.u32(0).u64(0);
    assert!(matches!(err_of(&b), GgufError::NestingTooDeep { .. }));
}

#[test]
fn bad_alignment() {
    for (ty, bytes) in [
        (4u32, 0u32.to_le_bytes().to_vec()),
        (4, 3u32.to_le_bytes().to_vec()),
        (4, 48u32.to_le_bytes().to_vec()),
    ] {
        let mut b = Builder::default();
        b.header(3, 0, 1)
            .string("general.alignment")
            .u32(ty)
            .raw(&bytes);
        assert!(matches!(err_of(&b), GgufError::BadAlignment { .. }));
    }
    let mut b = Builder::default();
    b.header(3, 0, 1)
        .string("general.alignment")
        .u32(8)
        .string("32");
    assert!(matches!(err_of(&b), GgufError::WrongValueType { .. }));
}

fn one_tensor(dims: &[u64], type_id: u32, offset: u64, data: usize) -> Builder {
    let mut b = Builder::default();
    b.header(3, 1, 0)
        .tensor("t", dims, type_id, offset)
        .pad(32)
        .raw(&vec![0u8; data]);
    b
}

#[test]
fn bad_tensor_infos() {
    assert!(GgufHeader::parse(&one_tensor(&[32, 2], 0, 0, 256).bytes).is_ok());
    let e = err_of(&one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4));
    assert!(matches!(e, GgufError::TooManyDims { n_dims: 5, .. }), "{e}");
    let e = err_of(&one_tensor(&[32], 31, 0, 64));
    assert!(
        matches!(e, GgufError::UnknownTensorType { type_id: 31, .. }),
        "{e}"
    );
    let e = err_of(&one_tensor(&[33], 8, 0, 64));
    assert!(
        matches!(e, GgufError::BadShape { .. }),
        "row not a whole Q8_0 block: {e}"
    );
    let e = err_of(&one_tensor(&[u64::MAX, 3], 0, 0, 64));
    assert!(
        matches!(e, GgufError::BadShape { .. }),
        "overflowing shape: {e}"
    );
    let e = err_of(&one_tensor(&[0, u64::MAX], 0, 0, 64));
    assert!(matches!(e, GgufError::BadShape { .. }), "zero dim: {e}");
    let e = err_of(&one_tensor(&[1 << 40, 1 << 20], 0, 0, 64));
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { .. }),
        "huge tensor: {e}"
    );
    let e = err_of(&one_tensor(&[8], 0, 16, 64));
    assert!(
        matches!(e, GgufError::MisalignedTensor { offset: 16, .. }),
        "{e}"
    );
    let e = err_of(&one_tensor(&[8], 0, u64::MAX - 31, 64));
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { .. }),
        "offset overflow: {e}"
    );
    let e = err_of(&one_tensor(&[32], 0, 0, 127));
    assert!(
        matches!(
            e,
            GgufError::TensorOutOfBounds {
                size: 128,
                data_len: 127,
                ..
            }
        ),
        "{e}"
    );
    let mut b = Builder::default();
    b.header(3, 2, 0)
        .tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .pad(32)
        .raw(&[0u8; 64]);
    assert!(matches!(err_of(&b), GgufError::DuplicateTensor { .. }));
}

#[test]
fn unsupported_dequant_is_an_error() {
    // Q2_K is a known type (its size is computed) but not dequantized.
    let b = one_tensor(&[256], 10, 0, 84);
    let f = GgufFile::from_bytes(b.bytes).unwrap();
    let e = f.tensor_f32("t").unwrap_err();
    assert!(matches!(e, GgufError::UnsupportedDequant { .. }), "{e}");
    let e = tell_gguf::dequantize(tell_gguf::GgmlType::Q4_K, &[0u8; 100], 256, "buf").unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::DataLength {
                expected: 144,
                got: 100,
                ..
            }
        ),
        "{e}"
    );
}
