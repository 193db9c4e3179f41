//! LLaMA-family view of a GGUF file: the architecture hyper-parameters and the embedded
//! tokenizer as plain structs, GGUF <-> HF tensor names, and tensors loaded as f32 in HF
//! orientation (q/k rows un-permuted).

use std::path::Path;

use crate::error::{GgufError, Result};
use crate::file::GgufFile;
use crate::metadata::{Array, Metadata};
use crate::permute::{unpermute_qk, unpermute_qk_bytes};
use crate::tensor::{GgmlType, TensorInfo};

/// Hyper-parameters of a LLaMA-architecture model, read from `{arch}.*` keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaMetadata {
    /// `general.architecture` (the key prefix), e.g. `llama`.
    pub architecture: String,
    /// `{arch}.block_count`: number of decoder layers.
    pub block_count: usize,
    /// `{arch}.embedding_length`: hidden size.
    pub embedding_length: usize,
    /// `{arch}.feed_forward_length`: MLP intermediate size.
    pub feed_forward_length: usize,
    /// `{arch}.attention.head_count`: query heads.
    pub head_count: usize,
    /// `{arch}.attention.head_count_kv`: key/value heads (defaults to `head_count`).
    pub head_count_kv: usize,
    /// `embedding_length / head_count`.
    pub head_dim: usize,
    /// `{arch}.rope.freq_base` (RoPE theta; defaults to 10000 as in llama.cpp).
    pub rope_freq_base: f64,
    /// `{arch}.rope.dimension_count` (defaults to `head_dim`).
    pub rope_dimension_count: usize,
    /// `{arch}.attention.layer_norm_rms_epsilon` (the stored f32, widened exactly).
    pub rms_norm_eps: f64,
    /// `{arch}.context_length`: trained context.
    pub context_length: usize,
    /// `{arch}.vocab_size`, else the tokenizer's token count, else `token_embd.weight`'s rows.
    pub vocab_size: usize,
    /// True when the file has no `output.weight`: the LM head reuses the token embedding.
    pub tie_word_embeddings: bool,
}

fn usize_of(md: &Metadata, key: &str) -> Result<usize> {
    let v = md.get_u64(key)?;
    positive(key, v)
}

fn positive(key: &str, v: u64) -> Result<usize> {
    // Bounded to 2^31 so that products of a few of these cannot overflow a 64-bit usize.
    if v == 0 || v > (1 << 31) {
        return Err(GgufError::InvalidValue {
            key: key.to_owned(),
            value: v.to_string(),
            reason: "must be between 1 and 2^31",
        });
    }
    Ok(v as usize)
}

impl LlamaMetadata {
    /// Read the hyper-parameters of `file` (the tensor list decides `tie_word_embeddings` and,
    /// as a last resort, the vocab size).
    pub fn from_file(file: &GgufFile) -> Result<Self> {
        let md = file.metadata();
        let arch = md.get_str_opt("general.architecture")?.unwrap_or("llama");
        let k = |s: &str| format!("{arch}.{s}");
        let head_count = usize_of(md, &k("attention.head_count"))?;
        let head_count_kv = match md.get_u64_opt(&k("attention.head_count_kv"))? {
            Some(v) => positive(&k("attention.head_count_kv"), v)?,
            None => head_count,
        };
        let embedding_length = usize_of(md, &k("embedding_length"))?;
        if !embedding_length.is_multiple_of(head_count) || !head_count.is_multiple_of(head_count_kv)
        {
            return Err(GgufError::InvalidValue {
                key: k("attention.head_count"),
                value: format!("{head_count} (kv {head_count_kv}, width {embedding_length})"),
                reason: "heads must divide the width and kv heads must divide the heads",
            });
        }
        let head_dim = embedding_length / head_count;
        let rope_dimension_count = match md.get_u64_opt(&k("rope.dimension_count"))? {
            Some(v) => positive(&k("rope.dimension_count"), v)?,
            None => head_dim,
        };
        let vocab_size = match md.get_u64_opt(&k("vocab_size"))? {
            Some(v) => positive(&k("vocab_size"), v)?,
            None => match md.get_array_opt("tokenizer.ggml.tokens")? {
                Some(a) if !a.is_empty() => a.len(),
                _ => {
                    let t = file.tensor_info("token_embd.weight")?;
                    let rows = t.dims.get(1).copied().unwrap_or(0);
                    positive("token_embd.weight rows", rows)?
                }
            },
        };
        Ok(Self {
            architecture: arch.to_owned(),
            block_count: usize_of(md, &k("block_count"))?,
            embedding_length,
            feed_forward_length: usize_of(md, &k("feed_forward_length"))?,
            head_count,
            head_count_kv,
            head_dim,
            rope_freq_base: md.get_f64_opt(&k("rope.freq_base"))?.unwrap_or(10000.0),
            rope_dimension_count,
            rms_norm_eps: md.get_f64(&k("attention.layer_norm_rms_epsilon"))?,
            context_length: usize_of(md, &k("context_length"))?,
            vocab_size,
            tie_word_embeddings: file.tensor_info("output.weight").is_err(),
        })
    }
}

