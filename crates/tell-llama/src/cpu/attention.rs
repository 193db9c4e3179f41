//! Attention over a KV cache on host memory, for any number of new positions: one decoding step
//! or a whole prompt.
//!
//! The query rows of one key/value head (its `heads / kv_heads` query heads at each position) go
//! in blocks of up to [`BLOCK_ROWS`]; a block's scores, softmax and context stay in L1 and in
//! registers, and only the keys some row of the block may see are read: a causal prompt does
//! half the work of a full square, and nothing of the size `[heads, seq, len]` is ever allocated.
//!
//! Every row's result is the same bits whatever block, batch or number of new positions it comes
//! in: each score is summed over the head dimension in order, the softmax sums keys in 16 lanes
//! by `key % 16` and adds the lanes by a fixed tree, and the context adds `p * v` in order of the
//! key. Keys a row may not see have weight exactly 0 (their score underflows in `exp`), so
//! skipping them changes nothing. A prompt's last position therefore attends exactly as a
//! decoding step over the same cache would.

use rayon::prelude::*;

use super::ops::{exp, Heads};
use super::Kernel;

/// Bias values below this hide a key from a query: the model's mask is -1e30, far below the
/// -87 at which [`exp`] is 0, so such a key's weight is exactly 0 and it can be skipped.
const HIDDEN_BELOW: f32 = -1.0e20;

/// Query rows computed together: 6 rows against 4 vectors of keys (or of a head's values) are 24
/// accumulators, with room left in the 32 AVX-512 registers for the 4 loaded vectors.
const BLOCK_ROWS: usize = 6;

/// Tasks per thread: enough that the causal tasks (later positions see more keys) even out.
const TASKS_PER_THREAD: usize = 4;

/// Attention of `q` (`[batch, heads, seq, head_dim]`) over the first `len` positions of a KV
/// cache: keys `kt` stored transposed (`[batch, kv_heads, head_dim, cap]`), values `v`
/// (`[batch, kv_heads, cap, head_dim]`), with the additive `bias` (`[batch, seq, len]`):
/// `softmax(q . k * scale + bias) . v` per query head, each query head using key/value head
/// `head / (heads / kv_heads)` as transformers' `repeat_kv` does. Returns the context
/// `[batch, seq, heads * head_dim]`, ready for the output projection. `cap` must be a multiple of
/// 16 (scores are computed for whole vectors of keys; those past `len` are dropped).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    cap: usize,
    len: usize,
    bias: &[f32],
    s: Heads,
    scale: f32,
) -> Vec<f32> {
    attend_with(Kernel::detect(), q, kt, v, (cap, len), bias, s, scale)
}

/// [`attend`] with the given kernel (the tests run every one this CPU has).
#[allow(clippy::too_many_arguments)]
fn attend_with(
    kernel: Kernel,
    q: &[f32],
    kt: &[f32],
    v: &[f32],
    (cap, len): (usize, usize),
    bias: &[f32],
    s: Heads,
    scale: f32,
) -> Vec<f32> {
    let Heads {
        batch: b,
        seq: t,
        heads: h,
        kv_heads: kvh,
        head_dim: hd,
    } = s;
    assert!(len <= cap && cap.is_multiple_of(16) && h.is_multiple_of(kvh));
    assert_eq!(q.len(), b * h * t * hd, "attend: q is not [b, h, t, hd]");
    assert!(kt.len() == b * kvh * hd * cap && v.len() == kt.len());
    assert_eq!(bias.len(), b * t * len, "attend: bias is not [b, t, len]");
    let mut ctx = vec![0f32; b * t * h * hd];
    if ctx.is_empty() || len == 0 {
        return ctx;
    }
    let groups = h / kvh;
    let spans: Vec<(usize, usize)> = bias.chunks_exact(len).map(visible).collect();
    // Tasks: a key/value head of a batch row, over a run of positions.
    let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    let per = t.div_ceil(tasks.div_ceil(b * kvh).clamp(1, t));
    let runs = t.div_ceil(per);
    let parts: Vec<Vec<f32>> = (0..b * kvh * runs)
        .into_par_iter()
        .map(|task| {
            let (bi, kv, run) = (task / (kvh * runs), task / runs % kvh, task % runs);
            let job = Job {
                q: &q[bi * h * t * hd..][..h * t * hd],
                keys: &kt[(bi * kvh + kv) * hd * cap..][..hd * cap],
                values: &v[(bi * kvh + kv) * cap * hd..][..cap * hd],
                bias: &bias[bi * t * len..][..t * len],
                spans: &spans[bi * t..][..t],
                positions: (run * per, ((run + 1) * per).min(t)),
                first_head: kv * groups,
                groups,
                seq: t,
                cap,
                len,
                head_dim: hd,
                scale,
            };
            kernel.attend_job(&job)
        })
        .collect();
    for (task, part) in parts.iter().enumerate() {
        let (bi, kv, run) = (task / (kvh * runs), task / runs % kvh, task % runs);
        for (n, row) in part.chunks_exact(hd).enumerate() {
            let (ti, head) = (run * per + n / groups, kv * groups + n % groups);
            ctx[((bi * t + ti) * h + head) * hd..][..hd].copy_from_slice(row);
        }
    }
    ctx
}

