//! Dequantization to f32. Block layouts follow ggml's reference dequantizers (ggml-quants.c)
//! and the `gguf` Python package's `quants.py`; the arithmetic is done in the same order as
//! theirs (f16 scale widened to f32, then the same multiplies and adds, no fused multiply-add)
//! so the results match the Python reference bit for bit.

use half::f16;

use crate::error::{GgufError, Result};
use crate::tensor::{GgmlType, QK_K};

/// Dequantize `n_elements` values of type `dtype` stored in `bytes` to f32. `what` names the
/// buffer in errors. `bytes` must be exactly the size the element count needs.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], n_elements: u64, what: &str) -> Result<Vec<f32>> {
    check_len(dtype, bytes, n_elements, what)?;
    if !dtype.can_dequantize() {
        return Err(GgufError::UnsupportedDequant {
            tensor: what.to_owned(),
            dtype,
        });
    }
    // Bounded by bytes.len() through check_len, so this allocation is never larger than a small
    // multiple of the (real) tensor bytes.
    let mut out = vec![0f32; n_elements as usize];
    dequantize_into(dtype, bytes, &mut out, what)?;
    Ok(out)
}

/// Dequantize into a caller-provided buffer; `out.len()` is the element count.
pub fn dequantize_into(dtype: GgmlType, bytes: &[u8], out: &mut [f32], what: &str) -> Result<()> {
    check_len(dtype, bytes, out.len() as u64, what)?;
    let (block, size) = dtype.block_geometry();
    let blocks = bytes.chunks_exact(size).zip(out.chunks_exact_mut(block));
    match dtype {
        GgmlType::F32 => {
            blocks.for_each(|(b, o)| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => blocks.for_each(|(b, o)| o[0] = f16_at(b, 0)),
        // bf16 is the top half of an f32: widening is a shift, exact for every value.
        GgmlType::BF16 => blocks.for_each(|(b, o)| {
            o[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
        }),
        GgmlType::Q8_0 => blocks.for_each(|(b, o)| q8_0(b, o)),
        GgmlType::Q4_0 => blocks.for_each(|(b, o)| q4_0(b, o)),
        GgmlType::Q4_1 => blocks.for_each(|(b, o)| q4_1(b, o)),
        GgmlType::Q5_0 => blocks.for_each(|(b, o)| q5_0(b, o)),
        GgmlType::Q5_1 => blocks.for_each(|(b, o)| q5_1(b, o)),
        GgmlType::Q4_K => blocks.for_each(|(b, o)| q4_k(b, o)),
        GgmlType::Q6_K => blocks.for_each(|(b, o)| q6_k(b, o)),
        _ => {
            return Err(GgufError::UnsupportedDequant {
                tensor: what.to_owned(),
                dtype,
            })
        }
    }
    Ok(())
}

fn check_len(dtype: GgmlType, bytes: &[u8], n_elements: u64, what: &str) -> Result<()> {
    let expected = dtype.bytes_for(n_elements);
    if expected != Some(bytes.len() as u64) {
        return Err(GgufError::DataLength {
            what: what.to_owned(),
            dtype,
            n_elements,
            expected: expected.unwrap_or(u64::MAX),
            got: bytes.len() as u64,
        });
    }
    Ok(())
}

/// The little-endian f16 at `b[i..i + 2]`, widened to f32 (exact).
#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Q8_0: f16 scale d, then 32 signed bytes; x = q * d.
fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (x, &q) in o.iter_mut().zip(&b[2..34]) {
        *x = f32::from(q as i8) * d;
    }
}

/// Q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..16, high nibbles 16..32;
/// x = d * (q - 8).
fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        o[j] = d * f32::from((qs[j] & 0x0F) as i8 - 8);
        o[j + 16] = d * f32::from((qs[j] >> 4) as i8 - 8);
    }
}

/// Q4_1: f16 d, f16 min m, 16 bytes of nibbles (same order as Q4_0); x = d * q + m.
fn q4_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        o[j] = d * f32::from(qs[j] & 0x0F) + m;
        o[j + 16] = d * f32::from(qs[j] >> 4) + m;
    }
}

/// The 5th bits of Q5_0/Q5_1: a little-endian u32 whose bit i belongs to element i.
fn high_bits(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Q5_0: f16 d, u32 of high bits, 16 bytes of low nibbles; x = d * (q - 16).
fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = high_bits(b, 2);
    let qs = &b[6..22];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        o[j] = d * f32::from(lo as i8 - 16);
        o[j + 16] = d * f32::from(hi as i8 - 16);
    }
}

/// Q5_1: f16 d, f16 min m, u32 of high bits, 16 bytes of low nibbles; x = d * q + m.
fn q5_1(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = high_bits(b, 4);
    let qs = &b[8..24];
    for j in 0..16 {
        let lo = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        o[j] = d * f32::from(lo) + m;
        o[j + 16] = d * f32::from(hi) + m;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K block, packed in 12 bytes: the
/// first four sub-blocks use the low 6 bits of bytes 0..4 (scales) and 4..8 (mins); the last
/// four take their low 4 bits from bytes 8..12 and their top 2 bits from the spare high bits of
/// bytes 0..8.
fn q4_k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K: f16 d, f16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of nibbles. Eight
/// sub-blocks of 32; sub-blocks 2i and 2i+1 are the low and high nibbles of bytes 32i..32i+32.
/// x = (d * sc) * q - (dmin * m).
fn q4_k(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..16 + QK_K / 2];
    for j in 0..8 {
        let (sc, m) = q4_k_scale_min(scales, j);
        let dl = d * f32::from(sc);
        let ml = dmin * f32::from(m);
        let bytes = &qs[(j / 2) * 32..(j / 2) * 32 + 32];
        let shift = 4 * (j % 2);
        for (k, &q) in bytes.iter().enumerate() {
            o[j * 32 + k] = dl * f32::from((q >> shift) & 0x0F) - ml;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles ql, 64 bytes of 2-bit highs qh, 16 signed 8-bit scales, f16 d.
/// Each half of 128 elements uses 64 bytes of ql and 32 of qh: element r of the half takes the
/// nibble (r / 64) of ql[r % 64] and the 2 bits (r / 32) of qh[r % 32]; q is 6-bit minus 32 and
/// every 16 elements share a scale. x = (d * scale) * q.
fn q6_k(b: &[u8], o: &mut [f32]) {
    let ql = &b[0..QK_K / 2];
    let qh = &b[QK_K / 2..QK_K / 2 + QK_K / 4];
    let scales = &b[QK_K / 2 + QK_K / 4..QK_K / 2 + QK_K / 4 + QK_K / 16];
    let d = f16_at(b, QK_K / 2 + QK_K / 4 + QK_K / 16);
    for half in 0..2 {
        let ql = &ql[half * 64..half * 64 + 64];
        let qh = &qh[half * 32..half * 32 + 32];
        for r in 0..128 {
            let lo = (ql[r % 64] >> (4 * (r / 64))) & 0x0F;
            let hi = (qh[r % 32] >> (2 * (r / 32))) & 0x03;
            let q = (lo | (hi << 4)) as i8 - 32;
            let i = half * 128 + r;
            let dl = d * f32::from(scales[i / 16] as i8);
            o[i] = dl * f32::from(q);
        }
    }
}
