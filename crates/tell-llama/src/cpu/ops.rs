//! The element-wise glue of a decoder block on host memory: RoPE and the split of the fused q/k/v
//! product, RMSNorm, SwiGLU (attention is in `attention.rs`).
//!
//! Each computes what the generic burn ops of `block.rs` compute, in the same order of operations
//! where that order is cheap to keep (RoPE, SwiGLU: bit for bit), and with sums in a different but
//! fixed order where it is not (RMSNorm's mean: equal to rounding).

use rayon::prelude::*;

use super::Kernel;

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Rows of the batch.
    pub batch: usize,
    /// New positions per row.
    pub seq: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; each serves `heads / kv_heads` query heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

/// Splits `qkv` (`[batch, seq, (heads + 2 kv_heads) * head_dim]`, the fused q/k/v product) into
/// `q` (`[batch, heads, seq, head_dim]`), `k` and `v` (`[batch, kv_heads, seq, head_dim]`), with
/// rotate-half RoPE applied to `q` and `k` (`cos`, `sin`: `[batch, seq, head_dim]`).
///
/// RoPE is `x * cos + rotate_half(x) * sin`, each product rounded and then added, as
/// `rope::apply` does with burn's ops.
pub fn rope_split(
    qkv: &[f32],
    s: Heads,
    cos: &[f32],
    sin: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Heads {
        batch: b,
        seq: t,
        heads: h,
        kv_heads: kvh,
        head_dim: hd,
    } = s;
    let width = (h + 2 * kvh) * hd;
    assert_eq!(
        qkv.len(),
        b * t * width,
        "rope_split: qkv is not [b, t, width]"
    );
    assert!(cos.len() == b * t * hd && sin.len() == b * t * hd);
    let mut q = vec![0f32; b * h * t * hd];
    let mut k = vec![0f32; b * kvh * t * hd];
    let mut v = vec![0f32; b * kvh * t * hd];
    for bi in 0..b {
        for ti in 0..t {
            let pos = bi * t + ti;
            let row = &qkv[pos * width..][..width];
            let (c, sn) = (&cos[pos * hd..][..hd], &sin[pos * hd..][..hd]);
            for head in 0..h {
                let out = &mut q[((bi * h + head) * t + ti) * hd..][..hd];
                rope_into(&row[head * hd..][..hd], c, sn, out);
            }
            for head in 0..kvh {
                let at = ((bi * kvh + head) * t + ti) * hd;
                rope_into(&row[(h + head) * hd..][..hd], c, sn, &mut k[at..][..hd]);
                v[at..at + hd].copy_from_slice(&row[(h + kvh + head) * hd..][..hd]);
            }
        }
    }
    (q, k, v)
}

/// `out = x * cos + rotate_half(x) * sin` for one head, `rotate_half(x) = [-x2, x1]`.
fn rope_into(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
    let half = x.len() / 2;
    for d in 0..x.len() {
        let rotated = if d < half { -x[d + half] } else { x[d - half] };
        out[d] = x[d] * cos[d] + rotated * sin[d];
    }
}

/// RMSNorm of each row of `x` (rows of `weight.len()` values): `x / sqrt(mean(x^2) + eps) * weight`,
/// in the order of operations of `RmsNorm::forward` (the mean is summed in another order).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "rms_norm: x is not [rows, d]"
    );
    let mut out = vec![0f32; x.len()];
    let norm = |(o, row): (&mut [f32], &[f32])| {
        let mean = sum_of_squares(row) / d as f32;
        let rms = (mean + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = v / rms * w;
        }
    };
    if x.len() >= 1 << 16 {
        out.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(norm);
    } else {
        out.chunks_mut(d).zip(x.chunks(d)).for_each(norm);
    }
    out
}

