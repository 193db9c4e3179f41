//! Pooling one record's per-token block `[seq, d]` (row-major, no padding) into stored rows.
//!
//! The sequence is `prompt_len` prompt tokens followed by `response_len` response tokens, so
//! `seq = prompt_len + response_len` exactly; any other length is an error, because a mismatch
//! almost always means padding leaked into the block. Token `t` is row `t` (0-based). The prompt
//! tokens are every token the model saw before the response, including BOS and chat-template tokens.
//!
//! | positions        | rows used                               | output rows |
//! |------------------|-----------------------------------------|-------------|
//! | `last`           | `prompt_len - 1` (last prompt token)    | 1           |
//! | `mean`           | `0 .. prompt_len` (whole prompt)        | 1           |
//! | `response-mean`  | `prompt_len .. prompt_len+response_len` | 1           |
//! | `response-first` | `prompt_len` (first response token)     | 1           |
//! | `all`            | `0 .. seq` (every token, in order)      | `seq`       |
//!
//! Means are summed in f64 in token order and divided once, then rounded to f32, so results do not
//! depend on batch layout.

use crate::error::{Error, Result};
use crate::spec::Positions;

/// Pools `block` (`[prompt_len + response_len, d]`) for `positions`; see the module table.
pub fn pool(
    positions: Positions,
    block: &[f32],
    d: usize,
    prompt_len: usize,
    response_len: usize,
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    pool_into(positions, block, d, prompt_len, response_len, &mut out)?;
    Ok(out)
}

/// Like [`pool`], appending to `out` (reuses its allocation).
pub fn pool_into(
    positions: Positions,
    block: &[f32],
    d: usize,
    prompt_len: usize,
    response_len: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    if d == 0 {
        return Err(Error::Pool("d is 0".into()));
    }
    let seq = prompt_len + response_len;
    if block.len() != seq * d {
        return Err(Error::Pool(format!(
            "block holds {} values, expected (prompt {prompt_len} + response {response_len}) x d {d} = {}",
            block.len(),
            seq * d
        )));
    }
    let row = |t: usize| &block[t * d..(t + 1) * d];
    match positions {
        Positions::Last => {
            if prompt_len == 0 {
                return Err(Error::Pool(
                    "positions last needs a non-empty prompt".into(),
                ));
            }
            out.extend_from_slice(row(prompt_len - 1));
        }
        Positions::ResponseFirst => {
            if response_len == 0 {
                return Err(Error::Pool(
                    "positions response-first needs at least one response token".into(),
                ));
            }
            out.extend_from_slice(row(prompt_len));
        }
        Positions::Mean => {
            if prompt_len == 0 {
                return Err(Error::Pool(
                    "positions mean needs a non-empty prompt".into(),
                ));
            }
            mean_rows(block, d, 0, prompt_len, out);
        }
        Positions::ResponseMean => {
            if response_len == 0 {
                return Err(Error::Pool(
                    "positions response-mean needs at least one response token".into(),
                ));
            }
            mean_rows(block, d, prompt_len, seq, out);
        }
        Positions::All => out.extend_from_slice(block),
    }
    Ok(())
}

/// Appends the f64-accumulated mean of rows `from..to` (non-empty).
fn mean_rows(block: &[f32], d: usize, from: usize, to: usize, out: &mut Vec<f32>) {
    let mut acc = MeanRows::new(d);
    for t in from..to {
        acc.add(&block[t * d..(t + 1) * d]);
    }
    acc.finish_into(out);
}

/// A mean of rows that arrive one at a time (decoding steps), with the same arithmetic as the
/// means of [`pool`]: f64 sums in row order, one division, one rounding to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanRows {
    acc: Vec<f64>,
    n: usize,
}

impl MeanRows {
    /// An empty mean of rows of width `d`.
    pub fn new(d: usize) -> Self {
        Self {
            acc: vec![0f64; d],
            n: 0,
        }
    }

    /// Adds one row.
    pub fn add(&mut self, row: &[f32]) {
        for (a, v) in self.acc.iter_mut().zip(row) {
            *a += f64::from(*v);
        }
        self.n += 1;
    }

    /// Rows added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Appends the mean (of no row: zeros divided by zero, so callers check [`Self::count`]).
    pub fn finish_into(&self, out: &mut Vec<f32>) {
        let n = self.n as f64;
        out.extend(self.acc.iter().map(|a| (a / n) as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_uses_the_documented_tokens() {
        // 3 prompt tokens, 2 response tokens, d = 2; row t = [t, 10 t].
        let block: Vec<f32> = (0..5).flat_map(|t| [t as f32, 10.0 * t as f32]).collect();
        let p = |m| pool(m, &block, 2, 3, 2).unwrap();
        assert_eq!(p(Positions::Last), vec![2.0, 20.0]);
        assert_eq!(p(Positions::Mean), vec![1.0, 10.0]);
        assert_eq!(p(Positions::ResponseFirst), vec![3.0, 30.0]);
        assert_eq!(p(Positions::ResponseMean), vec![3.5, 35.0]);
        assert_eq!(p(Positions::All), block);
    }

    #[test]
    fn inconsistent_input_is_an_error() {
        let block = vec![0f32; 10];
        assert!(matches!(
            pool(Positions::Last, &block, 2, 3, 1),
            Err(Error::Pool(_))
        ));
        assert!(matches!(
            pool(Positions::ResponseMean, &block, 2, 5, 0),
            Err(Error::Pool(_))
        ));
        assert!(matches!(
            pool(Positions::Last, &block, 2, 0, 5),
            Err(Error::Pool(_))
        ));
        assert!(matches!(
            pool(Positions::Mean, &block, 0, 0, 0),
            Err(Error::Pool(_))
        ));
    }
}
