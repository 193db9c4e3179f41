//! The many-row product (prefill) on quantized weight rows, so that a GGUF's linear weights need
//! no f32 copy: panels of weight rows are dequantized once into a buffer that stays in L2, and
//! every row of `x` goes against them.

use rayon::prelude::*;

use super::quant::QuantRows;

/// Weight rows dequantized per panel: 32 rows of `k = 1536` are 192 KiB, well inside L2, and a
/// panel's work (every row of `x` against 32 weight rows) dwarfs its dequantization.
const PANEL: usize = 32;

/// `x @ w^T` for `x` `[m, k]` and the quantized `w` (`[n, k]`); returns `[m, n]` row-major. Each
/// dot product is summed as [`super::small_matmul_q`] sums it (16 lanes in order of `k`, then the
/// lanes), so a row's result is the same bits here as in a decoding step. `None` where the CPU
/// lacks the kernel (AVX-512 with VL, F16C).
pub fn matmul_q(x: &[f32], m: usize, w: &QuantRows) -> Option<Vec<f32>> {
    let (k, n) = (w.cols(), w.rows());
    assert_eq!(x.len(), m * k, "matmul_q: x is not [m, k]");
    #[cfg(target_arch = "x86_64")]
    if super::quant_kernels() {
        let mut out = vec![0f32; m * n];
        if m == 0 || n == 0 || k == 0 {
            return Some(out);
        }
        let (kind, rb) = (w.kind(), w.row_bytes());
        // Tasks own panels of output columns; their writes (column `j` of every row) never meet.
        let out_at = SharedOut(out.as_mut_ptr());
        w.bytes()
            .par_chunks(PANEL * rb)
            .enumerate()
            .for_each(|(p, panel)| {
                let out = &out_at;
                // SAFETY: AVX-512F/VL and F16C were detected; this task writes only columns
                // `p * PANEL ..` of `out`, which is `[m, n]` and outlives the loop.
                unsafe { x86::panel(x, m, k, (kind, panel, rb), (out.0, n, p * PANEL)) };
            });
        return Some(out);
    }
    None
}

/// The output buffer, written by several tasks at disjoint columns.
struct SharedOut(*mut f32);

// SAFETY: tasks write disjoint elements (their own columns), and the buffer outlives them.
unsafe impl Sync for SharedOut {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::cpu::quant::{x86::halves, QuantKind};

    /// Values per block of either kind.
    const BLOCK: usize = 32;