/// `sum(x^2)` in 16 lanes (element `i` into lane `i % 16`), then the lanes halved pairwise: a
/// fixed order the compiler vectorizes; one running sum was a chain of dependent adds, about 1.5%
/// of a prefill.
fn sum_of_squares(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    for (lane, v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane = v * v;
    }
    for c in chunks {
        for (lane, v) in lanes.iter_mut().zip(c) {
            *lane += v * v;
        }
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
    }
    lanes[0]
}

/// SwiGLU: `silu(gate) * up` for `gate_up` (`[rows, 2 width]`, gate then up in each row); returns
/// `[rows, width]`. `silu(x) = x * sigmoid(x)`, with `flex`'s two-sided sigmoid but the SIMD
/// [`exp`] (equal to burn's `silu(gate) * up` to rounding).
pub fn swiglu(gate_up: &[f32], rows: usize, width: usize) -> Vec<f32> {
    assert_eq!(gate_up.len(), rows * 2 * width, "swiglu: gate_up shape");
    let mut out = vec![0f32; rows * width];
    if out.is_empty() {
        return out;
    }
    let kernel = Kernel::detect();
    out.par_chunks_mut(width)
        .zip(gate_up.par_chunks(2 * width))
        .with_min_len(8)
        .for_each(|(out, gu)| kernel.swiglu_row(gu, out));
    out
}

