//! Weights kept in their GGUF blocks (Q4_1, Q8_0) for the small-batch product: decoding is bound
//! by the bytes of weight it streams per token, and a Q4_1 row is a sixth of its f32 row. Rows are
//! dequantized to exactly the f32 values `tell-gguf` gives (same arithmetic, no fused
//! multiply-add), so products are bit-identical to those on the dequantized weights.

use std::sync::Arc;

use tell_gguf::GgmlType;

/// The block types [`QuantRows`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantKind {
    /// f16 scale d, f16 minimum m, 32 nibbles: x = d * q + m.
    Q4_1,
    /// f16 scale d, 32 signed bytes: x = q * d.
    Q8_0,
}

/// Values per block of either kind.
const BLOCK: usize = 32;

impl QuantKind {
    /// The kind of a GGUF block type, if it is one of ours.
    pub fn of(dtype: GgmlType) -> Option<Self> {
        match dtype {
            GgmlType::Q4_1 => Some(Self::Q4_1),
            GgmlType::Q8_0 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// The GGUF block type.
    pub fn dtype(self) -> GgmlType {
        match self {
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// Bytes per block (ggml's block geometry).
    fn block_bytes(self) -> usize {
        self.dtype().block_geometry().1
    }
}

/// A `[rows, cols]` weight (HF `[out, in]`) as rows of quantized blocks.
#[derive(Debug, Clone)]
pub struct QuantRows {
    kind: QuantKind,
    rows: usize,
    cols: usize,
    data: Arc<Vec<u8>>,
}

impl QuantRows {
    /// Rows of `kind` blocks; `None` unless `data` is exactly `rows` rows of `cols / 32` blocks.
    pub fn new(kind: QuantKind, rows: usize, cols: usize, data: Vec<u8>) -> Option<Self> {
        let ok = cols.is_multiple_of(BLOCK)
            && rows.checked_mul(cols / BLOCK * kind.block_bytes()) == Some(data.len());
        ok.then(|| Self {
            kind,
            rows,
            cols,
            data: Arc::new(data),
        })
    }

    /// Stacks `parts` (same kind and width) along the rows, as a fused q/k/v weight.
    pub fn concat(parts: &[QuantRows]) -> Option<Self> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.kind != first.kind || p.cols != first.cols)
        {
            return None;
        }
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for p in parts {
            data.extend_from_slice(&p.data);
        }
        Self::new(
            first.kind,
            parts.iter().map(|p| p.rows).sum(),
            first.cols,
            data,
        )
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.kind.block_bytes()
    }

    /// The rows' bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The kind of block.
    pub fn kind(&self) -> QuantKind {
        self.kind
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::{QuantKind, BLOCK};

    /// One row (`row.len()` bytes of `kind` blocks) into `out` with AVX-512 (and F16C for the
    /// scales): the products and sums of `tell_gguf::dequantize_into`, 16 values at a time.
    #[target_feature(enable = "avx512f,f16c")]
    pub fn dequant_row_avx512(kind: QuantKind, row: &[u8], out: &mut [f32]) {
        let bb = kind.block_bytes();
        assert!(out.len() * bb == row.len() * BLOCK);
        for (b, o) in row.chunks_exact(bb).zip(out.chunks_exact_mut(BLOCK)) {
            // The block's f16 scale (and Q4_1's minimum) in lanes 0 (and 1); F16C converts
            // exactly, as `half` does, without a call per block.
            let head = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(head));
            let d = _mm512_broadcastss_ps(dm);
            let op = o.as_mut_ptr();
            // SAFETY: a block is `bb` bytes (16 nibble bytes from 4, or 32 bytes from 2) and `o`
            // is 32 values; unaligned loads and stores.
            unsafe {
                match kind {
                    QuantKind::Q4_1 => {
                        let m = _mm512_broadcastss_ps(_mm_movehdup_ps(dm));
                        let qs = _mm_loadu_si128(b.as_ptr().add(4) as *const __m128i);
                        let mask = _mm_set1_epi8(0x0F);
                        let lo = _mm_and_si128(qs, mask);
                        let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), mask);
                        for (half, q) in [lo, hi].into_iter().enumerate() {
                            let q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
                            let x = _mm512_add_ps(_mm512_mul_ps(d, q), m);
                            _mm512_storeu_ps(op.add(16 * half), x);
                        }
                    }
                    QuantKind::Q8_0 => {
                        for half in 0..2 {
                            let q =
                                _mm_loadu_si128(b.as_ptr().add(2 + 16 * half) as *const __m128i);
                            let q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
                            _mm512_storeu_ps(op.add(16 * half), _mm512_mul_ps(q, d));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    /// Blocks with every nibble / byte value and scales of both signs and magnitudes.
    fn blocks(kind: QuantKind, n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let d = f16::from_f32(0.013 * (i as f32 + 1.0) * if i % 2 == 0 { 1.0 } else { -1.0 });
            v.extend_from_slice(&d.to_bits().to_le_bytes());
            if kind == QuantKind::Q4_1 {
                let m = f16::from_f32(-0.21 + 0.07 * i as f32);
                v.extend_from_slice(&m.to_bits().to_le_bytes());
            }
            let len = kind.block_bytes() - v.len() % kind.block_bytes();
            v.extend((0..len).map(|j| (j * 37 + i * 11) as u8));
        }
        v
    }

    #[test]
    fn rows_dequantize_exactly_as_tell_gguf() {
        for kind in [QuantKind::Q4_1, QuantKind::Q8_0] {
            let bytes = blocks(kind, 9);
            let want = tell_gguf::dequantize(kind.dtype(), &bytes, 9 * 32, "test").unwrap();
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                let mut simd = vec![0f32; 9 * 32];
                // SAFETY: AVX-512F and F16C were detected.
                unsafe { x86::dequant_row_avx512(kind, &bytes, &mut simd) };
                assert_eq!(simd, want, "{kind:?} avx512");
            }
        }
    }

    #[test]
    fn products_on_quantized_rows_equal_those_on_dequantized_rows() {
        let (n, k) = (70, 96);
        for kind in [QuantKind::Q4_1, QuantKind::Q8_0] {
            let bytes = blocks(kind, n * k / BLOCK);
            let w = QuantRows::new(kind, n, k, bytes.clone()).unwrap();
            let wf = tell_gguf::dequantize(kind.dtype(), &bytes, (n * k) as u64, "test").unwrap();
            for m in [1, 2, 3, 5, 8, 13] {
                let x = crate::cpu::tests::values(m * k, 7);
                let want = crate::cpu::small_matmul_t(&x, m, k, &wf, n);
                // `None` on CPUs without AVX-512, where the f32 weight is used instead.
                if let Some(got) = crate::cpu::small_matmul_q(&x, m, &w) {
                    assert_eq!(got, want, "{kind:?}, {m} rows");
                }
            }
        }
    }

    #[test]
    fn rows_must_be_whole_blocks() {
        assert!(QuantRows::new(QuantKind::Q8_0, 2, 64, vec![0; 2 * 68]).is_some());
        assert!(QuantRows::new(QuantKind::Q8_0, 2, 64, vec![0; 2 * 68 - 1]).is_none());
        assert!(QuantRows::new(QuantKind::Q4_1, 1, 48, vec![0; 30]).is_none());
        let a = QuantRows::new(QuantKind::Q4_1, 2, 32, vec![1; 40]).unwrap();
        let b = QuantRows::new(QuantKind::Q4_1, 1, 32, vec![2; 20]).unwrap();
        let c = QuantRows::concat(&[a.clone(), b]).unwrap();
        assert_eq!((c.rows(), c.cols(), c.bytes().len()), (3, 32, 60));
        assert_eq!(c.bytes()[40..], [2; 20]);
        let other = QuantRows::new(QuantKind::Q8_0, 1, 32, vec![0; 34]).unwrap();
        assert!(QuantRows::concat(&[a, other]).is_none());
    }
}
