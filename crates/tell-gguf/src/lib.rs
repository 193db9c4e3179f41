//! `tell-gguf`: a GGUF v2/v3 reader for LLaMA-family models, with no dependency on burn.
//!
//! - [`GgufFile`] memory-maps a file and parses header, metadata ([`Metadata`], every value
//!   type including nested arrays), tensor infos ([`TensorInfo`]) and the aligned data section.
//!   Every corrupt or truncated input gives a [`GgufError`] naming what was wrong; counts and
//!   lengths are bounded by the file size before anything is allocated.
//! - [`dequantize`] turns F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K data into
//!   f32, bit-identical to the `gguf` Python package.
//! - [`LlamaGguf`] reads the LLaMA hyper-parameters ([`LlamaMetadata`]) and the embedded
//!   tokenizer ([`GgufTokenizer`]), and loads tensors as f32 in HF orientation ([`HfTensor`])
//!   with the q/k rows un-permuted ([`unpermute_qk`]).
//!
//! Orientation: GGUF lists dims innermost first (`dims[0]` is the row length), so a GGUF
//! `[in, out]` matrix is the HF `[out, in]` matrix; the bytes are the same row-major data.

#![warn(missing_docs)]

mod dequant;
mod error;
mod file;
mod llama;
mod metadata;
mod permute;
mod reader;
mod tensor;

pub use dequant::{dequantize, dequantize_into};
pub use error::{GgufError, Result};
pub use file::{GgufFile, GgufHeader, DEFAULT_ALIGNMENT};
pub use llama::{gguf_name, hf_name, GgufTokenizer, HfBlocks, HfTensor, LlamaGguf, LlamaMetadata};
pub use metadata::{Array, Metadata, Value, ValueType, MAX_ARRAY_NESTING};
pub use permute::{permute_qk, unpermute_qk, unpermute_qk_bytes};
pub use tensor::{GgmlType, TensorInfo, MAX_DIMS, QK_K};
