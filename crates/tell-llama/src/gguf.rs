//! GGUF checkpoints: config from the file's metadata and tensors dequantized to f32 under their
//! Hugging Face names, with q/k rows un-permuted for rotate-half RoPE (all done by `tell-gguf`).

use std::path::{Path, PathBuf};

use tell_gguf::{hf_name, LlamaGguf};

use crate::config::{LlamaConfig, RopeScaling};
use crate::cpu::{QuantKind, QuantRows};
use crate::error::{Error, Result};
use crate::weights::{TensorMeta, TensorSource};

/// A LLaMA-architecture GGUF file opened as a tensor source.
pub struct GgufSource {
    path: PathBuf,
    model: LlamaGguf,
}

fn gguf_error(path: &Path, e: tell_gguf::GgufError) -> Error {
    Error::Gguf {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

impl GgufSource {
    /// Opens a GGUF file and reads its metadata and tokenizer.
    pub fn open(path: &Path) -> Result<Self> {
        let model = LlamaGguf::open(path).map_err(|e| gguf_error(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            model,
        })
    }

    /// The embedded tokenizer and chat template.
    pub fn tokenizer(&self) -> &tell_gguf::GgufTokenizer {
        &self.model.tokenizer
    }

    /// The architecture, as the model code uses it.
    pub fn config(&self) -> Result<LlamaConfig> {
        let md = &self.model.config;
        let unsupported = |reason: String| Error::Unsupported {
            path: self.path.clone(),
            reason,
        };
        if md.architecture != "llama" {
            return Err(unsupported(format!(
                "general.architecture `{}`; only `llama` is supported",
                md.architecture
            )));
        }
        if md.rope_dimension_count != md.head_dim {
            return Err(unsupported(format!(
                "partial rotary embeddings (rope.dimension_count {} of head_dim {})",
                md.rope_dimension_count, md.head_dim
            )));
        }
        // llama.cpp bakes LLaMA 3.1's rope scaling into a `rope_freqs` tensor instead of metadata.
        if self.model.file.tensor_info("rope_freqs.weight").is_ok() {
            return Err(unsupported(
                "a `rope_freqs` tensor (rope scaling baked into the file) is not supported yet; \
                 load the Hugging Face checkpoint instead"
                    .into(),
            ));
        }
        let tok = &self.model.tokenizer;
        let eos_token_ids = tok
            .eos_token_id
            .into_iter()
            .chain(tok.eot_token_id)
            .collect();
        Ok(LlamaConfig {
            vocab_size: md.vocab_size,
            hidden_size: md.embedding_length,
            intermediate_size: md.feed_forward_length,
            num_layers: md.block_count,
            num_heads: md.head_count,
            num_kv_heads: md.head_count_kv,
            head_dim: md.head_dim,
            rms_norm_eps: md.rms_norm_eps,
            rope_theta: md.rope_freq_base,
            rope_scaling: RopeScaling::None,
            tie_word_embeddings: md.tie_word_embeddings,
            max_position_embeddings: md.context_length,
            bos_token_id: tok.bos_token_id,
            eos_token_ids,
        })
    }
}

impl TensorSource for GgufSource {
    fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.model.tensor_hf(name).map_err(|e| match e {
            tell_gguf::GgufError::TensorNotFound { .. } => Error::MissingTensor {
                name: name.to_owned(),
                path: self.path.clone(),
            },
            other => gguf_error(&self.path, other),
        })?;
        if t.shape != shape {
            return Err(Error::Shape {
                name: name.to_owned(),
                path: self.path.clone(),
                expected: shape.to_vec(),
                actual: t.shape,
            });
        }
        Ok(t.data)
    }

    fn read_quantized(&self, name: &str, shape: &[usize]) -> Result<Option<QuantRows>> {
        let not_found =
            |e: &tell_gguf::GgufError| matches!(e, tell_gguf::GgufError::TensorNotFound { .. });
        // The type first: the rows of a type the kernels do not read are not copied for nothing.
        let kind = match self.model.dtype_hf(name) {
            Ok(dtype) => QuantKind::of(dtype),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(gguf_error(&self.path, e)),
        };
        let Some(kind) = kind else {
            return Ok(None);
        };
        let blocks = self
            .model
            .tensor_hf_blocks(name)
            .map_err(|e| gguf_error(&self.path, e))?;
        Ok(blocks
            .filter(|b| b.shape == shape)
            .and_then(|b| QuantRows::new(kind, shape[0], shape[1], b.data)))
    }

    fn describe(&self) -> Vec<(String, TensorMeta)> {
        let mut v: Vec<(String, TensorMeta)> = self
            .model
            .file
            .tensors()
            .iter()
            .map(|info| {
                let name = hf_name(&info.name).unwrap_or_else(|| info.name.clone());
                let meta = TensorMeta {
                    dtype: format!("{:?}", info.dtype),
                    shape: info.shape_hf(),
                };
                (name, meta)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}
