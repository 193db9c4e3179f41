//! The product on quantized weight rows for any number of rows, so that a GGUF's linear weights
//! need no f32 copy: a few rows go to [`small_matmul_q`]; for many (prefill), panels of weight
//! rows are dequantized into a buffer that stays in L2, and a run of rows of `x` (also in L2)
//! goes against them, 8 rows at a time.

use rayon::prelude::*;

use super::quant::QuantRows;
use super::small_matmul_q;

/// Most rows for which [`small_matmul_q`] (every weight value dequantized in registers, for all
/// rows at once) beats the panels (one SmolLM2 step's products, `examples/matmul_bench.rs`, 2
/// threads: 16 vs 22 ms at 8 rows, 38 vs 33 ms at 16).
const SMALL_ROWS: usize = 8;

/// Weight rows dequantized per panel, at least: 32 rows of `k = 1536` are 192 KiB, well inside
/// L2, and a panel's work (every row of `x` against 32 weight rows) dwarfs its dequantization.
const PANEL: usize = 32;

/// Bytes of dequantized weight a panel may take: narrower weights get more rows per panel, so
/// that a long prompt's rows of `x` (streamed once per panel, from L3 or memory when there are
/// thousands) are streamed fewer times; 256 KiB stays inside L2 beside the rows of `x` in use.
const PANEL_BYTES: usize = 256 << 10;

/// Bytes of `x` one task's run of rows may take: with a panel ([`PANEL_BYTES`]) well inside the
/// 1 MiB L2 of the machines we measure on.
const CHUNK_BYTES: usize = 512 << 10;

/// Rows of `x` per run, at least, for each byte a weight value takes (1024 for f32, 160 for
/// Q4_1): a run of 1024 rows does 512 flops per f32 weight value it streams from memory.
const ROWS_PER_WEIGHT_BYTE: usize = 256;

/// Tasks per thread a product with few rows is cut into (by panels), so that a thread slowed by
/// other work does not hold the others up.
const TASKS_PER_THREAD: usize = 4;

/// Weight rows per panel for rows of `k` values: a multiple of [`PANEL`].
fn panel_rows(k: usize) -> usize {
    (PANEL_BYTES / (4 * k.max(1)) / PANEL).max(1) * PANEL
}

/// `x @ w^T` for `x` `[m, k]` and the quantized `w` (`[n, k]`); returns `[m, n]` row-major. Each
/// dot product is summed as [`small_matmul_q`] sums it (16 lanes in order of `k`, then the lanes),
/// so a row's result is the same bits whatever `m` is. `None` where the CPU lacks the kernels
/// (AVX-512 with VL, F16C).
pub fn matmul_q(x: &[f32], m: usize, w: &QuantRows) -> Option<Vec<f32>> {
    if m <= SMALL_ROWS {
        return small_matmul_q(x, m, w);
    }
    let (k, n) = (w.cols(), w.rows());
    assert_eq!(x.len(), m * k, "matmul_q: x is not [m, k]");
    #[cfg(target_arch = "x86_64")]
    if super::quant_kernels() {
        if n == 0 || k == 0 {
            return Some(vec![0f32; m * n]);
        }
        let (kind, rb) = (w.kind(), w.row_bytes());
        let grid = Grid::new(m, n, k, rb, panel_rows(k));
        let out = grid.fill(|rows, col, width, at, buf: &mut Vec<f32>| {
            let panel = &w.bytes()[col * rb..(col + width) * rb];
            let x = &x[rows.start * k..rows.end * k];
            // SAFETY: AVX-512F/VL and F16C were detected; `at` is row `rows.start` of the
            // `[m, n]` output, whose columns `col .. col + width` of rows `rows` are this call's.
            unsafe { x86::panel(x, rows.len(), k, (kind, panel, rb), (at, n, col), buf) }
        });
        return Some(out);
    }
    None
}

