//! A batch of token sequences, left-padded to one length, with its attention mask and the
//! position ids derived from that mask.

use crate::error::{Error, Result};

/// Token sequences of different lengths, left-padded so that every last token is aligned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Token ids, `[batch * seq]`, row-major; padding holds `pad_id`.
    pub tokens: Vec<u32>,
    /// `true` for a real token, `[batch * seq]`.
    pub mask: Vec<bool>,
    /// Position of each token within its own sequence, `[batch * seq]` (0 for padding).
    pub positions: Vec<usize>,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
    /// Padded length.
    pub seq: usize,
}

impl Batch {
    /// Left-pads sequences to the longest one.
    pub fn left_padded(sequences: &[Vec<u32>], pad_id: u32) -> Result<Self> {
        if sequences.is_empty() {
            return Err(Error::Input("empty batch".into()));
        }
        if let Some(i) = sequences.iter().position(Vec::is_empty) {
            return Err(Error::Input(format!(
                "sequence {i} of the batch has no tokens"
            )));
        }
        let seq = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let n = sequences.len() * seq;
        let (mut tokens, mut mask, mut positions) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for s in sequences {
            let pad = seq - s.len();
            tokens.extend(std::iter::repeat_n(pad_id, pad));
            mask.extend(std::iter::repeat_n(false, pad));
            positions.extend(std::iter::repeat_n(0, pad));
            tokens.extend_from_slice(s);
            mask.extend(std::iter::repeat_n(true, s.len()));
            // Positions come from the mask, so a token's position does not depend on how much
            // padding its row got: the bug that silently breaks padded batches in other tools.
            positions.extend(0..s.len());
        }
        Ok(Self {
            tokens,
            mask,
            positions,
            lengths: sequences.iter().map(Vec::len).collect(),
            seq,
        })
    }

    /// Number of sequences.
    pub fn size(&self) -> usize {
        self.lengths.len()
    }

    /// Index of the first real token of row `b` within the padded row.
    pub fn start(&self, b: usize) -> usize {
        self.seq - self.lengths[b]
    }

    /// Number of real (unpadded) tokens in the batch.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_on_the_left_and_numbers_positions_from_the_mask() {
        let b = Batch::left_padded(&[vec![5, 6, 7], vec![9]], 0).unwrap();
        assert_eq!(b.seq, 3);
        assert_eq!(b.tokens, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(b.mask, vec![true, true, true, false, false, true]);
        assert_eq!(b.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(b.start(1), 2);
        assert_eq!(b.real_tokens(), 4);
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(Batch::left_padded(&[], 0).is_err());
        let err = Batch::left_padded(&[vec![1], vec![]], 0).unwrap_err();
        assert!(err.to_string().contains("sequence 1"));
    }
}
