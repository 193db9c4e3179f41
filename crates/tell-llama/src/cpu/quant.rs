//! Weights kept in their GGUF blocks (Q4_1, Q8_0) for the small-batch product: decoding is bound
//! by the bytes of weight it streams per token, and a Q4_1 row is a sixth of its f32 row. Blocks
//! are dequantized in registers to exactly the f32 values `tell-gguf` gives (same arithmetic, no
//! fused multiply-add), so products are bit-identical to those on the dequantized weights.

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
    //! Products of rows of activations with quantized weight rows, dequantized in registers.

    use std::arch::x86_64::*;

    use super::{QuantKind, BLOCK};

    /// Block `p`'s two halves (values 0..16 and 16..32) as `tell_gguf::dequantize_into` gives
    /// them (mul then add, no FMA).
    ///
    /// # Safety
    /// `p` must point to one whole block of `kind`.
    #[target_feature(enable = "avx512f,f16c")]
    #[inline]
    pub(in crate::cpu) unsafe fn halves(kind: QuantKind, p: *const u8) -> (__m512, __m512) {
        // SAFETY: the caller's block is 20 (Q4_1) or 34 (Q8_0) bytes.
        unsafe {
            match kind {
                QuantKind::Q4_1 => {
                    let head = (p as *const i32).read_unaligned();
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(head));
                    let d = _mm512_broadcastss_ps(dm);
                    let m = _mm512_broadcastss_ps(_mm_movehdup_ps(dm));
                    let qs = _mm_loadu_si128(p.add(4) as *const __m128i);
                    let mask = _mm_set1_epi8(0x0F);
                    let lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, mask)));
                    let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), mask);
                    let hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi));
                    (
                        _mm512_add_ps(_mm512_mul_ps(d, lo), m),
                        _mm512_add_ps(_mm512_mul_ps(d, hi), m),
                    )
                }
                QuantKind::Q8_0 => {
                    let head = (p as *const u16).read_unaligned() as i32;
                    let d = _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(head)));
                    let lo = _mm_loadu_si128(p.add(2) as *const __m128i);
                    let hi = _mm_loadu_si128(p.add(18) as *const __m128i);
                    (
                        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d),
                        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d),
                    )
                }
            }
        }
    }

    /// `res[q][r] = x[r, :] . w[q]` for `R` rows of `x` (`k` apart) and `W` quantized weight
    /// rows (`k / 32` blocks of `kind` each).
    ///
    /// Each product is summed as the f32 kernel sums it on the dequantized row (16 lanes in order
    /// of `k` with FMA, then `_mm512_reduce_add_ps`), so results are bit-identical to it; the
    /// weight values never leave the registers, and each is used by all `R` rows.
    ///
    /// AVX-512VL is enabled for the register allocator's sake: without it the reductions (on
    /// 256- and 128-bit halves) cannot use registers 16-31, and the accumulators of `<8, 2>`
    /// spill to the stack, which made this kernel slower than dequantizing to memory.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    pub fn dot_rows<const R: usize, const W: usize>(
        kind: QuantKind,
        x: &[f32],
        k: usize,
        w: [&[u8]; W],
    ) -> [[f32; R]; W] {
        let bb = kind.block_bytes();
        let blocks = k / BLOCK;
        assert!(k.is_multiple_of(BLOCK) && x.len() >= R * k);
        assert!(w.iter().all(|row| row.len() == blocks * bb));
        let xr: [*const f32; R] = std::array::from_fn(|r| x[r * k..].as_ptr());
        let wp: [*const u8; W] = w.map(|row| row.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); R]; W];
        for b in 0..blocks {
            // SAFETY: block `b` of each weight row is in bounds (asserted lengths), and so are
            // values `32 b .. 32 b + 32` of every row of `x`.
            unsafe {
                let mut wv = [(_mm512_setzero_ps(), _mm512_setzero_ps()); W];
                for q in 0..W {
                    wv[q] = halves(kind, wp[q].add(b * bb));
                }
                for r in 0..R {
                    let lo = _mm512_loadu_ps(xr[r].add(b * BLOCK));
                    let hi = _mm512_loadu_ps(xr[r].add(b * BLOCK + 16));
                    for q in 0..W {
                        let (u, v) = wv[q];
                        acc[q][r] = _mm512_fmadd_ps(hi, v, _mm512_fmadd_ps(lo, u, acc[q][r]));
                    }
                }
            }
        }
        // Loops, not `map`: a closure does not inherit the target features, so the reduction
        // would become a call per value.
        let mut res = [[0f32; R]; W];
        for q in 0..W {
            for r in 0..R {
                res[q][r] = _mm512_reduce_add_ps(acc[q][r]);
            }
        }
        res
    }
}

/// `n` blocks of `kind` with every nibble / byte value and scales of both signs and magnitudes
/// (for tests).
#[cfg(test)]
pub(crate) fn test_blocks(kind: QuantKind, n: usize) -> Vec<u8> {
    use half::f16;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(kind: QuantKind, n: usize) -> Vec<u8> {
        test_blocks(kind, n)
    }

    #[test]
    fn rows_dequantize_exactly_as_tell_gguf() {
        // A unit row of `x` reads one weight value back through the whole kernel: 1 * w + 0.
        let k = 3 * BLOCK;
        for kind in [QuantKind::Q4_1, QuantKind::Q8_0] {
            let bytes = blocks(kind, 4 * 3);
            let want = tell_gguf::dequantize(kind.dtype(), &bytes, 4 * k as u64, "test").unwrap();
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                let rb = bytes.len() / 4;
                let rows: [&[u8]; 4] = std::array::from_fn(|q| &bytes[q * rb..][..rb]);
                for j in 0..k {
                    let mut unit = vec![0f32; k];
                    unit[j] = 1.0;
                    // SAFETY: AVX-512F/VL and F16C were detected.
                    let got = unsafe { x86::dot_rows::<1, 4>(kind, &unit, k, rows) };
                    for q in 0..4 {
                        assert_eq!(got[q][0], want[q * k + j], "{kind:?} row {q} value {j}");
                    }
                }
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
