//! Weights kept in their GGUF blocks (Q4_1, Q8_0, Q4_K, Q6_K), or as bf16, for the products on the CPU: the
//! weights stay at the file's size in memory, and decoding, bound by the bytes it streams per
//! token, streams a sixth of an f32 row for Q4_1. Blocks are dequantized in registers to exactly
//! the f32 values `tell-gguf` gives (same arithmetic, no fused multiply-add), so products are
//! bit-identical to those on the dequantized weights.

use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;
use tell_gguf::GgmlType;

/// The block types [`QuantRows`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // ggml's names
pub enum QuantKind {
    /// f16 scale d, f16 minimum m, 32 nibbles: x = d * q + m.
    Q4_1,
    /// f16 scale d, 32 signed bytes: x = q * d.
    Q8_0,
    /// f16 scale d, 32 nibbles: x = d * (q - 8).
    Q4_0,
    /// f16 scale d, 32 fifth bits, 32 nibbles: x = d * (q - 16).
    Q5_0,
    /// f16 scale d, f16 minimum m, 32 fifth bits, 32 nibbles: x = d * q + m.
    Q5_1,
    /// Super-blocks of 256: f16 d and dmin, 6-bit scales and mins per 32 values, nibbles:
    /// x = (d * sc) * q - (dmin * m).
    Q4_K,
    /// Super-blocks of 256: 6-bit values (nibbles and 2-bit highs), 8-bit scales per 16, f16 d:
    /// x = (d * scale) * (q - 32).
    Q6_K,
    /// bfloat16 (a safetensors or GGUF BF16 weight), held as its 2 bytes per value and widened
    /// exactly in registers (the 16 bits become the high half of an f32); read in runs of 32.
    Bf16,
    /// f32 (a safetensors F32 weight), read in runs of 32 by the same kernels: on this CPU's
    /// AVX-512 they beat the AVX2 `gemm` of prefill (scripts/bench-bf16.sh).
    F32,
}

/// Values the kernels dequantize at a time (a block, or a sub-block of a K-quant super-block).
pub(super) const BLOCK: usize = 32;

impl QuantKind {
    /// The kind of a GGUF block type, if it is one of ours.
    pub fn of(dtype: GgmlType) -> Option<Self> {
        match dtype {
            GgmlType::Q4_1 => Some(Self::Q4_1),
            GgmlType::Q8_0 => Some(Self::Q8_0),
            GgmlType::Q4_0 => Some(Self::Q4_0),
            GgmlType::Q5_0 => Some(Self::Q5_0),
            GgmlType::Q5_1 => Some(Self::Q5_1),
            GgmlType::Q4_K => Some(Self::Q4_K),
            GgmlType::Q6_K => Some(Self::Q6_K),
            GgmlType::BF16 => Some(Self::Bf16),
            GgmlType::F32 => Some(Self::F32),
            _ => None,
        }
    }

    /// The GGUF block type.
    pub fn dtype(self) -> GgmlType {
        match self {
            Self::Q4_1 => GgmlType::Q4_1,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q5_0 => GgmlType::Q5_0,
            Self::Q5_1 => GgmlType::Q5_1,
            Self::Q4_K => GgmlType::Q4_K,
            Self::Q6_K => GgmlType::Q6_K,
            Self::Bf16 => GgmlType::BF16,
            Self::F32 => GgmlType::F32,
        }
    }

    /// Values and bytes per block (ggml's block geometry; a K-quant block is a super-block; bf16
    /// in runs of 32 values, as the kernels read it, so a row must hold whole runs).
    pub(super) fn geometry(self) -> (usize, usize) {
        match self {
            Self::Bf16 => (BLOCK, 2 * BLOCK),
            Self::F32 => (BLOCK, 4 * BLOCK),
            _ => self.dtype().block_geometry(),
        }
    }
}

/// A `[rows, cols]` weight (HF `[out, in]`) as rows of quantized blocks.
#[derive(Debug, Clone)]
pub struct QuantRows {
    kind: QuantKind,
    rows: usize,
    cols: usize,
    data: Held,
}

/// Where a [`QuantRows`]' bytes live: its own buffer, or a range of a mapped checkpoint file,
/// read in place so that loading copies nothing (the kernels take any alignment).
#[derive(Debug, Clone)]
enum Held {
    Owned(Arc<Vec<u8>>),
    Mapped(Arc<Mmap>, Range<usize>),
}