/// The keys a query with this bias row may see: from its first to its last unhidden key (all of
/// them when every key is hidden, as softmax then weighs them alike).
fn visible(bias: &[f32]) -> (usize, usize) {
    let seen = |x: &f32| *x >= HIDDEN_BELOW;
    match bias.iter().position(seen) {
        Some(lo) => (
            lo,
            bias.len() - bias.iter().rev().position(seen).unwrap_or(0),
        ),
        None => (0, bias.len()),
    }
}

/// One task: the query heads of one key/value head of one batch row, at a run of positions.
struct Job<'a> {
    /// The batch row's queries, `[heads, seq, head_dim]`.
    q: &'a [f32],
    /// The key/value head's keys, `[head_dim, cap]`.
    keys: &'a [f32],
    /// Its values, `[cap, head_dim]`.
    values: &'a [f32],
    /// The batch row's bias, `[seq, len]`.
    bias: &'a [f32],
    /// The keys each position may see (`visible`).
    spans: &'a [(usize, usize)],
    positions: (usize, usize),
    first_head: usize,
    groups: usize,
    seq: usize,
    cap: usize,
    len: usize,
    head_dim: usize,
    scale: f32,
}

/// One query row of a job.
#[derive(Clone, Copy)]
struct Query<'a> {
    q: &'a [f32],
    bias: &'a [f32],
    lo: usize,
    hi: usize,
}

impl<'a> Job<'a> {
    /// The job's query rows, position by position, the query heads of each position in order.
    fn rows(&self) -> impl Iterator<Item = Query<'a>> + '_ {
        let (hd, t, len) = (self.head_dim, self.seq, self.len);
        (self.positions.0..self.positions.1).flat_map(move |ti| {
            let (lo, hi) = self.spans[ti];
            (0..self.groups).map(move |g| Query {
                q: &self.q[((self.first_head + g) * t + ti) * hd..][..hd],
                bias: &self.bias[ti * len..][..len],
                lo,
                hi,
            })
        })
    }
}

impl Kernel {
    /// A job's contexts, `[rows, head_dim]` in the order of [`Job::rows`].
    fn attend_job(self, job: &Job<'_>) -> Vec<f32> {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX-512F, the feature `job_avx512` is compiled for.
            Self::Avx512 => unsafe { x86::job_avx512(job) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX2 and FMA, the features `job_avx2` is compiled for.
            Self::Avx2 => unsafe { x86::job_avx2(job) },
            Self::Portable => job_rows(job, |a, b, c| a * b + c),
        }
    }
}