impl Kernel {
    /// One row of [`swiglu`].
    pub(super) fn swiglu_row(self, gate_up: &[f32], out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX-512F, the feature `swiglu_avx512` is compiled for.
            Self::Avx512 => unsafe { x86::swiglu_avx512(gate_up, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw AVX2 and FMA, the features `swiglu_avx2` is compiled for.
            Self::Avx2 => unsafe { x86::swiglu_avx2(gate_up, out) },
            Self::Portable => swiglu_body(gate_up, out),
        }
    }
}

/// `silu(gate) * up` over one row, a loop the compiler turns into SIMD code.
#[inline(always)]
fn swiglu_body(gate_up: &[f32], out: &mut [f32]) {
    let (gate, up) = gate_up.split_at(out.len());
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        // flex's sigmoid: 1 / (1 + e^-g) for g >= 0, e^g / (1 + e^g) below, with e = e^-|g|.
        let e = exp(-g.abs());
        let sigmoid = if g >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        *o = g * sigmoid * u;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f")]
    pub fn swiglu_avx512(gate_up: &[f32], out: &mut [f32]) {
        super::swiglu_body(gate_up, out);
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn swiglu_avx2(gate_up: &[f32], out: &mut [f32]) {
        super::swiglu_body(gate_up, out);
    }
}

/// `e^x` in f32 without branches or calls, so that loops over it become SIMD code: Cephes' `expf`
/// (`x = n ln 2 + r`, `|r| <= ln 2 / 2`, a degree-6 polynomial for `e^r`, `2^n` from the exponent
/// bits), within 2 ulp of `f32::exp`. Below -87.3 it is 0 (`e^-87.3` is about `1.2e-38`, near the
/// smallest normal number; masked attention scores are -1e30), above 88.3 it stays `e^88.3`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MIN: f32 = -87.3;
    let tiny = x < MIN;
    let x = x.clamp(MIN, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    let e = y * pow2(n);
    if tiny {
        0.0
    } else {
        e
    }
}

/// `2^n` for an integer-valued `n` in -126 ..= 127, from the bits of `n + 1.5 * 2^23`, whose low
/// mantissa bits hold `n` in two's complement: the value of `(n as i32 + 127) << 23` as f32 bits,
/// but `as i32` saturates (and maps NaN to 0), which LLVM does lane by lane (SwiGLU ran at about
/// 6.5 cycles a value, 3% of a prefill).
#[inline(always)]
fn pow2(n: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0;
    let n_bits = (n + SHIFT).to_bits().wrapping_sub(SHIFT.to_bits());
    f32::from_bits(n_bits.wrapping_add(127) << 23)
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

    #[test]
    fn rope_split_equals_burns_split_and_rope_bit_for_bit() {
        let s = Heads {
            batch: 2,
            seq: 3,
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
        };
        let device = Default::default();
        let width = (s.heads + 2 * s.kv_heads) * s.head_dim;
        let qkv = values(2 * 3 * width, 1);
        let (cos, sin) = (values(2 * 3 * 8, 2), values(2 * 3 * 8, 3));
        let (q, k, v) = rope_split(&qkv, s, &cos, &sin);
        let x = tensor::<F, 3>(qkv, [2, 3, width], &device);
        let cos_t = tensor::<F, 4>(cos, [2, 1, 3, 8], &device);
        let sin_t = tensor::<F, 4>(sin, [2, 1, 3, 8], &device);
        let split = |from: usize, heads: usize| {
            x.clone()
                .slice([0..2, 0..3, from..from + heads * 8])
                .reshape([2, 3, heads, 8])
                .swap_dims(1, 2)
        };
        assert_eq!(q, host(crate::rope::apply(split(0, 4), &cos_t, &sin_t)));
        assert_eq!(k, host(crate::rope::apply(split(32, 2), &cos_t, &sin_t)));
        assert_eq!(v, host(split(48, 2)));
    }

    #[test]
    fn rms_norm_equals_the_block_norm() {
        let device = Default::default();
        let x: Vec<f32> = values(5 * 48, 11).iter().map(|v| v * 3.0).collect();
        let w = values(48, 12);
        let got = rms_norm(&x, &w, 1e-5);
        let xt = tensor::<F, 2>(x, [5, 48], &device);
        let var = (xt.clone() * xt.clone()).mean_dim(1);
        let want = xt / (var + 1e-5).sqrt() * tensor::<F, 1>(w, [48], &device).unsqueeze::<2>();
        close(&got, &host(want), 1e-6, "rms_norm");
    }

    #[test]
    fn sums_of_squares_take_every_value_once() {
        assert_eq!(sum_of_squares(&[]), 0.0);
        assert_eq!(sum_of_squares(&[1.0, 2.0, 3.0]), 14.0);
        // 16 ones and 5 twos: the remainder and the whole lanes both counted.
        let x: Vec<f32> = (0..21).map(|i| if i < 16 { 1.0 } else { 2.0 }).collect();
        assert_eq!(sum_of_squares(&x), 36.0);
        for n in [15, 16, 17, 576, 4099] {
            let x = values(n, 5);
            let want: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let got = f64::from(sum_of_squares(&x));
            assert!((got - want).abs() <= 1e-6 * want, "{n}: {got} vs {want}");
        }
    }

    #[test]
    fn swiglu_equals_burns_silu_times_up() {
        let device = Default::default();
        let gu: Vec<f32> = values(3 * 2 * 50, 10).iter().map(|x| x * 12.0).collect();
        let got = swiglu(&gu, 3, 50);
        let t = tensor::<F, 2>(gu, [3, 100], &device);
        let want = activation::silu(t.clone().slice([0..3, 0..50])) * t.slice([0..3, 50..100]);
        close(&got, &host(want), 1e-6, "swiglu");
    }

    #[test]
    fn exp_is_within_two_ulp_and_saturates_to_zero_or_a_finite_value() {
        for i in -198_000..=200_000 {
            let x = i as f32 * 4.4e-4; // -87.1 ..= 88
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 2.0 * f32::EPSILON * want,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(-1.0e30), 0.0);
        assert!(exp(1.0e30).is_finite() && exp(1.0e30) > 1.0e38);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn pow2_gives_the_bits_of_the_integer_conversion_for_every_exponent_exp_uses() {
        for n in -126..=127i32 {
            let want = f32::from_bits(((n + 127) as u32) << 23);
            assert_eq!(pow2(n as f32).to_bits(), want.to_bits(), "2^{n}");
        }
    }
}
