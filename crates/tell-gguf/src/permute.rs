//! The q/k projection row permutation. llama.cpp's converter reorders the rows of q_proj and
//! k_proj so that each head's rotary pairs are adjacent (Meta's interleaved RoPE):
//! `w.reshape(n_head, 2, head_dim / 2, in).swapaxes(1, 2)`. HF's rotate-half RoPE pairs row i
//! with row i + head_dim / 2 instead, so GGUF weights must be un-permuted for an HF-layout model.

use crate::error::{GgufError, Result};

/// Check the geometry and return the head dim.
fn head_dim(len: usize, rows: usize, cols: usize, n_head: usize) -> Result<usize> {
    let err = |reason: String| Err(GgufError::Permute { reason });
    if rows.checked_mul(cols) != Some(len) {
        return err(format!(
            "data has {len} values, not rows {rows} x cols {cols}"
        ));
    }
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return err(format!(
            "{rows} rows do not split into {n_head} heads of an even size"
        ));
    }
    Ok(rows / n_head)
}

/// Apply `map(hf_row) -> gguf_row` to copy whole rows (of values, or of a quantized row's bytes).
fn reorder<T: Copy + Default>(
    w: &[T],
    rows: usize,
    cols: usize,
    n_head: usize,
    to_hf: bool,
) -> Result<Vec<T>> {
    let hd = head_dim(w.len(), rows, cols, n_head)?;
    let half = hd / 2;
    let mut out = vec![T::default(); w.len()];
    for h in 0..n_head {
        for a in 0..2 {
            for b in 0..half {
                // HF row (h, a, b) <-> GGUF row (h, b, a).
                let hf = h * hd + a * half + b;
                let gg = h * hd + 2 * b + a;
                let (src, dst) = if to_hf { (gg, hf) } else { (hf, gg) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

/// HF -> GGUF: the permutation llama.cpp's converter applies to q/k weights of shape
/// `[rows, cols]` (HF orientation, row-major), with `n_head` heads (use the kv head count for
/// k_proj). Also works for a 1-D bias with `cols == 1`.
pub fn permute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Result<Vec<f32>> {
    reorder(w, rows, cols, n_head, false)
}

/// GGUF -> HF: the inverse of [`permute_qk`], turning GGUF q/k rows back into the layout HF's
/// rotate-half RoPE expects. Shape and `n_head` as in [`permute_qk`].
pub fn unpermute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Result<Vec<f32>> {
    reorder(w, rows, cols, n_head, true)
}

/// [`unpermute_qk`] on rows of bytes: a quantized tensor's `rows` rows of `row_bytes` each
/// (whole blocks per row, so rows move as units).
pub fn unpermute_qk_bytes(
    w: &[u8],
    rows: usize,
    row_bytes: usize,
    n_head: usize,
) -> Result<Vec<u8>> {
    reorder(w, rows, row_bytes, n_head, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The converter's numpy expression spelled out literally with index arithmetic, to check
    /// `permute_qk` against the definition rather than against itself.
    fn numpy_permute(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
        // reshape(n_head, 2, half, cols) then swapaxes(1, 2) -> shape (n_head, half, 2, cols).
        let half = rows / n_head / 2;
        let mut out = Vec::with_capacity(w.len());
        for h in 0..n_head {
            for b in 0..half {
                for a in 0..2 {
                    let src_row = (h * 2 + a) * half + b;
                    out.extend_from_slice(&w[src_row * cols..(src_row + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn permute_matches_converter_and_round_trips() {
        for &(n_head, hd, cols) in &[(9usize, 64usize, 5usize), (3, 64, 7), (2, 4, 3), (1, 2, 1)] {
            let rows = n_head * hd;
            let w: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            let p = permute_qk(&w, rows, cols, n_head).unwrap();
            assert_eq!(p, numpy_permute(&w, rows, cols, n_head));
            if hd > 2 {
                assert_ne!(
                    p, w,
                    "with more than one rotary pair per head, rows must move"
                );
            }
            assert_eq!(unpermute_qk(&p, rows, cols, n_head).unwrap(), w);
            assert_eq!(
                permute_qk(
                    &unpermute_qk(&w, rows, cols, n_head).unwrap(),
                    rows,
                    cols,
                    n_head
                )
                .unwrap(),
                w
            );
        }
    }

    #[test]
    fn small_case_by_hand() {
        // One head of dim 4, one column: HF rows [r0 r1 | r2 r3] pair (r0,r2), (r1,r3); GGUF
        // stores the pairs adjacent: [r0 r2 r1 r3].
        let hf = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(permute_qk(&hf, 4, 1, 1).unwrap(), vec![0.0, 2.0, 1.0, 3.0]);
        assert_eq!(
            unpermute_qk(&[0.0, 2.0, 1.0, 3.0], 4, 1, 1).unwrap(),
            hf.to_vec()
        );
    }

    #[test]
    fn bad_geometry_is_an_error() {
        assert!(unpermute_qk(&[0.0; 6], 6, 1, 4).is_err());
        assert!(unpermute_qk(&[0.0; 6], 6, 1, 2).is_err()); // head dim 3 is odd
        assert!(unpermute_qk(&[0.0; 5], 6, 1, 3).is_err());
        assert!(unpermute_qk(&[0.0; 6], 6, 1, 0).is_err());
    }
}
