//! The token embedding, held once: on `flex` with the quantized kernels, as the rows the
//! checkpoint stores (bf16 or f32 safetensors, GGUF blocks), which a tied LM head reads too;
//! elsewhere as a tensor.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::cpu::{self, QuantRows};
use crate::error::{Error, Result};

/// The `[vocab, d]` token embedding.
#[derive(Debug, Clone)]
pub enum Embedding<B: Backend> {
    /// A tensor in the model's float type (CUDA, the other CPU backends, CPUs without AVX-512).
    Tensor(Tensor<B, 2>),
    /// The checkpoint's rows as held; a lookup widens the rows it needs (exactly as reading the
    /// whole matrix as f32 would), so bf16 keeps 2 bytes a value and a tied head no second copy.
    Rows(QuantRows),
}

impl<B: Backend> Embedding<B> {
    /// The rows as held, where the `flex` kernels read them; `None` keeps the tensor.
    pub fn rows_of(rows: Option<QuantRows>) -> Option<QuantRows> {
        rows.filter(|_| cpu::is_flex::<B>() && cpu::quant_kernels())
    }

    /// The embeddings of `ids` (each below the vocabulary size), `[ids.len(), d]`.
    pub fn lookup(&self, ids: &[u32], device: &B::Device) -> Result<Tensor<B, 2>> {
        match self {
            Self::Tensor(table) => {
                let ids = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(
                        ids.iter().map(|&x| x as i64).collect::<Vec<_>>(),
                        [ids.len()],
                    ),
                    device,
                );
                Ok(table.clone().select(0, ids))
            }
            Self::Rows(rows) => {
                let (d, rb) = (rows.cols(), rows.row_bytes());
                let mut values = vec![0f32; ids.len() * d];
                for (&id, out) in ids.iter().zip(values.chunks_exact_mut(d.max(1))) {
                    let bytes = rows.bytes().get(id as usize * rb..(id as usize + 1) * rb);
                    let ok = bytes.is_some_and(|b| {
                        let what = "token embedding";
                        tell_gguf::dequantize_into(rows.kind().dtype(), b, out, what).is_ok()
                    });
                    if !ok {
                        return Err(Error::Input(format!(
                            "token id {id} has no row in the embedding ({} rows)",
                            rows.rows()
                        )));
                    }
                }
                Ok(cpu::tensor(values, [ids.len(), d], device))
            }
        }
    }
}
