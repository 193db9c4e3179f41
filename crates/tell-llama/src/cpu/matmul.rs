//! The small-batch matrix product of decoding.

use rayon::prelude::*;

use super::quant::QuantRows;
use super::Kernel;

/// Most rows (`batch * seq`) for which [`small_matmul_t`] replaces the backend's matrix product.
/// Above it (prefill) the packed `gemm` is the faster one: on SmolLM2's 30 layers of weights, on
/// the 2-core test machine, this kernel took 0.64x gemm's time at 16 rows, about the same at 64
/// and 1.5x at 328.
pub const SMALL_ROWS: usize = 32;

/// Fewest output columns (weight rows) one task computes, a contiguous run of the weight.
const MIN_COLUMNS_PER_TASK: usize = 32;

/// Tasks per thread a product is split into: a few, so that a thread slowed by other work does
/// not hold the others up, but not so many that scheduling them costs more than the work.
const TASKS_PER_THREAD: usize = 4;

/// `x @ wt^T` for `x` `[m, k]` and `wt` `[n, k]` (a linear layer's weight in Hugging Face's
/// `[out, in]` layout), both row-major; returns `[m, n]` row-major.
///
/// Each output column is `m` dot products with one weight row, so the weight is streamed once,
/// front to back, whatever `m` is; tasks own runs of weight rows. Each dot product is summed the
/// same way (16 or 8 lanes in order of `k`, then the lanes, then the tail of `k`) whatever `m` and
/// the row's place in the batch are, so a row's result does not depend on the rest of the batch.
pub fn small_matmul_t(x: &[f32], m: usize, k: usize, wt: &[f32], n: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "small_matmul_t: x is not [m, k]");
    assert_eq!(wt.len(), n * k, "small_matmul_t: wt is not [n, k]");
    // `[n, m]`: per task, its columns' `m` values each; transposed into `[m, n]` below.
    let mut out_t = vec![0f32; n * m];
    if m == 0 || n == 0 || k == 0 {
        return out_t;
    }
    let kernel = Kernel::detect();
    let columns = columns_per_task(n);
    out_t
        .par_chunks_mut(columns * m)
        .zip(wt.par_chunks(columns * k))
        .for_each(|(out, w)| kernel.matmul_rows(x, m, k, w, out));
    transposed(out_t, m, n)
}

/// [`small_matmul_t`] with the weight in quantized rows (`[n, k]`, `n = w.rows()`), the same
/// values bit for bit as on the dequantized weight; `None` where the CPU lacks the kernel
/// (AVX-512 with VL, F16C), so that the caller uses the f32 weight.
pub fn small_matmul_q(x: &[f32], m: usize, w: &QuantRows) -> Option<Vec<f32>> {
    let (k, n) = (w.cols(), w.rows());
    assert_eq!(x.len(), m * k, "small_matmul_q: x is not [m, k]");
    #[cfg(target_arch = "x86_64")]
    if super::quant_kernels() {
        let mut out_t = vec![0f32; n * m];
        if m == 0 || n == 0 || k == 0 {
            return Some(out_t);
        }
        let (kind, rb) = (w.kind(), w.row_bytes());
        let columns = columns_per_task(n);
        out_t
            .par_chunks_mut(columns * m)
            .zip(w.bytes().par_chunks(columns * rb))
            // SAFETY: AVX-512F/VL and F16C were detected, the features the task is compiled for.
            .for_each(|(out, wq)| unsafe { x86::task_quant_avx512(x, m, k, (kind, wq, rb), out) });
        return Some(transposed(out_t, m, n));
    }
    None
}

/// Output columns (weight rows) per parallel task for `n` columns.
fn columns_per_task(n: usize) -> usize {
    let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    n.div_ceil(tasks).max(MIN_COLUMNS_PER_TASK)
}

/// `[n, m]` to `[m, n]` (free for one row).
fn transposed(out_t: Vec<f32>, m: usize, n: usize) -> Vec<f32> {
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for (j, col) in out_t.chunks_exact(m).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * n + j] = v;
        }
    }
    out
}