/// `swiglu(x @ w^T)` for `x` `[m, k]` and the fused gate/up weight `w` (`[2 width, k]`: the gate
/// rows, then the up rows): `[m, width]`, the same bits as [`matmul_q`] then [`super::swiglu`],
/// without the `[m, 2 width]` product ever in memory (each panel pairs gate and up rows, and the
/// activation is taken while their products are in L1). `None` for a few rows (decoding goes
/// through [`matmul_q`]) and where the CPU lacks the kernels.
pub fn matmul_q_swiglu(x: &[f32], m: usize, w: &QuantRows) -> Option<Vec<f32>> {
    let (k, rows) = (w.cols(), w.rows());
    if m <= SMALL_ROWS || rows == 0 || k == 0 || !rows.is_multiple_of(2) {
        return None;
    }
    assert_eq!(x.len(), m * k, "matmul_q_swiglu: x is not [m, k]");
    #[cfg(target_arch = "x86_64")]
    if super::quant_kernels() {
        let width = rows / 2;
        let (kind, rb) = (w.kind(), w.row_bytes());
        // Half the gate rows of a plain panel, with as many up rows: the same bytes in L2.
        let grid = Grid::new(m, width, k, rb, (panel_rows(k) / 2).max(NR_PAIRS));
        let (gate, up) = w.bytes().split_at(width * rb);
        let kernel = super::Kernel::detect();
        type Scratch = ([Vec<f32>; 2], Vec<f32>);
        let out = grid.fill(|rows, col, wd, at, (bufs, products): &mut Scratch| {
            let gate = &gate[col * rb..(col + wd) * rb];
            let up = &up[col * rb..(col + wd) * rb];
            let x = &x[rows.start * k..rows.end * k];
            let sink = (at, width, col, kernel);
            // SAFETY: AVX-512F/VL and F16C were detected; `at` is row `rows.start` of the
            // `[m, width]` output, whose columns `col .. col + wd` of rows `rows` are this call's.
            unsafe {
                x86::panel_swiglu(x, rows.len(), k, (kind, gate, up, rb), sink, bufs, products)
            }
        });
        return Some(out);
    }
    None
}

/// Gate rows per panel of [`matmul_q_swiglu`], at least: one tile's worth.
const NR_PAIRS: usize = 4;

/// How a product is cut into tasks: runs of rows of `x` (each small enough to stay in L2 beside a
/// panel, so that a long prompt's rows are read from memory once, not once per panel) times
/// groups of panels (enough tasks for every thread when there are few rows).
struct Grid {
    /// Rows of `x`.
    m: usize,
    /// Columns of the output (weight rows, or gate rows of a fused gate/up weight).
    n: usize,
    /// Rows of `x` per run.
    chunk: usize,
    /// Runs of rows.
    chunks: usize,
    /// Weight rows per panel.
    panel: usize,
    /// Panels.
    panels: usize,
    /// Panels per group.
    per_group: usize,
    /// Groups of panels.
    groups: usize,
}

impl Grid {
    fn new(m: usize, n: usize, k: usize, row_bytes: usize, panel: usize) -> Self {
        // Rows that fit L2 beside a panel, or more where the weight is wide in bytes: each run
        // reads the whole weight again, which must stay small against the run's work.
        let fit = CHUNK_BYTES / (4 * k.max(1));
        let chunk = (fit.max(ROWS_PER_WEIGHT_BYTE * row_bytes / k.max(1)) / 8).max(1) * 8;
        let chunks = m.div_ceil(chunk);
        let panels = n.div_ceil(panel);
        let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
        let per_group = panels.div_ceil(tasks.div_ceil(chunks).clamp(1, panels));
        Self {
            m,
            n,
            chunk,
            chunks,
            panel,
            panels,
            per_group,
            groups: panels.div_ceil(per_group),
        }
    }

    fn tasks(&self) -> usize {
        self.chunks * self.groups
    }

    /// Task `t`'s rows of `x` and panels.
    fn task(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (c, g) = (t / self.groups, t % self.groups);
        let rows = c * self.chunk..((c + 1) * self.chunk).min(self.m);
        let panels = g * self.per_group..((g + 1) * self.per_group).min(self.panels);
        (rows, panels)
    }

    /// The `[m, n]` output, filled by the tasks in parallel: `panel(rows, col, width, at,
    /// scratch)` must write rows `rows` at columns `col .. col + width` and nothing else, `at`
    /// pointing at row `rows.start`; `scratch` is the task's, reused across its panels. Not
    /// zeroed first: every value is written, and zeroing the largest buffer of a block (8 x 512
    /// rows of gate/up: 50 MB) cost about 2% of a prefill.
    fn fill<S: Default>(
        &self,
        panel: impl Fn(std::ops::Range<usize>, usize, usize, *mut f32, &mut S) + Sync,
    ) -> Vec<f32> {
        let mut out: Vec<f32> = Vec::with_capacity(self.m * self.n);
        let out_at = SharedOut(out.as_mut_ptr());
        (0..self.tasks()).into_par_iter().for_each(|task| {
            let out = &out_at;
            let (rows, panels) = self.task(task);
            let mut scratch = S::default();
            for p in panels {
                let col = p * self.panel;
                let width = self.panel.min(self.n - col);
                // SAFETY: `rows.start < m`, so the pointer stays inside the `m * n` capacity.
                let at = unsafe { out.0.add(rows.start * self.n) };
                panel(rows.clone(), col, width, at, &mut scratch);
            }
        });
        // SAFETY: the capacity is `m * n`, and the tasks wrote all of it: their runs of rows cover
        // `0..m` and their groups of panels `0..n`, each cell once (the test
        // `the_grid_gives_every_row_and_panel_to_exactly_one_task`).
        unsafe { out.set_len(self.m * self.n) };
        out
    }
}