/// [`Kernel::attend_job`] one row at a time, in loops the compiler turns into SIMD code: the
/// kernel of CPUs without AVX-512 (the sums go in another order than the AVX-512 kernel's).
#[inline(always)]
fn job_rows(job: &Job<'_>, fma: impl Fn(f32, f32, f32) -> f32 + Copy) -> Vec<f32> {
    let (hd, cap) = (job.head_dim, job.cap);
    let rows: Vec<Query<'_>> = job.rows().collect();
    let mut out = vec![0f32; rows.len() * hd];
    let mut scores = vec![0f32; job.len];
    for (row, ctx) in rows.iter().zip(out.chunks_exact_mut(hd)) {
        let (lo, hi) = (row.lo, row.hi);
        let sc = &mut scores[lo..hi];
        sc.fill(0.0);
        for (d, &qd) in row.q.iter().enumerate() {
            for (s, &k) in sc.iter_mut().zip(&job.keys[d * cap + lo..d * cap + hi]) {
                *s = fma(qd, k, *s);
            }
        }
        let mut max = f32::NEG_INFINITY;
        for (s, &add) in sc.iter_mut().zip(&row.bias[lo..hi]) {
            *s = *s * job.scale + add;
            max = max.max(*s);
        }
        let mut sum = 0.0;
        for s in sc.iter_mut() {
            *s = exp(*s - max);
            sum += *s;
        }
        for (j, &p) in (lo..hi).zip(sc.iter()) {
            let p = p / sum;
            for (c, &x) in ctx.iter_mut().zip(&job.values[j * hd..][..hd]) {
                *c = fma(p, x, *c);
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{job_rows, Job, Query, BLOCK_ROWS};

    #[target_feature(enable = "avx2,fma")]
    pub fn job_avx2(job: &Job<'_>) -> Vec<f32> {
        job_rows(job, f32::mul_add)
    }

    /// [`super::Kernel::attend_job`] in blocks of [`BLOCK_ROWS`] query rows.
    #[target_feature(enable = "avx512f")]
    pub fn job_avx512(job: &Job<'_>) -> Vec<f32> {
        let hd = job.head_dim;
        let rows: Vec<Query<'_>> = job.rows().collect();
        let mut out = vec![0f32; rows.len() * hd];
        // Scores of a block: its rows' keys, from a multiple of 16 to the next one past `len`.
        let mut scratch = vec![0f32; BLOCK_ROWS * (job.len.next_multiple_of(16) + 16)];
        for (block, ctx) in rows.chunks(BLOCK_ROWS).zip(out.chunks_mut(BLOCK_ROWS * hd)) {
            let scratch = &mut scratch[..];
            match block.len() {
                6 => block_avx512::<6>(job, block, scratch, ctx),
                5 => block_avx512::<5>(job, block, scratch, ctx),
                4 => block_avx512::<4>(job, block, scratch, ctx),
                3 => block_avx512::<3>(job, block, scratch, ctx),
                2 => block_avx512::<2>(job, block, scratch, ctx),
                _ => block_avx512::<1>(job, block, scratch, ctx),
            }
        }
        out
    }

    /// `R` query rows: scores against the keys any of them may see, each row's softmax, and the
    /// context into `ctx` (`[R, head_dim]`).
    #[target_feature(enable = "avx512f")]
    fn block_avx512<const R: usize>(
        job: &Job<'_>,
        rows: &[Query<'_>],
        scratch: &mut [f32],
        ctx: &mut [f32],
    ) {
        let (hd, cap) = (job.head_dim, job.cap);
        assert!(rows.len() == R && ctx.len() == R * hd);
        let j0 = rows.iter().map(|r| r.lo).min().unwrap_or(0) / 16 * 16;
        let end = rows.iter().map(|r| r.hi).max().unwrap_or(0);
        // `end <= len <= cap` and `cap` is a multiple of 16: every key vector is inside the cache.
        let j1 = end.next_multiple_of(16);
        let width = j1 - j0;
        assert!(j1 <= cap && scratch.len() >= R * width && job.keys.len() == hd * cap);
        let q: [*const f32; R] = std::array::from_fn(|r| rows[r].q.as_ptr());
        let sp = scratch.as_mut_ptr();
        // SAFETY (scores): key vectors `j .. j + 16 * C <= j1 <= cap` of rows `d < hd` of the
        // `[hd, cap]` keys; queries hold `hd` values; the scratch holds `R` rows of `width`.
        let mut j = j0;
        while j + 64 <= j1 {
            unsafe {
                scores::<R, 4>(
                    q,
                    job.keys.as_ptr().add(j),
                    (cap, hd),
                    sp.add(j - j0),
                    width,
                )
            };
            j += 64;
        }
        while j < j1 {
            unsafe {
                scores::<R, 1>(
                    q,
                    job.keys.as_ptr().add(j),
                    (cap, hd),
                    sp.add(j - j0),
                    width,
                )
            };
            j += 16;
        }
        for (r, row) in rows.iter().enumerate() {
            softmax(row, &mut scratch[r * width..][..width], j0, job.scale);
        }
        let p: [&[f32]; R] = std::array::from_fn(|r| &scratch[r * width..][..end - j0]);
        for c0 in (0..hd).step_by(64) {
            context::<R>(&p, job.values, (j0, hd, c0), ctx);
        }
    }

    /// `C` vectors of 16 keys' scores for `R` query rows into `out` (rows `width` apart), each
    /// summed over the head dimension in order.
    ///
    /// # Safety
    /// `keys` must point at `16 C` readable keys in each of `hd` rows `cap` apart, every query at
    /// `hd` values, and `out` at `R` rows of `16 C` writable values `width` apart.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn scores<const R: usize, const C: usize>(
        q: [*const f32; R],
        keys: *const f32,
        (cap, hd): (usize, usize),
        out: *mut f32,
        width: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        for d in 0..hd {
            // SAFETY: as the function's contract says.
            unsafe {
                let k: [__m512; C] =
                    std::array::from_fn(|c| _mm512_loadu_ps(keys.add(d * cap + 16 * c)));
                for r in 0..R {
                    let qd = _mm512_set1_ps(*q[r].add(d));
                    for c in 0..C {
                        acc[r][c] = _mm512_fmadd_ps(qd, k[c], acc[r][c]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, &a) in acc.iter().enumerate() {
                // SAFETY: as the function's contract says.
                unsafe { _mm512_storeu_ps(out.add(r * width + 16 * c), a) };
            }
        }
    }

    /// One row's scores (keys `j0 ..`, a multiple of 16) made into its weights in place: scaled,
    /// biased, `exp(x - max) / sum` over the keys it may see, 0 for every other key.
    #[target_feature(enable = "avx512f")]
    fn softmax(row: &Query<'_>, scores: &mut [f32], j0: usize, scale: f32) {
        let (lo, hi) = (row.lo, row.hi);
        let (a0, a1) = (lo / 16 * 16, hi.next_multiple_of(16));
        assert!(j0 <= a0 && a1 - j0 <= scores.len() && hi <= row.bias.len());
        scores[..a0 - j0].fill(0.0);
        scores[a1 - j0..].fill(0.0);
        let sp = scores.as_mut_ptr().wrapping_sub(j0);
        let bias = row.bias.as_ptr();
        let lanes = |j: usize| -> __mmask16 {
            let from = lo.saturating_sub(j).min(16);
            let to = (hi - j).min(16);
            (((1u32 << to) - 1) & !((1u32 << from) - 1)) as __mmask16
        };
        let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut max = neg_inf;
        // SAFETY (all three loops): `j0 <= j < a1` indexes `scores` (asserted above); the bias
        // load reads only lanes `lo <= j + l < hi <= bias.len()` (masked lanes never fault).
        for j in (a0..a1).step_by(16) {
            unsafe {
                let m = lanes(j);
                let s = _mm512_loadu_ps(sp.add(j));
                let b = _mm512_maskz_loadu_ps(m, bias.wrapping_add(j));
                let x = _mm512_add_ps(_mm512_mul_ps(s, _mm512_set1_ps(scale)), b);
                let x = _mm512_mask_blend_ps(m, neg_inf, x);
                _mm512_storeu_ps(sp.add(j), x);
                max = _mm512_max_ps(max, x);
            }
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for j in (a0..a1).step_by(16) {
            unsafe {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sp.add(j)), max));
                _mm512_storeu_ps(sp.add(j), e);
                sum = _mm512_add_ps(sum, e);
            }
        }
        let sum = _mm512_set1_ps(sum16(sum));
        for j in (a0..a1).step_by(16) {
            unsafe { _mm512_storeu_ps(sp.add(j), _mm512_div_ps(_mm512_loadu_ps(sp.add(j)), sum)) };
        }
    }

    /// The context of `R` rows at head dimensions `c0 .. c0 + 64` (those below `hd`): the sum of
    /// `p[r][j] * values[j0 + j]` in order of `j`, into `ctx` (`[R, hd]`).
    #[target_feature(enable = "avx512f")]
    fn context<const R: usize>(
        p: &[&[f32]; R],
        values: &[f32],
        (j0, hd, c0): (usize, usize, usize),
        ctx: &mut [f32],
    ) {
        let keys = p[0].len();
        assert!(p.iter().all(|p| p.len() == keys) && (j0 + keys) * hd <= values.len());
        assert!(c0 < hd && ctx.len() == R * hd);
        let masks: [__mmask16; 4] = std::array::from_fn(|c| {
            let lanes = hd.saturating_sub(c0 + 16 * c).min(16);
            ((1u32 << lanes) - 1) as __mmask16
        });
        let vp = values.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for j in 0..keys {
            // SAFETY: row `j0 + j` of the `[.., hd]` values is inside `values` (asserted), and
            // only its lanes below `hd` are read (masked lanes never fault).
            unsafe {
                let row = vp.wrapping_add((j0 + j) * hd + c0);
                let v: [__m512; 4] = std::array::from_fn(|c| {
                    _mm512_maskz_loadu_ps(masks[c], row.wrapping_add(16 * c))
                });
                for r in 0..R {
                    let pr = _mm512_set1_ps(*p[r].get_unchecked(j));
                    for c in 0..4 {
                        acc[r][c] = _mm512_fmadd_ps(pr, v[c], acc[r][c]);
                    }
                }
            }
        }
        let out = ctx.as_mut_ptr();
        for (r, acc) in acc.iter().enumerate() {
            for (c, &a) in acc.iter().enumerate() {
                // SAFETY: lanes below `hd` of row `r` of `ctx` (`[R, hd]`).
                unsafe {
                    _mm512_mask_storeu_ps(out.wrapping_add(r * hd + c0 + 16 * c), masks[c], a)
                };
            }
        }
    }

    /// The 16 lanes added by a fixed tree: halves, then quarters, eighths and pairs.
    #[target_feature(enable = "avx512f")]
    fn sum16(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let half = _mm256_add_ps(lo, hi);
        let quarter = _mm_add_ps(
            _mm256_castps256_ps128(half),
            _mm256_extractf128_ps::<1>(half),
        );
        let eighth = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
        _mm_cvtss_f32(_mm_add_ss(eighth, _mm_shuffle_ps::<1>(eighth, eighth)))
    }

    /// [`super::exp`] on 16 lanes, the same operations in the same order (the same bits).
    #[target_feature(enable = "avx512f")]
    fn exp16(x: __m512) -> __m512 {
        let set = _mm512_set1_ps;
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, set(-87.3));
        let x = _mm512_min_ps(_mm512_max_ps(x, set(-87.3)), set(88.3));
        let n = _mm512_add_ps(_mm512_mul_ps(x, set(std::f32::consts::LOG2_E)), set(0.5));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(n);
        let r = _mm512_sub_ps(x, _mm512_mul_ps(n, set(0.693_359_4)));
        let r = _mm512_sub_ps(r, _mm512_mul_ps(n, set(-2.121_944_4e-4)));
        let mut p = set(1.987_569_2e-4);
        for c in [
            1.398_2e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm512_add_ps(_mm512_mul_ps(p, r), set(c));
        }
        let y = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(p, _mm512_mul_ps(r, r)), r),
            set(1.0),
        );
        let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        ));
        let e = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
        _mm512_mask_blend_ps(tiny, e, _mm512_setzero_ps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::tensor;
    use crate::cpu::tests::{values, F};
    use burn::tensor::{activation, Tensor};

    fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    fn host<const D: usize>(t: Tensor<F, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// Every kernel this CPU runs.
    fn kernels() -> impl Iterator<Item = Kernel> {
        #[allow(unused_mut)]
        let mut all = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                all.push(Kernel::Avx2);
            }
            if has!("avx512f") {
                all.push(Kernel::Avx512);
            }
        }
        all.into_iter()
    }

    /// `[b, kv, cap, hd]` keys as the cache holds them, `[b, kv, hd, cap]`.
    fn transposed_keys(k: &[f32], cap: usize, hd: usize) -> Vec<f32> {
        k.chunks_exact(cap * hd)
            .flat_map(|block| (0..hd * cap).map(move |i| block[(i % cap) * hd + i / cap]))
            .collect()
    }

    /// The bias of a left-padded causal prompt batch: row `bi` starts with `pads[bi]` padding
    /// positions, which no query sees; a padding query sees nothing at all.
    fn causal_bias(pads: &[usize], t: usize) -> Vec<f32> {
        let mut bias = vec![-1.0e30; pads.len() * t * t];
        for (bi, &pad) in pads.iter().enumerate() {
            for i in pad..t {
                bias[(bi * t + i) * t + pad..][..i + 1 - pad].fill(0.0);
            }
        }
        bias
    }

    #[test]
    fn a_causal_prompt_matches_full_attention_and_its_last_position_matches_decoding() {
        let device = Default::default();
        // 77 positions (several blocks and key vectors, a tail of both); 3 query heads per
        // key/value head; the second row left-padded by 9 (its first 9 queries see nothing).
        let (b, t, h, kvh, hd, cap) = (2, 77, 6, 2, 64, 128);
        let s = Heads {
            batch: b,
            seq: t,
            heads: h,
            kv_heads: kvh,
            head_dim: hd,
        };
        let q: Vec<f32> = values(b * h * t * hd, 21).iter().map(|x| x * 2.0).collect();
        let (k, v) = (
            values(b * kvh * cap * hd, 22),
            values(b * kvh * cap * hd, 23),
        );
        let kt = transposed_keys(&k, cap, hd);
        let bias = causal_bias(&[0, 9], t);
        let kv = |x: Vec<f32>| {
            tensor::<F, 4>(x, [b, kvh, cap, hd], &device)
                .slice([0..b, 0..kvh, 0..t, 0..hd])
                .unsqueeze_dim::<5>(2)
                .expand([b, kvh, h / kvh, t, hd])
                .reshape([b, h, t, hd])
        };
        let qt = tensor::<F, 4>(q.clone(), [b, h, t, hd], &device);
        let bt = tensor::<F, 4>(bias.clone(), [b, 1, t, t], &device);
        let scores = qt.matmul(kv(k).swap_dims(2, 3)) * 0.125 + bt;
        let want = activation::softmax(scores, 3)
            .matmul(kv(v.clone()))
            .swap_dims(1, 2)
            .reshape([b, t, h * hd]);
        let want = host(want);
        // One decoding step: the last position's queries over the same cache.
        let last_q: Vec<f32> = q
            .chunks_exact(t * hd)
            .flat_map(|head| &head[(t - 1) * hd..])
            .copied()
            .collect();
        let last_bias: Vec<f32> = bias
            .chunks_exact(t * t)
            .flat_map(|r| &r[(t - 1) * t..])
            .copied()
            .collect();
        let step = Heads { seq: 1, ..s };
        for kernel in kernels() {
            let got = attend_with(kernel, &q, &kt, &v, (cap, t), &bias, s, 0.125);
            close(&got, &want, 1e-6, "causal prompt");
            let decoded = attend_with(kernel, &last_q, &kt, &v, (cap, t), &last_bias, step, 0.125);
            for bi in 0..b {
                assert_eq!(
                    decoded[bi * h * hd..][..h * hd],
                    got[(bi * t + t - 1) * h * hd..][..h * hd],
                    "row {bi}: the last position against one decoding step"
                );
            }
        }
    }

    #[test]
    fn attend_equals_attention_with_repeated_kv_heads() {
        let device = Default::default();
        // Head widths below, at and past the 64 values the context keeps in registers; more keys
        // than one tile, and caches with room left.
        for (hd, cap, len) in [(20, 64, 5), (20, 128, 70), (64, 128, 128), (80, 128, 33)] {
            let s = Heads {
                batch: 2,
                seq: 2,
                heads: 6,
                kv_heads: 2,
                head_dim: hd,
            };
            let q = values(2 * 6 * 2 * hd, 4);
            let (k, v) = (values(2 * 2 * cap * hd, 5), values(2 * 2 * cap * hd, 6));
            let mut bias = values(2 * 2 * len, 7);
            bias[3] = -1.0e30; // a masked key
            let scale = 0.25;
            // The cache holds keys transposed, `[b, kv, hd, cap]`.
            let kt = transposed_keys(&k, cap, hd);
            let got: Vec<_> = kernels()
                .map(|kernel| attend_with(kernel, &q, &kt, &v, (cap, len), &bias, s, scale))
                .collect();
            // The reference: keys and values repeated per query head, as transformers does.
            let kv = |x: Vec<f32>| {
                tensor::<F, 4>(x, [2, 2, cap, hd], &device)
                    .slice([0..2, 0..2, 0..len, 0..hd])
                    .unsqueeze_dim::<5>(2)
                    .expand([2, 2, 3, len, hd])
                    .reshape([2, 6, len, hd])
            };
            let qt = tensor::<F, 4>(q, [2, 6, 2, hd], &device);
            let bt = tensor::<F, 4>(bias, [2, 1, 2, len], &device);
            let scores = qt.matmul(kv(k).swap_dims(2, 3)) * scale as f64 + bt;
            let want = activation::softmax(scores, 3)
                .matmul(kv(v))
                .swap_dims(1, 2)
                .reshape([2, 2, 6 * hd]);
            let want = host(want);
            for (n, got) in got.iter().enumerate() {
                let what = format!("attend (kernel {n}) hd {hd} cap {cap} len {len}");
                close(got, &want, 1e-6, &what);
            }
        }
    }

    #[test]
    fn grouped_query_heads_get_the_bits_of_repeated_kv_heads() {
        // 3 and 5 query heads per key/value head, against one key/value head per query head.
        for groups in [3, 5] {
            let (b, t, kvh, hd, cap, len) = (2, 2, 2, 64, 128, 70);
            let h = kvh * groups;
            let grouped = Heads {
                batch: b,
                seq: t,
                heads: h,
                kv_heads: kvh,
                head_dim: hd,
            };
            let q = values(b * h * t * hd, 8);
            let (kt, v) = (
                values(b * kvh * hd * cap, 9),
                values(b * kvh * cap * hd, 10),
            );
            let bias = values(b * t * len, 11);
            let got = attend(&q, &kt, &v, cap, len, &bias, grouped, 0.125);
            // Each key/value head's block repeated once per query head.
            let repeat = |x: &[f32]| -> Vec<f32> {
                x.chunks_exact(hd * cap)
                    .flat_map(|block| std::iter::repeat_n(block, groups).flatten())
                    .copied()
                    .collect()
            };
            let one_each = Heads {
                kv_heads: h,
                ..grouped
            };
            let want = attend(
                &q,
                &repeat(&kt),
                &repeat(&v),
                cap,
                len,
                &bias,
                one_each,
                0.125,
            );
            assert_eq!(got, want, "{groups} heads per group");
        }
    }
}