impl Kernel {
    /// `out[j * m + i] = x[i, :] . w[j, :]` for the weight rows `w` (`[out.len() / m, k]`).
    fn matmul_rows(self, x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [f32]) {
        let n = out.len() / m;
        assert!(x.len() == m * k && w.len() == n * k && out.len() == n * m);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX-512F, the feature `task_avx512` is compiled for.
            Self::Avx512 => unsafe { x86::task_avx512(x, m, k, w, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX2 and FMA, the features `task_avx2` is compiled for.
            Self::Avx2 => unsafe { x86::task_avx2(x, m, k, w, out) },
            Self::Portable => {
                for (j, wr) in w.chunks_exact(k).enumerate() {
                    for (i, xr) in x.chunks_exact(k).enumerate() {
                        out[j * m + i] = xr.iter().zip(wr).fold(0.0, |s, (a, b)| s + a * b);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SIMD kernels. A task's weight rows are cut into `JW` equal runs, and step `i` takes row
    //! `i` of every run: four weight rows at a time, each read from its own sequential stream (four
    //! adjacent rows would be four short streams that the hardware prefetcher follows badly, about
    //! halving the bandwidth). The four rows go against rows of `x` four (then two, then one) at a
    //! time: 16 accumulators in registers, eight loads per 16 fused multiply-adds, and the four
    //! weight rows stay in L1 while every group of `x` rows passes over them; with several
    //! groups, they prefetch the next four rows.
    //!
    //! Per row of `x` and weight row, the dot product is summed over `k` in SIMD lanes (in order
    //! of `k`), the lanes are added by a fixed tree and the tail of `k` is added last, the same
    //! way for every row, so a row's result does not depend on the batch it is in.

    use std::arch::x86_64::*;

    use crate::cpu::quant::{x86::dot_rows, QuantKind};

    /// Weight rows per step (and sequential streams per task).
    const JW: usize = 4;

    macro_rules! kernel {
        ($task:ident, $block:ident, $feature:literal, $lanes:expr,
         $zero:ident, $load:ident, $fma:ident, $sum:ident) => {
            /// `out[j * m + i] = x[i, :] . w[j, :]`, `x` `[m, k]`, `w` `[n, k]`, `out` `[n, m]`.
            #[target_feature(enable = $feature)]
            pub fn $task(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [f32]) {
                let n = out.len() / m;
                assert!(x.len() == m * k && w.len() == n * k && out.len() == n * m);
                let run = n.div_ceil(JW);
                for step in 0..run {
                    let rows = step_rows(n, run, step);
                    let weights: [&[f32]; JW] = rows.map(|j| &w[j * k..][..k]);
                    let mut i = 0;
                    while i < m {
                        let mut res = [[0f32; 4]; JW];
                        // With several passes over these weight rows (more than 4 rows of `x`)
                        // the loads alone leave the memory bus idle much of the time (the later
                        // passes read L1): every pass also asks for the next row of each run,
                        // into L2 so that it does not push these rows out of L1. (With one pass
                        // the hardware prefetcher keeps up.)
                        let fetch = m > 4 && step + 1 < run;
                        let r = match m - i {
                            4.. => $block::<4>(&x[i * k..], k, &weights, fetch, &mut res),
                            2 | 3 => $block::<2>(&x[i * k..], k, &weights, fetch, &mut res),
                            _ => $block::<1>(&x[i * k..], k, &weights, fetch, &mut res),
                        };
                        for (q, res) in res.iter().enumerate() {
                            if q * run + step < n {
                                out[rows[q] * m + i..][..r].copy_from_slice(&res[..r]);
                            }
                        }
                        i += r;
                    }
                }
            }

            /// `R` rows of `x` (`k` apart) against the `JW` weight rows; returns `R`.
            #[target_feature(enable = $feature)]
            #[inline]
            fn $block<const R: usize>(
                x: &[f32],
                k: usize,
                w: &[&[f32]; JW],
                fetch_next: bool,
                res: &mut [[f32; 4]; JW],
            ) -> usize {
                assert!(R <= 4 && x.len() >= R * k && w.iter().all(|r| r.len() >= k));
                let xp = x.as_ptr();
                let wp: [*const f32; JW] = std::array::from_fn(|q| w[q].as_ptr());
                let mut acc = [[$zero(); R]; JW];
                let body = k / $lanes * $lanes;
                let mut c = 0;
                while c < body {
                    // SAFETY: c + lanes <= k, and the assert bounds every row by `k`.
                    unsafe {
                        if fetch_next {
                            // One line of the row after each weight row per step (a step reads
                            // 32 or 64 bytes of it). A prefetch never faults, so the address may
                            // pass the end of `w` (`wrapping_add`).
                            for q in 0..JW {
                                let next = wp[q].wrapping_add(k + c) as *const i8;
                                _mm_prefetch::<_MM_HINT_T1>(next);
                            }
                        }
                        let wv: [_; JW] = std::array::from_fn(|q| $load(wp[q].add(c)));
                        for r in 0..R {
                            let xv = $load(xp.add(r * k + c));
                            for q in 0..JW {
                                acc[q][r] = $fma(xv, wv[q], acc[q][r]);
                            }
                        }
                    }
                    c += $lanes;
                }
                for q in 0..JW {
                    for r in 0..R {
                        let mut s = $sum(acc[q][r]);
                        for c in body..k {
                            s = x[r * k + c].mul_add(w[q][c], s);
                        }
                        res[q][r] = s;
                    }
                }
                R
            }
        };
    }

    /// The weight rows step `step` takes: row `step` of each of the `JW` runs; a run shorter
    /// than the others repeats its last row (whose results are not written again).
    fn step_rows(n: usize, run: usize, step: usize) -> [usize; JW] {
        std::array::from_fn(|q| (q * run + step).min(n - 1))
    }

    /// [`task_avx512`] on quantized weight rows (`w`: `n` rows of `row_bytes`), with the same
    /// steps of `JW` weight rows; each step's rows are dequantized in registers by
    /// [`dot_rows`] (exactly as `tell-gguf` does) and each product is summed as the f32 kernel
    /// sums it, so the results are bit-identical to those on the dequantized weights.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    pub fn task_quant_avx512(
        x: &[f32],
        m: usize,
        k: usize,
        (kind, w, row_bytes): (QuantKind, &[u8], usize),
        out: &mut [f32],
    ) {
        let n = out.len() / m;
        assert!(x.len() == m * k && w.len() == n * row_bytes && out.len() == n * m);
        let run = n.div_ceil(JW);
        for step in 0..run {
            let rows = step_rows(n, run, step);
            let weight = |q: usize| &w[rows[q] * row_bytes..][..row_bytes];
            // Weight row `q`'s products with rows `i..` of `x` (a repeated row is not written).
            let mut put = |q: usize, i: usize, values: &[f32]| {
                if q * run + step < n {
                    out[rows[q] * m + i..][..values.len()].copy_from_slice(values);
                }
            };
            let all: [usize; JW] = std::array::from_fn(|q| q);
            let mut i = 0;
            while i < m {
                let xi = &x[i * k..];
                // 8 rows of `x` take the weight rows two by two (16 accumulators); fewer take all
                // four at once.
                let r = match m - i {
                    8.. => {
                        for pair in [[0, 1], [2, 3]] {
                            let res = dot_rows::<8, 2>(kind, xi, k, pair.map(weight));
                            pair.iter().zip(&res).for_each(|(&q, v)| put(q, i, v));
                        }
                        8
                    }
                    4.. => {
                        let res = dot_rows::<4, JW>(kind, xi, k, all.map(weight));
                        res.iter().enumerate().for_each(|(q, v)| put(q, i, v));
                        4
                    }
                    2 | 3 => {
                        let res = dot_rows::<2, JW>(kind, xi, k, all.map(weight));
                        res.iter().enumerate().for_each(|(q, v)| put(q, i, v));
                        2
                    }
                    _ => {
                        let res = dot_rows::<1, JW>(kind, xi, k, all.map(weight));
                        res.iter().enumerate().for_each(|(q, v)| put(q, i, v));
                        1
                    }
                };
                i += r;
            }
        }
    }

    kernel!(
        task_avx512,
        block_avx512,
        "avx512f",
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_fmadd_ps,
        _mm512_reduce_add_ps
    );

    kernel!(
        task_avx2,
        block_avx2,
        "avx2,fma",
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_fmadd_ps,
        sum256
    );

    /// The 8 lanes added by a fixed tree (halves, then quarters, then pairs).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn sum256(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let pair = _mm_add_ss(quarter, _mm_shuffle_ps::<1>(quarter, quarter));
        _mm_cvtss_f32(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::tests::{values, F};
    use burn::tensor::{Tensor, TensorData};

    /// `[rows, cols]` row-major transposed to `[cols, rows]`.
    fn transposed(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols * rows)
            .map(|i| v[(i % rows) * cols + i / rows])
            .collect()
    }

    #[test]
    fn small_matmul_matches_the_backend_matmul() {
        let device = Default::default();
        // Odd and even row counts (every group size), widths that are not a multiple of the task
        // or of two, and inner sizes with and without a tail past the SIMD lanes.
        for (m, k, n) in [
            (1, 7, 5),
            (3, 64, 128),
            (8, 576, 960),
            (16, 33, 300),
            (15, 130, 257),
            (6, 1, 3),
        ] {
            let (x, w) = (values(m * k, 1), values(k * n, 2));
            let got = small_matmul_t(&x, m, k, &transposed(&w, k, n), n);
            let xt = Tensor::<F, 2>::from_data(TensorData::new(x, [m, k]), &device);
            let wt = Tensor::<F, 2>::from_data(TensorData::new(w, [k, n]), &device);
            let want = xt.matmul(wt).into_data().to_vec::<f32>().unwrap();
            assert_eq!(got.len(), want.len());
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-6 * (k as f32),
                    "[{m}x{k}x{n}] element {i}: {g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn a_row_of_small_matmul_does_not_depend_on_the_batch() {
        let (k, n) = (100, 70);
        let wt = values(n * k, 5);
        let batch = values(11 * k, 6);
        let all = small_matmul_t(&batch, 11, k, &wt, n);
        for i in 0..11 {
            let alone = small_matmul_t(&batch[i * k..(i + 1) * k], 1, k, &wt, n);
            assert_eq!(alone[..], all[i * n..(i + 1) * n], "row {i}");
        }
    }
}