impl Held {
    fn bytes(&self) -> &[u8] {
        match self {
            Held::Owned(v) => v,
            Held::Mapped(map, range) => &map[range.clone()],
        }
    }
}

impl QuantRows {
    /// Rows of `kind` blocks; `None` unless `data` is exactly `rows` rows of whole blocks.
    pub fn new(kind: QuantKind, rows: usize, cols: usize, data: Vec<u8>) -> Option<Self> {
        Self::held(kind, rows, cols, Held::Owned(Arc::new(data)))
    }

    /// Rows of `kind` blocks read in place from `map[range]` (no copy); `None` unless the range
    /// lies in the map and holds exactly `rows` rows of whole blocks.
    pub fn mapped(
        kind: QuantKind,
        rows: usize,
        cols: usize,
        map: Arc<Mmap>,
        range: Range<usize>,
    ) -> Option<Self> {
        if range.start > range.end || range.end > map.len() {
            return None;
        }
        Self::held(kind, rows, cols, Held::Mapped(map, range))
    }

    fn held(kind: QuantKind, rows: usize, cols: usize, data: Held) -> Option<Self> {
        let (per_block, block_bytes) = kind.geometry();
        let ok = cols.is_multiple_of(per_block)
            && rows.checked_mul(cols / per_block * block_bytes) == Some(data.bytes().len());
        ok.then_some(Self {
            kind,
            rows,
            cols,
            data,
        })
    }