    /// One panel: its weight rows (`w`, rows of `row_bytes`) dequantized into a buffer, then every
    /// row of `x` against them, 8 rows by 2 weight rows at a time (16 accumulators); the results
    /// go to columns `col ..` of `out` (`[m, n]`).
    ///
    /// # Safety
    /// `out` must point to `m * n` writable values that no one else reads or writes at these
    /// columns meanwhile.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    pub unsafe fn panel(
        x: &[f32],
        m: usize,
        k: usize,
        (kind, w, row_bytes): (QuantKind, &[u8], usize),
        (out, n, col): (*mut f32, usize, usize),
    ) {
        let rows = w.len() / row_bytes;
        assert!(k.is_multiple_of(BLOCK) && x.len() == m * k && col + rows <= n);
        let mut buf = vec![0f32; rows * k];
        for (row, values) in w.chunks_exact(row_bytes).zip(buf.chunks_exact_mut(k)) {
            for (b, v) in values.chunks_exact_mut(BLOCK).enumerate() {
                // SAFETY: the row is whole (`k` values); `v` holds 32 values.
                unsafe {
                    let (lo, hi) = halves(kind, row.as_ptr(), b);
                    _mm512_storeu_ps(v.as_mut_ptr(), lo);
                    _mm512_storeu_ps(v.as_mut_ptr().add(16), hi);
                }
            }
        }
        let put = |i: usize, j: usize, values: &[f32]| {
            for (r, &v) in values.iter().enumerate() {
                // SAFETY: `i + r < m` and `col + j < n`; the caller owns these columns.
                unsafe { *out.add((i + r) * n + col + j) = v };
            }
        };
        let weight = |j: usize| &buf[j * k..][..k];
        let mut i = 0;
        while i < m {
            let xi = &x[i * k..];
            let r = match m - i {
                8.. => 8,
                4.. => 4,
                2 | 3 => 2,
                _ => 1,
            };
            let mut j = 0;
            while j < rows {
                if j + 1 < rows {
                    let pair = [weight(j), weight(j + 1)];
                    match r {
                        8 => dot::<8, 2>(xi, k, pair)
                            .iter()
                            .enumerate()
                            .for_each(|(q, v)| put(i, j + q, v)),
                        4 => dot::<4, 2>(xi, k, pair)
                            .iter()
                            .enumerate()
                            .for_each(|(q, v)| put(i, j + q, v)),
                        2 => dot::<2, 2>(xi, k, pair)
                            .iter()
                            .enumerate()
                            .for_each(|(q, v)| put(i, j + q, v)),
                        _ => dot::<1, 2>(xi, k, pair)
                            .iter()
                            .enumerate()
                            .for_each(|(q, v)| put(i, j + q, v)),
                    }
                    j += 2;
                } else {
                    let one = [weight(j)];
                    match r {
                        8 => put(i, j, &dot::<8, 1>(xi, k, one)[0]),
                        4 => put(i, j, &dot::<4, 1>(xi, k, one)[0]),
                        2 => put(i, j, &dot::<2, 1>(xi, k, one)[0]),
                        _ => put(i, j, &dot::<1, 1>(xi, k, one)[0]),
                    }
                    j += 1;
                }
            }
            i += r;
        }
    }

    /// `res[q][r] = x[r, :] . w[q]` for `R` rows of `x` (`k` apart, `k` a multiple of 16), summed
    /// as `quant::x86::dot_rows` sums (16 lanes in order of `k` with FMA, then
    /// `_mm512_reduce_add_ps`).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn dot<const R: usize, const W: usize>(x: &[f32], k: usize, w: [&[f32]; W]) -> [[f32; R]; W] {
        assert!(k.is_multiple_of(16) && x.len() >= R * k && w.iter().all(|r| r.len() >= k));
        let xr: [*const f32; R] = std::array::from_fn(|r| x[r * k..].as_ptr());
        let wp: [*const f32; W] = w.map(|r| r.as_ptr());
        let mut acc = [[_mm512_setzero_ps(); R]; W];
        for c in (0..k).step_by(16) {
            // SAFETY: c + 16 <= k, and every row is at least `k` long (asserted).
            unsafe {
                let mut wv = [_mm512_setzero_ps(); W];
                for q in 0..W {
                    wv[q] = _mm512_loadu_ps(wp[q].add(c));
                }
                for r in 0..R {
                    let xv = _mm512_loadu_ps(xr[r].add(c));
                    for q in 0..W {
                        acc[q][r] = _mm512_fmadd_ps(xv, wv[q], acc[q][r]);
                    }
                }
            }
        }
        let mut res = [[0f32; R]; W];
        for q in 0..W {
            for r in 0..R {
                res[q][r] = _mm512_reduce_add_ps(acc[q][r]);
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::quant::{test_blocks, QuantKind};
    use crate::cpu::{small_matmul_q, small_matmul_t};

    #[test]
    fn panels_give_the_bits_of_the_f32_kernel_and_of_decoding() {
        // 70 weight rows: two whole panels and a short one with an odd row; row counts that
        // take every group size (8, 4, 2, 1).
        let n = 70;
        for kind in [
            QuantKind::Q4_1,
            QuantKind::Q8_0,
            QuantKind::Q4_K,
            QuantKind::Q6_K,
        ] {
            let k = kind.dtype().block_geometry().0 * 2;
            let bytes = test_blocks(kind, n * k / kind.dtype().block_geometry().0);
            let w = QuantRows::new(kind, n, k, bytes.clone()).unwrap();
            let wf = tell_gguf::dequantize(kind.dtype(), &bytes, (n * k) as u64, "test").unwrap();
            for m in [1, 7, 15, 40] {
                let x = crate::cpu::tests::values(m * k, 3);
                // `None` on CPUs without the kernels, where the f32 weight is used instead.
                let Some(got) = matmul_q(&x, m, &w) else {
                    return;
                };
                assert_eq!(got, small_matmul_t(&x, m, k, &wf, n), "{kind:?}, {m} rows");
                assert_eq!(Some(got), small_matmul_q(&x, m, &w), "{kind:?}, {m} rows");
            }
        }
    }
}
