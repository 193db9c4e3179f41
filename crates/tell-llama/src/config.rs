//! Model configuration: Hugging Face `config.json` met at one seam, turned into [`LlamaConfig`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// RoPE frequency scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (LLaMA 3.0 and earlier).
    None,
    /// The `llama3` scaling of LLaMA 3.1 and later.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// The architecture of a LLaMA-family decoder, as the model code uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Keys of `config.json` that cannot change what the model computes, whatever their value; any
/// key we do not know is refused, so that a model that needs a feature we lack fails loudly
/// instead of computing something else. The list is checked against what transformers 4.40 to
/// 5.x writes for a LlamaConfig (`tests/reference/make_config_goldens.py`). Keys that start with
/// `_` (`_name_or_path`, `_attn_implementation`, ...) are transformers' private bookkeeping and
/// are accepted too; `rope_interleaved` and `pruned_heads` are accepted only with a harmless value
/// (see `from_json_str`).
const IGNORED_KEYS: &[&str] = &[
    // Bookkeeping: what wrote the file and how it stores the weights (tell widens to f32).
    "architectures",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "use_bfloat16",
    "tokenizer_class",
    "finetuning_task",
    "task_specific_params",
    "prefix",
    // Nanotron's LLaMA export (SmolLM2) marks its configs; transformers reads nothing from it.
    "is_llama_config",
    // Hints for transformers.js (ONNX kv-cache dtypes), not for the weights.
    "transformers.js_config",
    // Special token ids: the tokenizer's business; the forward pass takes token ids as given.
    "pad_token_id",
    "unk_token_id",
    "sep_token_id",
    "cls_token_id",
    "mask_token_id",
    "decoder_start_token_id",
    // Training only: initialisation, dropout (0 at inference), loss and head-classification setup.
    "initializer_range",
    "attention_dropout",
    "tf_legacy_loss",
    "problem_type",
    "id2label",
    "label2id",
    // A training-time sharding of the same linear maps: transformers 4.40 computes a layer as
    // the sum of `pretraining_tp` slices (the same map up to rounding); 4.57 and 5.x ignore it.
    "pretraining_tp",
    // What a forward call returns and keeps, not what it computes.
    "use_cache",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    // Encoder-decoder and chunking switches that LlamaModel never reads.
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "is_decoder",
    "add_cross_attention",
    "tie_encoder_decoder",
    "cross_attention_hidden_size",
    // Generation defaults (transformers 4 keeps them in the config): `tell generate` takes its
    // sampling from its own options, never from these.
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
];

/// `config.json` field by field, as the Hub ships it (transformers 4) or as transformers 5
/// writes it; optional fields are `Option` so that defaults live in one place below.
#[derive(Debug, Deserialize)]
struct HfConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    model_type: Option<String>,
    rope_interleaved: Option<bool>,
    pruned_heads: Option<Value>,
}

const USED_KEYS: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "bos_token_id",
    "eos_token_id",
    "model_type",
    "rope_interleaved",
    "pruned_heads",
];