    /// Whether the bytes are read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Held::Mapped(..))
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
        let rows = parts.iter().map(|p| p.rows).sum();
        // Parts that follow each other in one mapped file (a checkpoint that stores gate_proj
        // right before up_proj) stay in place.
        if let Held::Mapped(map, first_range) = &first.data {
            let mut end = first_range.start;
            let follow = parts.iter().all(|p| match &p.data {
                Held::Mapped(m, r) if Arc::ptr_eq(m, map) && r.start == end => {
                    end = r.end;
                    true
                }
                _ => false,
            });
            if follow {
                return Self::mapped(
                    first.kind,
                    rows,
                    first.cols,
                    map.clone(),
                    first_range.start..end,
                );
            }
        }
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.bytes().len()).sum());
        for p in parts {
            data.extend_from_slice(p.bytes());
        }
        Self::new(first.kind, rows, first.cols, data)
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
        let (per_block, block_bytes) = self.kind.geometry();
        self.cols / per_block * block_bytes
    }

    /// The rows' bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
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

    /// Values `32 b .. 32 b + 32` of the quantized row at `row`, as two halves of 16, exactly as
    /// `tell_gguf::dequantize_into` gives them (mul then add or subtract, no FMA).
    ///
    /// # Safety
    /// `row` must point to a whole row of `kind` blocks holding at least `32 (b + 1)` values.
    #[target_feature(enable = "avx512f,f16c")]
    #[inline]
    pub(in crate::cpu) unsafe fn halves(
        kind: QuantKind,
        row: *const u8,
        b: usize,
    ) -> (__m512, __m512) {
        // The f16 at `p` in every lane (widened exactly). A broadcast load, not an insert into a
        // register: an insert would chain every block's scales through one register.
        let f16_at = |p: *const u8| {
            // SAFETY: the caller's block holds the f16 at `p`.
            let bits = unsafe { (p as *const i16).read_unaligned() };
            _mm512_cvtph_ps(_mm256_set1_epi16(bits))
        };
        // SAFETY: every address below is inside block `b`'s (super-)block of the caller's row.
        unsafe {
            let low4 = _mm_set1_epi8(0x0F);
            let nibbles = |p: *const u8, shift: i64| {
                let q = _mm_loadu_si128(p as *const __m128i);
                _mm_and_si128(_mm_srl_epi16(q, _mm_cvtsi64_si128(shift)), low4)
            };
            let float = |q: __m128i| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
            match kind {
                QuantKind::Q4_1 => {
                    let p = row.add(b * 20);
                    let (d, m) = (f16_at(p), f16_at(p.add(2)));
                    let (lo, hi) = (float(nibbles(p.add(4), 0)), float(nibbles(p.add(4), 4)));
                    (
                        _mm512_add_ps(_mm512_mul_ps(d, lo), m),
                        _mm512_add_ps(_mm512_mul_ps(d, hi), m),
                    )
                }
                QuantKind::Q8_0 => {
                    let p = row.add(b * 34);
                    let d = f16_at(p);
                    let lo = _mm_loadu_si128(p.add(2) as *const __m128i);
                    let hi = _mm_loadu_si128(p.add(18) as *const __m128i);
                    (
                        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d),
                        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d),
                    )
                }
                QuantKind::Q4_0 => {
                    let p = row.add(b * 18);
                    let d = f16_at(p);
                    let eight = _mm512_set1_epi32(8);
                    let value = |q: __m128i| {
                        let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), eight);
                        _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                    };
                    (value(nibbles(p.add(2), 0)), value(nibbles(p.add(2), 4)))
                }
                QuantKind::Q5_0 | QuantKind::Q5_1 => {
                    // Bit j of the little-endian u32 `qh` is the fifth bit of value j.
                    let (p, with_min) = match kind {
                        QuantKind::Q5_0 => (row.add(b * 22), false),
                        _ => (row.add(b * 24), true),
                    };
                    let head = if with_min { 4 } else { 2 };
                    let qh = (p.add(head) as *const u32).read_unaligned();
                    let d = f16_at(p);
                    let m = if with_min {
                        f16_at(p.add(2))
                    } else {
                        _mm512_setzero_ps()
                    };
                    let sixteen = _mm512_set1_epi32(16);
                    let value = |q: __m128i, bits: u32| {
                        let q = _mm512_cvtepu8_epi32(q);
                        let q = _mm512_mask_add_epi32(q, bits as __mmask16, q, sixteen);
                        if with_min {
                            _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), m)
                        } else {
                            let q = _mm512_sub_epi32(q, sixteen);
                            _mm512_mul_ps(d, _mm512_cvtepi32_ps(q))
                        }
                    };
                    let qs = p.add(head + 4);
                    (
                        value(nibbles(qs, 0), qh & 0xFFFF),
                        value(nibbles(qs, 4), qh >> 16),
                    )
                }
                QuantKind::Q4_K => {
                    // Sub-block j of the super-block: the low (even j) or high (odd j) nibbles of
                    // bytes 32 (j / 2) .. + 32 of the 128 after the header.
                    let (p, j) = (row.add(b / 8 * 144), b % 8);
                    let s = std::slice::from_raw_parts(p.add(4), 12);
                    let (sc, m) = if j < 4 {
                        (s[j] & 63, s[j + 4] & 63)
                    } else {
                        (
                            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
                            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
                        )
                    };
                    let dl = _mm512_mul_ps(f16_at(p), _mm512_set1_ps(f32::from(sc)));
                    let ml = _mm512_mul_ps(f16_at(p.add(2)), _mm512_set1_ps(f32::from(m)));
                    let (qs, shift) = (p.add(16 + j / 2 * 32), 4 * (j % 2) as i64);
                    let (lo, hi) = (float(nibbles(qs, shift)), float(nibbles(qs.add(16), shift)));
                    (
                        _mm512_sub_ps(_mm512_mul_ps(dl, lo), ml),
                        _mm512_sub_ps(_mm512_mul_ps(dl, hi), ml),
                    )
                }
                QuantKind::Bf16 => {
                    let p = row.add(b * 64);
                    let widen = |p: *const u8| {
                        let h = _mm256_loadu_si256(p as *const __m256i);
                        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                    };
                    (widen(p), widen(p.add(32)))
                }
                QuantKind::F32 => {
                    let p = row.add(b * 128) as *const f32;
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
                }
                QuantKind::Q6_K => {
                    // Values 32 j .. 32 j + 32 of the super-block: half h = j / 4 of 128, where
                    // value r takes nibble r / 64 of ql[r % 64] and bits 2 (r / 32) of qh[r % 32];
                    // each 16 values share a scale.
                    let (p, j) = (row.add(b / 8 * 210), b % 8);
                    let (h, r0) = (j / 4, (j % 4) * 32);
                    let d = f16_at(p.add(208));
                    let ql = p.add(h * 64 + r0 % 64);
                    let qh = p.add(128 + h * 32);
                    let (lshift, hshift) = (4 * (r0 / 64) as i64, 2 * (j % 4) as i64);
                    let three = _mm_set1_epi8(0x03);
                    let half = |k: usize| {
                        let lo = nibbles(ql.add(16 * k), lshift);
                        let q = _mm_loadu_si128(qh.add(16 * k) as *const __m128i);
                        let hi = _mm_and_si128(_mm_srl_epi16(q, _mm_cvtsi64_si128(hshift)), three);
                        let q = _mm_sub_epi8(
                            _mm_or_si128(lo, _mm_slli_epi16::<4>(hi)),
                            _mm_set1_epi8(32),
                        );
                        let scale = *(p.add(192 + (h * 128 + r0 + 16 * k) / 16) as *const i8);
                        let dl = _mm512_mul_ps(d, _mm512_set1_ps(f32::from(scale)));
                        _mm512_mul_ps(dl, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)))
                    };
                    (half(0), half(1))
                }
            }
        }
    }

    /// `res[q][r] = x[r, :] . w[q]` for `R` rows of `x` (`k` apart) and `W` quantized weight
    /// rows (whole blocks of `kind`, `k` values each), dequantized in registers by [`halves`].
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    pub fn dot_rows<const R: usize, const W: usize>(
        kind: QuantKind,
        x: &[f32],
        k: usize,
        w: [&[u8]; W],
    ) -> [[f32; R]; W] {
        let (per_block, block_bytes) = kind.geometry();
        assert!(k.is_multiple_of(per_block));
        assert!(w.iter().all(|row| row.len() == k / per_block * block_bytes));
        let wp: [*const u8; W] = w.map(|row| row.as_ptr());
        // One copy of the loop per type, the type fixed in it: with the type a variable, the
        // dequantization dispatches on it at every block (decoding 40% slower at one row).
        macro_rules! per_kind {
            ($($kind:ident),*) => {
                match kind {
                    // SAFETY: every row is `k` values of whole blocks (asserted) and `b < k / 32`.
                    $(QuantKind::$kind => {
                        dot_with::<R, W>(x, k, |q, b| unsafe { halves(QuantKind::$kind, wp[q], b) })
                    })*
                }
            };
        }
        per_kind!(Q4_1, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q6_K, Bf16, F32)
    }

    /// `res[q][r] = x[r, :] . w_q` for `R` rows of `x` (`k` apart, `k` a multiple of 32) and `W`
    /// weight rows whose values `32 b .. 32 b + 32` `weight(q, b)` gives as two halves of 16.
    ///
    /// Each product is summed in 16 lanes in order of `k` with FMA, then by
    /// `_mm512_reduce_add_ps`, as the f32 kernel of `matmul.rs` sums it, so results are
    /// bit-identical to it whatever the weight's form; each weight value is used by all `R` rows
    /// while in a register.
    ///
    /// AVX-512VL is enabled for the register allocator's sake: without it the reductions (on
    /// 256- and 128-bit halves) cannot use registers 16-31, and the accumulators of `<8, 2>`
    /// spill to the stack, which made this kernel slower than dequantizing to memory.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    #[inline]
    pub(in crate::cpu) fn dot_with<const R: usize, const W: usize>(
        x: &[f32],
        k: usize,
        weight: impl Fn(usize, usize) -> (__m512, __m512),
    ) -> [[f32; R]; W] {
        assert!(k.is_multiple_of(BLOCK) && x.len() >= R * k);
        let xr: [*const f32; R] = std::array::from_fn(|r| x[r * k..].as_ptr());
        let mut acc = [[_mm512_setzero_ps(); R]; W];
        for b in 0..k / BLOCK {
            let mut wv = [(_mm512_setzero_ps(), _mm512_setzero_ps()); W];
            for (q, v) in wv.iter_mut().enumerate() {
                *v = weight(q, b);
            }
            for r in 0..R {
                // SAFETY: values `32 b .. 32 b + 32` of every row of `x` are in bounds (asserted).
                let (lo, hi) = unsafe {
                    let p = xr[r].add(b * BLOCK);
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
                };
                for q in 0..W {
                    let (u, v) = wv[q];
                    acc[q][r] = _mm512_fmadd_ps(hi, v, _mm512_fmadd_ps(lo, u, acc[q][r]));
                }
            }
        }
        // Loops, not `map`: a closure does not inherit the target features, so the reduction
        // would become a call per value.
        let mut res = [[0f32; R]; W];
        if R * W == 16 {
            let mut flat = [_mm512_setzero_ps(); 16];
            for q in 0..W {
                for r in 0..R {
                    flat[q * R + r] = acc[q][r];
                }
            }
            let sums = reduce16(flat);
            for q in 0..W {
                for r in 0..R {
                    res[q][r] = sums[q * R + r];
                }
            }
            return res;
        }
        for q in 0..W {
            for r in 0..R {
                res[q][r] = _mm512_reduce_add_ps(acc[q][r]);
            }
        }
        res
    }

    /// The sums of 16 vectors' lanes, each by the tree of `_mm512_reduce_add_ps` (lanes `i` and
    /// `i + 8`, then `i + 4`, `i + 2`, `i + 1`: the same bits), but level by level for all 16 at
    /// once: 15 additions and 30 shuffles instead of 16 reductions of 8 steps each.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    pub(in crate::cpu) fn reduce16(a: [__m512; 16]) -> [f32; 16] {
        // Level 1: per pair, [x.lo256 + x.hi256 | y.lo256 + y.hi256].
        let mut l1 = [_mm512_setzero_ps(); 8];
        for (p, l) in l1.iter_mut().enumerate() {
            let (x, y) = (a[2 * p], a[2 * p + 1]);
            *l = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
            );
        }
        // Level 2: in each 128-bit quarter, one vector's 4 lanes `i + (i + 4)`: quarter `j` of
        // `l2[p]` belongs to vector `4 p + j`.
        let mut l2 = [_mm512_setzero_ps(); 4];
        for (p, l) in l2.iter_mut().enumerate() {
            let (x, y) = (l1[2 * p], l1[2 * p + 1]);
            *l = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
            );
        }
        // Level 3: `i + (i + 2)` within each quarter; quarter `j` of `l3[p]` holds vector `j`'s
        // (of `l2[2 p]`) two values, then vector `4 + j`'s (of `l2[2 p + 1]`).
        let mut l3 = [_mm512_setzero_ps(); 2];
        for (p, l) in l3.iter_mut().enumerate() {
            let (x, y) = (_mm512_castps_pd(l2[2 * p]), _mm512_castps_pd(l2[2 * p + 1]));
            *l = _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
            );
        }
        // Level 4: `i + (i + 1)`; lane `4 q + j` holds the sum of vector `4 j + q`.
        let (x, y) = (l3[0], l3[1]);
        let last = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(x, y),
            _mm512_shuffle_ps::<0b11_01_11_01>(x, y),
        );
        let mut lanes = [0f32; 16];
        // SAFETY: `lanes` holds 16 values.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), last) };
        let mut sums = [0f32; 16];
        for (i, s) in sums.iter_mut().enumerate() {
            *s = lanes[4 * (i % 4) + i / 4];
        }
        sums
    }
}