/// The output buffer, written by several tasks at disjoint places.
struct SharedOut(*mut f32);

// SAFETY: tasks write disjoint elements (their own rows and columns), and the buffer outlives
// them.
unsafe impl Sync for SharedOut {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::cpu::quant::x86::{halves, reduce16};
    use crate::cpu::quant::{QuantKind, BLOCK};

    // The next rows of `x` (`left` of them) against every weight row of `w`: [`MR`] rows, or
    // as many as are left in the largest group below that; gives how many. A macro, not a
    // function: as a function it kept `tile` from being inlined, and f32 products were 7% slower.
    macro_rules! against_rows {
        ($x:expr, $left:expr, $k:expr, $w:expr, $put:expr) => {
            match $left {
                MR.. => against_panel::<MR>($x, $k, $w, $put),
                4.. => against_panel::<4>($x, $k, $w, $put),
                2 | 3 => against_panel::<2>($x, $k, $w, $put),
                _ => against_panel::<1>($x, $k, $w, $put),
            }
        };
    }

    /// One panel: its weight rows (`w`, rows of `row_bytes`) as f32 ([`weight_rows`]: read in
    /// place or dequantized into `buf`), then every row of `x` against them, [`MR`] rows by [`NR`] weight rows at a time; the results go to
    /// columns `col ..` of `out` (`[m, n]`).
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
        buf: &mut Vec<f32>,
    ) {
        let rows = w.len() / row_bytes;
        assert!(k.is_multiple_of(BLOCK) && x.len() == m * k && col + rows <= n);
        let w = weight_rows(kind, w, row_bytes, k, buf);
        let mut i = 0;
        while i < m {
            // Weight row `j`'s products with rows `i..` of `x`.
            let put = |j: usize, values: &[f32]| {
                for (r, &v) in values.iter().enumerate() {
                    // SAFETY: `i + r < m` and `col + j < n`; the caller owns these columns.
                    unsafe { *out.add((i + r) * n + col + j) = v };
                }
            };
            i += against_rows!(&x[i * k..], m - i, k, (w, &[]), put);
        }
    }

    /// The rows of `w` (rows of `row_bytes`, `k` values each) as f32 values: f32 rows read where
    /// they lie (a checkpoint's mapped bytes, aligned), others dequantized into `buf`. Copying
    /// f32 rows into the buffer was about 2% of an f32 prefill.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    fn weight_rows<'a>(
        kind: QuantKind,
        w: &'a [u8],
        row_bytes: usize,
        k: usize,
        buf: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        if kind == QuantKind::F32 && cfg!(target_endian = "little") {
            // SAFETY: every 4 bytes are some f32; `align_to` hands back only aligned ones.
            if let ([], values, []) = unsafe { w.align_to::<f32>() } {
                return values;
            }
        }
        buf.clear();
        dequantize(kind, w, row_bytes, k, buf);
        buf
    }

    /// Appends the rows of `w` (rows of `row_bytes`, `k` values each) to `buf`, dequantized.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    fn dequantize(kind: QuantKind, w: &[u8], row_bytes: usize, k: usize, buf: &mut Vec<f32>) {
        let (start, rows) = (buf.len(), w.len() / row_bytes);
        buf.resize(start + rows * k, 0.0);
        for (row, values) in w
            .chunks_exact(row_bytes)
            .zip(buf[start..].chunks_exact_mut(k))
        {
            for (b, v) in values.chunks_exact_mut(BLOCK).enumerate() {
                // SAFETY: the row is whole (`k` values); `v` holds 32 values.
                unsafe {
                    let (lo, hi) = halves(kind, row.as_ptr(), b);
                    _mm512_storeu_ps(v.as_mut_ptr(), lo);
                    _mm512_storeu_ps(v.as_mut_ptr().add(16), hi);
                }
            }
        }
    }

    /// One panel of [`super::matmul_q_swiglu`]: the gate rows `gate` and the matching up rows
    /// `up` as f32 ([`weight_rows`], into `bufs`), every row of `x` against them [`MR`] at a
    /// time, the products of those rows (gate then up, as a `[rows, 2 width]` product's row
    /// holds them) gathered in `products`, and their SwiGLU written to columns `col ..` of `out`
    /// (`[m, width]`).
    ///
    /// # Safety
    /// `out` must point to `m * width` writable values that no one else reads or writes at these
    /// columns meanwhile.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    pub unsafe fn panel_swiglu(
        x: &[f32],
        m: usize,
        k: usize,
        (kind, gate, up, row_bytes): (QuantKind, &[u8], &[u8], usize),
        (out, width, col, kernel): (*mut f32, usize, usize, crate::cpu::Kernel),
        bufs: &mut [Vec<f32>; 2],
        products: &mut Vec<f32>,
    ) {
        let wd = gate.len() / row_bytes;
        assert!(k.is_multiple_of(BLOCK) && x.len() == m * k && col + wd <= width);
        assert_eq!(gate.len(), up.len());
        let [gate_buf, up_buf] = bufs;
        let gate = weight_rows(kind, gate, row_bytes, k, gate_buf);
        let up = weight_rows(kind, up, row_bytes, k, up_buf);
        products.resize(MR * 2 * wd, 0.0);
        let mut i = 0;
        while i < m {
            let (xi, at) = (&x[i * k..], products.as_mut_ptr());
            // Weight row `j`'s products with rows `i..` of `x` (gate rows, then up rows), into
            // row `r` of `products`.
            let put = |j: usize, values: &[f32]| {
                for (r, &v) in values.iter().enumerate() {
                    // SAFETY: `r < MR` and `j < 2 wd`: inside `products`, which nothing else
                    // reads or writes until the tiles are done.
                    unsafe { *at.add(r * 2 * wd + j) = v };
                }
            };
            // One call for both halves: two kept `tile` from being inlined.
            let done = against_rows!(xi, m - i, k, (gate, up), put);
            for (r, gu) in products.chunks_exact(2 * wd).take(done).enumerate() {
                // SAFETY: `i + r < m` and `col + wd <= width`; the caller owns these columns.
                let o =
                    unsafe { std::slice::from_raw_parts_mut(out.add((i + r) * width + col), wd) };
                kernel.swiglu_row(gu, o);
            }
            i += done;
        }
    }

    /// Rows of `x` per tile: with [`NR`], 24 accumulators, 4 weight vectors and one of `x` in the
    /// 32 registers. One thread, SmolLM2's products on 1024 rows with the weights in cache
    /// (`matmul_bench 1024 3 panel hot`): 1.17-1.23 s at 6 x 4, 1.19 at 5 x 5, 1.29 at 8 x 3 and
    /// at 4 x 6, 1.44 at the former 8 x 2 (75% and 61% of the FMA peak).
    const MR: usize = 6;
    /// Weight rows per tile.
    const NR: usize = 4;

    /// `R` rows of `x` against every weight row of the panel (the rows of `k` values in `first`,
    /// then those in `then`: a fused panel's gate and up rows), [`NR`] weight rows at a time; `put(j, values)` takes weight row `j`'s `R` products. Returns `R`.
    #[target_feature(enable = "avx512f,avx512vl,f16c")]
    #[inline]
    fn against_panel<const R: usize>(
        x: &[f32],
        k: usize,
        (first, then): (&[f32], &[f32]),
        put: impl Fn(usize, &[f32]),
    ) -> usize {
        let (head, rows) = (first.len() / k, (first.len() + then.len()) / k);
        assert!(x.len() >= R * k && first.len() == head * k && then.len() == (rows - head) * k);
        let row = |j: usize| {
            if j < head {
                first[j * k..].as_ptr()
            } else {
                then[(j - head) * k..].as_ptr()
            }
        };
        let mut j = 0;
        while j + NR <= rows {
            let w: [*const f32; NR] = std::array::from_fn(|q| row(j + q));
            // SAFETY: `R` rows of `x` and `NR` weight rows of `k` values each (asserted).
            let res = unsafe { tile::<R, NR>(x.as_ptr(), k, w) };
            for (q, res) in res.iter().enumerate() {
                put(j + q, res);
            }
            j += NR;
        }
        while j < rows {
            // SAFETY: as above, one weight row.
            let res = unsafe { tile::<R, 1>(x.as_ptr(), k, [row(j)]) };
            put(j, &res[0]);
            j += 1;
        }
        R
    }

    /// `res[q][r] = x[r, :] . w[q]` for `R` rows of `x` (`k` apart) and `W` weight rows: each
    /// product summed in 16 lanes in order of `k` (FMA), then by the tree of
    /// `_mm512_reduce_add_ps`, as every other kernel of `cpu` sums it (the same bits). Each step
    /// loads 16 values of the `W` weight rows and goes through the rows of `x` one vector at a
    /// time: `R * W` accumulators, `R + W` loads per `R * W` FMAs.
    ///
    /// # Safety
    /// `x` must point at `R` rows of `k` values, every `w[q]` at `k` values; `k` a multiple of 16.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn tile<const R: usize, const W: usize>(
        x: *const f32,
        k: usize,
        w: [*const f32; W],
    ) -> [[f32; R]; W] {
        let mut acc = [[_mm512_setzero_ps(); R]; W];
        let mut c = 0;
        while c < k {
            let mut wv = [_mm512_setzero_ps(); W];
            for q in 0..W {
                // SAFETY: `c + 16 <= k` values of weight row `q`.
                wv[q] = unsafe { _mm512_loadu_ps(w[q].add(c)) };
            }
            // Indices, not iterators: `acc` is walked across its rows (`[q][r]`, `q` inner).
            #[allow(clippy::needless_range_loop)]
            for r in 0..R {
                // SAFETY: `c + 16 <= k` values of row `r` of `x`.
                let xv = unsafe { _mm512_loadu_ps(x.add(r * k + c)) };
                for q in 0..W {
                    acc[q][r] = _mm512_fmadd_ps(xv, wv[q], acc[q][r]);
                }
            }
            c += 16;
        }
        let mut flat = [[_mm512_setzero_ps(); 16]; 2];
        let mut res = [[0f32; R]; W];
        let n = R * W;
        for (q, (acc, res)) in acc.iter().zip(res.iter_mut()).enumerate() {
            for (r, (&a, res)) in acc.iter().zip(res.iter_mut()).enumerate() {
                let i = q * R + r;
                if i < n / 16 * 16 {
                    flat[i / 16][i % 16] = a;
                } else {
                    *res = _mm512_reduce_add_ps(a);
                }
            }
        }
        for (g, flat) in flat.iter().enumerate().take(n / 16) {
            let sums = reduce16(*flat);
            for (l, &s) in sums.iter().enumerate() {
                let i = g * 16 + l;
                res[i / R][i % R] = s;
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
            QuantKind::Bf16,
            QuantKind::F32,
        ] {
            let k = kind.geometry().0 * 2;
            let bytes = test_blocks(kind, n * k / kind.geometry().0);
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

    #[test]
    fn fused_swiglu_gives_the_bits_of_the_product_then_swiglu() {
        // 2 x 70 rows: gate and up; panels of 16 gate rows at k = 2048 (four whole, one short),
        // and row counts that take every group size.
        for (kind, k, width) in [
            (QuantKind::Q4_1, 64, 70),
            (QuantKind::Q8_0, 2048, 70),
            (QuantKind::Q4_K, 512, 9),
            (QuantKind::Bf16, 64, 33),
            (QuantKind::F32, 576, 40),
        ] {
            let n = 2 * width;
            let bytes = test_blocks(kind, n * k / kind.geometry().0);
            let w = QuantRows::new(kind, n, k, bytes).unwrap();
            for m in [9, 15, 40, 150] {
                let x: Vec<f32> = crate::cpu::tests::values(m * k, 3)
                    .iter()
                    .map(|v| v * 0.05)
                    .collect();
                let Some(product) = matmul_q(&x, m, &w) else {
                    return;
                };
                let want = crate::cpu::swiglu(&product, m, width);
                let got = matmul_q_swiglu(&x, m, &w).expect("more rows than decoding takes");
                assert_eq!(got, want, "{kind:?}, {m} rows");
            }
        }
        let w = QuantRows::new(QuantKind::F32, 4, 32, vec![0; 4 * 32 * 4]).unwrap();
        assert!(
            matmul_q_swiglu(&[0.0; 32 * 4], 4, &w).is_none(),
            "decoding rows"
        );
        let odd = QuantRows::new(QuantKind::F32, 3, 32, vec![0; 3 * 32 * 4]).unwrap();
        assert!(
            matmul_q_swiglu(&[0.0; 32 * 20], 20, &odd).is_none(),
            "odd rows"
        );
    }

    #[test]
    fn f32_rows_read_in_place_or_copied_when_misaligned_give_the_same_bits() {
        let (n, k, m) = (70, 64, 40);
        let bytes = test_blocks(QuantKind::F32, n * k / 32);
        let path = std::env::temp_dir().join(format!("tell-panel-f32-{}", std::process::id()));
        // The rows at byte 4 (aligned as f32) and at byte 1 (not: copied into the panel).
        let mut file = vec![0u8; 4];
        file.extend_from_slice(&bytes);
        file.extend_from_slice(&[0u8; 1]);
        std::fs::write(&path, &file).unwrap();
        // SAFETY: the file is this test's own and nobody writes it while it is mapped.
        let map = std::sync::Arc::new(unsafe {
            memmap2::Mmap::map(&std::fs::File::open(&path).unwrap()).unwrap()
        });
        std::fs::remove_file(&path).unwrap();
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&bytes);
        let path1 = path.with_extension("1");
        std::fs::write(&path1, &shifted).unwrap();
        // SAFETY: as above.
        let map1 = std::sync::Arc::new(unsafe {
            memmap2::Mmap::map(&std::fs::File::open(&path1).unwrap()).unwrap()
        });
        std::fs::remove_file(&path1).unwrap();
        let len = bytes.len();
        let aligned = QuantRows::mapped(QuantKind::F32, n, k, map, 4..4 + len).unwrap();
        let odd = QuantRows::mapped(QuantKind::F32, n, k, map1, 1..1 + len).unwrap();
        let owned = QuantRows::new(QuantKind::F32, n, k, bytes).unwrap();
        let x = crate::cpu::tests::values(m * k, 9);
        let Some(want) = matmul_q(&x, m, &owned) else {
            return;
        };
        assert_eq!(matmul_q(&x, m, &aligned), Some(want.clone()));
        assert_eq!(matmul_q(&x, m, &odd), Some(want));
        let want = matmul_q_swiglu(&x, m, &owned).unwrap();
        assert_eq!(matmul_q_swiglu(&x, m, &aligned), Some(want.clone()));
        assert_eq!(matmul_q_swiglu(&x, m, &odd), Some(want));
    }

    #[test]
    fn the_grid_gives_every_row_and_panel_to_exactly_one_task() {
        // The output is not zeroed first, so a cell no task writes would be garbage.
        for (m, n, k, rb) in [
            (9, 70, 2048, 2048 * 4),
            (150, 70, 2048, 2048 / 32 * 20),
            (1024, 960, 576, 576 / 32 * 20),
            (4096, 3072, 576, 576 * 4),
            (4096, 576, 1536, 1536 * 2),
            (17, 1, 32, 20),
        ] {
            let grid = Grid::new(m, n, k, rb, panel_rows(k));
            let mut seen = vec![0u8; m * grid.panels];
            for t in 0..grid.tasks() {
                let (rows, panels) = grid.task(t);
                for r in rows {
                    for p in panels.clone() {
                        seen[r * grid.panels + p] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "m {m} n {n} k {k}");
            assert!(grid.panels * grid.panel >= n && (grid.panels - 1) * grid.panel < n);
        }
    }

    #[test]
    fn runs_of_rows_and_groups_of_panels_cover_the_product() {
        // k = 2048: runs of 64 rows of `x` and panels of 32 weight rows, so 150 rows are three
        // runs (the last short) and 70 weight rows three panels (the last short).
        let (n, k) = (70, 2048);
        for kind in [QuantKind::Q8_0, QuantKind::F32] {
            let bytes = test_blocks(kind, n * k / kind.geometry().0);
            let w = QuantRows::new(kind, n, k, bytes.clone()).unwrap();
            let wf = tell_gguf::dequantize(kind.dtype(), &bytes, (n * k) as u64, "test").unwrap();
            for m in [9, 64, 150] {
                let x = crate::cpu::tests::values(m * k, 5);
                let Some(got) = matmul_q(&x, m, &w) else {
                    return;
                };
                assert_eq!(got, small_matmul_t(&x, m, k, &wf, n), "{kind:?}, {m} rows");
            }
        }
    }
}