/// The tokenizer embedded in a GGUF file (`tokenizer.ggml.*` and `tokenizer.chat_template`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), ...
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (e.g. `llama-bpe`, `smollm`).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: token strings indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte (llama.cpp's enum); same length as `tokens`.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores` (SentencePiece models); same length as `tokens`.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges`: BPE merges, each "left right".
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (end of turn), when present.
    pub eot_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template` (Jinja).
    pub chat_template: Option<String>,
}

impl GgufTokenizer {
    /// Read the tokenizer keys; token ids are checked to lie inside the vocabulary and the
    /// per-token arrays to have one entry per token.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let tokens = md
            .get_string_array_opt("tokenizer.ggml.tokens")?
            .ok_or_else(|| GgufError::MissingKey {
                key: "tokenizer.ggml.tokens".to_owned(),
            })?
            .to_vec();
        let n = tokens.len();
        let same_len = |key: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(GgufError::InvalidValue {
                    key: key.to_owned(),
                    value: format!("{len} entries"),
                    reason: "must have one entry per token",
                })
            }
        };
        let token_types = match md.get_array_opt("tokenizer.ggml.token_type")? {
            None => None,
            Some(a) => {
                let v = a.to_i64_vec().ok_or_else(|| GgufError::WrongValueType {
                    key: "tokenizer.ggml.token_type".to_owned(),
                    expected: "array of integers",
                    found: a.type_name(),
                })?;
                same_len("tokenizer.ggml.token_type", v.len())?;
                Some(
                    v.into_iter()
                        .map(|x| x.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
                        .collect(),
                )
            }
        };
        let scores = match md.get_array_opt("tokenizer.ggml.scores")? {
            None => None,
            Some(Array::F32(v)) => {
                same_len("tokenizer.ggml.scores", v.len())?;
                Some(v.clone())
            }
            Some(a) => {
                return Err(GgufError::WrongValueType {
                    key: "tokenizer.ggml.scores".to_owned(),
                    expected: "array of f32",
                    found: a.type_name(),
                })
            }
        };
        let id = |key: &str| -> Result<Option<u32>> {
            match md.get_u64_opt(key)? {
                None => Ok(None),
                Some(v) if (v as usize) < n && v <= u32::MAX as u64 => Ok(Some(v as u32)),
                Some(v) => Err(GgufError::InvalidValue {
                    key: key.to_owned(),
                    value: v.to_string(),
                    reason: "token id outside the vocabulary",
                }),
            }
        };
        Ok(Self {
            model: md
                .get_str_opt("tokenizer.ggml.model")?
                .unwrap_or("")
                .to_owned(),
            pre: md.get_str_opt("tokenizer.ggml.pre")?.map(str::to_owned),
            token_types,
            scores,
            merges: md
                .get_string_array_opt("tokenizer.ggml.merges")?
                .map(<[String]>::to_vec),
            bos_token_id: id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: id("tokenizer.ggml.eos_token_id")?,
            eot_token_id: id("tokenizer.ggml.eot_token_id")?,
            unknown_token_id: id("tokenizer.ggml.unknown_token_id")?,
            padding_token_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos_token: md.get_bool_opt("tokenizer.ggml.add_bos_token")?,
            add_eos_token: md.get_bool_opt("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: md.get_bool_opt("tokenizer.ggml.add_space_prefix")?,
            chat_template: md
                .get_str_opt("tokenizer.chat_template")?
                .map(str::to_owned),
            tokens,
        })
    }
}

/// Per-layer GGUF suffix <-> HF suffix (after `blk.N.` / `model.layers.N.`).
const LAYER_NAMES: [(&str, &str); 9] = [
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
];

/// Whole-model GGUF name <-> HF name.
const GLOBAL_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The HF name of a GGUF LLaMA tensor (e.g. `blk.3.attn_output.weight` ->
/// `model.layers.3.self_attn.o_proj.weight`); `None` for names outside the LLaMA set (such as
/// llama.cpp's `rope_freqs.weight`).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    if let Some(&(_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == gguf_name) {
        return Some(hf.to_owned());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let &(_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == suffix)?;
    Some(format!("model.layers.{layer}.{hf}"))
}

/// The GGUF name of an HF LLaMA tensor; the inverse of [`hf_name`].
pub fn gguf_name(hf_name: &str) -> Option<String> {
    if let Some(&(g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == hf_name) {
        return Some(g.to_owned());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let &(g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == suffix)?;
    Some(format!("blk.{layer}.{g}"))
}

/// A tensor as f32 in HF orientation: `shape` is outermost first (PyTorch order), so a linear
/// weight is `[out_features, in_features]` row-major, exactly as in an HF safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct HfTensor {
    /// HF name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Shape, outermost first (the GGUF dims reversed).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// A 2-D tensor's rows as stored (still quantized), in HF orientation: row `r` of the HF
/// `[out, in]` matrix is `data[r * row_bytes..][..row_bytes]`, whole blocks of `dtype`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfBlocks {
    /// HF name, e.g. `model.layers.0.mlp.down_proj.weight`.
    pub name: String,
    /// `[out, in]`.
    pub shape: Vec<usize>,
    /// The block type of every row.
    pub dtype: GgmlType,
    /// Bytes per row.
    pub row_bytes: usize,
    /// The rows, q/k rows un-permuted as in [`HfTensor`].
    pub data: Vec<u8>,
}

/// A GGUF LLaMA model opened for loading: file, hyper-parameters and tokenizer.
#[derive(Debug)]
pub struct LlamaGguf {
    /// The memory-mapped file.
    pub file: GgufFile,
    /// Hyper-parameters.
    pub config: LlamaMetadata,
    /// Embedded tokenizer and chat template.
    pub tokenizer: GgufTokenizer,
}

impl LlamaGguf {
    /// Open and read config and tokenizer of a LLaMA-architecture GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(GgufFile::open(path)?)
    }

    /// Read config and tokenizer of an already opened file.
    pub fn from_file(file: GgufFile) -> Result<Self> {
        let config = LlamaMetadata::from_file(&file)?;
        let tokenizer = GgufTokenizer::from_metadata(file.metadata())?;
        Ok(Self {
            file,
            config,
            tokenizer,
        })
    }

    /// HF names of every tensor in the file that maps to one, in file order.
    pub fn hf_tensor_names(&self) -> Vec<String> {
        self.file
            .tensors()
            .iter()
            .filter_map(|t| hf_name(&t.name))
            .collect()
    }

    /// Load the tensor with HF name `name` as f32 in HF orientation, with q/k rows un-permuted
    /// for HF's rotate-half RoPE. For tied models `lm_head.weight` is absent: use
    /// `model.embed_tokens.weight` (see [`LlamaMetadata::tie_word_embeddings`]).
    pub fn tensor_hf(&self, name: &str) -> Result<HfTensor> {
        self.load(self.info_hf(name)?, name.to_owned())
    }

    /// The GGUF tensor info behind HF name `name`.
    fn info_hf(&self, name: &str) -> Result<&TensorInfo> {
        let g = gguf_name(name).ok_or_else(|| GgufError::TensorNotFound {
            name: name.to_owned(),
        })?;
        self.file.tensor_info(&g)
    }

    /// Load a tensor given its GGUF info; HF name and orientation as in [`Self::tensor_hf`].
    pub fn tensor_hf_from_info(&self, info: &TensorInfo) -> Result<HfTensor> {
        let name = hf_name(&info.name).ok_or_else(|| GgufError::TensorNotFound {
            name: format!("HF name for GGUF tensor '{}'", info.name),
        })?;
        self.load(info, name)
    }

    /// The stored type of the tensor with HF name `name` (to decide before reading its data).
    pub fn dtype_hf(&self, name: &str) -> Result<GgmlType> {
        Ok(self.info_hf(name)?.dtype)
    }

    /// The rows of the tensor with HF name `name` as stored, when it is 2-D and each row is
    /// whole blocks (`None` for 1-D tensors and rows that split a block); q/k rows un-permuted as
    /// [`Self::tensor_hf`] does, so that row `r` dequantizes to row `r` of its values.
    pub fn tensor_hf_blocks(&self, name: &str) -> Result<Option<HfBlocks>> {
        let info = self.info_hf(name)?;
        let shape = info.shape_hf();
        let (per_block, block_bytes) = info.dtype.block_geometry();
        let &[rows, cols] = shape.as_slice() else {
            return Ok(None);
        };
        if !cols.is_multiple_of(per_block) {
            return Ok(None);
        }
        let row_bytes = cols / per_block * block_bytes;
        let bytes = self.file.tensor_bytes(info)?;
        if bytes.len() != rows * row_bytes {
            return Err(GgufError::BadShape {
                tensor: info.name.clone(),
                dims: info.dims.clone(),
                reason: "the tensor's bytes are not its rows of whole blocks",
            });
        }
        let data = match self.qk_heads(info) {
            Some(h) => unpermute_qk_bytes(bytes, rows, row_bytes, h)?,
            None => bytes.to_vec(),
        };
        Ok(Some(HfBlocks {
            name: name.to_owned(),
            shape,
            dtype: info.dtype,
            row_bytes,
            data,
        }))
    }

    /// The head count whose rows llama.cpp permuted, for q/k projections.
    fn qk_heads(&self, info: &TensorInfo) -> Option<usize> {
        if info.name.ends_with(".attn_q.weight") {
            Some(self.config.head_count)
        } else if info.name.ends_with(".attn_k.weight") {
            Some(self.config.head_count_kv)
        } else {
            None
        }
    }

    fn load(&self, info: &TensorInfo, name: String) -> Result<HfTensor> {
        let (data, _) = self.file.tensor_f32(&info.name)?;
        let shape = info.shape_hf();
        let data = match (self.qk_heads(info), shape.as_slice()) {
            (Some(h), &[rows, cols]) => unpermute_qk(&data, rows, cols, h)?,
            (Some(_), _) => {
                return Err(GgufError::BadShape {
                    tensor: info.name.clone(),
                    dims: info.dims.clone(),
                    reason: "a q/k projection must be 2-D",
                })
            }
            (None, _) => data,
        };
        Ok(HfTensor { name, shape, data })
    }
}