/// `n` blocks of `kind` with every nibble / byte value and scales of both signs and magnitudes
/// (for tests).
#[cfg(test)]
pub(crate) fn test_blocks(kind: QuantKind, n: usize) -> Vec<u8> {
    use half::f16;
    let bytes = kind.geometry().1;
    let mut v = Vec::with_capacity(n * bytes);
    for i in 0..n {
        let start = v.len();
        v.extend((0..bytes).map(|j| (j * 37 + i * 11) as u8));
        let b = &mut v[start..];
        let f16 = |x: f32| f16::from_f32(x).to_bits().to_le_bytes();
        let d = 0.013 * (i as f32 + 1.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
        let m = -0.21 + 0.07 * i as f32;
        // The f16 fields get finite values; every other byte stays arbitrary.
        match kind {
            QuantKind::Q4_1 | QuantKind::Q5_1 => {
                b[0..2].copy_from_slice(&f16(d));
                b[2..4].copy_from_slice(&f16(m));
            }
            QuantKind::Q8_0 | QuantKind::Q4_0 | QuantKind::Q5_0 => b[0..2].copy_from_slice(&f16(d)),
            QuantKind::Q4_K => {
                b[0..2].copy_from_slice(&f16(d * 0.1));
                b[2..4].copy_from_slice(&f16(m * 0.1));
            }
            QuantKind::Q6_K => b[208..210].copy_from_slice(&f16(d * 0.1)),
            // Finite values below 2: the top exponent bit of every value cleared.
            QuantKind::Bf16 => b.iter_mut().skip(1).step_by(2).for_each(|h| *h &= 0xBF),
            QuantKind::F32 => b.iter_mut().skip(3).step_by(4).for_each(|h| *h &= 0xBF),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_sums_at_once_are_the_bits_of_sixteen_reductions() {
        use std::arch::x86_64::*;
        if !crate::cpu::quant_kernels() {
            return;
        }
        // Values of mixed signs and magnitudes, where the order of additions shows in the bits.
        let v = crate::cpu::tests::values(256, 17);
        let v: Vec<f32> = v
            .iter()
            .enumerate()
            .map(|(i, x)| x * 10f32.powi(i as i32 % 7 - 3))
            .collect();
        // SAFETY: AVX-512F/VL were detected; every load reads 16 of the 256 values.
        unsafe {
            let a: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(v[16 * i..].as_ptr()));
            let got = x86::reduce16(a);
            for (i, &g) in got.iter().enumerate() {
                assert_eq!(
                    g.to_bits(),
                    _mm512_reduce_add_ps(a[i]).to_bits(),
                    "vector {i}"
                );
            }
        }
    }

    const KINDS: [QuantKind; 9] = [
        QuantKind::Q4_1,
        QuantKind::Q8_0,
        QuantKind::Q4_0,
        QuantKind::Q5_0,
        QuantKind::Q5_1,
        QuantKind::Q4_K,
        QuantKind::Q6_K,
        QuantKind::Bf16,
        QuantKind::F32,
    ];

    /// `rows` rows of `k` values of `kind` and their values as tell-gguf dequantizes them.
    fn weight(kind: QuantKind, rows: usize, k: usize) -> (QuantRows, Vec<f32>) {
        let per_block = kind.geometry().0;
        let bytes = test_blocks(kind, rows * k / per_block);
        let f = tell_gguf::dequantize(kind.dtype(), &bytes, (rows * k) as u64, "test").unwrap();
        (QuantRows::new(kind, rows, k, bytes).unwrap(), f)
    }

    #[test]
    fn rows_dequantize_exactly_as_tell_gguf() {
        // A unit row of `x` reads one weight value back through the whole kernel: 1 * w + 0.
        // Two K-quant super-blocks per row: every sub-block position, in both.
        let k = 512;
        for kind in KINDS {
            let (w, want) = weight(kind, 4, k);
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::quant_kernels() {
                let rb = w.row_bytes();
                let rows: [&[u8]; 4] = std::array::from_fn(|q| &w.bytes()[q * rb..][..rb]);
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
        for kind in KINDS {
            let (n, k) = (70, kind.geometry().0 * 2);
            let (w, wf) = weight(kind, n, k);
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
        // K-quant rows are whole super-blocks of 256.
        assert!(QuantRows::new(QuantKind::Q4_K, 1, 256, vec![0; 144]).is_some());
        assert!(QuantRows::new(QuantKind::Q6_K, 1, 96, vec![0; 79]).is_none());
    }

    #[test]
    fn mapped_rows_are_read_in_place_and_stay_in_place_when_parts_follow_each_other() {
        let path = std::env::temp_dir().join(format!("tell-quant-map-{}", std::process::id()));
        let bytes: Vec<u8> = (0..200u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the file is this test's own and nobody writes it while it is mapped.
        let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
        std::fs::remove_file(&path).unwrap();
        let part = |rows: usize, range: Range<usize>| {
            QuantRows::mapped(QuantKind::Q4_1, rows, 32, map.clone(), range).unwrap()
        };
        let (a, b, c) = (part(2, 10..50), part(1, 50..70), part(1, 90..110));
        assert!(a.is_mapped());
        assert_eq!(a.bytes(), &bytes[10..50]);
        // a then b lie back to back: one range of the map, nothing copied.
        let ab = QuantRows::concat(&[a.clone(), b.clone()]).unwrap();
        assert!(ab.is_mapped());
        assert_eq!((ab.rows(), ab.bytes()), (3, &bytes[10..70]));
        // a then c leave a gap, b then a go backwards: both copied, in the order given.
        for (parts, want) in [
            (
                vec![a.clone(), c],
                [&bytes[10..50], &bytes[90..110]].concat(),
            ),
            (vec![b, a], [&bytes[50..70], &bytes[10..50]].concat()),
        ] {
            let joined = QuantRows::concat(&parts).unwrap();
            assert!(!joined.is_mapped());
            assert_eq!(joined.bytes(), &want[..]);
        }
        // Ranges must hold whole rows and lie inside the map.
        assert!(QuantRows::mapped(QuantKind::Q4_1, 1, 32, map.clone(), 0..21).is_none());
        assert!(QuantRows::mapped(QuantKind::Q4_1, 1, 32, map.clone(), 190..210).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 30..10;
        assert!(QuantRows::mapped(QuantKind::Q4_1, 0, 32, map, backwards).is_none());
    }
}