impl LlamaConfig {
    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::Io {
            path: path.to_owned(),
            err,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates `config.json` text; `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Config {
            path: path.to_owned(),
            reason,
        };
        let unsupported = |reason: String| Error::Unsupported {
            path: path.to_owned(),
            reason,
        };
        let raw: BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        for key in raw.keys() {
            let known = USED_KEYS.contains(&key.as_str())
                || IGNORED_KEYS.contains(&key.as_str())
                || key.starts_with('_');
            if !known {
                return Err(unsupported(format!(
                    "unknown field `{key}`: it may change the architecture, and tell does not know it"
                )));
            }
        }
        let hf: HfConfig = serde_json::from_value(Value::Object(raw.into_iter().collect()))
            .map_err(|e| bad(e.to_string()))?;

        if let Some(mt) = &hf.model_type {
            if mt != "llama" {
                return Err(unsupported(format!(
                    "model_type `{mt}`; only `llama` is supported"
                )));
            }
        }
        if let Some(act) = &hf.hidden_act {
            if act != "silu" {
                return Err(unsupported(format!(
                    "hidden_act `{act}`; LLaMA uses `silu`"
                )));
            }
        }
        if hf.attention_bias == Some(true) {
            return Err(unsupported(
                "attention_bias = true (biased q/k/v/o projections) is not supported".into(),
            ));
        }
        if hf.mlp_bias == Some(true) {
            return Err(unsupported(
                "mlp_bias = true (biased MLP projections) is not supported".into(),
            ));
        }
        // Nanotron's flag for GPT-J-style (interleaved) rotary pairs; transformers, and tell
        // with it, always rotate halves, so only `false` describes the model tell would run.
        if hf.rope_interleaved == Some(true) {
            return Err(unsupported(
                "rope_interleaved = true (interleaved rotary pairs) is not supported; tell, like \
                 transformers' LlamaForCausalLM, rotates halves"
                    .into(),
            ));
        }
        // Pruned heads leave layers with fewer heads than num_attention_heads says.
        match &hf.pruned_heads {
            None | Some(Value::Null) => {}
            Some(Value::Object(m))
                if m.values().all(|v| v.as_array().is_some_and(Vec::is_empty)) => {}
            Some(other) => {
                return Err(unsupported(format!(
                    "pruned_heads = {other} (attention heads removed from some layers) is not \
                     supported"
                )))
            }
        }
        if hf.rope_scaling.is_some() && hf.rope_parameters.is_some() {
            return Err(bad(
                "both `rope_scaling` and `rope_parameters` are given; keep one".into(),
            ));
        }
        // transformers 5 folds rope_theta into rope_parameters; the Hub's 4.x files keep it apart.
        let (rope_theta, rope_scaling) = match &hf.rope_parameters {
            Some(params) => {
                let theta = params
                    .get("rope_theta")
                    .and_then(Value::as_f64)
                    .or(hf.rope_theta)
                    .ok_or_else(|| bad("rope_parameters has no numeric `rope_theta`".into()))?;
                (theta, parse_rope_scaling(params, &unsupported, &bad)?)
            }
            None => {
                let scaling = match &hf.rope_scaling {
                    None | Some(Value::Null) => RopeScaling::None,
                    Some(v) => parse_rope_scaling(v, &unsupported, &bad)?,
                };
                (hf.rope_theta.unwrap_or(10_000.0), scaling)
            }
        };

        let num_heads = hf.num_attention_heads;
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(bad(format!(
                "num_attention_heads ({num_heads}) must be a positive multiple of num_key_value_heads ({num_kv_heads})"
            )));
        }
        let head_dim = match hf.head_dim {
            Some(d) => d,
            None => {
                if !hf.hidden_size.is_multiple_of(num_heads) {
                    return Err(bad(format!(
                        "hidden_size {} is not divisible by num_attention_heads {num_heads}; give head_dim",
                        hf.hidden_size
                    )));
                }
                hf.hidden_size / num_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(bad(format!(
                "head_dim {head_dim} must be even and positive"
            )));
        }
        for (name, v) in [
            ("vocab_size", hf.vocab_size),
            ("hidden_size", hf.hidden_size),
            ("intermediate_size", hf.intermediate_size),
            ("num_hidden_layers", hf.num_hidden_layers),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} must be positive")));
            }
        }
        let eos_token_ids = match &hf.eos_token_id {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Number(n)) => vec![as_token_id(n.as_u64(), &bad)?],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| as_token_id(v.as_u64(), &bad))
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "eos_token_id must be an integer or a list, got {other}"
                )))
            }
        };
        Ok(Self {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            max_position_embeddings: hf.max_position_embeddings.unwrap_or(2048),
            bos_token_id: hf.bos_token_id,
            eos_token_ids,
        })
    }

    /// Number of parameters the architecture has (tied embeddings counted once).
    pub fn num_parameters(&self) -> usize {
        let d = self.hidden_size;
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let attn = d * q + 2 * d * kv + q * d;
        let mlp = 3 * d * self.intermediate_size;
        let block = attn + mlp + 2 * d;
        let embed = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + self.num_layers * block + d + head
    }
}

fn as_token_id(v: Option<u64>, bad: &dyn Fn(String) -> Error) -> Result<u32> {
    v.and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| bad("token ids must be non-negative integers".into()))
}

fn parse_rope_scaling(
    v: &Value,
    unsupported: &dyn Fn(String) -> Error,
    bad: &dyn Fn(String) -> Error,
) -> Result<RopeScaling> {
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(RopeScaling::None),
        "llama3" => {
            let num = |key: &str| {
                v.get(key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad(format!("llama3 rope scaling needs numeric `{key}`")))
            };
            let factor = num("factor")?;
            let low_freq_factor = num("low_freq_factor")?;
            let high_freq_factor = num("high_freq_factor")?;
            let original = num("original_max_position_embeddings")?;
            if high_freq_factor <= low_freq_factor || factor <= 0.0 || original < 1.0 {
                return Err(bad(format!(
                    "llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor, got {v}"
                )));
            }
            Ok(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original as usize,
            })
        }
        other => Err(unsupported(format!(
            "rope scaling type `{other}`; supported: default, llama3"
        ))),
    }
}
